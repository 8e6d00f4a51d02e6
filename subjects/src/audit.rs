//! The audit log: security events on the `SOULCHAT_AUDIT` stream, one subject per kind
//! (`soulchat.audit.<kind>`), each an [`AuditEvent`]. Workers record them in their outbox, in the
//! transaction of the change they describe, so an event is published exactly when its change
//! committed ([`publisher`] says who records which). [`read`] is what `soulchat audit` prints.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull};
use futures::StreamExt;

use crate::broker::Identity;
pub use crate::proto::audit::v1::AuditEvent;
use crate::streams::{AUDIT_STREAM, audit_prefix};
use crate::{CallContext, Event};

crate::events! {
    STREAM = crate::streams::AUDIT_STREAM;
    /// An account was created.
    Registered = concat!(audit_prefix!(), ".registered") => AuditEvent;
    /// A login succeeded.
    LoginSucceeded = concat!(audit_prefix!(), ".login_succeeded") => AuditEvent;
    /// A login failed (unknown email or wrong password; `detail`: the email tried).
    LoginFailed = concat!(audit_prefix!(), ".login_failed") => AuditEvent;
    /// A session was ended by its user.
    LoggedOut = concat!(audit_prefix!(), ".logged_out") => AuditEvent;
    /// A rotated refresh token came back after its grace: its session was revoked.
    RefreshReused = concat!(audit_prefix!(), ".refresh_reused") => AuditEvent;
    /// A user changed their password.
    PasswordChanged = concat!(audit_prefix!(), ".password_changed") => AuditEvent;
    /// A password was reset with an emailed token.
    PasswordReset = concat!(audit_prefix!(), ".password_reset") => AuditEvent;
    /// An email address was verified.
    EmailVerified = concat!(audit_prefix!(), ".email_verified") => AuditEvent;
    /// A phone number was verified.
    PhoneVerified = concat!(audit_prefix!(), ".phone_verified") => AuditEvent;
    /// An account was deleted.
    AccountDeleted = concat!(audit_prefix!(), ".account_deleted") => AuditEvent;
    /// An administrator suspended an account (`detail`: until when, by whom, why).
    AccountSuspended = concat!(audit_prefix!(), ".account_suspended") => AuditEvent;
    /// An administrator sent a system alert (`detail`: its title).
    AlertSent = concat!(audit_prefix!(), ".alert_sent") => AuditEvent;
    /// A request was refused with 403: a member's role, an administrator's action, a page's
    /// origin (`detail`: method and route template).
    PermissionRefused = concat!(audit_prefix!(), ".permission_refused") => AuditEvent;
}

/// Who records each kind: the notification worker its alerts and the gateway its refusals (both
/// where the decision is made), the user worker the rest, each through its outbox but the
/// gateway, which has none and publishes directly.
pub fn publisher(subject: &str) -> Identity {
    match subject {
        s if s == <AlertSent as Event>::SUBJECT => Identity::Notification,
        s if s == <PermissionRefused as Event>::SUBJECT => Identity::Gateway,
        _ => Identity::User,
    }
}

impl AuditEvent {
    /// An event about a user (id and username, either possibly unknown: empty), now, with where
    /// the request `call` came from.
    pub fn new(call: &CallContext, user_id: &str, username: &str, detail: &str) -> AuditEvent {
        AuditEvent {
            at_ms: crate::time::now_ms(),
            user_id: user_id.to_owned(),
            username: username.to_owned(),
            client_address: call.client_address.clone().unwrap_or_default(),
            user_agent: call.user_agent.clone().unwrap_or_default(),
            request_id: call.request_id.clone(),
            detail: detail.chars().take(MAX_DETAIL).collect(),
        }
    }
}

/// The longest `detail` kept (an email address at most).
const MAX_DETAIL: usize = 254;

/// The kind of an audit subject: `login_failed` for `soulchat.audit.login_failed`.
pub fn kind(subject: &str) -> &str {
    subject.strip_prefix(concat!(audit_prefix!(), ".")).unwrap_or(subject)
}

/// Every kind, for a filter to be checked against.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    EVENTS.iter().map(|e| kind(e.subject))
}

/// What to read: events since a time, of one kind, about one user (id or username).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since: Option<std::time::SystemTime>,
    pub kind: Option<String>,
    pub user: Option<String>,
}

/// One stored event.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: String,
    pub event: AuditEvent,
}

impl std::fmt::Display for Entry {
    /// One line: time, kind, then the fields that are known.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.event;
        let at = crate::time::rfc3339_ms(e.at_ms);
        write!(f, "{at} {}", self.kind)?;
        for (name, value) in [
            ("user", &e.username),
            ("user_id", &e.user_id),
            ("client", &e.client_address),
            ("agent", &e.user_agent),
            ("request", &e.request_id),
            ("detail", &e.detail),
        ] {
            if !value.is_empty() {
                write!(f, " {name}={value:?}")?;
            }
        }
        Ok(())
    }
}

/// The stored events that match `filter`, oldest first, read with an ordered consumer (as
/// `admin`: nothing else may read the stream).
pub async fn read(js: &jetstream::Context, filter: &Filter) -> anyhow::Result<Vec<Entry>> {
    let filter_subject = match &filter.kind {
        None => String::new(),
        Some(kind) if kinds().any(|k| k == kind) => format!(concat!(audit_prefix!(), ".{}"), kind),
        Some(kind) => anyhow::bail!("no audit event kind {kind:?}: one of {}", kinds().collect::<Vec<_>>().join(", ")),
    };
    let stream = js.get_stream(AUDIT_STREAM).await?;
    let deliver_policy = match filter.since {
        Some(since) => DeliverPolicy::ByStartTime { start_time: since.into() },
        None => DeliverPolicy::All,
    };
    let consumer =
        stream.create_consumer(pull::OrderedConfig { filter_subject, deliver_policy, ..Default::default() }).await?;
    let mut pending = consumer.cached_info().num_pending;
    let mut messages = consumer.messages().await?;
    let mut entries = Vec::new();
    while pending > 0 {
        let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(5), messages.next()).await else {
            anyhow::bail!("the audit stream stopped answering");
        };
        let message = message?;
        pending = message.info().map_err(|e| anyhow::anyhow!("{e}"))?.pending;
        let Ok(event) = <AuditEvent as prost::Message>::decode(message.payload.as_ref()) else { continue };
        if filter.user.as_ref().is_none_or(|u| *u == event.username || *u == event.user_id) {
            entries.push(Entry { kind: kind(&message.subject).to_owned(), event });
        }
    }
    Ok(entries)
}
