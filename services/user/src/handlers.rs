//! One function per `soulchat.user.v1` operation: validate, touch the store, answer.

use std::sync::Arc;

use anyhow::Context as _;
use soulchat_runtime::{Error, RequestContext, Result, WriteTx};
use soulchat_subjects::audit;
use soulchat_subjects::error::Validation;
use soulchat_subjects::proto::common::v1::Empty;
use soulchat_subjects::time::now_ms;
use soulchat_subjects::user::{self, messages::*};
use soulchat_subjects::{CallContext, ServiceError};

use soulchat_subjects::profile::{
    self,
    messages::{GetByUserRequest as ProfileByUser, Profile, UpdateRequest as ProfileUpdate},
};

use crate::Users;
use crate::audit::Subject;
use crate::sagas;
use crate::store::{self, RefreshRow, Taken, UserRow};
use crate::tokens::{Rotated, new_refresh_token};
use crate::validate::{self, BLANK, norm};

pub async fn register(users: Arc<Users>, ctx: RequestContext, req: RegisterRequest) -> Result<AuthReply> {
    let username = req.username.trim().to_owned();
    let email = req.email.trim().to_owned();
    let mut v = Validation::new();
    validate::username(&mut v, &username);
    validate::email(&mut v, &email);
    validate::password(&mut v, &req.password);
    v.finish()?;
    conflict(store::taken(&mut users.db.reads().await?, Some(&norm(&username)), Some(&norm(&email)), "").await?)?;

    let password_hash = users.passwords.hash(req.password).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    // The account and its saga commit together; the account stays pending until its profile exists.
    let mut tx = users.db.begin().await?;
    if let Err(e) = store::insert_user(&mut tx, &id, &username, &email, &password_hash, now).await {
        // Lost a race for the name or email since the check above: say which, if it shows.
        let error = Error::taken_if_unique(e, "username");
        if matches!(error, Error::Refused(_)) {
            drop(tx);
            conflict(
                store::taken(&mut users.db.reads().await?, Some(&norm(&username)), Some(&norm(&email)), "").await?,
            )?;
        }
        return Err(error);
    }
    let data = sagas::Data { username: username.clone(), previous_username: None };
    let saga =
        sagas::begin(&mut tx, sagas::Kind::Register, &id, sagas::STEP_PROFILE, sagas::State::Running, &data).await?;
    tx.commit().await?;

    sagas::create_profile(&users, &ctx.call, &saga, &id, &username).await?;
    let mut tx = users.db.begin().await?;
    let session = start_session(&users, &mut tx, &id).await?;
    users.audit::<audit::Registered>(&mut tx, &ctx, Subject { user_id: &id, username: &username }, "").await?;
    tx.commit().await?;
    if let Err(e) = sagas::welcome(&users, &ctx.call, &saga, &id).await {
        tracing::warn!(%saga, "registration: welcome step left for recovery: {e}");
    }

    let row = UserRow {
        id,
        username,
        email,
        password_hash,
        created_at_ms: now,
        email_verified_at_ms: None,
        phone: None,
        suspended_until_ms: None,
    };
    Ok(AuthReply { user: Some(to_user(&row, None)), session: Some(session) })
}

pub async fn login(users: Arc<Users>, ctx: RequestContext, req: LoginRequest) -> Result<AuthReply> {
    let mut v = Validation::new();
    if req.email.trim().is_empty() {
        v.problem("email", BLANK);
    }
    if req.password.is_empty() {
        v.problem("password", BLANK);
    }
    v.finish()?;
    let row = store::by_email(&mut users.db.reads().await?, &norm(&req.email)).await?;
    // An unknown email verifies against a decoy hash: same answer, same time.
    let matches = users.passwords.verify(req.password, row.as_ref().map(|r| r.password_hash.clone())).await?;
    let row = match row {
        Some(row) if matches => row,
        // A wrong password names the account; an unknown email, only what was tried.
        tried => {
            let (user_id, username) = tried.as_ref().map_or(("", ""), |r| (r.id.as_str(), r.username.as_str()));
            let mut tx = users.db.begin().await?;
            users.audit::<audit::LoginFailed>(&mut tx, &ctx, Subject { user_id, username }, req.email.trim()).await?;
            tx.commit().await?;
            return Err(ServiceError::unauthorized("credentials", "invalid").into());
        }
    };
    // Only the right password learns of a suspension: it names the account.
    crate::suspensions::refuse_suspended(&row)?;
    let mut tx = users.db.begin().await?;
    let session = start_session(&users, &mut tx, &row.id).await?;
    users.audit::<audit::LoginSucceeded>(&mut tx, &ctx, row.subject(), "").await?;
    tx.commit().await?;
    let user = with_profile(&users, &ctx.call, &row).await;
    Ok(AuthReply { user: Some(user), session: Some(session) })
}

