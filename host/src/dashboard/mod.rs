//! The web dashboard of `weft serve`, on the API's public listener and behind its key:
//! the instances page (`/`), an instance's page with its progress, timeline and raw
//! history, and the controls of the HTTP API (terminate, suspend, resume, rewind,
//! restart, raise event, purge), each behind a confirmation page.
//!
//! Routes (`/` and everything under `/ui/`):
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the instances page: filters by status, name and id prefix, paging |
//! | `GET /ui/rows?...` | its table body, polled by the page while it is open |
//! | `GET,POST /ui/login`, `POST /ui/logout` | the key in, and out of, the cookie |
//! | `GET /ui/instances/{id}[?hpage=N]` | one instance, with a page of its raw history |
//! | `GET /ui/instances/{id}/live` | its live part, polled while it has not ended |
//! | `GET /ui/instances/{id}/confirm/{action}` | the confirmation form of a control |
//! | `POST /ui/instances/{id}/{action}` | the control, through the API's own functions |
//! | `GET /ui/assets/{file}` | the stylesheet and the script, embedded in the binary |
//!
//! Every route but the login page and the stylesheet needs the key, which the dashboard
//! only takes from its cookie (or the `x-functions-key` header), never from a URL; pages
//! redirect to the login page without it, data routes answer 401. A POST must come from
//! this origin ([`crate::api::auth`]). Every answer forbids framing, sniffing, caching
//! and inline script (`Content-Security-Policy`); the HTML is rendered by `maud`, which
//! escapes everything guests wrote (names, inputs, outputs, statuses, messages).

mod actions;
mod pages;
pub mod timeline;

use crate::api::auth::{self, Refusal};
use crate::api::query::Query;
use crate::api::{Api, Error};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// The stylesheet and the script, embedded so the dashboard works offline.
const STYLESHEET: &str = include_str!("assets/dashboard.css");
const SCRIPT: &str = include_str!("assets/dashboard.js");

/// No inline script or style, nothing from elsewhere, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The largest form the dashboard reads, but for a raised event's data, which may be as
/// large as the payload limit.
const SMALL_FORM: usize = 16 * 1024;
/// The longest a browser may take to send a form.
const FORM_DEADLINE: Duration = Duration::from_secs(30);

