//! Contact points and password reset: an email is verified by a single-use link sent to it, a
//! phone number by a 6-digit code sent to it by SMS, and a forgotten password is replaced
//! through a single-use, short-lived link that ends every session. The user worker owns these
//! flows; the notification worker only sends (queued, with retries).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use soulchat_runtime::{RequestContext, Result, WriteTx};
use soulchat_subjects::audit;
use soulchat_subjects::error::Validation;
use soulchat_subjects::notification::{
    self,
    messages::{SendEmailRequest, SendSmsRequest},
};
use soulchat_subjects::proto::common::v1::Empty;
use soulchat_subjects::time::now_ms;
use soulchat_subjects::user::{self, messages::*};
use soulchat_subjects::{CallContext, ServiceError};

use crate::Users;
use crate::account_tokens::{self, Purpose, hash};
use crate::audit::Subject;
use crate::handlers::{current, revoke_family, with_profile};
use crate::store::{self, UserRow};
use crate::validate::{self, BLANK, norm};

const EMAIL_LINK_TTL: Duration = Duration::from_secs(24 * 3600);
const RESET_LINK_TTL: Duration = Duration::from_secs(30 * 60);
const PHONE_CODE_TTL: Duration = Duration::from_secs(10 * 60);
/// Wrong codes before a phone code dies.
const PHONE_CODE_ATTEMPTS: i64 = 5;

fn secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn expires(ttl: Duration) -> i64 {
    now_ms() + ttl.as_millis() as i64
}

pub async fn request_email_verification(
    users: Arc<Users>,
    ctx: RequestContext,
    _req: RequestEmailVerificationRequest,
) -> Result<Empty> {
    let row = current(&users, &ctx).await?;
    if row.email_verified_at_ms.is_some() {
        return Err(ServiceError::invalid("email", "is already verified").into());
    }
    let token = secret();
    let mut tx = users.db.begin().await?;
    account_tokens::issue(
        &mut tx,
        &row.id,
        Purpose::VerifyEmail,
        &hash(&token),
        &norm(&row.email),
        expires(EMAIL_LINK_TTL),
    )
    .await?;
    tx.commit().await?;
    let link = format!("{}/api/user/email/verify?token={token}", users.public_url);
    let text = format!(
        "Hi {},\n\nplease confirm that {} is your email address by opening this link:\n\n{link}\n\n\
         The link works once, for 24 hours. If you did not ask for it, ignore this email.\n",
        row.username, row.email
    );
    let html = format!(
        "<p>Hi {},</p><p>please confirm that {} is your email address:</p>\
         <p><a href=\"{link}\">Verify my email</a></p><p>The link works once, for 24 hours.</p>",
        escape(&row.username),
        escape(&row.email)
    );
    send_email(&users, &ctx.call, &row.id, &row.email, "Verify your email for SoulChat", text, html).await?;
    Ok(Empty {})
}

pub async fn verify_email(users: Arc<Users>, ctx: RequestContext, req: VerifyEmailRequest) -> Result<UserReply> {
    let invalid = || ServiceError::invalid("token", "is invalid or expired");
    if req.token.trim().is_empty() {
        return Err(ServiceError::invalid("token", BLANK).into());
    }
    let mut tx = users.db.begin().await?;
    let token = account_tokens::spend(&mut tx, &hash(req.token.trim()), Purpose::VerifyEmail).await?;
    let token = token.ok_or_else(invalid)?;
    // A link for an address the account no longer has verifies nothing.
    if !store::mark_email_verified(&mut tx, &token.user_id, &token.target).await? {
        return Err(invalid().into());
    }
    let row = announce(&users, &mut tx, &token.user_id).await?.ok_or_else(invalid)?;
    users.audit::<audit::EmailVerified>(&mut tx, &ctx, row.subject(), &token.target).await?;
    tx.commit().await?;
    Ok(UserReply { user: Some(with_profile(&users, &ctx.call, &row).await) })
}

pub async fn set_phone(users: Arc<Users>, ctx: RequestContext, req: SetPhoneRequest) -> Result<Empty> {
    let row = current(&users, &ctx).await?;
    let phone = req.phone.trim().to_owned();
    let mut v = Validation::new();
    validate::phone(&mut v, &phone);
    v.finish()?;
    let code = format!("{:06}", rand::random::<u32>() % 1_000_000);
    let mut tx = users.db.begin().await?;
    account_tokens::issue(
        &mut tx,
        &row.id,
        Purpose::VerifyPhone,
        &hash(&format!("{}:{code}", row.id)),
        &phone,
        expires(PHONE_CODE_TTL),
    )
    .await?;
    tx.commit().await?;
    let request = SendSmsRequest {
        to: phone,
        text: format!("Your SoulChat code is {code}. It expires in 10 minutes."),
        user_id: Some(row.id.clone()),
    };
    let reply = users.caller.call::<notification::SendSms>(&ctx.call, &request).await?;
    if reply.delivery_id.is_empty() {
        return Err(ServiceError::not_configured("sms").into());
    }
    Ok(Empty {})
}

