//! The notification database.

use soulchat_runtime::{Database, now_ms};
use sqlx::AnyConnection;

#[derive(Clone)]
pub struct Store {
    db: Database,
}

impl Store {
    pub fn new(db: Database) -> Self {
        Store { db }
    }

    /// Stores a notification once per `(user, dedup_key)` and returns its id (the existing one
    /// on a repeat).
    pub async fn insert_once(
        &self,
        user_id: &str,
        kind: &str,
        dedup_key: &str,
        title: &str,
        body: &str,
    ) -> sqlx::Result<String> {
        let id = uuid::Uuid::now_v7().to_string();
        let inserted = sqlx::query(
            "INSERT INTO notifications (id, user_id, kind, dedup_key, title, body, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(kind)
        .bind(dedup_key)
        .bind(title)
        .bind(body)
        .bind(now_ms())
        .execute(self.db.pool())
        .await;
        match inserted {
            Ok(_) => Ok(id),
            Err(e) if Database::is_unique_violation(&e) => {
                let (existing,): (String,) =
                    sqlx::query_as("SELECT id FROM notifications WHERE user_id = ? AND dedup_key = ?")
                        .bind(user_id)
                        .bind(dedup_key)
                        .fetch_one(self.db.pool())
                        .await?;
                Ok(existing)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn delete_for_user(conn: &mut AnyConnection, user_id: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM notifications WHERE user_id = ?").bind(user_id).execute(conn).await?;
        Ok(())
    }
}
