//! One function per `soulchat.notification.v1` operation. The caller is the
//! `Soulchat-User-Id` header; every query is scoped to it, so a user never reads or marks
//! another user's notifications (foreign ids are ignored like unknown ones).

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use soulchat_runtime::{RequestContext, Result};
use soulchat_subjects::ServiceError;
use soulchat_subjects::audit::{self, AuditEvent};
use soulchat_subjects::error::Validation;
use soulchat_subjects::notification::messages::*;
use soulchat_subjects::notification::{EmailJob, SmsJob};
use soulchat_subjects::proto::common::v1::Empty;
use soulchat_subjects::time::now_ms;

use crate::channels::Channel;
use crate::egress;
use crate::store::{self, Cursor};
use crate::{Notifications, live};

const MAX_IDS: usize = 1000;
const MAX_MUTED: usize = 1000;
const TITLE_MAX: usize = 200;
const BODY_MAX: usize = 2000;
const ENDPOINT_MAX: usize = 2048;

pub async fn welcome(n: Arc<Notifications>, _ctx: RequestContext, req: WelcomeRequest) -> Result<WelcomeReply> {
    if req.user_id.is_empty() {
        return Err(ServiceError::invalid("user_id", "can't be blank").into());
    }
    let body = format!("Hi {}, welcome to SoulChat!", req.username);
    let mut tx = n.db.begin().await?;
    let (notification, stored) =
        store::insert_once(&mut tx, &req.user_id, "welcome", "welcome", "Welcome to SoulChat", &body).await?;
    tx.commit().await?;
    if stored {
        n.published(vec![(req.user_id.clone(), notification.clone())]).await;
    }
    Ok(WelcomeReply { notification_id: notification.id })
}

pub async fn list(n: Arc<Notifications>, ctx: RequestContext, req: ListRequest) -> Result<NotificationList> {
    let user = ctx.user_id()?;
    let limit = soulchat_subjects::paging::page_size(req.limit)?;
    let cursor = if req.cursor.is_empty() { None } else { Some(parse_cursor(&req.cursor)?) };
    let mut reads = n.db.reads().await?;
    // One more than asked tells whether another page follows.
    let mut page = store::page(&mut reads, user, req.unread_only, cursor.as_ref(), i64::from(limit) + 1).await?;
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let next_cursor = match page.last() {
        Some(last) if more => format!("{}.{}", last.created_at_ms, last.id),
        _ => String::new(),
    };
    let unread_count = store::unread_count(&mut reads, user).await?;
    Ok(NotificationList { notifications: page, unread_count, next_cursor })
}

fn parse_cursor(cursor: &str) -> Result<Cursor, ServiceError> {
    cursor
        .split_once('.')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())))
        .filter(|(_, id)| !id.is_empty() && id.len() <= 64)
        .ok_or_else(|| ServiceError::invalid("cursor", "is invalid"))
}

pub async fn mark_read(n: Arc<Notifications>, ctx: RequestContext, req: MarkReadRequest) -> Result<Empty> {
    let user = ctx.user_id()?;
    if !req.all && req.ids.is_empty() {
        return Err(ServiceError::invalid("ids", "can't be blank").into());
    }
    if req.ids.len() > MAX_IDS {
        return Err(ServiceError::invalid("ids", &format!("are too many (maximum is {MAX_IDS})")).into());
    }
    let ids = (!req.all).then_some(req.ids.as_slice());
    let mut tx = n.db.begin().await?;
    store::mark_read(&mut tx, user, ids).await?;
    tx.commit().await?;
    Ok(Empty {})
}

pub async fn get_preferences(
    n: Arc<Notifications>,
    ctx: RequestContext,
    _req: GetPreferencesRequest,
) -> Result<Preferences> {
    let user = ctx.user_id()?;
    Ok(store::preferences(&mut n.db.reads().await?, user).await?)
}

pub async fn put_preferences(n: Arc<Notifications>, ctx: RequestContext, mut req: Preferences) -> Result<Preferences> {
    let user = ctx.user_id()?;
    let mut v = Validation::new();
    if req.muted_conversations.len() > MAX_MUTED {
        v.problem("muted_conversations", &format!("are too many (maximum is {MAX_MUTED})"));
    }
    if req.muted_conversations.iter().any(|c| c.is_empty() || c.len() > 64) {
        v.problem("muted_conversations", "must be conversation ids");
    }
    v.finish()?;
    req.muted_conversations.sort();
    req.muted_conversations.dedup();
    let mut tx = n.db.begin().await?;
    store::put_preferences(&mut tx, user, &req).await?;
    let stored = store::preferences(&mut tx, user).await?;
    tx.commit().await?;
    Ok(stored)
}

pub async fn push_key(n: Arc<Notifications>, _ctx: RequestContext, _req: PushKeyRequest) -> Result<PushKeyReply> {
    let public_key = n.channels.push_key().ok_or_else(|| ServiceError::not_found("push"))?;
    Ok(PushKeyReply { public_key: public_key.to_owned() })
}

