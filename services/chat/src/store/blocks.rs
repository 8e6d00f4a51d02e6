//! The copy of blocks, kept from the profile worker's `profile.block_changed` events.

use soulchat_runtime::{Reads, WriteTx};

use super::Store;

impl Store {
    /// Records that `blocker` blocks (`on`) or no longer blocks `blocked`; idempotent.
    pub async fn set_block(tx: &mut WriteTx<'_>, blocker: &str, blocked: &str, on: bool) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?")
            .bind(blocker)
            .bind(blocked)
            .execute(&mut **tx)
            .await?;
        if on {
            sqlx::query("INSERT INTO blocks (blocker_id, blocked_id) VALUES (?, ?)")
                .bind(blocker)
                .bind(blocked)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Forgets every block by or of a deleted user.
    pub async fn remove_blocks_of(tx: &mut WriteTx<'_>, user: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM blocks WHERE blocker_id = ? OR blocked_id = ?")
            .bind(user)
            .bind(user)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn blocks(r: &mut impl Reads, blocker: &str, blocked: &str) -> sqlx::Result<bool> {
        let row: Option<(String,)> = r
            .fetch_optional(
                sqlx::query_as("SELECT blocker_id FROM blocks WHERE blocker_id = ? AND blocked_id = ?")
                    .bind(blocker)
                    .bind(blocked),
            )
            .await?;
        Ok(row.is_some())
    }
}
