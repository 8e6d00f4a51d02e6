//! The sagas that span workers, driven from the user worker and logged in its database:
//!
//! - register: the pending account and its saga row commit together; then the profile worker
//!   creates the profile, and the account becomes usable with its `user.created` event in one
//!   transaction (so `created` always precedes any later event of the account); then the
//!   notification worker stores the welcome. A failed profile step removes the account
//!   (compensation); a failed welcome is retried and never fails the registration.
//! - rename: the new username commits with its saga row; the profile's copy follows before the
//!   client is answered, or the old name is restored on both sides.
//! - delete: the account goes with its `user.deleted` event (outbox); each worker removes what
//!   it holds from that event, durably and idempotently, so the log records it as done at once.
//!
//! Every step is idempotent on the remote side, so [`recover`] can repeat whichever step a
//! crash interrupted: open sagas idle for a while are resumed forward, or compensated when the
//! other worker refuses for good.

mod log;

use std::sync::Arc;
use std::time::Duration;

use soulchat_runtime::database::internal;
use soulchat_runtime::now_ms;
use soulchat_subjects::notification::{self, messages::WelcomeRequest};
use soulchat_subjects::profile::{self, messages as pm};
use soulchat_subjects::user;
use soulchat_subjects::{CallContext, CallError, ServiceError};
use tokio_util::sync::CancellationToken;

pub use log::{Data, Kind, STEP_NONE, STEP_PROFILE, STEP_WELCOME, Saga, State};

use crate::Users;
use crate::store::Store;

/// How often recovery looks for idle sagas.
const RECOVERY_POLL: Duration = Duration::from_secs(1);

/// Registration, after the pending account and its saga row committed: creates the profile and
/// activates the account, or removes the account and says why.
pub async fn create_profile(
    users: &Users,
    ctx: &CallContext,
    saga: &str,
    user_id: &str,
    username: &str,
) -> Result<(), ServiceError> {
    let request = pm::CreateRequest { user_id: user_id.to_owned(), username: username.to_owned() };
    match users.caller.call::<profile::Create>(ctx, &request).await {
        Ok(_) => activate(users, saga, user_id).await,
        Err(e) => {
            tracing::warn!(%saga, user = %user_id, "registration: profile step failed, removing the account: {e}");
            if let Err(undo) = compensate_registration(users, saga, user_id).await {
                tracing::warn!(%saga, "registration compensation left for recovery: {undo}");
            }
            // The profile worker's own trouble is, to this client, a service that is not there.
            Err(match e {
                CallError::Service(e) if e.code == 409 => ServiceError::taken("username"),
                CallError::Service(e) if e.code < 500 => e,
                _ => ServiceError::unavailable(),
            })
        }
    }
}

/// The profile exists: the account becomes usable and is announced, in one transaction.
async fn activate(users: &Users, saga: &str, user_id: &str) -> Result<(), ServiceError> {
    let mut tx = users.store.db().begin().await.map_err(internal)?;
    Store::activate(&mut tx, user_id).await.map_err(internal)?;
    if let Some(row) = Store::by_id_in(&mut tx, user_id).await.map_err(internal)? {
        let event = row.event(row.created_at_ms, None);
        users.outbox.record::<user::Created>(&mut tx, &event).await.map_err(internal)?;
    }
    Store::advance_saga(&mut tx, saga, STEP_WELCOME, State::Running).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    users.outbox.wake();
    Ok(())
}

/// Registration, last step: the welcome notification. A failure leaves the saga open for
/// [`recover`]; the registration has succeeded either way.
pub async fn welcome(users: &Users, ctx: &CallContext, saga: &str, user_id: &str) -> Result<(), ServiceError> {
    if let Some(username) = users.store.username_of(user_id).await.map_err(internal)? {
        let request = WelcomeRequest { user_id: user_id.to_owned(), username };
        users.caller.call::<notification::Welcome>(ctx, &request).await?;
    }
    finish(users, saga, State::Done).await
}

/// Removes the account, then its profile (which may exist if the create call timed out after
/// the profile worker committed).
async fn compensate_registration(users: &Users, saga: &str, user_id: &str) -> Result<(), ServiceError> {
    let mut tx = users.store.db().begin().await.map_err(internal)?;
    Store::delete_user(&mut tx, user_id).await.map_err(internal)?;
    Store::advance_saga(&mut tx, saga, STEP_PROFILE, State::Compensating).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    remove_profile(users, saga, user_id).await
}

async fn remove_profile(users: &Users, saga: &str, user_id: &str) -> Result<(), ServiceError> {
    let request = pm::DeleteRequest { user_id: user_id.to_owned() };
    users.caller.call::<profile::Delete>(&CallContext::internal(), &request).await?;
    finish(users, saga, State::Compensated).await
}

/// Rename, second step: the profile's copy of the name (and any bio or image change riding
/// along). On failure the old name is restored on both sides and the caller learns why.
pub async fn update_profile(
    users: &Users,
    ctx: &CallContext,
    rename: Option<&str>,
    request: pm::UpdateRequest,
) -> Result<pm::Profile, ServiceError> {
    match users.caller.call::<profile::Update>(ctx, &request).await {
        Ok(reply) => reply.profile.ok_or_else(ServiceError::internal),
        Err(e) => {
            if let Some(saga) = rename {
                tracing::warn!(%saga, user = %request.user_id, "rename: profile step failed, restoring the old name: {e}");
                if let Err(undo) = compensate_rename(users, saga).await {
                    tracing::warn!(%saga, "rename compensation left for recovery: {undo}");
                }
            }
            Err(e.into())
        }
    }
}

