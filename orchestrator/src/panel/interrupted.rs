//! Interrupted runs (`/interrupted`): each run a machine stopped in the middle of, with what is
//! known (for a printer: the line to go on from and the lines in doubt). An operator resolves
//! it with a good count and a reason, or resumes it from a line: the same operations as
//! `POST /api/v1/jobs/{id}/resolve` and `/resume`.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::i18n::Catalog;
use super::layout::{Chrome, Ctx};
use super::render::{PanelError, checked_reason, html, number};
use crate::ops::Operations;
use crate::plant::JobState;
use crate::plant::views::JobView;

pub fn routes() -> Router<Operations> {
    Router::new()
        .route("/interrupted", get(page))
        .route("/interrupted/{job}/resolve", post(resolve))
        .route("/interrupted/{job}/resume", post(resume))
}

/// One interrupted run, and whether its machine may go on with it from a line.
struct Interrupted {
    job: JobView,
    resumable: bool,
}

#[derive(Template)]
#[template(path = "interrupted.html")]
struct InterruptedPage<'a> {
    t: &'a Catalog,
    chrome: Chrome,
    runs: Vec<Interrupted>,
}

async fn page(ctx: Ctx) -> Response {
    ctx.answer(page_html(&ctx).await)
}

async fn page_html(ctx: &Ctx) -> Result<String, PanelError> {
    let jobs = ctx
        .ops
        .plant()
        .jobs(None, None, Some(JobState::Interrupted.as_str()))
        .await?;
    let config = &ctx.ops.plant().config;
    let runs = jobs
        .into_iter()
        .map(|job| {
            let machine_resumes = job.machine_id.as_deref().is_some_and(|id| {
                config
                    .machines
                    .iter()
                    .map(|m| m.get_ref())
                    .any(|m| m.id == id && m.resumes_interrupted())
            });
            Interrupted {
                resumable: machine_resumes && job.resume.is_some(),
                job,
            }
        })
        .collect();
    html(&InterruptedPage {
        t: ctx.t,
        chrome: ctx.chrome("interrupted.title", "/interrupted"),
        runs,
    })
}

#[derive(Deserialize)]
struct ResolveForm {
    good: String,
    reason: String,
}

async fn resolve(ctx: Ctx, Path(job): Path<i64>, Form(form): Form<ResolveForm>) -> Response {
    let result = async {
        let good = number::<i64>(&form.good, "interrupted.good")?;
        let reason = checked_reason(&form.reason)?;
        ctx.ops
            .resolve(&ctx.caller.actor(), job, good, reason)
            .await?;
        Ok::<_, PanelError>(())
    }
    .await;
    match result {
        Ok(()) => ctx.done(String::new(), "interrupted.resolved", format!("#{job}")),
        Err(e) => ctx.answer(Err(e)),
    }
}

#[derive(Deserialize)]
struct ResumeForm {
    #[serde(default)]
    from_line: String,
    reason: String,
}

async fn resume(ctx: Ctx, Path(job): Path<i64>, Form(form): Form<ResumeForm>) -> Response {
    let result = async {
        let from_line = match form.from_line.trim() {
            "" => None,
            line => Some(number::<u32>(line, "interrupted.from_line")?),
        };
        let reason = checked_reason(&form.reason)?;
        ctx.ops
            .resume(&ctx.caller.actor(), job, from_line, reason)
            .await?;
        Ok::<_, PanelError>(())
    }
    .await;
    match result {
        Ok(()) => ctx.done(String::new(), "interrupted.resumed", format!("#{job}")),
        Err(e) => ctx.answer(Err(e)),
    }
}
