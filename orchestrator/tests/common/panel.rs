//! The panel as one account sees it, for the panel's tests: pages by GET, actions as htmx
//! form POSTs (with the account's credentials on every request).

use super::TestPlant;

/// The panel as one account sees it in a browser: signed in through `/login` with a session
/// cookie, sending back the CSRF token its pages carry (`<body hx-headers>`) with every htmx
/// action.
pub struct Panel {
    pub base: String,
    pub http: reqwest::Client,
    /// `microfab_session=...`
    cookie: String,
    pub csrf: String,
}

/// The password every test account signs in with.
pub const PASSWORD: &str = "correct horse battery staple";

impl Panel {
    /// A new account `name` with `role` on `plant`, signed in.
    pub async fn sign_in(plant: &TestPlant, name: &str, role: microfab::auth::Role) -> Panel {
        let store = &plant.running.runtime.plant.store;
        let hash = microfab::auth::secrets::hash_password(PASSWORD).unwrap();
        microfab::auth::accounts::add(store, "test", name, role, Some(hash), 0)
            .await
            .unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let base = plant.client.base.clone();
        let response = http
            .post(format!("{base}/login"))
            .form(&[("name", name), ("password", PASSWORD), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 303, "{name} signs in");
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let mut panel = Panel {
            base,
            http,
            cookie,
            csrf: String::new(),
        };
        let (status, page) = panel.page(Panel::home(role)).await;
        assert_eq!(status, 200, "{page}");
        panel.csrf = csrf_of(&page).expect("a signed-in page carries its CSRF token");
        panel
    }

    fn home(role: microfab::auth::Role) -> &'static str {
        match role {
            microfab::auth::Role::Maker => "/my/orders",
            _ => "/fleet",
        }
    }

    /// A request with the session cookie (and, for a change, the CSRF token), to add to.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let change = method != reqwest::Method::GET;
        let request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("cookie", &self.cookie);
        if change {
            request.header("x-csrf-token", &self.csrf)
        } else {
            request
        }
    }

    pub async fn page(&self, path: &str) -> (u16, String) {
        let response = self
            .request(reqwest::Method::GET, path)
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
            .request(reqwest::Method::POST, path)
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
        self.request(reqwest::Method::POST, "/submit")
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

/// The CSRF token in a page's `<body hx-headers>`.
pub fn csrf_of(page: &str) -> Option<String> {
    let start = page.find(r#"hx-headers=""#)? + r#"hx-headers=""#.len();
    let rest = &page[start..];
    let json = rest[..rest.find('"')?]
        .replace("&quot;", "\"")
        .replace("&#34;", "\"");
    let headers: serde_json::Value = serde_json::from_str(&json).ok()?;
    Some(headers["X-CSRF-Token"].as_str()?.to_string())
}