async fn compensate_rename(users: &Users, saga: &str) -> Result<(), ServiceError> {
    let Some(saga) = users.store.saga(saga).await.map_err(internal)? else { return Ok(()) };
    let previous = saga.data.previous_username.clone().unwrap_or_default();
    let mut tx = users.store.db().begin().await.map_err(internal)?;
    Store::revert_username(&mut tx, &saga.user_id, &saga.data.username, &previous).await.map_err(internal)?;
    Store::advance_saga(&mut tx, &saga.id, STEP_PROFILE, State::Compensating).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    restore_profile_name(users, &saga).await
}

/// The profile may have taken the new name before its answer was lost: give it the old one.
async fn restore_profile_name(users: &Users, saga: &Saga) -> Result<(), ServiceError> {
    let request = pm::UpdateRequest {
        user_id: saga.user_id.clone(),
        username: saga.data.previous_username.clone(),
        ..Default::default()
    };
    match users.caller.call::<profile::Update>(&CallContext::internal(), &request).await {
        Ok(_) => {}
        Err(CallError::Service(e)) if e.code == 404 => {} // the account is gone meanwhile
        Err(e) => return Err(e.into()),
    }
    finish(users, &saga.id, State::Compensated).await
}

async fn finish(users: &Users, saga: &str, state: State) -> Result<(), ServiceError> {
    let mut tx = users.store.db().begin().await.map_err(internal)?;
    Store::advance_saga(&mut tx, saga, STEP_NONE, state).await.map_err(internal)?;
    tx.commit().await.map_err(internal)
}

/// Finishes or compensates every open saga that has been idle longer than `idle`, for ever,
/// until `shutdown`. `idle` must exceed the longest a request takes, so recovery never races a
/// saga that a live request is still driving; each attempt doubles the wait (up to 64 times).
pub fn spawn_recovery(users: Arc<Users>, idle: Duration, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = recover(&users, idle).await {
                tracing::warn!("saga recovery: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(RECOVERY_POLL) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    })
}

async fn recover(users: &Users, idle: Duration) -> Result<(), ServiceError> {
    let now = now_ms();
    let candidates = users.store.idle_sagas(now - idle.as_millis() as i64, 100).await.map_err(internal)?;
    for saga in candidates {
        let backoff = idle.as_millis() as i64 * (1i64 << saga.attempts.clamp(0, 6));
        if saga.updated_at_ms > now - backoff || !users.store.claim_saga(&saga).await.map_err(internal)? {
            continue;
        }
        tracing::info!(saga = %saga.id, kind = ?saga.kind, step = %saga.step, state = ?saga.state, "resuming saga");
        if let Err(e) = resume(users, &saga).await {
            tracing::warn!(saga = %saga.id, attempts = saga.attempts + 1, "saga still open: {e}");
        }
    }
    Ok(())
}

/// Whether another worker refused a step for good (as opposed to being down or failing).
fn refused(e: &CallError) -> bool {
    matches!(e, CallError::Service(e) if e.code < 500)
}

async fn resume(users: &Users, saga: &Saga) -> Result<(), ServiceError> {
    let ctx = CallContext::internal();
    match (saga.kind, saga.state, saga.step.as_str()) {
        (Kind::Register, State::Running, STEP_PROFILE) => {
            let request = pm::CreateRequest { user_id: saga.user_id.clone(), username: saga.data.username.clone() };
            match users.caller.call::<profile::Create>(&ctx, &request).await {
                Ok(_) => {
                    activate(users, &saga.id, &saga.user_id).await?;
                    welcome(users, &ctx, &saga.id, &saga.user_id).await
                }
                Err(e) if refused(&e) => compensate_registration(users, &saga.id, &saga.user_id).await,
                Err(e) => Err(e.into()),
            }
        }
        (Kind::Register, State::Running, _) => welcome(users, &ctx, &saga.id, &saga.user_id).await,
        (Kind::Register, State::Compensating, _) => remove_profile(users, &saga.id, &saga.user_id).await,
        (Kind::Rename, State::Running, _) => {
            let Some(current) = users.store.username_of(&saga.user_id).await.map_err(internal)? else {
                return finish(users, &saga.id, State::Done).await;
            };
            let request = pm::UpdateRequest {
                user_id: saga.user_id.clone(),
                username: Some(current.clone()),
                ..Default::default()
            };
            match users.caller.call::<profile::Update>(&ctx, &request).await {
                Ok(_) => complete_rename(users, saga, &current).await,
                Err(e) if refused(&e) => compensate_rename(users, &saga.id).await,
                Err(e) => Err(e.into()),
            }
        }
        (Kind::Rename, State::Compensating, _) => restore_profile_name(users, saga).await,
        _ => finish(users, &saga.id, State::Done).await,
    }
}

/// A recovered rename: announce it as the update handler would have.
async fn complete_rename(users: &Users, saga: &Saga, current: &str) -> Result<(), ServiceError> {
    let Some(row) = users.store.by_id(&saga.user_id).await.map_err(internal)? else {
        return finish(users, &saga.id, State::Done).await;
    };
    let mut event = row.event(now_ms(), saga.data.previous_username.clone());
    event.username = current.to_owned();
    let mut tx = users.store.db().begin().await.map_err(internal)?;
    users.outbox.record::<user::Updated>(&mut tx, &event).await.map_err(internal)?;
    Store::advance_saga(&mut tx, &saga.id, STEP_NONE, State::Done).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    users.outbox.wake();
    Ok(())
}
