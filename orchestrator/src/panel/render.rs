//! Answers: a template rendered to HTML, an action's fragment with its flash message, and a
//! failure shown in the catalog's words with the operation's own detail (inline in the
//! page's flash area for htmx, as a page of its own otherwise).

use askama::Template;
use axum::http::{HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::i18n::Catalog;
use super::layout::{Chrome, Ctx};
use crate::api::{ApiError, MAX_REASON_CHARS};
use crate::ops::OpError;

/// Why a panel request failed.
#[derive(Debug, thiserror::Error)]
pub enum PanelError {
    /// An operation refused or failed: shown with the API's code and detail.
    #[error(transparent)]
    Op(#[from] OpError),
    /// A form field is wrong: the catalog keys of its name and of what is wrong.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: &'static str,
    },
    /// The caller's role does not reach this page or action.
    #[error("not for this role")]
    Forbidden,
    #[error("rendering failed: {0}")]
    Render(#[from] askama::Error),
}

impl From<crate::plant::PlantError> for PanelError {
    fn from(e: crate::plant::PlantError) -> PanelError {
        PanelError::Op(e.into())
    }
}

impl From<crate::store::StoreError> for PanelError {
    fn from(e: crate::store::StoreError) -> PanelError {
        crate::plant::PlantError::from(e).into()
    }
}

impl PanelError {
    /// The status, the catalog key of the headline and the detail.
    fn explain(self, t: &Catalog) -> (StatusCode, String, String) {
        match self {
            PanelError::Op(e) => {
                let api = ApiError::from(e);
                let detail = api.detail();
                (
                    api.status(),
                    format!("errors.{}", detail.code),
                    detail.message.clone(),
                )
            }
            PanelError::Invalid { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "errors.invalid".into(),
                format!(
                    "{}: {}",
                    t.get(field),
                    t.fill(message, &[("max", MAX_REASON_CHARS.to_string())])
                ),
            ),
            PanelError::Forbidden => (
                StatusCode::FORBIDDEN,
                "errors.forbidden".into(),
                String::new(),
            ),
            PanelError::Render(e) => {
                tracing::error!(error = %e, "a panel template failed to render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "errors.internal".into(),
                    String::new(),
                )
            }
        }
    }
}

/// A message in the page's flash area (`data-testid="flash"`).
#[derive(Template)]
#[template(path = "flash.html")]
pub struct Flash<'a> {
    pub t: &'a Catalog,
    /// `ok` or `error`.
    pub tone: &'static str,
    pub headline: String,
    pub detail: String,
    /// Sent out of band with an action's fragment, into `#flash`.
    pub oob: bool,
}

/// A failure as a whole page (a page asked for by its address).
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    t: &'a Catalog,
    chrome: Chrome,
    flash: String,
}

/// A reason typed into a form, within the API's limit.
pub fn checked_reason(reason: &str) -> Result<&str, PanelError> {
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(PanelError::Invalid {
            field: "common.reason",
            message: "errors.too_long",
        });
    }
    Ok(reason)
}

/// A whole number typed into the form field whose label is the catalog's `field`.
pub fn number<T: std::str::FromStr>(text: &str, field: &'static str) -> Result<T, PanelError> {
    text.trim().parse().map_err(|_| PanelError::Invalid {
        field,
        message: "errors.not_a_number",
    })
}

pub fn html(template: &impl Template) -> Result<String, PanelError> {
    Ok(template.render()?)
}

/// A live stream of server-sent events, kept open with comments while it is quiet.
pub fn sse(
    events: impl futures::Stream<Item = Result<SseEvent, std::convert::Infallible>> + Send + 'static,
) -> Response {
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The value of a query parameter, percent-encoded.
pub fn query_value(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

impl Ctx {
    /// The answer to a page or an action: its HTML, or the failure shown where it belongs.
    pub fn answer(&self, result: Result<String, PanelError>) -> Response {
        match result {
            Ok(body) => Html(body).into_response(),
            Err(e) => self.failure(e),
        }
    }

    /// An action's fragment with a success message in the flash area.
    pub fn done(&self, fragment: String, message_key: &str, detail: String) -> Response {
        let flash = Flash {
            t: self.t,
            tone: "ok",
            headline: self.t.get(message_key).to_string(),
            detail,
            oob: true,
        };
        self.answer(html(&flash).map(|flash| fragment + &flash))
    }

    fn failure(&self, error: PanelError) -> Response {
        let (status, key, detail) = error.explain(self.t);
        let flash = Flash {
            t: self.t,
            tone: "error",
            headline: self.t.get(&key).to_string(),
            detail,
            oob: false,
        };
        let Ok(flash) = html(&flash) else {
            return status.into_response();
        };
        if self.htmx {
            // Shown in the page's flash area, whatever the request aimed at.
            let mut response = (status, Html(flash)).into_response();
            let headers = response.headers_mut();
            headers.insert("hx-retarget", HeaderValue::from_static("#flash"));
            headers.insert("hx-reswap", HeaderValue::from_static("innerHTML"));
            return response;
        }
        let page = ErrorPage {
            t: self.t,
            chrome: self.chrome("errors.title", ""),
            flash,
        };
        match html(&page) {
            Ok(page) => (status, Html(page)).into_response(),
            Err(_) => status.into_response(),
        }
    }
}
