//! The profile worker. It registers with the NATS service API and answers `health`; its domain
//! operations arrive with their issue.

use soulchat_runtime::WorkerBuilder;
use soulchat_subjects::profile;
use tokio_util::sync::CancellationToken;

/// Runs the profile worker until `shutdown`.
pub async fn run(client: async_nats::Client, shutdown: CancellationToken) -> anyhow::Result<()> {
    let worker = WorkerBuilder::new(profile::SERVICE, env!("CARGO_PKG_VERSION"), ()).start(client, shutdown).await?;
    worker.run_until_shutdown().await;
    Ok(())
}
