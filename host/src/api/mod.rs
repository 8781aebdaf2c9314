//! The HTTP API of `weft serve`: the Durable Functions extension's HTTP API
//! (`/runtime/webhooks/durabletask/...`), with its routes, status codes and bodies, so
//! that the official clients and scripts written against the extension work unchanged.
//!
//! Two listeners serve the same routes. The public one requires the key on every route
//! (`?code=` or `x-functions-key`, as the Functions host does, or the dashboard's cookie;
//! see [`auth`]), and also serves the [`crate::dashboard`] at `/` and `/ui/...`. The optional rpc listener
//! is the host's local `rpcBaseUrl` (`http://127.0.0.1:PORT/durabletask/`), which the
//! official clients call without a key: it binds to loopback only.
//!
//! Paths are matched the way the extension matches them, by hand rather than by an axum
//! route table: the base path is stripped, leading and trailing slashes are trimmed,
//! literal segments and operation names are compared without regard to case, and an
//! unknown path or method is a 404. Every error body is JSON.

pub(crate) mod auth;
mod error;
pub(crate) mod instances;
pub mod key;
pub(crate) mod orchestrators;
pub(crate) mod query;
pub mod server;

use crate::runtime::Runtime;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
pub use error::Error;
use query::Query;
use std::sync::Arc;
use std::time::Duration;

/// What every handler shares.
pub struct Api {
    pub runtime: Arc<Runtime>,
    pub key: String,
    /// Where clients reach the public listener, e.g. `http://127.0.0.1:7071` (no
    /// trailing slash). Every URL the API hands out is built on it, never on the
    /// request's `Host` header, which a client controls.
    pub public_url: String,
    /// Where clients reach the rpc listener, e.g. `http://127.0.0.1:17071`, if it runs.
    pub rpc_url: Option<String>,
    /// Turns to read a whole history (see [`Api::history_turn`]).
    pub history_turns: tokio::sync::Semaphore,
}

/// How many requests may read a whole instance history at once (`showHistory`, the
/// dashboard's instance page and its live part, a rewind): a history can be as large as
/// `--max-history-mib`, so the memory requests spend on them is bounded by this many.
pub const HISTORY_TURNS: usize = 2;

/// How long a request waits for its turn to read a history before it gets a 503.
const HISTORY_WAIT: Duration = Duration::from_secs(30);

impl Api {
    /// Waits for a turn to read a whole history and build an answer from it; the turn
    /// lasts until the returned permit is dropped. 503 if none comes in time.
    pub(crate) async fn history_turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Error> {
        let busy = || {
            Error::ServiceUnavailable(
                "too many instance histories are being read at once; try again".to_string(),
            )
        };
        tokio::time::timeout(HISTORY_WAIT, self.history_turns.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())
    }
}

/// Which listener a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listener {
    Public,
    Rpc,
}

/// The extension's base path on the public listener.
const WEBHOOK: [&str; 3] = ["runtime", "webhooks", "durabletask"];
/// The task hub name in the URLs the API hands out; any `taskHub` a client sends is
/// accepted and ignored (one data dir is one task hub).
const TASK_HUB: &str = "weft";
/// What is percent-encoded in the ids and the key that URLs carry: all but the
/// unreserved characters of RFC 3986.
pub(crate) const URL_SAFE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// The longest a client may take to send a request body.
const BODY_DEADLINE: Duration = Duration::from_secs(30);

/// The public listener's routes: every one requires the key.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .fallback(|State(api): State<Arc<Api>>, request: Request| async move {
            if crate::dashboard::handles(request.uri().path()) {
                crate::dashboard::serve(api, request).await
            } else {
                serve(api, Listener::Public, request).await
            }
        })
        .with_state(api)
}

