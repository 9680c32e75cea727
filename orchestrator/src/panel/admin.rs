//! An admin's pages. `/admin/config`: the plant config the server runs (machines with driver
//! kinds and envelopes, stock accounts, the pre-screen policy), read only, and whether the
//! file on disk still checks.

use askama::Template;
use axum::Router;
use axum::response::Response;
use axum::routing::get;
use microfab_job_specs::Diagnostic;

use super::at_least;
use super::i18n::Catalog;
use super::layout::{Chrome, Ctx};
use super::render::html;
use crate::auth::Role;
use crate::config::{MachineConfig, MaterialConfig, PlantConfig};
use crate::ops::Operations;

pub fn routes(ops: &Operations) -> Router<Operations> {
    let admin = Router::new().route("/admin/config", get(config));
    at_least(Role::Admin, admin, ops)
}

#[derive(Template)]
#[template(path = "admin_config.html")]
struct ConfigPage<'a> {
    t: &'a Catalog,
    chrome: Chrome,
    config: &'a PlantConfig,
    machines: Vec<&'a MachineConfig>,
    materials: Vec<&'a MaterialConfig>,
    /// The file the server was started from, and what checking it again finds (it may have
    /// been edited since); `None` when the config did not come from a file.
    file: Option<String>,
    problems: Vec<Diagnostic>,
}

async fn config(ctx: Ctx) -> Response {
    let config = &ctx.ops.plant().config;
    let file = (!config.path.as_os_str().is_empty()).then(|| config.path.display().to_string());
    let problems = match &file {
        Some(_) => match PlantConfig::load(&config.path) {
            Ok(_) => Vec::new(),
            Err(diagnostics) => diagnostics.0,
        },
        None => Vec::new(),
    };
    ctx.answer(html(&ConfigPage {
        t: ctx.t,
        chrome: ctx.chrome("admin.config_title", "/admin/config"),
        config,
        machines: config.machines.iter().map(|m| m.get_ref()).collect(),
        materials: config.materials.iter().map(|m| m.get_ref()).collect(),
        file,
        problems,
    }))
}
