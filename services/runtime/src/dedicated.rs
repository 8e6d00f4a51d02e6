//! A serial hot loop on an OS thread of its own. A loop such as the chat group committer awaits
//! the database several times per round, and each of those wake-ups comes from another thread
//! (sqlx's SQLite worker, the NATS connection). On the shared runtime such a wake-up joins the
//! global queue behind every busy socket and request, so a loop that everything else waits for
//! waits milliseconds per await. On its own single-threaded runtime it runs as soon as the kernel
//! wakes its thread.

use std::future::Future;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Runs `work` on a new thread named `name` and returns a handle on the shared runtime that ends
/// when `work` does.
pub fn spawn<F>(name: &str, work: F) -> std::io::Result<JoinHandle<()>>
where
    F: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (done, finished) = oneshot::channel();
    std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        runtime.block_on(work);
        let _ = done.send(());
    })?;
    Ok(tokio::spawn(async move {
        let _ = finished.await;
    }))
}
