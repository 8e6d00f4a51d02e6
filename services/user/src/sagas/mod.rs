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

use anyhow::Context as _;
use soulchat_runtime::Result;
use soulchat_subjects::notification::{self, messages::WelcomeRequest};
use soulchat_subjects::profile::{self, messages as pm};
use soulchat_subjects::time::now_ms;
use soulchat_subjects::{CallContext, CallError, ErrorCode, ServiceError};
use soulchat_subjects::{metrics, user};
use tokio_util::sync::CancellationToken;

pub use log::{Data, Kind, STEP_NONE, STEP_PROFILE, STEP_WELCOME, Saga, State, advance, begin};

use crate::Users;
use crate::store;

/// How often recovery looks for idle sagas.
const RECOVERY_POLL: Duration = Duration::from_secs(1);
/// How often the open sagas are counted for the metrics.
const COUNT_OPEN_EVERY: Duration = Duration::from_secs(10);

/// Registration, after the pending account and its saga row committed: creates the profile and
/// activates the account, or removes the account and says why.
pub async fn create_profile(users: &Users, ctx: &CallContext, saga: &str, user_id: &str, username: &str) -> Result<()> {
    let request = pm::CreateRequest { user_id: user_id.to_owned(), username: username.to_owned() };
    let created = users.caller.call::<profile::Create>(ctx, &request).await;
    metrics::saga_step(Kind::Register.as_str(), STEP_PROFILE, created.is_ok());
    match created {
        Ok(_) => activate(users, saga, user_id).await,
        Err(e) => {
            tracing::warn!(%saga, user = %user_id, "registration: profile step failed, removing the account: {e}");
            if let Err(undo) = compensate_registration(users, saga, user_id).await {
                tracing::warn!(%saga, "registration compensation left for recovery: {undo}");
            }
            // The profile worker's own trouble is, to this client, a service that is not there.
            Err(match e {
                CallError::Service(e) if e.code == ErrorCode::Conflict => ServiceError::taken("username"),
                CallError::Service(e) if !e.code.is_server_error() => e,
                _ => ServiceError::unavailable(),
            }
            .into())
        }
    }
}

/// The profile exists: the account becomes usable and is announced, in one transaction.
async fn activate(users: &Users, saga: &str, user_id: &str) -> Result<()> {
    let mut tx = users.db.begin().await?;
    store::activate(&mut tx, user_id).await?;
    if let Some(row) = store::by_id(&mut tx, user_id).await? {
        let event = row.event(row.created_at_ms, None);
        users.outbox.record::<user::Created>(&mut tx, &event).await?;
    }
    advance(&mut tx, saga, STEP_WELCOME, State::Running).await?;
    tx.commit().await?;
    Ok(())
}

/// Registration, last step: the welcome notification. A failure leaves the saga open for
/// [`recover`]; the registration has succeeded either way.
pub async fn welcome(users: &Users, ctx: &CallContext, saga: &str, user_id: &str) -> Result<()> {
    // Read before the call: an `if let` would hold the read connection through it.
    let username = store::username_of(&mut users.db.reads().await?, user_id).await?;
    if let Some(username) = username {
        let request = WelcomeRequest { user_id: user_id.to_owned(), username };
        let welcomed = users.caller.call::<notification::Welcome>(ctx, &request).await;
        metrics::saga_step(Kind::Register.as_str(), STEP_WELCOME, welcomed.is_ok());
        welcomed?;
    }
    finish(users, saga, State::Done).await
}

/// Removes the account, then its profile (which may exist if the create call timed out after
/// the profile worker committed).
async fn compensate_registration(users: &Users, saga: &str, user_id: &str) -> Result<()> {
    let mut tx = users.db.begin().await?;
    store::delete_user(&mut tx, user_id).await?;
    advance(&mut tx, saga, STEP_PROFILE, State::Compensating).await?;
    tx.commit().await?;
    remove_profile(users, saga, user_id).await
}

