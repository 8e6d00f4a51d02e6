//! The external channels: each turns one queued [`Delivery`] into one attempt and says whether a
//! failure is worth another try. A channel whose settings are absent is `None` here and skipped
//! (logged once at start, counted in `$SRV.STATS`); half a channel's settings stop the worker,
//! since that is a typo rather than a choice.

mod email;
mod push;
mod sms;

use std::time::Duration;

use anyhow::bail;
use soulchat_subjects::notification::messages::Delivery;

use crate::Config;
use crate::egress::Egress;

/// How long one attempt may take before it counts as a transient failure.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Push,
    Email,
    Sms,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Push, Channel::Email, Channel::Sms];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Push => "push",
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Why an attempt failed, which decides what happens to the delivery next.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Worth retrying later (timeouts, 5xx, 429, a refused connection).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (a malformed address, a 4xx refusal): dead-lettered at once.
    #[error("{0}")]
    Permanent(String),
    /// The push service no longer knows the subscription (404 or 410): it is deleted.
    #[error("push subscription gone (HTTP {0})")]
    Gone(u16),
    /// The push endpoint is, or now resolves to, an address this worker may not reach: nothing
    /// was sent; the delivery is dead-lettered and the subscription deleted.
    #[error("{0}")]
    Forbidden(String),
}

pub struct Channels {
    push: Option<push::Push>,
    email: Option<email::Email>,
    sms: Option<sms::Sms>,
}

impl Channels {
    /// The VAPID public key, when Web Push is on.
    pub fn push_key(&self) -> Option<&str> {
        self.push.as_ref().map(push::Push::public_key)
    }

    pub fn from_config(config: &Config, egress: Egress) -> anyhow::Result<Channels> {
        let push = match (&config.vapid_private_key, &config.vapid_subject) {
            (Some(key), Some(subject)) => Some(push::Push::new(http_client(), egress, key, subject)?),
            (None, None) => None,
            _ => bail!("Web Push needs both SOULCHAT_VAPID_PRIVATE_KEY and SOULCHAT_VAPID_SUBJECT"),
        };
        let email = match (&config.smtp_url, &config.mail_from) {
            (Some(url), Some(from)) => Some(email::Email::new(url, from)?),
            (None, None) => None,
            _ => bail!("email needs both SOULCHAT_SMTP_URL and SOULCHAT_MAIL_FROM"),
        };
        let sms = match (&config.sms_url, &config.sms_token) {
            (Some(url), token) => Some(sms::Sms::new(http_client().build()?, url, token.clone())?),
            (None, None) => None,
            (None, Some(_)) => bail!("SOULCHAT_SMS_TOKEN is set but SOULCHAT_SMS_URL is not"),
        };
        let channels = Channels { push, email, sms };
        for channel in Channel::ALL {
            if !channels.configured(channel) {
                let settings = match channel {
                    Channel::Push => "SOULCHAT_VAPID_PRIVATE_KEY, SOULCHAT_VAPID_SUBJECT",
                    Channel::Email => "SOULCHAT_SMTP_URL, SOULCHAT_MAIL_FROM",
                    Channel::Sms => "SOULCHAT_SMS_URL",
                };
                tracing::warn!(
                    channel = channel.name(),
                    "{} not configured ({settings} unset): skipped",
                    channel.name()
                );
            }
        }
        Ok(channels)
    }

    pub fn configured(&self, channel: Channel) -> bool {
        match channel {
            Channel::Push => self.push.is_some(),
            Channel::Email => self.email.is_some(),
            Channel::Sms => self.sms.is_some(),
        }
    }

    /// One attempt at `delivery` on `channel`.
    pub async fn send(&self, channel: Channel, delivery: &Delivery) -> Result<(), Failure> {
        let unconfigured = || Failure::Transient(format!("{} is not configured on this worker", channel.name()));
        let attempt = async {
            match channel {
                Channel::Push => self.push.as_ref().ok_or_else(unconfigured)?.send(delivery).await,
                Channel::Email => self.email.as_ref().ok_or_else(unconfigured)?.send(delivery).await,
                Channel::Sms => self.sms.as_ref().ok_or_else(unconfigured)?.send(delivery).await,
            }
        };
        match tokio::time::timeout(ATTEMPT_TIMEOUT + Duration::from_secs(5), attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure::Transient(format!("no answer within {ATTEMPT_TIMEOUT:?}"))),
        }
    }
}

/// The HTTP client settings every channel shares.
fn http_client() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        // A push service or SMS provider answers; it does not send us elsewhere.
        .redirect(reqwest::redirect::Policy::none())
}

/// What an HTTP answer means for a delivery: 2xx done, 429 and 5xx later, other 4xx never.
fn http_outcome(status: reqwest::StatusCode, what: &str) -> Result<(), Failure> {
    if status.is_success() {
        Ok(())
    } else if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(Failure::Transient(format!("{what} answered {status}")))
    } else {
        Err(Failure::Permanent(format!("{what} refused: {status}")))
    }
}
