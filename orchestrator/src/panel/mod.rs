//! The panel: server-rendered HTML pages for operators, makers and admins, served by
//! `microfab` itself beside the JSON API and calling the same operations ([`crate::ops`]).
//! Templates are askama (`orchestrator/templates/`), every word comes from the catalog
//! (`i18n.rs`), actions are htmx POSTs answered with the fragment they changed, and the live
//! pages follow SSE streams. Static files are embedded (`assets.rs`): the panel works offline.
//!
//! How a page is added: ARCHITECTURE.md, "The panel".

mod admin;
mod assets;
#[cfg(test)]
mod catalog_tests;
mod events;
mod fleet;
pub mod gantt;
pub mod i18n;
mod intake;
mod interrupted;
mod layout;
mod machine;
mod materials;
mod orders;
mod render;
mod submit;
mod tasks;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

pub use self::i18n::{Catalog, Lang};
use self::layout::{Ctx, LanguageLink};
pub use self::render::PanelError;
use crate::auth::Caller;
use crate::auth::Role;
use crate::ops::Operations;

/// Every page (its path pattern) and the least role that may open it: the role-matrix test
/// walks these.
pub const PAGES: &[(&str, Role)] = &[
    ("/fleet", Role::Operator),
    ("/tasks", Role::Operator),
    ("/machines/{id}", Role::Operator),
    ("/interrupted", Role::Operator),
    ("/events", Role::Operator),
    ("/intake", Role::Operator),
    ("/orders", Role::Operator),
    ("/orders/{id}", Role::Maker),
    ("/materials", Role::Operator),
    ("/submit", Role::Maker),
    ("/my/orders", Role::Maker),
    ("/my/materials", Role::Maker),
    ("/admin/users", Role::Admin),
    ("/admin/config", Role::Admin),
];

/// The panel's routes, merged into the app beside the API.
pub fn router(ops: Operations) -> Router {
    let floor = Router::new()
        .merge(fleet::routes())
        .merge(tasks::routes())
        .merge(machine::routes())
        .merge(interrupted::routes())
        .merge(events::routes());
    Router::new()
        .route("/", get(home))
        .route("/lang/{code}", get(switch_language))
        .route("/assets/{name}", get(assets::serve))
        .merge(at_least(Role::Operator, floor, &ops))
        .merge(intake::routes(&ops))
        .merge(orders::routes(&ops))
        .merge(materials::routes(&ops))
        .merge(submit::routes(&ops))
        .merge(admin::routes(&ops))
        // Pages are repetitive HTML (200 machine cards): gzip makes them a tenth. SSE streams
        // are left as they are (the default predicate skips `text/event-stream`).
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(ops)
}

/// `routes` answer only callers whose role reaches `role`; others get the forbidden page (or
/// its flash, for htmx).
pub fn at_least(role: Role, routes: Router<Operations>, ops: &Operations) -> Router<Operations> {
    routes.route_layer(axum::middleware::from_fn_with_state(
        (ops.clone(), role),
        guard,
    ))
}

async fn guard(
    State((ops, role)): State<(Operations, Role)>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    match Ctx::from_request_parts(&mut parts, &ops).await {
        Ok(ctx) if !ctx.caller.role.includes(role) => ctx.answer(Err(PanelError::Forbidden)),
        Ok(_) => next.run(Request::from_parts(parts, body)).await,
        Err(refused) => refused,
    }
}

/// `/`: where the caller's work is.
async fn home(caller: Caller) -> Redirect {
    Redirect::to(match caller.role {
        Role::Maker => "/my/orders",
        Role::Operator | Role::Admin => "/fleet",
    })
}

#[derive(Deserialize)]
struct Back {
    next: Option<String>,
}

/// `GET /lang/{code}?next=/path`: remember the language in the `lang` cookie and go back.
async fn switch_language(Path(code): Path<String>, Query(back): Query<Back>) -> Response {
    let Some(lang) = Lang::from_code(&code) else {
        return (StatusCode::NOT_FOUND, "no such language").into_response();
    };
    let mut response = Redirect::to(&local_path(back.next.as_deref())).into_response();
    let cookie = format!(
        "lang={}; Path=/; Max-Age=31536000; SameSite=Lax",
        lang.code()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `next` if it is a path on this server, else `/`: a link must not send people elsewhere.
pub fn local_path(next: Option<&str>) -> String {
    crate::auth::local_target(next.unwrap_or_default()).to_string()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    t: &'a Catalog,
    lang: Lang,
    error: Option<&'a str>,
    next: String,
    switch: Vec<LanguageLink>,
    css: String,
}

/// The login page: the form posts `name`, `password` and `next` to `/login`; `error` is the
/// catalog key of what went wrong with the last try (shown as the flash), if any.
pub fn login_page(lang: Lang, error: Option<&str>, next: &str) -> Html<String> {
    let next = local_path(Some(next));
    let page = LoginPage {
        t: lang.catalog(),
        lang,
        error,
        switch: layout::language_switch(
            lang,
            &format!("/login?next={}", render::query_value(&next)),
        ),
        next,
        css: assets::url("app.css"),
    };
    Html(page.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the login page failed to render");
        String::new()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_page_shows_the_failure_in_the_language_and_keeps_next_local() {
        let Html(page) = login_page(Lang::Ko, Some("login.failed"), "/events?kind=job_started");
        assert!(
            page.contains("계정 이름 또는 비밀번호가 틀렸습니다."),
            "{page}"
        );
        assert!(
            page.contains(r#"name="next" value="/events?kind=job_started""#),
            "{page}"
        );
        assert!(page.contains(r#"href="/lang/en?next="#));
        let Html(page) = login_page(Lang::En, None, "//elsewhere.example/");
        assert!(page.contains(r#"name="next" value="/""#), "{page}");
        assert!(!page.contains(r#"data-testid="flash""#));
    }

    #[test]
    fn next_is_a_path_on_this_server() {
        for (next, kept) in [
            (Some("/fleet"), "/fleet"),
            (Some("//elsewhere.example"), "/"),
            (Some("https://elsewhere.example"), "/"),
            (Some("/\\elsewhere.example"), "/"),
            (None, "/"),
        ] {
            assert_eq!(local_path(next), kept, "{next:?}");
        }
    }
}