async fn remove_profile(users: &Users, saga: &str, user_id: &str) -> Result<()> {
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
) -> Result<pm::Profile> {
    let updated = users.caller.call::<profile::Update>(ctx, &request).await;
    if rename.is_some() {
        metrics::saga_step(Kind::Rename.as_str(), STEP_PROFILE, updated.is_ok());
    }
    match updated {
        Ok(reply) => Ok(reply.profile.context("the profile worker answered an update without the profile")?),
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

async fn compensate_rename(users: &Users, saga: &str) -> Result<()> {
    let Some(saga) = log::find(&mut users.db.reads().await?, saga).await? else { return Ok(()) };
    let previous = saga.data.previous_username.clone().unwrap_or_default();
    let mut tx = users.db.begin().await?;
    store::revert_username(&mut tx, &saga.user_id, &saga.data.username, &previous).await?;
    advance(&mut tx, &saga.id, STEP_PROFILE, State::Compensating).await?;
    tx.commit().await?;
    restore_profile_name(users, &saga).await
}

/// The profile may have taken the new name before its answer was lost: give it the old one.
async fn restore_profile_name(users: &Users, saga: &Saga) -> Result<()> {
    let request = pm::UpdateRequest {
        user_id: saga.user_id.clone(),
        username: saga.data.previous_username.clone(),
        ..Default::default()
    };
    match users.caller.call::<profile::Update>(&CallContext::internal(), &request).await {
        Ok(_) => {}
        Err(CallError::Service(e)) if e.code == ErrorCode::NotFound => {} // the account is gone meanwhile
        Err(e) => return Err(e.into()),
    }
    finish(users, &saga.id, State::Compensated).await
}

async fn finish(users: &Users, saga: &str, state: State) -> Result<()> {
    let mut tx = users.db.begin().await?;
    advance(&mut tx, saga, STEP_NONE, state).await?;
    tx.commit().await?;
    Ok(())
}

/// Finishes or compensates every open saga that has been idle longer than `idle`, for ever,
/// until `shutdown`. `idle` must exceed the longest a request takes, so recovery never races a
/// saga that a live request is still driving; each attempt doubles the wait (up to 64 times).
pub fn spawn_recovery(users: Arc<Users>, idle: Duration, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut counted: Option<tokio::time::Instant> = None;
        loop {
            if let Err(e) = recover(&users, idle).await {
                tracing::warn!("saga recovery: {e}");
            }
            if counted.is_none_or(|at| at.elapsed() >= COUNT_OPEN_EVERY) {
                counted = Some(tokio::time::Instant::now());
                if let Err(e) = count_open(&users).await {
                    tracing::warn!("counting open sagas: {e}");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(RECOVERY_POLL) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    })
}

/// Reports the open sagas of each kind and the age of the oldest.
async fn count_open(users: &Users) -> Result<()> {
    let open = log::open(&mut users.db.reads().await?).await?;
    let now = now_ms();
    for kind in Kind::ALL {
        let (count, oldest) =
            open.iter().find(|(k, _, _)| *k == kind).map_or((0, Duration::ZERO), |(_, count, began)| {
                (*count as usize, Duration::from_millis(now.saturating_sub(*began).max(0) as u64))
            });
        metrics::sagas_open(kind.as_str(), count, oldest);
    }
    Ok(())
}

async fn recover(users: &Users, idle: Duration) -> Result<()> {
    let now = now_ms();
    let candidates = log::idle(&mut users.db.reads().await?, now - idle.as_millis() as i64, 100).await?;
    for saga in candidates {
        let backoff = idle.as_millis() as i64 * (1i64 << saga.attempts.clamp(0, 6));
        if saga.updated_at_ms > now - backoff || !claim(users, &saga).await? {
            continue;
        }
        tracing::info!(saga = %saga.id, kind = ?saga.kind, step = %saga.step, state = ?saga.state, "resuming saga");
        if let Err(e) = resume(users, &saga).await {
            tracing::warn!(saga = %saga.id, attempts = saga.attempts + 1, "saga still open: {e}");
        }
    }
    Ok(())
}

/// Takes `saga` for one attempt; `false` when another replica was quicker.
async fn claim(users: &Users, saga: &Saga) -> Result<bool> {
    let mut tx = users.db.begin().await?;
    let claimed = log::claim(&mut tx, saga).await?;
    tx.commit().await?;
    Ok(claimed)
}

/// Whether another worker refused a step for good (as opposed to being down or failing).
fn refused(e: &CallError) -> bool {
    matches!(e, CallError::Service(e) if !e.code.is_server_error())
}

async fn resume(users: &Users, saga: &Saga) -> Result<()> {
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
            let Some(current) = store::username_of(&mut users.db.reads().await?, &saga.user_id).await? else {
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
async fn complete_rename(users: &Users, saga: &Saga, current: &str) -> Result<()> {
    let Some(row) = store::by_id(&mut users.db.reads().await?, &saga.user_id).await? else {
        return finish(users, &saga.id, State::Done).await;
    };
    let mut event = row.event(now_ms(), saga.data.previous_username.clone());
    event.username = current.to_owned();
    let mut tx = users.db.begin().await?;
    users.outbox.record::<user::Updated>(&mut tx, &event).await?;
    advance(&mut tx, &saga.id, STEP_NONE, State::Done).await?;
    tx.commit().await?;
    Ok(())
}