pub async fn get_current(users: Arc<Users>, ctx: RequestContext, _req: GetCurrentRequest) -> Result<UserReply> {
    let row = current(&users, &ctx).await?;
    Ok(UserReply { user: Some(with_profile(&users, &ctx.call, &row).await) })
}

pub async fn update(users: Arc<Users>, ctx: RequestContext, req: UpdateRequest) -> Result<UpdateReply> {
    let before = current(&users, &ctx).await?;
    let username = req.username.as_deref().map(str::trim).filter(|u| *u != before.username);
    let email = req.email.as_deref().map(str::trim).filter(|e| *e != before.email);
    let mut v = Validation::new();
    if let Some(username) = username {
        validate::username(&mut v, username);
    }
    if let Some(email) = email {
        validate::email(&mut v, email);
    }
    if let Some(password) = &req.password {
        validate::password(&mut v, password);
    }
    v.finish()?;
    if username.is_some() || email.is_some() {
        let (username_norm, email_norm) = (username.map(norm), email.map(norm));
        let taken =
            store::taken(&mut users.db.reads().await?, username_norm.as_deref(), email_norm.as_deref(), &before.id)
                .await?;
        conflict(taken)?;
    }
    let password_hash = match req.password.clone() {
        Some(password) => Some(users.passwords.hash(password).await?),
        None => None,
    };

    // A rename commits with its saga, then the profile's copy follows before we answer.
    let rename = match username {
        Some(username) => {
            let mut tx = users.db.begin().await?;
            store::update_user(&mut tx, &before.id, Some(username), None, None)
                .await
                .map_err(|e| Error::taken_if_unique(e, "username"))?;
            let data = sagas::Data { username: username.to_owned(), previous_username: Some(before.username.clone()) };
            let saga = sagas::begin(
                &mut tx,
                sagas::Kind::Rename,
                &before.id,
                sagas::STEP_PROFILE,
                sagas::State::Running,
                &data,
            )
            .await?;
            tx.commit().await?;
            Some(saga)
        }
        None => None,
    };
    let profile = if rename.is_some() || req.bio.is_some() || req.image.is_some() {
        let request = ProfileUpdate {
            user_id: before.id.clone(),
            username: username.map(str::to_owned),
            bio: req.bio.clone(),
            image: req.image.clone(),
        };
        Some(sagas::update_profile(&users, &ctx.call, rename.as_deref(), request).await?)
    } else {
        None
    };

    let mut tx = users.db.begin().await?;
    store::update_user(&mut tx, &before.id, None, email, password_hash.as_deref())
        .await
        .map_err(|e| Error::taken_if_unique(e, "email"))?;
    let after = UserRow {
        username: username.unwrap_or(&before.username).to_owned(),
        email: email.unwrap_or(&before.email).to_owned(),
        // A new address is unverified until its own link is followed.
        email_verified_at_ms: if email.is_some() { None } else { before.email_verified_at_ms },
        ..before.clone()
    };
    if username.is_some() || email.is_some() || password_hash.is_some() {
        let event = after.event(now_ms(), username.map(|_| before.username.clone()));
        users.outbox.record::<user::Updated>(&mut tx, &event).await?;
    }
    if let Some(saga) = &rename {
        sagas::advance(&mut tx, saga, sagas::STEP_NONE, sagas::State::Done).await?;
    }
    if password_hash.is_some() {
        users.audit::<audit::PasswordChanged>(&mut tx, &ctx, after.subject(), "").await?;
    }
    tx.commit().await?;

    if password_hash.is_some() {
        // A new password ends every other session; the caller's own family lives on.
        let others = store::live_families(&mut users.db.reads().await?, &after.id, &req.session_family).await?;
        for family in others {
            revoke_family(&users, &family).await?;
        }
    }
    // The identity in a token changed: hand out one that says so (older ones live until expiry).
    let token = if username.is_some() || email.is_some() {
        Some(users.tokens.access(&after.id, &req.session_family)?.token)
    } else {
        None
    };
    let user = match profile {
        Some(profile) => to_user(&after, Some(&profile)),
        None => with_profile(&users, &ctx.call, &after).await,
    };
    Ok(UpdateReply { user: Some(user), token })
}

