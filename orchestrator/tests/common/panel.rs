//! The panel as one account sees it, for the panel's tests: pages by GET, actions as htmx
//! form POSTs (with the account's credentials on every request).

use super::TestPlant;

/// The panel as one account sees it: pages by GET, actions as htmx form POSTs.
pub struct Panel {
    pub base: String,
    pub http: reqwest::Client,
    auth: (&'static str, String),
}

impl Panel {
    pub fn new(plant: &TestPlant, auth: (&'static str, String)) -> Panel {
        Panel {
            base: plant.client.base.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            auth,
        }
    }

    /// A request with the account's credentials, to add to.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header(self.auth.0, &self.auth.1)
    }

    pub async fn page(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(self.auth.0, &self.auth.1)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    pub async fn ok(&self, path: &str) -> String {
        let (status, body) = self.page(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn action(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(self.auth.0, &self.auth.1)
            .header("hx-request", "true")
            .form(form)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// `/submit` as the browser sends it: multipart, the spec pasted, programs as files.
    pub async fn submit(&self, spec: &str, programs: &[(&str, &str)]) -> reqwest::Response {
        const BOUNDARY: &str = "----microfab-test-boundary";
        let mut body = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"spec_text\"\r\n\r\n{spec}\r\n"
        );
        body.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"spec_file\"; filename=\"\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n"
        ));
        for (name, text) in programs {
            body.push_str(&format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"programs\"; filename=\"{name}\"\r\nContent-Type: text/plain\r\n\r\n{text}\r\n"
            ));
        }
        body.push_str(&format!("--{BOUNDARY}--\r\n"));
        self.http
            .post(format!("{}/submit", self.base))
            .header(self.auth.0, &self.auth.1)
            .header("hx-request", "true")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body)
            .send()
            .await
            .unwrap()
    }
}
