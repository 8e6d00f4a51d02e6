//! One function per `soulchat.user.v1` operation: validate, touch the store, answer.

use std::sync::Arc;

use soulchat_runtime::database::internal;
use soulchat_runtime::{Database, RequestContext, now_ms};
use soulchat_subjects::error::Validation;
use soulchat_subjects::proto::common::v1::Empty;
use soulchat_subjects::user::{self, messages::*};
use soulchat_subjects::{CallContext, ServiceError};

use soulchat_subjects::profile::{
    self,
    messages::{GetByUserRequest as ProfileByUser, Profile, UpdateRequest as ProfileUpdate},
};

use crate::Users;
use crate::sagas;
use crate::store::{Store, Taken, UserRow};
use crate::tokens::new_refresh_token;
use crate::validate::{self, BLANK, norm};

pub async fn register(users: Arc<Users>, ctx: RequestContext, req: RegisterRequest) -> Result<AuthReply, ServiceError> {
    let username = req.username.trim().to_owned();
    let email = req.email.trim().to_owned();
    let mut v = Validation::new();
    validate::username(&mut v, &username);
    validate::email(&mut v, &email);
    validate::password(&mut v, &req.password);
    v.finish()?;
    conflict(users.store.taken(Some(&norm(&username)), Some(&norm(&email)), "").await.map_err(internal)?)?;

    let password_hash = users.passwords.hash(req.password).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    // The account and its saga commit together; the account stays pending until its profile exists.
    let mut tx = users.store.db().begin().await.map_err(internal)?;
    if let Err(e) = Store::insert_user(&mut tx, &id, &username, &email, &password_hash, now).await {
        // Lost a race for the name or email since the check above.
        return Err(if Database::is_unique_violation(&e) {
            let taken = users.store.taken(Some(&norm(&username)), Some(&norm(&email)), "").await.map_err(internal)?;
            conflict(taken).err().unwrap_or_else(|| ServiceError::taken("username"))
        } else {
            internal(e)
        });
    }
    let data = sagas::Data { username: username.clone(), previous_username: None };
    let saga =
        Store::begin_saga(&mut tx, sagas::Kind::Register, &id, sagas::STEP_PROFILE, sagas::State::Running, &data)
            .await
            .map_err(internal)?;
    tx.commit().await.map_err(internal)?;

    sagas::create_profile(&users, &ctx.call, &saga, &id, &username).await?;
    let mut tx = users.store.db().begin().await.map_err(internal)?;
    let session = start_session(&users, &mut tx, &id).await?;
    tx.commit().await.map_err(internal)?;
    if let Err(e) = sagas::welcome(&users, &ctx.call, &saga, &id).await {
        tracing::warn!(%saga, "registration: welcome step left for recovery: {e}");
    }

    let row =
        UserRow { id, username, email, password_hash, created_at_ms: now, email_verified_at_ms: None, phone: None };
    Ok(AuthReply { user: Some(to_user(&row, None)), session: Some(session) })
}

pub async fn login(users: Arc<Users>, ctx: RequestContext, req: LoginRequest) -> Result<AuthReply, ServiceError> {
    let mut v = Validation::new();
    if req.email.trim().is_empty() {
        v.problem("email", BLANK);
    }
    if req.password.is_empty() {
        v.problem("password", BLANK);
    }
    v.finish()?;
    let row = users.store.by_email(&norm(&req.email)).await.map_err(internal)?;
    // An unknown email verifies against a decoy hash: same answer, same time.
    let matches = users.passwords.verify(req.password, row.as_ref().map(|r| r.password_hash.clone())).await?;
    let Some(row) = row.filter(|_| matches) else {
        return Err(ServiceError::unauthorized("credentials", "invalid"));
    };
    let mut tx = users.store.db().begin().await.map_err(internal)?;
    let session = start_session(&users, &mut tx, &row.id).await?;
    tx.commit().await.map_err(internal)?;
    let user = with_profile(&users, &ctx.call, &row).await;
    Ok(AuthReply { user: Some(user), session: Some(session) })
}

pub async fn get_current(
    users: Arc<Users>,
    ctx: RequestContext,
    _req: GetCurrentRequest,
) -> Result<UserReply, ServiceError> {
    let row = current(&users, &ctx).await?;
    Ok(UserReply { user: Some(with_profile(&users, &ctx.call, &row).await) })
}