/// Whether `path` is the dashboard's rather than the API's.
pub fn handles(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// Serves one dashboard request, with the security headers on every answer.
pub async fn serve(api: Arc<Api>, request: Request) -> Response {
    let mut response = route(api, request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// One request, as the dashboard's pages see it.
pub(crate) struct Visit {
    pub api: Arc<Api>,
    pub query: Query,
    pub headers: HeaderMap,
}

impl Visit {
    /// Whether the browser reached this server over https (then the cookie is `Secure`).
    fn secure(&self) -> bool {
        self.api.public_url.starts_with("https://")
    }
}

/// Reads a urlencoded form of at most `limit` bytes within [`FORM_DEADLINE`].
pub(crate) async fn form(body: Body, limit: usize) -> Result<Query, Error> {
    match tokio::time::timeout(FORM_DEADLINE, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(Error::RequestTimeout(format!(
            "the form did not arrive within {FORM_DEADLINE:?}"
        ))),
        Ok(Err(_)) => Err(Error::PayloadTooLarge(format!(
            "the form is larger than {limit} bytes"
        ))),
        Ok(Ok(bytes)) => match std::str::from_utf8(&bytes) {
            Ok(text) => Ok(Query::parse(Some(text))),
            Err(_) => Err(Error::BadRequest("the form is not UTF-8".to_string())),
        },
    }
}

async fn route(api: Arc<Api>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(segments) = crate::api::segments(parts.uri.path()) else {
        return not_found();
    };
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = parts.method.clone();
    let visit = Visit {
        api,
        query: Query::parse(parts.uri.query()),
        headers: parts.headers,
    };
    // The routes anyone may reach: the login page and the stylesheet it needs.
    match (&method, segments.as_slice()) {
        (&Method::GET, ["ui", "assets", "dashboard.css"]) => {
            return asset(STYLESHEET, "text/css; charset=utf-8");
        }
        (&Method::GET, ["ui", "login"]) => return html(StatusCode::OK, pages::login(None)),
        (&Method::POST, ["ui", "login"]) => return login(visit, body).await,
        _ => {}
    }
    let is_page = method == Method::GET
        && matches!(
            segments.as_slice(),
            [] | ["ui"] | ["ui", "instances", _] | ["ui", "instances", _, "confirm", _]
        );
    // The key comes from the cookie or the header only: never from a URL the dashboard
    // makes.
    match auth::check(&visit.api.key, None, &method, &visit.headers) {
        Ok(_) => {}
        Err(Refusal::CrossSite) => {
            return text(StatusCode::FORBIDDEN, &Refusal::CrossSite.to_string());
        }
        Err(_) if is_page => return redirect("/ui/login"),
        Err(refusal) => return text(StatusCode::UNAUTHORIZED, &refusal.to_string()),
    }
    let result = match (&method, segments.as_slice()) {
        (&Method::GET, [] | ["ui"]) => pages::instances(&visit).await,
        (&Method::GET, ["ui", "rows"]) => pages::rows(&visit).await,
        (&Method::GET, ["ui", "assets", "dashboard.js"]) => {
            return asset(SCRIPT, "text/javascript; charset=utf-8");
        }
        (&Method::POST, ["ui", "logout"]) => {
            let mut response = redirect("/ui/login");
            if let Ok(value) = HeaderValue::from_str(&auth::clear_cookie(visit.secure())) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            return response;
        }
        (&Method::GET, ["ui", "instances", id]) => pages::instance(&visit, id).await,
        (&Method::GET, ["ui", "instances", id, "live"]) => pages::live(&visit, id).await,
        (&Method::GET, ["ui", "instances", id, "confirm", action]) => {
            match actions::Action::parse(action) {
                Some(action) => pages::confirm(&visit, id, action).await,
                None => return not_found(),
            }
        }
        (&Method::POST, ["ui", "instances", id, action]) => match actions::Action::parse(action) {
            Some(action) => {
                let id = id.to_string();
                return actions::perform(visit, body, &id, action).await;
            }
            None => return not_found(),
        },
        _ => return not_found(),
    };
    match result {
        Ok(response) => response,
        Err(error) => error_page(&error),
    }
}

/// `POST /ui/login`: a right key sets the cookie and goes to the instances page; a wrong
/// one shows the login page again with a 401. Only from this origin (login CSRF).
async fn login(visit: Visit, body: Body) -> Response {
    if !auth::same_origin(&visit.headers) {
        return text(StatusCode::FORBIDDEN, &Refusal::CrossSite.to_string());
    }
    let secure = visit.secure();
    let expected = visit.api.key.clone();
    let form = match form(body, SMALL_FORM).await {
        Ok(form) => form,
        Err(error) => return error_page(&error),
    };
    let given = form.get("key").unwrap_or_default();
    if !crate::api::key::matches(&expected, given) {
        return html(
            StatusCode::UNAUTHORIZED,
            pages::login(Some(
                "That key is wrong. Copy it from the line `key: ...` that weft serve prints, or from the data dir's api-key file.",
            )),
        );
    }
    let mut response = redirect("/");
    if let Ok(value) = HeaderValue::from_str(&auth::set_cookie(&expected, secure)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub(crate) fn html(status: StatusCode, markup: maud::Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

fn asset(content: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], content).into_response()
}

fn text(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.to_string(),
    )
        .into_response()
}

/// A 303 to `location`, a path on this server.
pub(crate) fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn not_found() -> Response {
    error_page(&Error::NotFound("no such page".to_string()))
}

/// An error as a page, with the API's status code for it.
pub(crate) fn error_page(error: &Error) -> Response {
    if matches!(error, Error::Internal(_)) {
        tracing::error!("dashboard request failed: {error}");
    }
    html(error.status(), pages::error(error))
}

/// `/ui/instances/{id}`, with the id percent-encoded.
pub(crate) fn instance_path(id: &str) -> String {
    format!(
        "/ui/instances/{}",
        percent_encoding::utf8_percent_encode(id, crate::api::URL_SAFE)
    )
}
