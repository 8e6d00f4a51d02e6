//! The user database: accounts and refresh-token families. Plain SQL that both SQLite and
//! MySQL/MariaDB run, through sqlx's `Any` driver.
//!
//! Reads take anything that [`Reads`] (a read connection, or a write transaction reading its own
//! writes); writes take the [`WriteTx`] they belong to.

use soulchat_runtime::{Reads, WriteTx};
use soulchat_subjects::time::now_ms;
use soulchat_subjects::user::messages::UserEvent;
use sqlx::FromRow;

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub created_at_ms: i64,
    pub email_verified_at_ms: Option<i64>,
    /// Set only once verified.
    pub phone: Option<String>,
    /// Login is refused until then (an administrator's suspension).
    pub suspended_until_ms: Option<i64>,
}

impl UserRow {
    /// The account as its events describe it.
    pub fn event(&self, at_ms: i64, previous_username: Option<String>) -> UserEvent {
        UserEvent {
            user_id: self.id.clone(),
            username: self.username.clone(),
            email: self.email.clone(),
            at_ms,
            previous_username,
            email_verified: self.email_verified_at_ms.is_some(),
            phone: self.phone.clone(),
        }
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct RefreshRow {
    pub family_id: String,
    pub user_id: String,
    pub rotated_at_ms: Option<i64>,
    pub family_expires_at_ms: i64,
    pub family_revoked_at_ms: Option<i64>,
}

/// Which of a username and an email already belong to someone else.
#[derive(Debug, Default)]
pub struct Taken {
    pub username: bool,
    pub email: bool,
}

const USER: &str = "SELECT id, username, email, password_hash, created_at_ms, email_verified_at_ms, phone, \
                    suspended_until_ms FROM users";

pub async fn by_id(r: &mut impl Reads, id: &str) -> sqlx::Result<Option<UserRow>> {
    r.fetch_optional(sqlx::query_as(sqlx::AssertSqlSafe(format!("{USER} WHERE id = ? AND pending = 0"))).bind(id)).await
}

pub async fn by_email(r: &mut impl Reads, email_norm: &str) -> sqlx::Result<Option<UserRow>> {
    r.fetch_optional(
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{USER} WHERE email_norm = ? AND pending = 0"))).bind(email_norm),
    )
    .await
}

/// Whether `username_norm` or `email_norm` is taken by a user other than `except`.
pub async fn taken(
    r: &mut impl Reads,
    username_norm: Option<&str>,
    email_norm: Option<&str>,
    except: &str,
) -> sqlx::Result<Taken> {
    let rows: Vec<(String, String)> = r
        .fetch_all(
            sqlx::query_as(
                "SELECT username_norm, email_norm FROM users WHERE (username_norm = ? OR email_norm = ?) AND id <> ?",
            )
            .bind(username_norm.unwrap_or(""))
            .bind(email_norm.unwrap_or(""))
            .bind(except),
        )
        .await?;
    Ok(Taken {
        username: username_norm.is_some_and(|u| rows.iter().any(|(ru, _)| ru == u)),
        email: email_norm.is_some_and(|e| rows.iter().any(|(_, re)| re == e)),
    })
}

/// Inserts a pending account: it holds its names but cannot log in until [`activate`].
pub async fn insert_user(
    tx: &mut WriteTx<'_>,
    id: &str,
    username: &str,
    email: &str,
    password_hash: &str,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO users (id, username, username_norm, email, email_norm, password_hash, created_at_ms, updated_at_ms, pending) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
    )
    .bind(id)
    .bind(username)
    .bind(username.to_lowercase())
    .bind(email)
    .bind(email.to_lowercase())
    .bind(password_hash)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn activate(tx: &mut WriteTx<'_>, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET pending = 0 WHERE id = ?").bind(id).execute(&mut **tx).await?;
    Ok(())
}

/// The account's current username, pending or not.
pub async fn username_of(r: &mut impl Reads, id: &str) -> sqlx::Result<Option<String>> {
    r.fetch_optional(sqlx::query_scalar("SELECT username FROM users WHERE id = ?").bind(id)).await
}

/// Puts back `previous` if the username is still `current` (a rename's compensation).
pub async fn revert_username(tx: &mut WriteTx<'_>, id: &str, current: &str, previous: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET username = ?, username_norm = ?, updated_at_ms = ? WHERE id = ? AND username = ?")
        .bind(previous)
        .bind(previous.to_lowercase())
        .bind(now_ms())
        .bind(id)
        .bind(current)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Applies the given changes; `None` leaves a column as it is.
pub async fn update_user(
    tx: &mut WriteTx<'_>,
    id: &str,
    username: Option<&str>,
    email: Option<&str>,
    password_hash: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE users SET \
           username = COALESCE(?, username), username_norm = COALESCE(?, username_norm), \
           email = COALESCE(?, email), email_norm = COALESCE(?, email_norm), \
           email_verified_at_ms = CASE WHEN ? THEN NULL ELSE email_verified_at_ms END, \
           password_hash = COALESCE(?, password_hash), updated_at_ms = ? \
         WHERE id = ?",
    )
    .bind(username)
    .bind(username.map(str::to_lowercase))
    .bind(email)
    .bind(email.map(str::to_lowercase))
    .bind(email.is_some())
    .bind(password_hash)
    .bind(now_ms())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn mark_email_verified(tx: &mut WriteTx<'_>, user_id: &str, email: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE users SET email_verified_at_ms = ? WHERE id = ? AND email_norm = ?")
        .bind(now_ms())
        .bind(user_id)
        .bind(email.to_lowercase())
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_verified_phone(tx: &mut WriteTx<'_>, user_id: &str, phone: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET phone = ?, phone_verified_at_ms = ? WHERE id = ?")
        .bind(phone)
        .bind(now_ms())
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn set_password(tx: &mut WriteTx<'_>, user_id: &str, password_hash: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET password_hash = ?, updated_at_ms = ? WHERE id = ?")
        .bind(password_hash)
        .bind(now_ms())
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn delete_user(tx: &mut WriteTx<'_>, id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM refresh_tokens WHERE family_id IN (SELECT id FROM refresh_families WHERE user_id = ?)")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM refresh_families WHERE user_id = ?").bind(id).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM users WHERE id = ?").bind(id).execute(&mut **tx).await?;
    Ok(())
}

/// Starts a refresh family with its first token.
pub async fn insert_family(
    tx: &mut WriteTx<'_>,
    family: &str,
    user_id: &str,
    token_hash: &str,
    expires_at_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO refresh_families (id, user_id, created_at_ms, expires_at_ms) VALUES (?, ?, ?, ?)")
        .bind(family)
        .bind(user_id)
        .bind(now_ms())
        .bind(expires_at_ms)
        .execute(&mut **tx)
        .await?;
    insert_token(tx, family, token_hash).await
}

pub async fn insert_token(tx: &mut WriteTx<'_>, family: &str, token_hash: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, family_id, issued_at_ms) VALUES (?, ?, ?)")
        .bind(token_hash)
        .bind(family)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn refresh_token(r: &mut impl Reads, token_hash: &str) -> sqlx::Result<Option<RefreshRow>> {
    r.fetch_optional(
        sqlx::query_as(
            "SELECT t.family_id, f.user_id, t.rotated_at_ms, \
                    f.expires_at_ms AS family_expires_at_ms, f.revoked_at_ms AS family_revoked_at_ms \
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
             WHERE t.token_hash = ?",
        )
        .bind(token_hash),
    )
    .await
}

/// Marks a token used at `at_ms`. `false` when it already was (a parallel refresh, or a replay).
pub async fn rotate(tx: &mut WriteTx<'_>, token_hash: &str, at_ms: i64) -> sqlx::Result<bool> {
    let done =
        sqlx::query("UPDATE refresh_tokens SET rotated_at_ms = ? WHERE token_hash = ? AND rotated_at_ms IS NULL")
            .bind(at_ms)
            .bind(token_hash)
            .execute(&mut **tx)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn revoke_family(tx: &mut WriteTx<'_>, family: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE refresh_families SET revoked_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL")
        .bind(now_ms())
        .bind(family)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The user's live families, except `keep`.
pub async fn live_families(r: &mut impl Reads, user_id: &str, keep: &str) -> sqlx::Result<Vec<String>> {
    r.fetch_all(sqlx::query_scalar(
            "SELECT id FROM refresh_families WHERE user_id = ? AND id <> ? AND revoked_at_ms IS NULL AND expires_at_ms > ?",
        )
        .bind(user_id)
        .bind(keep)
        .bind(now_ms()))
    .await
}

/// Suspends the account until `until_ms` (a later suspension replaces an earlier one).
pub async fn suspend(tx: &mut WriteTx<'_>, user_id: &str, until_ms: i64, reason: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET suspended_until_ms = ?, suspension_reason = ?, updated_at_ms = ? WHERE id = ?")
        .bind(until_ms)
        .bind(reason)
        .bind(now_ms())
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
