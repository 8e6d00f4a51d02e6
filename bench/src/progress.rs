//! One progress line per second on stderr while a scenario runs, so that a long run is visibly
//! alive and a stall shows at once; stdout stays for the table.

use std::time::{Duration, Instant};

/// Prints until dropped.
pub struct Progress(tokio::task::JoinHandle<()>);

impl Progress {
    pub fn start(label: impl Into<String>, line: impl Fn() -> String + Send + 'static) -> Self {
        let label = label.into();
        Progress(tokio::spawn(async move {
            let started = Instant::now();
            let second = Duration::from_secs(1);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + second, second);
            loop {
                tick.tick().await;
                eprintln!("[{label} {:>3.0}s] {}", started.elapsed().as_secs_f64(), line());
            }
        }))
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.abort();
    }
}
