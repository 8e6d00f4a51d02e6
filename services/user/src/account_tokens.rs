//! Single-use account tokens: email verification links, password-reset links and SMS codes.
//! Only a hash is stored; a token is spent by the statement that checks it, so two uses of one
//! token cannot both succeed.

use sha2::{Digest, Sha256};
use soulchat_runtime::{Reads, WriteTx};
use soulchat_subjects::time::now_ms;
use sqlx::FromRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    VerifyPhone,
    ResetPassword,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::VerifyPhone => "verify_phone",
            Purpose::ResetPassword => "reset_password",
        }
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub token_hash: String,
    pub user_id: String,
    pub target: String,
}

pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Stores a new token, ending the user's earlier ones of the same purpose.
pub async fn issue(
    tx: &mut WriteTx<'_>,
    user_id: &str,
    purpose: Purpose,
    token_hash: &str,
    target: &str,
    expires_at_ms: i64,
) -> sqlx::Result<()> {
    let now = now_ms();
    sqlx::query("UPDATE account_tokens SET used_at_ms = ? WHERE user_id = ? AND purpose = ? AND used_at_ms IS NULL")
        .bind(now)
        .bind(user_id)
        .bind(purpose.as_str())
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO account_tokens (token_hash, user_id, purpose, target, expires_at_ms, created_at_ms) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(target)
    .bind(expires_at_ms)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Spends a live token: `Some` only for the one caller whose statement marked it used.
pub async fn spend(tx: &mut WriteTx<'_>, token_hash: &str, purpose: Purpose) -> sqlx::Result<Option<TokenRow>> {
    let row: Option<TokenRow> = tx
        .fetch_optional(
            sqlx::query_as(
                "SELECT token_hash, user_id, target FROM account_tokens \
                 WHERE token_hash = ? AND purpose = ? AND used_at_ms IS NULL AND expires_at_ms > ?",
            )
            .bind(token_hash)
            .bind(purpose.as_str())
            .bind(now_ms()),
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let spent = sqlx::query("UPDATE account_tokens SET used_at_ms = ? WHERE token_hash = ? AND used_at_ms IS NULL")
        .bind(now_ms())
        .bind(token_hash)
        .execute(&mut **tx)
        .await?;
    Ok((spent.rows_affected() == 1).then_some(row))
}

/// The user's live token of `purpose`, for counting wrong codes against it.
pub async fn live(r: &mut impl Reads, user_id: &str, purpose: Purpose) -> sqlx::Result<Option<TokenRow>> {
    r.fetch_optional(
        sqlx::query_as(
            "SELECT token_hash, user_id, target FROM account_tokens \
             WHERE user_id = ? AND purpose = ? AND used_at_ms IS NULL AND expires_at_ms > ?",
        )
        .bind(user_id)
        .bind(purpose.as_str())
        .bind(now_ms()),
    )
    .await
}

/// Counts a wrong code; the token dies at `max`.
pub async fn wrong_code(tx: &mut WriteTx<'_>, token_hash: &str, max: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE account_tokens SET attempts = attempts + 1, \
         used_at_ms = CASE WHEN attempts + 1 >= ? THEN ? ELSE used_at_ms END WHERE token_hash = ?",
    )
    .bind(max)
    .bind(now_ms())
    .bind(token_hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
