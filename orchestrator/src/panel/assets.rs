//! The panel's static files, embedded in the binary (the panel works offline) and served under
//! `/assets/` by a name that carries a hash of the content, so browsers may keep them forever
//! and a new build is never served from a stale cache.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    /// The name templates ask for (`app.css`).
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/app.js"),
    },
    Asset {
        name: "htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/vendor/htmx-2.0.11.min.js"),
    },
    Asset {
        name: "htmx-ext-sse.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/vendor/htmx-ext-sse-2.2.4.min.js"),
    },
];

/// Each asset's name with its content hash: `app.css` → `app.3f2a9c1d.css`.
fn hashed_names() -> &'static Vec<String> {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = Sha256::digest(asset.bytes);
                let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
                match asset.name.split_once('.') {
                    Some((stem, extension)) => format!("{stem}.{hash}.{extension}"),
                    None => format!("{}.{hash}", asset.name),
                }
            })
            .collect()
    })
}

/// The URL of an embedded asset by its plain name. Panics on a name that is not embedded: a
/// template asking for one is a programming error the page tests catch.
pub fn url(name: &str) -> String {
    let index = ASSETS
        .iter()
        .position(|asset| asset.name == name)
        .unwrap_or_else(|| panic!("no embedded asset named '{name}'"));
    format!("/assets/{}", hashed_names()[index])
}

/// `GET /assets/{name}`: the asset under its hashed name, cached for a year.
pub async fn serve(Path(name): Path<String>) -> Response {
    let Some(index) = hashed_names().iter().position(|hashed| *hashed == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let asset = &ASSETS[index];
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_url_that_serves_it() {
        for asset in ASSETS {
            let url = url(asset.name);
            let hashed = url.strip_prefix("/assets/").unwrap();
            assert!(hashed_names().iter().any(|n| n == hashed));
            assert_ne!(hashed, asset.name, "the served name carries the hash");
        }
    }
}
