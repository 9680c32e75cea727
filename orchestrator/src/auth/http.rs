//! The one middleware every request passes (API and panel): who is asking, from an API token
//! (`Authorization: Bearer`) or the session cookie; what an unauthenticated request gets (401
//! JSON under `/api/`, a redirect to the login page elsewhere); and the refusals that keep
//! another site from acting with a signed-in browser (Origin, CSRF token). Handlers take
//! [`Caller`].

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::accounts::{self, SignedIn};
use super::{Role, secrets, sessions};
use crate::api::ApiError;
use crate::ops::{Actor, Operations};
use crate::plant::PlantError;
use crate::store::now_ms;

/// The session cookie's name (HttpOnly, SameSite=Strict, Path=/).
pub const SESSION_COOKIE: &str = "microfab_session";
/// The header a cookie-authenticated unsafe request carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The account behind a request. `csrf` is the token a page must send back in
/// [`CSRF_HEADER`] (cookie sessions only; API tokens need none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    pub csrf: Option<String>,
}

impl Caller {
    /// Who does an operation, for `ops` and the event log.
    pub fn actor(&self) -> Actor {
        Actor::Account {
            name: self.name.clone(),
            role: self.role,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    /// What [`guard`] found; a route outside it (none should be) answers 401.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(unauthorized)
    }
}

pub fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "sign in: send `Authorization: Bearer <API token>` (microfab user token NAME makes one), or the session cookie of a login",
    )
}

fn forbidden(message: &str) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response()
}

/// What anyone may reach without an account: the login page (and its language switch, which
/// sets only the `lang` cookie), the panel's assets, the health probe. Nothing else (but
/// [`open_to_this_host`]).
fn is_open(method: &Method, path: &str) -> bool {
    let read = *method == Method::GET || *method == Method::HEAD;
    match path {
        "/login" => read || *method == Method::POST,
        "/healthz" => read,
        _ => read && (path.starts_with("/assets/") || path.starts_with("/lang/")),
    }
}

/// `/metrics` for a peer on this host, unless `[metrics] allow_localhost` is off: Prometheus
/// beside the plant scrapes without an account (docs/metrics.md). From elsewhere it takes an
/// operator's or an admin's token or session.
fn open_to_this_host(ops: &Operations, request: &Request) -> bool {
    let read = *request.method() == Method::GET || *request.method() == Method::HEAD;
    read && request.uri().path() == "/metrics"
        && ops.plant().config.metrics.allow_localhost
        && peer_is_loopback(request.extensions())
}

/// The request came from a loopback address (this host). Without the peer's address (a
/// router served without connect info) it did not.
pub fn peer_is_loopback(extensions: &Extensions) -> bool {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| peer.ip().to_canonical().is_loopback())
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Every request: refuse another site's unsafe requests, find the caller, refuse a cookie
/// request without its CSRF token, and hand the caller to the handler (and, on the response,
/// to the access log).
pub async fn guard(State(ops): State<Operations>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    if is_unsafe(&method) && from_another_site(request.headers()) {
        return forbidden(
            "this request comes from another site (its Origin is not this server): refused",
        );
    }
    if is_open(&method, request.uri().path()) || open_to_this_host(&ops, &request) {
        return next.run(request).await;
    }
    let caller = match authenticate(&ops, request.headers()).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return unauthenticated(&request),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if is_unsafe(&method)
        && let Some(expected) = &caller.csrf
    {
        let sent = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !secrets::same_secret(sent, expected) {
            return forbidden(
                "missing or wrong X-CSRF-Token: a signed-in page sends the token it was given with every change",
            );
        }
    }
    request.extensions_mut().insert(caller.clone());
    let mut response = next.run(request).await;
    response.extensions_mut().insert(caller);
    response
}

/// An API request (and a scrape of `/metrics`) gets a 401 naming how to sign in; a page, the
/// login page (coming back here after).
fn unauthenticated(request: &Request) -> Response {
    let path = request.uri().path();
    if path == "/api" || path.starts_with("/api/") || path == "/metrics" {
        let mut response = unauthorized().into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"microfab\""),
        );
        return response;
    }
    let here = request
        .uri()
        .path_and_query()
        .map_or(path, |pq| pq.as_str());
    // An htmx request (a fragment, an action) whose session ended: the page itself goes to
    // the login page, and back to where it was after.
    if request.headers().contains_key("hx-request") {
        let page = request
            .headers()
            .get("hx-current-url")
            .and_then(|v| v.to_str().ok())
            .and_then(|url| url.split_once("://"))
            .and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..]))
            .unwrap_or("/");
        let login = format!("/login?next={}", percent_encode(page));
        return match HeaderValue::from_str(&login) {
            Ok(value) => (StatusCode::UNAUTHORIZED, [("hx-redirect", value)]).into_response(),
            Err(_) => StatusCode::UNAUTHORIZED.into_response(),
        };
    }
    Redirect::to(&format!("/login?next={}", percent_encode(here))).into_response()
}

