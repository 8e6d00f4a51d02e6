//! Web Push: the payload encrypted for the subscription (RFC 8291, `aes128gcm`) and signed
//! for the push service with VAPID (RFC 8292), both by the web-push crate; the request itself
//! goes out through reqwest, so its timeouts and TLS are ours, and so is its resolver: it goes
//! only to addresses [`egress`](crate::egress) allows, checked on every connection.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use soulchat_subjects::notification::messages::Delivery;
use web_push::{ContentEncoding, SubscriptionInfo, VapidSignatureBuilder, WebPushMessageBuilder, request_builder};

use super::{Failure, http_outcome};
use crate::egress::{self, CheckedResolver, Egress, Refused};

/// How long the push service keeps a message for an offline browser.
const TTL_SECONDS: u32 = 24 * 3600;

pub struct Push {
    http: reqwest::Client,
    egress: Egress,
    /// base64url of the raw P-256 private key.
    key: String,
    /// Its public half, base64url: the `applicationServerKey` browsers subscribe with.
    public_key: String,
    /// `mailto:` or `https:` contact for the push service's operators.
    subject: String,
}

impl Push {
    pub fn new(http: reqwest::ClientBuilder, egress: Egress, key: &str, subject: &str) -> anyhow::Result<Push> {
        let signer = VapidSignatureBuilder::from_base64_no_sub(key)
            .map_err(|e| anyhow::anyhow!("SOULCHAT_VAPID_PRIVATE_KEY is not a base64url raw P-256 private key: {e}"))?;
        let public_key = URL_SAFE_NO_PAD.encode(signer.get_public_key());
        let http = http
            .dns_resolver(Arc::new(CheckedResolver(egress)))
            // A proxy would resolve and connect on our behalf, past the resolver's check.
            .no_proxy()
            .build()?;
        Ok(Push { http, egress, key: key.to_owned(), public_key, subject: subject.to_owned() })
    }

    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    pub async fn send(&self, delivery: &Delivery) -> Result<(), Failure> {
        let forbidden = |refused: &Refused| {
            let address = match refused {
                Refused::Address(ip) => format!(" ({ip})"),
                _ => String::new(),
            };
            Failure::Forbidden(format!("push endpoint {:?} {refused}{address}", delivery.to))
        };
        // Checked again, as the subscription was: the mode may have changed since.
        let endpoint = egress::check_url(&delivery.to, self.egress).map_err(|e| forbidden(&e))?;
        // The token's audience is the push service's origin. web-push would derive it without
        // the port, which a push service on a non-default port rejects (RFC 8292, section 2).
        let audience = endpoint.origin().ascii_serialization();
        let info = SubscriptionInfo::new(delivery.to.as_str(), delivery.p256dh.as_str(), delivery.auth.as_str());
        let build = || -> Result<_, web_push::WebPushError> {
            let mut signature = VapidSignatureBuilder::from_base64(&self.key, &info)?;
            signature.add_claim("sub", self.subject.as_str());
            signature.add_claim("aud", audience.as_str());
            let mut message = WebPushMessageBuilder::new(&info);
            message.set_payload(ContentEncoding::Aes128Gcm, delivery.text.as_bytes());
            message.set_ttl(TTL_SECONDS);
            message.set_vapid_signature(signature.build()?);
            Ok(request_builder::build_request::<Vec<u8>>(message.build()?))
        };
        let (parts, body) = build().map_err(|e| Failure::Permanent(format!("building the push: {e}")))?.into_parts();
        // To the URL checked above (web-push's request has the same endpoint, parsed its way).
        let mut outgoing = self.http.post(endpoint).body(body);
        for (name, value) in &parts.headers {
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
        let response = outgoing.send().await.map_err(|e| match egress::refusal(&e) {
            Some(refused @ Refused::Address(_)) => forbidden(refused),
            _ => Failure::Transient(format!("push service: {e}")),
        })?;
        match response.status().as_u16() {
            status @ (404 | 410) => Err(Failure::Gone(status)),
            _ => http_outcome(response.status(), "the push service"),
        }
    }
}
