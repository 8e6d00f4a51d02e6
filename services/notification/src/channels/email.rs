//! Email over SMTP (lettre): a plain-text body, with an HTML alternative when there is one.
//! `smtp://host:port` speaks plain SMTP, `?tls=required` adds STARTTLS, `smtps://` implicit TLS.

use lettre::message::{Mailbox, MultiPart, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use soulchat_subjects::notification::messages::Delivery;

use super::{ATTEMPT_TIMEOUT, Failure};

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Email {
    pub fn new(url: &str, from: &str) -> anyhow::Result<Email> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("SOULCHAT_SMTP_URL is not a usable SMTP URL: {e}"))?
            .timeout(Some(ATTEMPT_TIMEOUT))
            .build();
        let from = from.parse().map_err(|e| anyhow::anyhow!("SOULCHAT_MAIL_FROM {from:?} is not an address: {e}"))?;
        Ok(Email { transport, from })
    }

    pub async fn send(&self, delivery: &Delivery) -> Result<(), Failure> {
        let to: Mailbox =
            delivery.to.parse().map_err(|e| Failure::Permanent(format!("{:?} is not an address: {e}", delivery.to)))?;
        // The same Message-ID on every attempt lets a receiver drop a duplicate after a retry
        // whose first try did arrive.
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(delivery.subject.as_str())
            .message_id(Some(format!("<{}@{}>", delivery.id, self.from.email.domain())));
        let message = if delivery.html.is_empty() {
            builder.header(ContentType::TEXT_PLAIN).body(delivery.text.clone())
        } else {
            builder.multipart(MultiPart::alternative_plain_html(delivery.text.clone(), delivery.html.clone()))
        }
        .map_err(|e| Failure::Permanent(format!("building the message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(Failure::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(Failure::Transient(format!("SMTP: {e}"))),
        }
    }
}
