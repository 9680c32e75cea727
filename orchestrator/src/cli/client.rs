//! The HTTP side of client commands: the server's URL, requests with the API's own bodies,
//! its JSON errors as messages, and printing an answer as JSON or for people.

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::emit;

#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// The microfab server to talk to.
    #[arg(
        long,
        env = "MICROFAB_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// The API token to sign in with (`microfab user token NAME` makes one).
    #[arg(long, env = "MICROFAB_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

impl ClientArgs {
    /// The API URL for these path segments, each one percent-encoded: an id such as
    /// `x/../y` stays one segment and cannot reach another resource.
    pub(super) fn endpoint(&self, segments: &[&str]) -> anyhow::Result<reqwest::Url> {
        let mut url = server_base(&self.server)?;
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("--server {}: not a base URL", self.server))?
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        Ok(url)
    }

    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, Option<String>)],
    ) -> anyhow::Result<T> {
        let mut url = self.endpoint(segments)?;
        for (key, value) in query {
            if let Some(value) = value {
                url.query_pairs_mut().append_pair(key, value);
            }
        }
        let response = self
            .request(reqwest::Method::GET, url.clone())
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        Ok(serde_json::from_value(answer(response).await?)?)
    }

    /// POST the API's request type `body`.
    pub(super) async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send_post(segments, |request| request.json(body)).await
    }

    /// POST to an action that takes no body (approve, pause, ...): still `application/json`,
    /// as the API wants every change.
    pub(super) async fn post_without_body<T: DeserializeOwned>(
        &self,
        segments: &[&str],
    ) -> anyhow::Result<T> {
        self.send_post(segments, |request| {
            request.header(reqwest::header::CONTENT_TYPE, "application/json")
        })
        .await
    }

    /// A request to the server, with the API token when there is one.
    pub(super) fn request(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
    ) -> reqwest::RequestBuilder {
        let request = reqwest::Client::new().request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send_post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        with_body: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let url = self.endpoint(segments)?;
        let request = self.request(reqwest::Method::POST, url.clone());
        let response = with_body(request)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        Ok(serde_json::from_value(answer(response).await?)?)
    }

    /// JSON with `--json`, else what `render` makes of it for people.
    pub(super) fn print<T: Serialize>(
        &self,
        value: &T,
        render: impl FnOnce(&T) -> String,
    ) -> anyhow::Result<i32> {
        if self.json {
            emit(&format!("{}\n", serde_json::to_string_pretty(value)?))?;
        } else {
            emit(&render(value))?;
        }
        Ok(0)
    }
}

const SERVER_FORMS: &str = "write http://HOST:PORT, https://HOST[:PORT][/PREFIX] or HOST:PORT";

/// The server's base URL from `--server`: a bare `HOST:PORT` is http, and a trailing
/// `/api/v1` names the same server.
fn server_base(text: &str) -> anyhow::Result<reqwest::Url> {
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let mut url = reqwest::Url::parse(&with_scheme)
        .map_err(|e| anyhow::anyhow!("--server {text}: {e}; {SERVER_FORMS}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!(
            "--server {text}: microfab speaks http or https, not {}; {SERVER_FORMS}",
            url.scheme()
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("--server {text}: no query or fragment; {SERVER_FORMS}");
    }
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix("/api/v1").unwrap_or(path).to_string();
    url.set_path(&path);
    Ok(url)
}

async fn answer(response: reqwest::Response) -> anyhow::Result<Value> {
    if response.status().is_success() {
        return Ok(response.json().await.unwrap_or(Value::Null));
    }
    Err(refusal(response).await)
}

/// The server's JSON error, as one message with every detail on its own line.
pub(super) async fn refusal(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let mut message = body["error"]["message"]
        .as_str()
        .unwrap_or("request failed")
        .to_string();
    if let Some(details) = body["error"]["details"].as_array() {
        for d in details {
            message.push_str(&format!(
                "\n  {}",
                d["message"].as_str().unwrap_or_default()
            ));
        }
    }
    anyhow::anyhow!("{status}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_named_in_any_of_the_forms_people_write() {
        for (given, base) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
            ("127.0.0.1:8080", "http://127.0.0.1:8080/"),
            ("plant.local:8080/", "http://plant.local:8080/"),
            ("http://127.0.0.1:8080/api/v1", "http://127.0.0.1:8080/"),
            ("http://127.0.0.1:8080/api/v1/", "http://127.0.0.1:8080/"),
            (
                "https://plant.example.org/microfab",
                "https://plant.example.org/microfab",
            ),
        ] {
            assert_eq!(server_base(given).unwrap().as_str(), base, "{given}");
        }
        let wrong = server_base("ftp://plant.local").unwrap_err().to_string();
        assert!(wrong.contains("http://HOST:PORT"), "{wrong}");
    }

    #[test]
    fn ids_stay_one_path_segment() {
        let client = ClientArgs {
            server: "http://127.0.0.1:8080".into(),
            token: None,
            json: false,
        };
        let url = client.endpoint(&["orders", "x/../y", "approve"]).unwrap();
        assert_eq!(url.path(), "/api/v1/orders/x%2F..%2Fy/approve");
    }
}