pub async fn subscribe_push(
    n: Arc<Notifications>,
    ctx: RequestContext,
    req: SubscribePushRequest,
) -> Result<SubscribePushReply> {
    let user = ctx.user_id()?;
    let mut v = Validation::new();
    if req.endpoint.len() > ENDPOINT_MAX || req.endpoint.contains(char::is_whitespace) {
        v.problem("endpoint", "must be an https URL");
    } else if let Err(refused) = egress::check_endpoint(&req.endpoint, n.egress).await {
        v.problem("endpoint", &refused.to_string());
    }
    // An uncompressed P-256 point and a 16-byte secret, as RFC 8291 has them.
    if !URL_SAFE_NO_PAD.decode(req.p256dh.trim_end_matches('=')).is_ok_and(|k| k.len() == 65 && k[0] == 4) {
        v.problem("p256dh", "must be a base64url P-256 public key");
    }
    if !URL_SAFE_NO_PAD.decode(req.auth.trim_end_matches('=')).is_ok_and(|a| a.len() == 16) {
        v.problem("auth", "must be a base64url 16-byte secret");
    }
    v.finish()?;
    let mut tx = n.db.begin().await?;
    let id = store::subscribe(&mut tx, user, &req.endpoint, &req.p256dh, &req.auth).await?;
    tx.commit().await?;
    Ok(SubscribePushReply { id })
}

pub async fn unsubscribe_push(
    n: Arc<Notifications>,
    ctx: RequestContext,
    req: UnsubscribePushRequest,
) -> Result<Empty> {
    let user = ctx.user_id()?;
    if req.endpoint.is_empty() {
        return Err(ServiceError::invalid("endpoint", "can't be blank").into());
    }
    let mut tx = n.db.begin().await?;
    store::unsubscribe(&mut tx, Some(user), &req.endpoint).await?;
    tx.commit().await?;
    Ok(Empty {})
}

pub async fn alert(n: Arc<Notifications>, ctx: RequestContext, req: AlertRequest) -> Result<Notification> {
    let mut v = Validation::new();
    text_field(&mut v, "title", &req.title, TITLE_MAX);
    text_field(&mut v, "body", &req.body, BODY_MAX);
    v.finish()?;
    let alert = Notification {
        id: uuid::Uuid::now_v7().to_string(),
        kind: "alert".to_owned(),
        title: req.title,
        body: req.body,
        created_at_ms: now_ms(),
        ..Default::default()
    };
    let mut tx = n.db.begin().await?;
    store::insert_alert(&mut tx, &alert).await?;
    let sender = ctx.call.user_id.as_deref().unwrap_or_default();
    n.outbox.record::<audit::AlertSent>(&mut tx, &AuditEvent::new(&ctx.call, sender, "", &alert.title)).await?;
    tx.commit().await?;
    live::broadcast(&n.client, &alert);
    Ok(alert)
}

pub async fn send_email(n: Arc<Notifications>, _ctx: RequestContext, req: SendEmailRequest) -> Result<DeliveryReply> {
    let mut v = Validation::new();
    if req.to.parse::<lettre::Address>().is_err() {
        v.problem("to", "is not an email address");
    }
    text_field(&mut v, "subject", &req.subject, TITLE_MAX);
    if req.subject.contains(['\r', '\n']) {
        v.problem("subject", "must be one line");
    }
    if req.text.is_empty() {
        v.problem("text", "can't be blank");
    }
    v.finish()?;
    let delivery = Delivery {
        channel: Channel::Email.name().to_owned(),
        user_id: req.user_id.unwrap_or_default(),
        to: req.to,
        subject: req.subject,
        text: req.text,
        html: req.html,
        ..Default::default()
    };
    queue_account_delivery(&n, Channel::Email, delivery).await
}

pub async fn send_sms(n: Arc<Notifications>, _ctx: RequestContext, req: SendSmsRequest) -> Result<DeliveryReply> {
    let mut v = Validation::new();
    let digits = req.to.strip_prefix('+').unwrap_or_default();
    if !(7..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
        v.problem("to", "must be an E.164 phone number");
    }
    text_field(&mut v, "text", &req.text, 1600);
    v.finish()?;
    let delivery = Delivery {
        channel: Channel::Sms.name().to_owned(),
        user_id: req.user_id.unwrap_or_default(),
        to: req.to,
        text: req.text,
        ..Default::default()
    };
    queue_account_delivery(&n, Channel::Sms, delivery).await
}

/// Queues account mail through the outbox (the job is durable once this answers). An
/// unconfigured channel skips it, visibly: a warning, a counter, and an empty delivery id.
async fn queue_account_delivery(n: &Notifications, channel: Channel, mut delivery: Delivery) -> Result<DeliveryReply> {
    if !n.channels.configured(channel) {
        n.stats.channel(channel).skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(channel = channel.name(), user_id = %delivery.user_id, "account {} skipped: channel not configured", channel.name());
        return Ok(DeliveryReply { delivery_id: String::new() });
    }
    delivery.id = uuid::Uuid::now_v7().to_string();
    let mut tx = n.db.begin().await?;
    match channel {
        Channel::Email => n.outbox.record::<EmailJob>(&mut tx, &delivery).await?,
        _ => n.outbox.record::<SmsJob>(&mut tx, &delivery).await?,
    }
    tx.commit().await?;
    Ok(DeliveryReply { delivery_id: delivery.id })
}

fn text_field(v: &mut Validation, field: &str, value: &str, max: usize) {
    if value.trim().is_empty() {
        v.problem(field, "can't be blank");
    } else if value.chars().count() > max {
        v.problem(field, &format!("is too long (maximum is {max} characters)"));
    }
}
