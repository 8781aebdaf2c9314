//! Whether a request on the public listener carries the key: in `?code=`, in the
//! `x-functions-key` header, or in the dashboard's cookie; the same-origin check that a
//! request authorised by the cookie alone must pass before it may change anything; and
//! the check that a request to the keyless rpc listener comes from a local program, not
//! from a web page (see [`local_caller`]).
//!
//! The cookie holds the key itself (percent-encoded), set `HttpOnly` and
//! `SameSite=Strict` by the dashboard's login page, so a browser never sends it with a
//! request another site starts. Because a browser attaches it by itself, a request that
//! relies on it and is not a safe method must also come from this origin
//! (`Sec-Fetch-Site: same-origin`, or an `Origin` naming this host): that closes
//! cross-site request forgery for browsers whose cookies are not strict.

use super::{Error, URL_SAFE, key};
use axum::http::{HeaderMap, Method, header};

/// The dashboard's cookie name.
pub const COOKIE: &str = "weft_key";

/// How a request proved that it holds the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// `?code=` or `x-functions-key`: a client that a browser does not drive by itself.
    Explicit,
    /// The dashboard's cookie, which a browser attaches to every request to this host.
    Cookie,
}

/// Why a request is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the key is wrong")]
    Wrong,
    #[error("a key is required: pass ?code=KEY or the x-functions-key header")]
    Missing,
    #[error("a request authorised by the dashboard's cookie must come from this site")]
    CrossSite,
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::CrossSite => Error::Forbidden(refusal.to_string()),
            other => Error::Unauthorized(other.to_string()),
        }
    }
}

/// Checks the key a request gives (`code` is its `?code=`), in constant time. A given but
/// wrong key is refused even when a right cookie comes with it. A request proved by the
/// cookie alone that may change state must pass [`same_origin`].
pub fn check(
    expected: &str,
    code: Option<&str>,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Proof, Refusal> {
    let explicit = code.map(str::to_string).or_else(|| {
        headers
            .get("x-functions-key")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    });
    if let Some(given) = explicit {
        return if key::matches(expected, &given) {
            Ok(Proof::Explicit)
        } else {
            Err(Refusal::Wrong)
        };
    }
    let Some(given) = cookie(headers) else {
        return Err(Refusal::Missing);
    };
    if !key::matches(expected, &given) {
        return Err(Refusal::Wrong);
    }
    if !is_safe(method) && !same_origin(headers) {
        return Err(Refusal::CrossSite);
    }
    Ok(Proof::Cookie)
}

/// GET and HEAD change nothing, so they need no origin check.
pub fn is_safe(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// The key in the dashboard's cookie, if the request has one.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| {
            percent_encoding::percent_decode_str(value.trim_matches('"'))
                .decode_utf8()
                .ok()
                .map(|value| value.into_owned())
        })
}

/// The `Set-Cookie` value that keeps `key` in the browser: `HttpOnly`, `SameSite=Strict`,
/// for the whole host, `Secure` when the dashboard is reached over https.
pub fn set_cookie(key: &str, secure: bool) -> String {
    let value = percent_encoding::utf8_percent_encode(key, URL_SAFE);
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

/// The `Set-Cookie` value that forgets the key.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// Whether a browser says this request comes from a page of this origin. `Sec-Fetch-Site`
/// (every current browser sends it) decides when present; otherwise the `Origin`'s host
/// must be the `Host` the request was sent to. A request with neither is not from a
/// browser that would attach cookies on another site's behalf, so it passes.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    if let Some(site) = get("sec-fetch-site") {
        return site.eq_ignore_ascii_case("same-origin");
    }
    match (get("origin"), get("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    }
}

/// Whether a request to the keyless rpc listener (bound to loopback) comes from a program
/// on this machine rather than from a web page that a browser here shows: its `Host`, if
/// any, must name a loopback address (a page whose own name now resolves to 127.0.0.1,
/// by DNS rebinding, sends its own name), and a browser's marks, if any, must not say
/// that another site started it (`Sec-Fetch-Site: cross-site` or `same-site`, or an
/// `Origin` that is not a loopback address: a plain HTML form may post cross-site).
pub fn local_caller(headers: &HeaderMap) -> Result<(), Error> {
    let get = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|value| value.to_str().map(str::trim).unwrap_or_default())
    };
    let refused = |what: String| {
        Err(Error::Forbidden(format!(
            "the rpc listener serves programs on this machine only, and {what}"
        )))
    };
    if let Some(host) = get(header::HOST).filter(|host| !loopback(host)) {
        return refused(format!("this request was sent to {host:?}"));
    }
    if let Some(site) = get(header::HeaderName::from_static("sec-fetch-site")).filter(|site| {
        ["cross-site", "same-site"]
            .iter()
            .any(|s| site.eq_ignore_ascii_case(s))
    }) {
        return refused(format!(
            "a browser says another site sent this request ({site})"
        ));
    }
    if let Some(origin) = get(header::ORIGIN).filter(|origin| {
        !origin
            .split_once("://")
            .is_some_and(|(_, authority)| loopback(authority))
    }) {
        return refused(format!("this request comes from a page of {origin:?}"));
    }
    Ok(())
}

