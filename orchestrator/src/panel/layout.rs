//! What every page shares: who asks and in which language ([`Ctx`]), and the frame around a
//! page ([`Chrome`]: the header with the plant's name, the navigation for the caller's role,
//! the language switch, the account and log-out, and the CSRF header htmx sends back).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::Caller;
use super::assets;
use super::i18n::{Catalog, Lang};
use crate::auth::Role;
use crate::ops::Operations;

/// One entry of the navigation: its catalog key, its path, its `nav-{testid}` hook, and the
/// roles that see it.
pub struct NavLink {
    pub key: &'static str,
    pub path: &'static str,
    pub testid: &'static str,
    pub roles: &'static [Role],
}

const PLANT_STAFF: &[Role] = &[Role::Operator, Role::Admin];
const MAKERS: &[Role] = &[Role::Maker];
const ADMINS: &[Role] = &[Role::Admin];

/// The navigation, in the order shown. A new page adds its row here (and to `PAGES`).
pub const NAV: &[NavLink] = &[
    NavLink {
        key: "nav.fleet",
        path: "/fleet",
        testid: "fleet",
        roles: PLANT_STAFF,
    },
    NavLink {
        key: "nav.tasks",
        path: "/tasks",
        testid: "tasks",
        roles: PLANT_STAFF,
    },
    NavLink {
        key: "nav.intake",
        path: "/intake",
        testid: "intake",
        roles: PLANT_STAFF,
    },
    NavLink {
        key: "nav.orders",
        path: "/orders",
        testid: "orders",
        roles: PLANT_STAFF,
    },
    NavLink {
        key: "nav.materials",
        path: "/materials",
        testid: "materials",
        roles: PLANT_STAFF,
    },
    NavLink {
        key: "nav.interrupted",
        path: "/interrupted",
        testid: "interrupted",
        roles: PLANT_STAFF,
    },
    NavLink {
        key: "nav.events",
        path: "/events",
        testid: "events",
        roles: PLANT_STAFF,
    },
    NavLink {
        key: "nav.my_orders",
        path: "/my/orders",
        testid: "my-orders",
        roles: MAKERS,
    },
    NavLink {
        key: "nav.submit",
        path: "/submit",
        testid: "submit",
        roles: MAKERS,
    },
    NavLink {
        key: "nav.my_materials",
        path: "/my/materials",
        testid: "my-materials",
        roles: MAKERS,
    },
    NavLink {
        key: "nav.admin",
        path: "/admin/users",
        testid: "admin",
        roles: ADMINS,
    },
];

/// Who asks, in which language, and whether htmx asks (it wants a fragment, not a page).
pub struct Ctx {
    pub ops: Operations,
    pub caller: Caller,
    pub lang: Lang,
    pub t: &'static Catalog,
    pub htmx: bool,
    /// The path and query asked for (where the language switch comes back to).
    pub here: String,
}

impl FromRequestParts<Operations> for Ctx {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut Parts,
        ops: &Operations,
    ) -> Result<Ctx, Self::Rejection> {
        use axum::response::IntoResponse;
        let caller = Caller::from_request_parts(parts, ops)
            .await
            .map_err(IntoResponse::into_response)?;
        let lang = Lang::of_request(&parts.headers);
        Ok(Ctx {
            ops: ops.clone(),
            caller,
            lang,
            t: lang.catalog(),
            htmx: parts.headers.contains_key("hx-request"),
            here: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string()),
        })
    }
}

impl Ctx {
    /// The frame of a page whose title is the catalog's `title_key`, under the nav entry at
    /// `section` (its path).
    pub fn chrome(&self, title_key: &'static str, section: &str) -> Chrome {
        Chrome {
            title: self.t.get(title_key).to_string(),
            plant: self.ops.plant().config.plant.name.clone(),
            lang: self.lang,
            account: self.caller.name.clone(),
            role: self.caller.role,
            hx_headers: hx_headers(self.caller.csrf.as_deref()),
            nav: NAV
                .iter()
                .filter(|link| link.roles.contains(&self.caller.role))
                .map(|link| NavItem {
                    key: link.key,
                    path: link.path,
                    testid: link.testid,
                    active: link.path == section,
                })
                .collect(),
            switch: language_switch(self.lang, &self.here),
        }
    }
}

/// The frame around a page's content.
pub struct Chrome {
    pub title: String,
    pub plant: String,
    pub lang: Lang,
    pub account: String,
    pub role: Role,
    /// `hx-headers` for `<body>`: the CSRF header every htmx request carries back.
    pub hx_headers: Option<String>,
    pub nav: Vec<NavItem>,
    /// The other languages, each with the link that switches to it.
    pub switch: Vec<LanguageLink>,
}

impl Chrome {
    /// The catalog key of the caller's role.
    pub fn role_key(&self) -> String {
        format!("role.{}", self.role)
    }

    pub fn asset(&self, name: &str) -> String {
        assets::url(name)
    }
}

pub struct NavItem {
    pub key: &'static str,
    pub path: &'static str,
    pub testid: &'static str,
    pub active: bool,
}

pub struct LanguageLink {
    /// The language's own name for itself, from its own catalog.
    pub label: &'static str,
    pub code: &'static str,
    pub href: String,
}

fn hx_headers(csrf: Option<&str>) -> Option<String> {
    csrf.map(|token| serde_json::json!({ "X-CSRF-Token": token }).to_string())
}

/// Links to every language but `current`, each coming back to `here`.
pub fn language_switch(current: Lang, here: &str) -> Vec<LanguageLink> {
    Lang::ALL
        .into_iter()
        .filter(|lang| *lang != current)
        .map(|lang| LanguageLink {
            label: lang.catalog().get("lang.name"),
            code: lang.code(),
            href: format!(
                "/lang/{}?next={}",
                lang.code(),
                super::render::query_value(here)
            ),
        })
        .collect()
}