/// Percent-encoding for a query value: everything but unreserved characters and `/`.
pub(super) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The caller, from an API token or else the session cookie. A request that names a token
/// is judged by it alone: a wrong token is no account, whatever cookie comes with it.
async fn authenticate(ops: &Operations, headers: &HeaderMap) -> Result<Option<Caller>, PlantError> {
    let store = &ops.plant().store;
    let now = now_ms();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = token else {
            return Ok(None);
        };
        return Ok(accounts::by_token(store, token, now)
            .await?
            .map(|signed_in| caller(signed_in, None)));
    }
    let Some(cookie) = session_cookie(headers) else {
        return Ok(None);
    };
    Ok(sessions::lookup(store, cookie, now)
        .await?
        .map(|signed_in| caller(signed_in, Some(secrets::csrf_token(cookie)))))
}

fn caller(signed_in: SignedIn, csrf: Option<String>) -> Caller {
    Caller {
        name: signed_in.name,
        role: signed_in.role,
        csrf,
    }
}

/// The session cookie's value, if the request has one.
pub(super) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// An unsafe request a browser sent from another site: its `Origin` is not this server (the
/// `Host` it was sent to), or `Sec-Fetch-Site` says `cross-site`. Requests without these
/// headers (command-line clients) pass; their credentials decide.
fn from_another_site(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site") == Some("cross-site") {
        return true;
    }
    let Some(origin) = header("origin") else {
        return false;
    };
    let host = header("host").unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    origin_host != Some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn only_the_login_page_assets_and_health_probe_are_open() {
        assert!(is_open(&Method::GET, "/login"));
        assert!(is_open(&Method::POST, "/login"));
        assert!(is_open(&Method::GET, "/assets/app.css"));
        assert!(is_open(&Method::GET, "/healthz"));
        assert!(is_open(&Method::GET, "/lang/ko"));
        for (method, path) in [
            (Method::POST, "/assets/x"),
            (Method::GET, "/"),
            (Method::GET, "/api/v1/openapi.json"),
            (Method::GET, "/loginx"),
            (Method::POST, "/logout"),
            (Method::GET, "/fleet"),
        ] {
            assert!(!is_open(&method, path), "{method} {path}");
        }
    }

    #[test]
    fn this_host_is_a_loopback_peer_in_any_spelling() {
        let from = |address: &str| {
            let mut extensions = Extensions::new();
            extensions.insert(ConnectInfo(address.parse::<SocketAddr>().unwrap()));
            peer_is_loopback(&extensions)
        };
        assert!(from("127.0.0.1:5000"));
        assert!(from("127.8.9.10:5000"));
        assert!(from("[::1]:5000"));
        assert!(from("[::ffff:127.0.0.1]:5000"));
        assert!(!from("10.0.0.7:5000"));
        assert!(!from("[::ffff:10.0.0.7]:5000"));
        assert!(!from("[2001:db8::1]:5000"));
        assert!(!peer_is_loopback(&Extensions::new()));
    }

    #[test]
    fn another_site_is_known_by_its_origin() {
        assert!(!from_another_site(&headers(&[("host", "plant:8080")])));
        assert!(!from_another_site(&headers(&[
            ("host", "plant:8080"),
            ("origin", "http://plant:8080")
        ])));
        for origin in [
            "http://evil.example",
            "null",
            "http://plant:8081",
            "file://",
        ] {
            assert!(
                from_another_site(&headers(&[("host", "plant:8080"), ("origin", origin)])),
                "{origin}"
            );
        }
        assert!(from_another_site(&headers(&[(
            "sec-fetch-site",
            "cross-site"
        )])));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        assert_eq!(
            session_cookie(&headers(&[(
                "cookie",
                "lang=ko; microfab_session=abc; x=y"
            )])),
            Some("abc")
        );
        assert_eq!(
            session_cookie(&headers(&[("cookie", "microfab_sessionx=abc")])),
            None
        );
        assert_eq!(
            percent_encode("/orders?state=a b&x"),
            "/orders%3Fstate%3Da%20b%26x"
        );
    }
}