pub async fn delete(users: Arc<Users>, ctx: RequestContext, _req: DeleteRequest) -> Result<Empty> {
    let row = current(&users, &ctx).await?;
    let families = store::live_families(&mut users.db.reads().await?, &row.id, "").await?;
    let mut tx = users.db.begin().await?;
    store::delete_user(&mut tx, &row.id).await?;
    let event = row.event(now_ms(), None);
    users.outbox.record::<user::Deleted>(&mut tx, &event).await?;
    users.audit::<audit::AccountDeleted>(&mut tx, &ctx, row.subject(), "").await?;
    // The other workers finish this saga from the durable event; the log keeps the record.
    let data = sagas::Data { username: row.username.clone(), previous_username: None };
    sagas::begin(&mut tx, sagas::Kind::Delete, &row.id, sagas::STEP_NONE, sagas::State::Done, &data).await?;
    tx.commit().await?;
    for family in families {
        users.revocations.family(&family).await?;
    }
    Ok(Empty {})
}

pub async fn refresh(users: Arc<Users>, ctx: RequestContext, req: RefreshRequest) -> Result<AuthReply> {
    let presented = req.refresh_token.trim();
    if presented.is_empty() {
        return Err(ServiceError::invalid("refresh_token", BLANK).into());
    }
    let hash = crate::tokens::hash_refresh_token(presented);
    let Some(found) = store::refresh_token(&mut users.db.reads().await?, &hash).await? else {
        return Err(ServiceError::unauthorized("refresh_token", "invalid").into());
    };
    if found.family_revoked_at_ms.is_some() {
        return Err(ServiceError::unauthorized("refresh_token", "revoked").into());
    }
    if found.family_expires_at_ms <= now_ms() {
        return Err(ServiceError::unauthorized("refresh_token", "expired").into());
    }
    let Some(row) = store::by_id(&mut users.db.reads().await?, &found.user_id).await? else {
        return Err(ServiceError::unauthorized("refresh_token", "invalid").into());
    };
    let rotated_at = match found.rotated_at_ms {
        Some(at) => at,
        None => {
            let now = now_ms();
            let next = users.tokens.rotated(presented, &row.id, &found.family_id, now)?;
            let mut tx = users.db.begin().await?;
            if store::rotate(&mut tx, &hash, now).await? {
                store::insert_token(&mut tx, &found.family_id, &next.refresh_hash).await?;
                tx.commit().await?;
                return Ok(refreshed(&users, &ctx, &row, next).await);
            }
            // A parallel refresh of the same token rotated it first (and committed its
            // successor with it): answer as it did, if still in the grace.
            drop(tx);
            let again = store::refresh_token(&mut users.db.reads().await?, &hash).await?;
            again.and_then(|t| t.rotated_at_ms).context("a refresh token lost its rotation")?
        }
    };
    let next = users.tokens.rotated(presented, &row.id, &found.family_id, rotated_at)?;
    if !within_grace(&users, rotated_at, &next.refresh_hash).await? {
        return revoke_on_reuse(&users, &ctx, &row, &found).await;
    }
    Ok(refreshed(&users, &ctx, &row, next).await)
}

/// Whether a token rotated at `rotated_at` may still yield its pair: the grace has not passed
/// and its successor has not been used (a client that moved on does not replay old tokens).
async fn within_grace(users: &Users, rotated_at: i64, successor_hash: &str) -> Result<bool> {
    let grace = users.tokens.refresh_grace.as_millis() as i64;
    if now_ms() - rotated_at >= grace {
        return Ok(false);
    }
    let successor = store::refresh_token(&mut users.db.reads().await?, successor_hash).await?;
    Ok(successor.is_some_and(|s| s.rotated_at_ms.is_none() && s.family_revoked_at_ms.is_none()))
}