pub async fn verify_phone(users: Arc<Users>, ctx: RequestContext, req: VerifyPhoneRequest) -> Result<UserReply> {
    let row = current(&users, &ctx).await?;
    let wrong = || ServiceError::invalid("code", "is invalid or expired");
    let mut tx = users.db.begin().await?;
    let live = account_tokens::live(&mut tx, &row.id, Purpose::VerifyPhone).await?.ok_or_else(wrong)?;
    let code = hash(&format!("{}:{}", row.id, req.code.trim()));
    let Some(token) = account_tokens::spend(&mut tx, &code, Purpose::VerifyPhone).await? else {
        account_tokens::wrong_code(&mut tx, &live.token_hash, PHONE_CODE_ATTEMPTS).await?;
        tx.commit().await?;
        return Err(wrong().into());
    };
    store::set_verified_phone(&mut tx, &row.id, &token.target).await?;
    let row = announce(&users, &mut tx, &row.id).await?.context("the account vanished inside its transaction")?;
    users.audit::<audit::PhoneVerified>(&mut tx, &ctx, row.subject(), &token.target).await?;
    tx.commit().await?;
    Ok(UserReply { user: Some(with_profile(&users, &ctx.call, &row).await) })
}

/// Answers alike whether the email belongs to an account: nobody learns who has one.
pub async fn request_password_reset(
    users: Arc<Users>,
    ctx: RequestContext,
    req: RequestPasswordResetRequest,
) -> Result<Empty> {
    let mut v = Validation::new();
    validate::email(&mut v, req.email.trim());
    v.finish()?;
    let Some(row) = store::by_email(&mut users.db.reads().await?, &norm(&req.email)).await? else {
        return Ok(Empty {});
    };
    let token = secret();
    let mut tx = users.db.begin().await?;
    account_tokens::issue(
        &mut tx,
        &row.id,
        Purpose::ResetPassword,
        &hash(&token),
        &norm(&row.email),
        expires(RESET_LINK_TTL),
    )
    .await?;
    tx.commit().await?;
    let link = format!("{}/reset-password?token={token}", users.public_url);
    let text = format!(
        "Hi {},\n\nsomeone asked to reset your SoulChat password. To choose a new one, open:\n\n{link}\n\n\
         (or POST {{\"token\": \"{token}\", \"password\": …}} to /api/users/password/reset).\n\
         The link works once, for 30 minutes, and signs you out everywhere. If it was not you, ignore this email.\n",
        row.username
    );
    let html = format!(
        "<p>Hi {},</p><p>someone asked to reset your SoulChat password.</p>\
         <p><a href=\"{link}\">Choose a new password</a></p>\
         <p>The link works once, for 30 minutes, and signs you out everywhere. If it was not you, ignore this email.</p>",
        escape(&row.username)
    );
    send_email(&users, &ctx.call, &row.id, &row.email, "Reset your SoulChat password", text, html).await?;
    Ok(Empty {})
}

pub async fn reset_password(users: Arc<Users>, ctx: RequestContext, req: ResetPasswordRequest) -> Result<Empty> {
    let mut v = Validation::new();
    if req.token.trim().is_empty() {
        v.problem("token", BLANK);
    }
    validate::password(&mut v, &req.password);
    v.finish()?;
    let password_hash = users.passwords.hash(req.password).await?;
    let mut tx = users.db.begin().await?;
    let token = account_tokens::spend(&mut tx, &hash(req.token.trim()), Purpose::ResetPassword).await?;
    let token = token.ok_or_else(|| ServiceError::invalid("token", "is invalid or expired"))?;
    store::set_password(&mut tx, &token.user_id, &password_hash).await?;
    let username = store::username_of(&mut tx, &token.user_id).await?.unwrap_or_default();
    users
        .audit::<audit::PasswordReset>(&mut tx, &ctx, Subject { user_id: &token.user_id, username: &username }, "")
        .await?;
    tx.commit().await?;
    let families = store::live_families(&mut users.db.reads().await?, &token.user_id, "").await?;
    for family in families {
        revoke_family(&users, &family).await?;
    }
    Ok(Empty {})
}

/// Verified contact points only: an unverified address is never written to.
pub async fn contact(users: Arc<Users>, _ctx: RequestContext, req: ContactRequest) -> Result<ContactReply> {
    let row = store::by_id(&mut users.db.reads().await?, &req.user_id).await?;
    let row = row.ok_or_else(|| ServiceError::not_found("user"))?;
    Ok(ContactReply {
        email: row.email_verified_at_ms.map(|_| row.email.clone()),
        phone: row.phone.clone(),
        username: row.username,
    })
}

/// A verified contact point is news for the notification worker: `user.updated` in the same
/// transaction. Returns the account as it now stands.
async fn announce(users: &Users, tx: &mut WriteTx<'_>, user_id: &str) -> Result<Option<UserRow>> {
    let Some(row) = store::by_id(tx, user_id).await? else { return Ok(None) };
    users.outbox.record::<user::Updated>(tx, &row.event(now_ms(), None)).await?;
    Ok(Some(row))
}

async fn send_email(
    users: &Users,
    ctx: &CallContext,
    user_id: &str,
    to: &str,
    subject: &str,
    text: String,
    html: String,
) -> Result<()> {
    let request = SendEmailRequest {
        to: to.to_owned(),
        subject: subject.to_owned(),
        text,
        html,
        user_id: Some(user_id.to_owned()),
    };
    let reply = users.caller.call::<notification::SendEmail>(ctx, &request).await?;
    if reply.delivery_id.is_empty() {
        return Err(ServiceError::not_configured("email").into());
    }
    Ok(())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
