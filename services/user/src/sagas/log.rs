//! The saga log: one row per saga in the user database, written in the same transaction as the
//! user-side change of each step, so the log never claims more (or less) than happened here.

use serde::{Deserialize, Serialize};
use soulchat_runtime::{Reads, WriteTx};
use soulchat_subjects::time::now_ms;
use sqlx::FromRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// user → profile → welcome notification.
    Register,
    /// username in the user database → the profile's copy.
    Rename,
    /// user removed; the other workers follow `user.deleted`.
    Delete,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Register, Kind::Rename, Kind::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::Rename => "rename",
            Kind::Delete => "delete",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "register" => Kind::Register,
            "rename" => Kind::Rename,
            "delete" => Kind::Delete,
            _ => return None,
        })
    }
}

/// Where a saga stands. `Running` and `Compensating` are open: recovery picks them up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    Compensating,
    Done,
    Compensated,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Compensating => "compensating",
            State::Done => "done",
            State::Compensated => "compensated",
        }
    }

    fn parse(s: &str) -> Option<State> {
        Some(match s {
            "running" => State::Running,
            "compensating" => State::Compensating,
            "done" => State::Done,
            "compensated" => State::Compensated,
            _ => return None,
        })
    }
}

/// The next remote step of an open saga.
pub const STEP_PROFILE: &str = "profile";
pub const STEP_WELCOME: &str = "welcome";
pub const STEP_NONE: &str = "-";

/// What a saga needs to resume after a crash.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Data {
    pub username: String,
    /// A rename's old name, restored by its compensation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_username: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Saga {
    pub id: String,
    pub kind: Kind,
    pub user_id: String,
    pub step: String,
    pub state: State,
    pub data: Data,
    pub attempts: i64,
    pub updated_at_ms: i64,
}

#[derive(FromRow)]
struct SagaRow {
    id: String,
    kind: String,
    user_id: String,
    step: String,
    state: String,
    data: Option<Vec<u8>>,
    attempts: i64,
    updated_at_ms: i64,
}

impl SagaRow {
    fn parse(self) -> Option<Saga> {
        Some(Saga {
            kind: Kind::parse(&self.kind)?,
            state: State::parse(&self.state)?,
            data: self.data.and_then(|d| serde_json::from_slice(&d).ok()).unwrap_or_default(),
            id: self.id,
            user_id: self.user_id,
            step: self.step,
            attempts: self.attempts,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

/// Opens a saga in the transaction of its first user-side change; returns its id.
pub async fn begin(
    tx: &mut WriteTx<'_>,
    kind: Kind,
    user_id: &str,
    step: &str,
    state: State,
    data: &Data,
) -> sqlx::Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO sagas (id, kind, user_id, step, state, data, attempts, created_at_ms, updated_at_ms) \
         VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
    )
    .bind(&id)
    .bind(kind.as_str())
    .bind(user_id)
    .bind(step)
    .bind(state.as_str())
    .bind(serde_json::to_vec(data).unwrap_or_default())
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

pub async fn advance(tx: &mut WriteTx<'_>, id: &str, step: &str, state: State) -> sqlx::Result<()> {
    sqlx::query("UPDATE sagas SET step = ?, state = ?, updated_at_ms = ? WHERE id = ?")
        .bind(step)
        .bind(state.as_str())
        .bind(now_ms())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Open sagas nobody has touched since `idle_since_ms`, oldest first.
pub async fn idle(r: &mut impl Reads, idle_since_ms: i64, limit: i64) -> sqlx::Result<Vec<Saga>> {
    let rows: Vec<SagaRow> = r
        .fetch_all(
            sqlx::query_as(
                "SELECT id, kind, user_id, step, state, data, attempts, updated_at_ms FROM sagas \
                 WHERE state IN ('running', 'compensating') AND updated_at_ms < ? ORDER BY updated_at_ms LIMIT ?",
            )
            .bind(idle_since_ms)
            .bind(limit),
        )
        .await?;
    Ok(rows.into_iter().filter_map(SagaRow::parse).collect())
}

/// Takes an idle saga for one recovery attempt; `false` when another replica was quicker.
pub async fn claim(tx: &mut WriteTx<'_>, saga: &Saga) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE sagas SET updated_at_ms = ?, attempts = attempts + 1 WHERE id = ? AND updated_at_ms = ? AND attempts = ?",
    )
    .bind(now_ms())
    .bind(&saga.id)
    .bind(saga.updated_at_ms)
    .bind(saga.attempts)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn find(r: &mut impl Reads, id: &str) -> sqlx::Result<Option<Saga>> {
    let row: Option<SagaRow> = r
        .fetch_optional(
            sqlx::query_as(
                "SELECT id, kind, user_id, step, state, data, attempts, updated_at_ms FROM sagas WHERE id = ?",
            )
            .bind(id),
        )
        .await?;
    Ok(row.and_then(SagaRow::parse))
}

/// Open sagas per kind: how many, and when the oldest began.
pub async fn open(r: &mut impl Reads) -> sqlx::Result<Vec<(Kind, i64, i64)>> {
    let rows: Vec<(String, i64, i64)> = r
        .fetch_all(sqlx::query_as(
            "SELECT kind, COUNT(*), MIN(created_at_ms) FROM sagas \
             WHERE state IN ('running', 'compensating') GROUP BY kind",
        ))
        .await?;
    Ok(rows.into_iter().filter_map(|(kind, open, oldest)| Some((Kind::parse(&kind)?, open, oldest))).collect())
}