/// The rpc listener's routes: the same operations under `/durabletask/`, without a key,
/// for local programs only (see [`auth::local_caller`]). The caller must bind it to a
/// loopback address only.
pub fn rpc_router(api: Arc<Api>) -> Router {
    Router::new()
        .fallback(|State(api): State<Arc<Api>>, request: Request| async move {
            serve(api, Listener::Rpc, request).await
        })
        .with_state(api)
}

/// One request, as a handler sees it.
pub(crate) struct Call {
    api: Arc<Api>,
    listener: Listener,
    query: Query,
    headers: HeaderMap,
    /// The request's path and query, for the `Location` of a status answer.
    path_and_query: String,
    /// In a mutex only so that `&Call` can be held across an await (a body is `Send`
    /// but not `Sync`); it is taken once.
    body: std::sync::Mutex<Option<Body>>,
}

impl Call {
    /// The base of the management URLs this listener hands out, with `{base}/instances`
    /// under it, and the query that each carries (the key, on the public listener).
    fn links(&self) -> (String, String) {
        match (self.listener, &self.api.rpc_url) {
            (Listener::Rpc, Some(rpc)) => (
                format!("{rpc}/durabletask"),
                format!("taskHub={TASK_HUB}&connection=Storage"),
            ),
            _ => (
                format!("{}/{}", self.api.public_url, WEBHOOK.join("/")),
                format!(
                    "taskHub={TASK_HUB}&connection=Storage&code={}",
                    percent_encoding::utf8_percent_encode(&self.api.key, URL_SAFE)
                ),
            ),
        }
    }

    /// The origin this listener is reached at.
    fn origin(&self) -> &str {
        match (self.listener, &self.api.rpc_url) {
            (Listener::Rpc, Some(rpc)) => rpc,
            _ => &self.api.public_url,
        }
    }

    /// Reads the body, refusing one larger than the payload limit before buffering it
    /// (by its `Content-Length`, else as it streams) and one that takes too long.
    async fn body(&mut self) -> Result<axum::body::Bytes, Error> {
        let limit = self.api.runtime.payload_limit();
        let too_large = || {
            Error::PayloadTooLarge(format!(
                "the request body is larger than the payload limit of {limit} bytes"
            ))
        };
        let declared = self
            .headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(too_large());
        }
        let body = self
            .body
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .unwrap_or_default();
        match tokio::time::timeout(BODY_DEADLINE, axum::body::to_bytes(body, limit)).await {
            Err(_) => Err(Error::RequestTimeout(format!(
                "the request body did not arrive within {BODY_DEADLINE:?}"
            ))),
            Ok(Err(_)) => Err(too_large()),
            Ok(Ok(bytes)) => Ok(bytes),
        }
    }
}

