//! Deleting what a service no longer needs (processed event ids, old chat events) in the
//! background without stalling its writers: a batch per short transaction, a pause between
//! batches so that a backlog (a first run, say) never keeps the write lock, and a round every
//! `every` until shutdown.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The writers' turn between two batches.
const PAUSE: Duration = Duration::from_millis(20);

/// Runs `batch` at once and then every `every` until `shutdown`, each round until a batch says
/// there is nothing more (`Ok(false)`) or fails. `what` names it in log lines.
pub fn spawn<F, Fut>(
    what: &'static str,
    every: Duration,
    shutdown: CancellationToken,
    mut batch: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<bool>> + Send,
{
    tokio::spawn(async move {
        let mut rounds = tokio::time::interval(every);
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = rounds.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            loop {
                match batch().await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!("pruning {what}: {e:#}");
                        break;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(PAUSE) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    })
}
