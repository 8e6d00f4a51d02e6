//! A small HTTP client for the gateway that returns status, headers and JSON together, so a
//! test asserts on exactly what a client would see.

use serde_json::Value;

#[derive(Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON (`Value::Null` when empty; a string when not JSON).
    pub body: Value,
}

impl Response {
    /// The first message for `field` in a `{"errors": {...}}` body.
    pub fn error(&self, field: &str) -> Option<&str> {
        self.body["errors"][field][0].as_str()
    }
}

impl Api {
    pub fn new(base: String) -> Self {
        // No connection reuse: a server that answers 413 before reading a body closes the
        // connection, and a pooled client would race that close on its next request.
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("an HTTP client");
        Api { base, http }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(reqwest::Method::GET, path, None, None).await
    }

    pub async fn get_as(&self, path: &str, token: &str) -> Response {
        self.send(reqwest::Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.send(reqwest::Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Response {
        self.send(reqwest::Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn delete_as(&self, path: &str, token: &str) -> Response {
        self.send(reqwest::Method::DELETE, path, Some(token), None).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post("/api/users/login", None, serde_json::json!({"user": {"email": email, "password": password}})).await
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let body = body.map(|b| b.to_string().into_bytes());
        self.send_raw(method, path, token, body).await
    }

    /// Sends `body` as is (possibly not JSON at all).
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Response {
        self.try_send_raw(method, path, token, body).await.expect("the gateway answers")
    }

    /// Uploads `bytes` as they are, with their `Content-Type`, to `path` (`/api/attachments?...`).
    pub async fn upload(&self, path: &str, token: &str, content_type: &str, bytes: Vec<u8>) -> Response {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Token {token}"))
            .header("Content-Type", content_type)
            .body(bytes);
        Self::read(request.send().await.expect("the gateway answers")).await.expect("a whole answer")
    }

    /// A GET whose body is kept as bytes (a download), with extra request headers (`Range`).
    pub async fn download(
        &self,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let mut request =
            self.http.get(format!("{}{path}", self.base)).header("Authorization", format!("Token {token}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the gateway answers");
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.bytes().await.expect("a whole answer").to_vec())
    }

    /// A GET that may find no gateway listening (the fault tests kill them).
    pub async fn try_get_as(&self, path: &str, token: &str) -> Result<Response, reqwest::Error> {
        self.try_send_raw(reqwest::Method::GET, path, Some(token), None).await
    }

    async fn try_send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Response, reqwest::Error> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Token {token}"));
        }
        if let Some(body) = body {
            request = request.header("Content-Type", "application/json").body(body);
        }
        Self::read(request.send().await?).await
    }

    async fn read(response: reqwest::Response) -> Result<Response, reqwest::Error> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(Response { status, headers, body })
    }

    /// Registers a user and returns its `user` object (with `token` and `refresh_token`).
    pub async fn register(&self, username: &str, password: &str) -> Value {
        let r = self
            .send(
                reqwest::Method::POST,
                "/api/users",
                None,
                Some(serde_json::json!({"user": {"username": username, "email": format!("{username}@example.com"), "password": password}})),
            )
            .await;
        assert_eq!(r.status, 201, "registering {username}: {:?}", r.body);
        r.body["user"].clone()
    }
}