/// Whether `authority` (`host[:port]`) names a loopback address: `localhost`, 127.0.0.0/8
/// or `[::1]`.
fn loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _port)| host),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_str(value) {
                map.append(*name, value);
            }
        }
        map
    }

    const KEY: &str = "0123456789abcdef; =x";

    #[test]
    fn the_rpc_listener_takes_local_programs_and_refuses_web_pages() {
        for local in [
            headers(&[]),
            headers(&[("host", "127.0.0.1:7072")]),
            headers(&[("host", "localhost:7072"), ("sec-fetch-site", "none")]),
            headers(&[("host", "[::1]:7072"), ("origin", "http://127.0.0.1:7072")]),
            headers(&[("host", "127.0.0.1"), ("sec-fetch-site", "same-origin")]),
        ] {
            assert!(local_caller(&local).is_ok(), "{local:?}");
        }
        for page in [
            headers(&[("host", "rebind.evil.example:7072")]),
            headers(&[("host", "localhost.evil.example")]),
            headers(&[("host", "127.0.0.1:7072"), ("sec-fetch-site", "cross-site")]),
            headers(&[("host", "127.0.0.1:7072"), ("sec-fetch-site", "same-site")]),
            headers(&[
                ("host", "127.0.0.1:7072"),
                ("origin", "http://evil.example"),
            ]),
            headers(&[("host", "127.0.0.1:7072"), ("origin", "null")]),
        ] {
            assert!(
                matches!(local_caller(&page), Err(Error::Forbidden(_))),
                "{page:?}"
            );
        }
    }

    #[test]
    fn the_cookie_round_trips_any_key() {
        let set = set_cookie(KEY, false);
        let value = set.split(';').next().unwrap_or_default();
        let map = headers(&[("cookie", &format!("other=1; {value}"))]);
        assert_eq!(cookie(&map).as_deref(), Some(KEY));
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(set_cookie(KEY, true).ends_with("; Secure"));
    }

    #[test]
    fn explicit_keys_win_and_wrong_ones_are_refused() {
        let cookie = set_cookie(KEY, false);
        let cookie = cookie.split(';').next().unwrap_or_default();
        let get = Method::GET;
        assert!(matches!(
            check(KEY, Some(KEY), &get, &HeaderMap::new()),
            Ok(Proof::Explicit)
        ));
        assert!(matches!(
            check(KEY, Some("nope"), &get, &headers(&[("cookie", cookie)])),
            Err(Refusal::Wrong)
        ));
        assert!(matches!(
            check(KEY, None, &get, &HeaderMap::new()),
            Err(Refusal::Missing)
        ));
        assert!(matches!(
            check(KEY, None, &get, &headers(&[("cookie", "weft_key=nope")])),
            Err(Refusal::Wrong)
        ));
        assert!(matches!(
            check(KEY, None, &get, &headers(&[("cookie", cookie)])),
            Ok(Proof::Cookie)
        ));
    }

    #[test]
    fn a_cookie_alone_changes_nothing_from_another_site() {
        let cookie = set_cookie(KEY, false);
        let cookie = cookie.split(';').next().unwrap_or_default();
        let post = Method::POST;
        let cross = headers(&[("cookie", cookie), ("sec-fetch-site", "cross-site")]);
        assert!(matches!(
            check(KEY, None, &post, &cross),
            Err(Refusal::CrossSite)
        ));
        let same = headers(&[("cookie", cookie), ("sec-fetch-site", "same-origin")]);
        assert!(matches!(check(KEY, None, &post, &same), Ok(Proof::Cookie)));
        let foreign = headers(&[
            ("cookie", cookie),
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:7071"),
        ]);
        assert!(matches!(
            check(KEY, None, &post, &foreign),
            Err(Refusal::CrossSite)
        ));
        let own = headers(&[
            ("cookie", cookie),
            ("origin", "http://127.0.0.1:7071"),
            ("host", "127.0.0.1:7071"),
        ]);
        assert!(matches!(check(KEY, None, &post, &own), Ok(Proof::Cookie)));
        // The explicit key is not attached by a browser on its own: no origin check.
        assert!(matches!(
            check(KEY, Some(KEY), &post, &cross),
            Ok(Proof::Explicit)
        ));
    }
}
