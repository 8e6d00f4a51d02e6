//! SMS through an HTTP provider: `POST <url>` with JSON `{"to", "text"}` and, when a token is
//! configured, `Authorization: Bearer <token>`. Any 2xx is accepted.

use soulchat_subjects::notification::messages::Delivery;

use super::{Failure, http_outcome};

pub struct Sms {
    http: reqwest::Client,
    url: reqwest::Url,
    token: Option<String>,
}

impl Sms {
    pub fn new(http: reqwest::Client, url: &str, token: Option<String>) -> anyhow::Result<Sms> {
        let url = url.parse().map_err(|e| anyhow::anyhow!("SOULCHAT_SMS_URL {url:?} is not a URL: {e}"))?;
        Ok(Sms { http, url, token })
    }

    pub async fn send(&self, delivery: &Delivery) -> Result<(), Failure> {
        let mut request =
            self.http.post(self.url.clone()).json(&serde_json::json!({"to": delivery.to, "text": delivery.text}));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| Failure::Transient(format!("SMS provider: {e}")))?;
        http_outcome(response.status(), "the SMS provider")
    }
}
