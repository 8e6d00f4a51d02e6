//! The chat worker. It registers with the NATS service API and answers `health`; its domain
//! operations arrive with their issue.

use soulchat_runtime::{Database, Migrations, WorkerBuilder};
use soulchat_subjects::chat;
use tokio_util::sync::CancellationToken;

pub static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("../../migrations/chat/sqlite"),
    mysql: sqlx::migrate!("../../migrations/chat/mysql"),
};

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
}

/// Runs the chat worker until `shutdown`.
pub async fn run(config: Config, client: async_nats::Client, shutdown: CancellationToken) -> anyhow::Result<()> {
    let db = Database::connect(&config.database_url, &MIGRATIONS).await?;
    let worker = WorkerBuilder::new(chat::SERVICE, env!("CARGO_PKG_VERSION"), ()).start(client, shutdown).await?;
    worker.run_until_shutdown().await;
    db.close().await;
    Ok(())
}
