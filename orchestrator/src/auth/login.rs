//! `GET/POST /login` and `POST /logout`. Failed sign-ins are rate limited per account name
//! and per client address; a name that has no account takes as long to refuse as a wrong
//! password (a hash is verified either way).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;

use super::accounts::{self, parse_role};
use super::http::{SESSION_COOKIE, session_cookie};
use super::rate_limit::RateLimiter;
use super::{secrets, sessions};
use crate::api::ApiError;
use crate::ops::Operations;
use crate::plant::PlantError;
use crate::store::now_ms;

/// Failed sign-ins a name or an address may have per [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

struct Login {
    ops: Operations,
    limiter: RateLimiter,
}

/// The login and logout routes (`/login` is open; `/logout` needs the session it ends).
pub fn routes(ops: Operations) -> Router {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .with_state(Arc::new(Login {
            ops,
            limiter: RateLimiter::new(MAX_FAILURES, FAILURE_WINDOW),
        }))
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    next: String,
}

async fn login_form(headers: HeaderMap, Query(query): Query<NextQuery>) -> Html<String> {
    login_page(&headers, None, &query.next)
}

/// The panel's login page, in the request's language, with the catalog's words for `error`.
fn login_page(headers: &HeaderMap, error: Option<&str>, next: &str) -> Html<String> {
    crate::panel::login_page(crate::panel::Lang::of_request(headers), error, next)
}

async fn login(
    State(login): State<Arc<Login>>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let name = form.name.trim().to_ascii_lowercase();
    let keys = [
        format!("name:{name}"),
        format!(
            "ip:{}",
            connection.map_or_else(|| "unknown".to_string(), |c| c.0.0.ip().to_string())
        ),
    ];
    if let Some(wait) = login.limiter.retry_after(&keys, Instant::now()) {
        let seconds = wait.as_secs().max(1);
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            login_page(&headers, Some("login.rate_limited"), &form.next),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return response;
    }
    match check(&login.ops, &name, form.password).await {
        Ok(true) => {}
        Ok(false) => {
            login.limiter.failed(&keys, Instant::now());
            tracing::info!(target: "microfab::auth", account = %name, "sign-in refused");
            return (
                StatusCode::UNAUTHORIZED,
                login_page(&headers, Some("login.failed"), &form.next),
            )
                .into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    login.limiter.succeeded(&keys[0]);
    let cookie = match sessions::start(&login.ops.plant().store, &name, now_ms()).await {
        Ok(cookie) => cookie,
        Err(e) => return ApiError::from(e).into_response(),
    };
    tracing::info!(target: "microfab::auth", account = %name, "signed in");
    let mut response = Redirect::to(local_target(&form.next)).into_response();
    let set_cookie = format!(
        "{SESSION_COOKIE}={cookie}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        sessions::ABSOLUTE_MS / 1000
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&set_cookie).expect("a hex cookie is a valid header value"),
    );
    response
}

/// Whether `password` is the password of the enabled account `name`. Slow on purpose, and as
/// slow for a name without an account.
async fn check(ops: &Operations, name: &str, password: String) -> Result<bool, PlantError> {
    let credentials = accounts::credentials(&ops.plant().store, name).await?;
    let usable = credentials
        .as_ref()
        .filter(|c| c.disabled_ms.is_none() && parse_role(&c.role).is_ok());
    let hash = usable.and_then(|c| c.password_hash.clone());
    Ok(
        tokio::task::spawn_blocking(move || secrets::verify_password(hash.as_deref(), &password))
            .await
            .unwrap_or_else(|panicked| std::panic::resume_unwind(panicked.into_panic())),
    )
}

/// Where to go after signing in: a path on this server (never another site), else `/`.
pub fn local_target(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if local { next } else { "/" }
}

/// End the session this request came with, clear its cookie, back to the login page (an
/// htmx request is told to go there itself: it would follow a redirect inside the page).
async fn logout(State(login): State<Arc<Login>>, headers: HeaderMap) -> Response {
    if let Some(cookie) = session_cookie(&headers)
        && let Err(e) = sessions::end(&login.ops.plant().store, cookie, now_ms()).await
    {
        return ApiError::from(e).into_response();
    }
    let mut response = if headers.contains_key("hx-request") {
        ([("hx-redirect", "/login")], StatusCode::OK).into_response()
    } else {
        Redirect::to("/login").into_response()
    };
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
        ))
        .expect("a static cookie is a valid header value"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_sign_in_only_a_path_on_this_server() {
        for (next, target) in [
            ("/orders/o-1", "/orders/o-1"),
            ("", "/"),
            ("//evil.example/x", "/"),
            ("https://evil.example", "/"),
            ("/\\evil.example", "/"),
            ("/a\nb", "/"),
        ] {
            assert_eq!(local_target(next), target, "{next:?}");
        }
    }
}
