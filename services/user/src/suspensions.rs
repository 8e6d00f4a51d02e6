//! Suspensions: an administrator (through the gateway, or by resolving a report in the chat
//! worker) keeps an account out until a time. Every session ends at once (its refresh families
//! revoked, so every access token and socket with them), and login answers 403 until then.

use std::sync::Arc;

use soulchat_runtime::{RequestContext, Result};
use soulchat_subjects::ServiceError;
use soulchat_subjects::audit;
use soulchat_subjects::error::Validation;
use soulchat_subjects::time::{now_ms, rfc3339_ms};
use soulchat_subjects::user::messages::{SuspendReply, SuspendRequest};

use crate::Users;
use crate::handlers::revoke_family;
use crate::store::{self, UserRow};

/// A suspension's stated reason, at most.
pub const REASON_MAX: usize = 1000;

pub async fn suspend(users: Arc<Users>, ctx: RequestContext, req: SuspendRequest) -> Result<SuspendReply> {
    let reason = req.reason.trim();
    let mut v = Validation::new();
    if req.until_ms <= now_ms() {
        v.problem("until", "must be in the future");
    }
    if reason.is_empty() {
        v.problem("reason", "can't be blank");
    } else if reason.chars().count() > REASON_MAX {
        v.problem("reason", &format!("is too long (maximum is {REASON_MAX} characters)"));
    }
    v.finish()?;
    let mut tx = users.db.begin().await?;
    let row = store::by_id(&mut tx, &req.user_id).await?.ok_or_else(|| ServiceError::not_found("user"))?;
    store::suspend(&mut tx, &row.id, req.until_ms, reason).await?;
    let by = ctx.call.user_id.as_deref().unwrap_or_default();
    let detail = format!("until {} by {by}: {reason}", rfc3339_ms(req.until_ms));
    users.audit::<audit::AccountSuspended>(&mut tx, &ctx, row.subject(), &detail).await?;
    tx.commit().await?;
    // Committed first: a login racing the revocations already finds the suspension.
    for family in store::live_families(&mut users.db.reads().await?, &row.id, "").await? {
        revoke_family(&users, &family).await?;
    }
    Ok(SuspendReply { user_id: row.id, username: row.username, until_ms: req.until_ms, reason: reason.to_owned() })
}

/// 403 `account: ["is suspended until …"]` while the account is suspended.
pub fn refuse_suspended(row: &UserRow) -> Result<(), ServiceError> {
    match row.suspended_until_ms {
        Some(until) if until > now_ms() => {
            Err(ServiceError::forbidden("account", &format!("is suspended until {}", rfc3339_ms(until))))
        }
        _ => Ok(()),
    }
}
