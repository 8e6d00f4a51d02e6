//! The notification worker. It registers with the NATS service API and answers `health`; its domain
//! operations arrive with their issue.

use soulchat_runtime::WorkerBuilder;
use soulchat_subjects::notification;
use tokio_util::sync::CancellationToken;

/// Runs the notification worker until `shutdown`.
pub async fn run(client: async_nats::Client, shutdown: CancellationToken) -> anyhow::Result<()> {
    let worker = WorkerBuilder::new(notification::SERVICE, env!("CARGO_PKG_VERSION"), ()).start(client, shutdown).await?;
    worker.run_until_shutdown().await;
    Ok(())
}