async fn refreshed(users: &Users, ctx: &RequestContext, row: &UserRow, next: Rotated) -> AuthReply {
    let user = with_profile(users, &ctx.call, row).await;
    AuthReply {
        user: Some(user),
        session: Some(Session { token: next.access.token, refresh_token: next.refresh_token }),
    }
}

/// A rotated token came back after its grace: it was stolen or leaked. End the whole family.
async fn revoke_on_reuse(users: &Users, ctx: &RequestContext, row: &UserRow, found: &RefreshRow) -> Result<AuthReply> {
    tracing::warn!(family = %found.family_id, user = %found.user_id, "refresh token reused; revoking its family");
    let mut tx = users.db.begin().await?;
    users.audit::<audit::RefreshReused>(&mut tx, ctx, row.subject(), &found.family_id).await?;
    tx.commit().await?;
    revoke_family(users, &found.family_id).await?;
    Err(ServiceError::unauthorized("refresh_token", "revoked").into())
}

pub async fn logout(users: Arc<Users>, ctx: RequestContext, req: LogoutRequest) -> Result<Empty> {
    let user_id = ctx.user_id()?;
    let username = store::username_of(&mut users.db.reads().await?, user_id).await?.unwrap_or_default();
    let mut tx = users.db.begin().await?;
    users.audit::<audit::LoggedOut>(&mut tx, &ctx, Subject { user_id, username: &username }, "").await?;
    tx.commit().await?;
    if !req.jti.is_empty() {
        users.revocations.token(&req.jti, req.expires_at_ms).await?;
    }
    if !req.session_family.is_empty() {
        revoke_family(&users, &req.session_family).await?;
    }
    Ok(Empty {})
}

/// The caller's account, or why there is none.
pub(crate) async fn current(users: &Users, ctx: &RequestContext) -> Result<UserRow> {
    let id = ctx.user_id()?;
    let row = store::by_id(&mut users.db.reads().await?, id).await?;
    row.ok_or_else(|| ServiceError::not_found("user").into())
}

/// Opens a refresh family in `tx` and signs its first access token.
async fn start_session(users: &Users, tx: &mut WriteTx<'_>, user_id: &str) -> Result<Session> {
    let family = uuid::Uuid::now_v7().to_string();
    let (refresh_token, refresh_hash) = new_refresh_token();
    let expires = now_ms() + users.tokens.refresh_ttl.as_millis() as i64;
    store::insert_family(tx, &family, user_id, &refresh_hash, expires).await?;
    let token = users.tokens.access(user_id, &family)?.token;
    Ok(Session { token, refresh_token })
}

/// Revokes a refresh family in the database, then in the bucket the gateways watch.
pub(crate) async fn revoke_family(users: &Users, family: &str) -> Result<()> {
    let mut tx = users.db.begin().await?;
    store::revoke_family(&mut tx, family).await?;
    tx.commit().await?;
    users.revocations.family(family).await?;
    Ok(())
}

fn conflict(taken: Taken) -> Result<(), ServiceError> {
    match (taken.username, taken.email) {
        (false, false) => Ok(()),
        (true, false) => Err(ServiceError::taken("username")),
        (false, true) => Err(ServiceError::taken("email")),
        (true, true) => Err(ServiceError::taken("username").and("email", "has already been taken")),
    }
}

/// The account as clients see it, with bio and image from the profile worker. When that worker
/// does not answer, the account still answers, without them (logged).
pub(crate) async fn with_profile(users: &Users, ctx: &CallContext, row: &UserRow) -> User {
    let request = ProfileByUser { user_id: row.id.clone() };
    match users.caller.call::<profile::GetByUser>(ctx, &request).await {
        Ok(reply) => to_user(row, reply.profile.as_ref()),
        Err(e) => {
            tracing::warn!(user = %row.id, "answering without bio and image: {e}");
            to_user(row, None)
        }
    }
}

fn to_user(row: &UserRow, profile: Option<&Profile>) -> User {
    User {
        id: row.id.clone(),
        username: row.username.clone(),
        email: row.email.clone(),
        bio: profile.and_then(|p| p.bio.clone()),
        image: profile.and_then(|p| p.image.clone()),
        created_at_ms: row.created_at_ms,
        email_verified: row.email_verified_at_ms.is_some(),
        phone: row.phone.clone(),
    }
}