pub async fn update(users: Arc<Users>, ctx: RequestContext, req: UpdateRequest) -> Result<UpdateReply, ServiceError> {
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
        let taken = users
            .store
            .taken(username.map(norm).as_deref(), email.map(norm).as_deref(), &before.id)
            .await
            .map_err(internal)?;
        conflict(taken)?;
    }
    let password_hash = match req.password.clone() {
        Some(password) => Some(users.passwords.hash(password).await?),
        None => None,
    };

    // A rename commits with its saga, then the profile's copy follows before we answer.
    let rename = match username {
        Some(username) => {
            let mut tx = users.store.db().begin().await.map_err(internal)?;
            Store::update_user(&mut tx, &before.id, Some(username), None, None).await.map_err(|e| {
                if Database::is_unique_violation(&e) { ServiceError::taken("username") } else { internal(e) }
            })?;
            let data = sagas::Data { username: username.to_owned(), previous_username: Some(before.username.clone()) };
            let saga = Store::begin_saga(
                &mut tx,
                sagas::Kind::Rename,
                &before.id,
                sagas::STEP_PROFILE,
                sagas::State::Running,
                &data,
            )
            .await
            .map_err(internal)?;
            tx.commit().await.map_err(internal)?;
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

    let mut tx = users.store.db().begin().await.map_err(internal)?;
    Store::update_user(&mut tx, &before.id, None, email, password_hash.as_deref())
        .await
        .map_err(|e| if Database::is_unique_violation(&e) { ServiceError::taken("email") } else { internal(e) })?;
    let after = UserRow {
        username: username.unwrap_or(&before.username).to_owned(),
        email: email.unwrap_or(&before.email).to_owned(),
        // A new address is unverified until its own link is followed.
        email_verified_at_ms: if email.is_some() { None } else { before.email_verified_at_ms },
        ..before.clone()
    };
    if username.is_some() || email.is_some() || password_hash.is_some() {
        let event = after.event(now_ms(), username.map(|_| before.username.clone()));
        users.outbox.record::<user::Updated>(&mut tx, &event).await.map_err(internal)?;
    }
    if let Some(saga) = &rename {
        Store::advance_saga(&mut tx, saga, sagas::STEP_NONE, sagas::State::Done).await.map_err(internal)?;
    }
    tx.commit().await.map_err(internal)?;
    users.outbox.wake();

    if password_hash.is_some() {
        // A new password ends every other session; the caller's own family lives on.
        for family in users.store.live_families(&after.id, &req.session_family).await.map_err(internal)? {
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

pub async fn delete(users: Arc<Users>, ctx: RequestContext, _req: DeleteRequest) -> Result<Empty, ServiceError> {
    let row = current(&users, &ctx).await?;
    let families = users.store.live_families(&row.id, "").await.map_err(internal)?;
    let mut tx = users.store.db().begin().await.map_err(internal)?;
    Store::delete_user(&mut tx, &row.id).await.map_err(internal)?;
    let event = row.event(now_ms(), None);
    users.outbox.record::<user::Deleted>(&mut tx, &event).await.map_err(internal)?;
    // The other workers finish this saga from the durable event; the log keeps the record.
    let data = sagas::Data { username: row.username.clone(), previous_username: None };
    Store::begin_saga(&mut tx, sagas::Kind::Delete, &row.id, sagas::STEP_NONE, sagas::State::Done, &data)
        .await
        .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    users.outbox.wake();
    for family in families {
        users.revocations.family(&family).await?;
    }
    Ok(Empty {})
}

pub async fn refresh(users: Arc<Users>, ctx: RequestContext, req: RefreshRequest) -> Result<AuthReply, ServiceError> {
    if req.refresh_token.trim().is_empty() {
        return Err(ServiceError::invalid("refresh_token", BLANK));
    }
    let hash = crate::tokens::hash_refresh_token(req.refresh_token.trim());
    let Some(found) = users.store.refresh_token(&hash).await.map_err(internal)? else {
        return Err(ServiceError::unauthorized("refresh_token", "invalid"));
    };
    if found.family_revoked_at_ms.is_some() {
        return Err(ServiceError::unauthorized("refresh_token", "revoked"));
    }
    if found.family_expires_at_ms <= now_ms() {
        return Err(ServiceError::unauthorized("refresh_token", "expired"));
    }
    let revoked_on_reuse = || async {
        // A rotated token came back: it was stolen or leaked. End the whole family.
        tracing::warn!(family = %found.family_id, user = %found.user_id, "refresh token reused; revoking its family");
        revoke_family(&users, &found.family_id).await?;
        Err(ServiceError::unauthorized("refresh_token", "revoked"))
    };
    if found.rotated_at_ms.is_some() {
        return revoked_on_reuse().await;
    }
    let Some(row) = users.store.by_id(&found.user_id).await.map_err(internal)? else {
        return Err(ServiceError::unauthorized("refresh_token", "invalid"));
    };
    let (next, next_hash) = new_refresh_token();
    let mut tx = users.store.db().begin().await.map_err(internal)?;
    if !Store::rotate(&mut tx, &hash).await.map_err(internal)? {
        drop(tx);
        return revoked_on_reuse().await;
    }
    Store::insert_token(&mut tx, &found.family_id, &next_hash).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    let token = users.tokens.access(&row.id, &found.family_id)?.token;
    let user = with_profile(&users, &ctx.call, &row).await;
    Ok(AuthReply { user: Some(user), session: Some(Session { token, refresh_token: next }) })
}

pub async fn logout(users: Arc<Users>, ctx: RequestContext, req: LogoutRequest) -> Result<Empty, ServiceError> {
    ctx.user_id()?;
    if !req.jti.is_empty() {
        users.revocations.token(&req.jti, req.expires_at_ms).await?;
    }
    if !req.session_family.is_empty() {
        revoke_family(&users, &req.session_family).await?;
    }
    Ok(Empty {})
}

/// The caller's account, or why there is none.
pub(crate) async fn current(users: &Users, ctx: &RequestContext) -> Result<UserRow, ServiceError> {
    let id = ctx.user_id()?;
    users.store.by_id(id).await.map_err(internal)?.ok_or_else(|| ServiceError::not_found("user"))
}

/// Opens a refresh family in `tx` and signs its first access token.
async fn start_session(users: &Users, tx: &mut sqlx::AnyConnection, user_id: &str) -> Result<Session, ServiceError> {
    let family = uuid::Uuid::now_v7().to_string();
    let (refresh_token, refresh_hash) = new_refresh_token();
    let expires = now_ms() + users.tokens.refresh_ttl.as_millis() as i64;
    Store::insert_family(tx, &family, user_id, &refresh_hash, expires).await.map_err(internal)?;
    let token = users.tokens.access(user_id, &family)?.token;
    Ok(Session { token, refresh_token })
}

pub(crate) async fn revoke_family(users: &Users, family: &str) -> Result<(), ServiceError> {
    users.store.revoke_family(family).await.map_err(internal)?;
    users.revocations.family(family).await
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
