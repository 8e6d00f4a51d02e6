//! Single-use account tokens: email verification links, password-reset links and SMS codes.
//! Only a hash is stored; a token is spent by the statement that checks it, so two uses of one
//! token cannot both succeed.

use sha2::{Digest, Sha256};
use soulchat_runtime::now_ms;
use sqlx::{AnyConnection, FromRow};

use crate::store::Store;

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

impl Store {
    /// Stores a new token, ending the user's earlier ones of the same purpose.
    pub async fn issue_token(
        conn: &mut AnyConnection,
        user_id: &str,
        purpose: Purpose,
        token_hash: &str,
        target: &str,
        expires_at_ms: i64,
    ) -> sqlx::Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE account_tokens SET used_at_ms = ? WHERE user_id = ? AND purpose = ? AND used_at_ms IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(purpose.as_str())
        .execute(&mut *conn)
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
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Spends a live token: `Some` only for the one caller whose statement marked it used.
    pub async fn spend_token(
        conn: &mut AnyConnection,
        token_hash: &str,
        purpose: Purpose,
    ) -> sqlx::Result<Option<TokenRow>> {
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT token_hash, user_id, target FROM account_tokens \
             WHERE token_hash = ? AND purpose = ? AND used_at_ms IS NULL AND expires_at_ms > ?",
        )
        .bind(token_hash)
        .bind(purpose.as_str())
        .bind(now_ms())
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let spent = sqlx::query("UPDATE account_tokens SET used_at_ms = ? WHERE token_hash = ? AND used_at_ms IS NULL")
            .bind(now_ms())
            .bind(token_hash)
            .execute(conn)
            .await?;
        Ok((spent.rows_affected() == 1).then_some(row))
    }

    /// The user's live token of `purpose`, for counting wrong codes against it.
    pub async fn live_token(
        conn: &mut AnyConnection,
        user_id: &str,
        purpose: Purpose,
    ) -> sqlx::Result<Option<TokenRow>> {
        sqlx::query_as(
            "SELECT token_hash, user_id, target FROM account_tokens \
             WHERE user_id = ? AND purpose = ? AND used_at_ms IS NULL AND expires_at_ms > ?",
        )
        .bind(user_id)
        .bind(purpose.as_str())
        .bind(now_ms())
        .fetch_optional(conn)
        .await
    }

    /// Counts a wrong code; the token dies at `max`.
    pub async fn wrong_code(conn: &mut AnyConnection, token_hash: &str, max: i64) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE account_tokens SET attempts = attempts + 1, \
             used_at_ms = CASE WHEN attempts + 1 >= ? THEN ? ELSE used_at_ms END WHERE token_hash = ?",
        )
        .bind(max)
        .bind(now_ms())
        .bind(token_hash)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn mark_email_verified(conn: &mut AnyConnection, user_id: &str, email: &str) -> sqlx::Result<bool> {
        let done = sqlx::query("UPDATE users SET email_verified_at_ms = ? WHERE id = ? AND email_norm = ?")
            .bind(now_ms())
            .bind(user_id)
            .bind(email.to_lowercase())
            .execute(conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_verified_phone(conn: &mut AnyConnection, user_id: &str, phone: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE users SET phone = ?, phone_verified_at_ms = ? WHERE id = ?")
            .bind(phone)
            .bind(now_ms())
            .bind(user_id)
            .execute(conn)
            .await?;
        Ok(())
    }

    pub async fn set_password(conn: &mut AnyConnection, user_id: &str, password_hash: &str) -> sqlx::Result<()> {
        sqlx::query("UPDATE users SET password_hash = ?, updated_at_ms = ? WHERE id = ?")
            .bind(password_hash)
            .bind(now_ms())
            .bind(user_id)
            .execute(conn)
            .await?;
        Ok(())
    }
}