async fn serve(api: Arc<Api>, listener: Listener, request: Request) -> Response {
    match route(api, listener, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn route(api: Arc<Api>, listener: Listener, request: Request) -> Result<Response, Error> {
    let (parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query());
    match listener {
        Listener::Public => {
            auth::check(&api.key, query.get("code"), &parts.method, &parts.headers)?;
        }
        Listener::Rpc => auth::local_caller(&parts.headers)?,
    }
    let segments = segments(parts.uri.path())?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = parts.method.clone();
    let call = Call {
        api,
        listener,
        query,
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        headers: parts.headers,
        body: std::sync::Mutex::new(Some(body)),
    };
    let rest = strip_base(&segments, listener).ok_or_else(no_route)?;
    let is = |segment: &str, literal: &str| segment.eq_ignore_ascii_case(literal);
    match rest {
        [first, name] if is(first, "orchestrators") => {
            post_only(&method)?;
            orchestrators::start(call, name, None).await
        }
        [first, name, id] if is(first, "orchestrators") => {
            post_only(&method)?;
            orchestrators::start(call, name, Some(id)).await
        }
        [first] if is(first, "instances") => match method {
            Method::GET => instances::list(call).await,
            Method::DELETE => instances::purge_many(call).await,
            _ => Err(no_route()),
        },
        [first, id] if is(first, "instances") => match method {
            Method::GET => instances::status(call, id).await,
            Method::DELETE => instances::purge(call, id).await,
            _ => Err(no_route()),
        },
        [first, id, operation] if is(first, "instances") => {
            post_only(&method)?;
            let operation = operation.to_ascii_lowercase();
            match operation.as_str() {
                "terminate" | "suspend" | "resume" => {
                    instances::control(call, id, &operation).await
                }
                "rewind" => instances::rewind(call, id).await,
                "restart" => instances::restart(call, id).await,
                _ => Err(no_route()),
            }
        }
        [first, id, operation, event] if is(first, "instances") && is(operation, "raiseEvent") => {
            post_only(&method)?;
            instances::raise_event(call, id, event).await
        }
        _ => Err(no_route()),
    }
}

/// The path's segments, percent-decoded, without empty leading and trailing ones. An
/// empty segment inside the path, or one that decodes to `.` or `..`, matches nothing.
pub(crate) fn segments(path: &str) -> Result<Vec<String>, Error> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    trimmed
        .split('/')
        .map(|segment| {
            let decoded = percent_encoding::percent_decode_str(segment)
                .decode_utf8()
                .map_err(|_| Error::BadRequest("the path is not UTF-8".to_string()))?;
            if decoded.is_empty() || decoded == "." || decoded == ".." {
                return Err(no_route());
            }
            Ok(decoded.into_owned())
        })
        .collect()
}

/// The path after the listener's base: `[api/]runtime/webhooks/durabletask/...` and the
/// sample's own `[api/]orchestrators/...` on both listeners, and `durabletask/...` (the
/// `rpcBaseUrl`) on the rpc listener.
fn strip_base<'a, 'b>(segments: &'a [&'b str], listener: Listener) -> Option<&'a [&'b str]> {
    let is = |segment: &str, literal: &str| segment.eq_ignore_ascii_case(literal);
    let segments = match segments {
        [first, rest @ ..] if is(first, "api") => rest,
        all => all,
    };
    if segments.len() >= WEBHOOK.len() && segments.iter().zip(WEBHOOK).all(|(s, w)| is(s, w)) {
        return Some(&segments[WEBHOOK.len()..]);
    }
    match segments {
        [first, ..] if is(first, "orchestrators") => Some(segments),
        [first, rest @ ..] if listener == Listener::Rpc && is(first, "durabletask") => Some(rest),
        _ => None,
    }
}

pub(crate) fn no_route() -> Error {
    Error::NotFound("no such route".to_string())
}

/// The extension answers 404 for any method but POST on the operation routes.
fn post_only(method: &Method) -> Result<(), Error> {
    if method == Method::POST {
        Ok(())
    } else {
        Err(no_route())
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_are_stripped_case_insensitively_on_their_listeners() {
        let strip = |path: &str, listener| {
            let segments = segments(path).ok()?;
            let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
            strip_base(&segments, listener).map(|rest| rest.join("/"))
        };
        let public = Listener::Public;
        assert_eq!(
            strip("/runtime/webhooks/durabletask/instances/", public).as_deref(),
            Some("instances")
        );
        assert_eq!(
            strip("/API/Runtime/Webhooks/DurableTask/Instances/x/", public).as_deref(),
            Some("Instances/x")
        );
        assert_eq!(
            strip("/orchestrators/Hello", public).as_deref(),
            Some("orchestrators/Hello")
        );
        assert_eq!(strip("/durabletask/instances", public), None);
        assert_eq!(
            strip("/durabletask/instances/", Listener::Rpc).as_deref(),
            Some("instances")
        );
        assert_eq!(
            strip("/runtime/webhooks/durabletask/instances/..", public),
            None
        );
        assert_eq!(
            strip("/runtime/webhooks/durabletask/instances/%2E", public),
            None
        );
        assert_eq!(
            strip("/runtime//webhooks/durabletask/instances", public),
            None
        );
    }
}
