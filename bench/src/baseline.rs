//! What the nats-server alone does on this machine: core request/reply against a responder this
//! tool starts on a private subject, and JetStream publishes to a temporary stream. Every other
//! scenario is a chain of such hops plus the system's own work, so these figures are its floor,
//! and the other tables print their figures as ratios of these.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, stream::StorageType};
use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::progress::Progress;
use crate::report::{Figure, histogram, latencies, record};

/// Names of the measurements, which other scenarios' figures refer to.
pub const REQUEST_REPLY: &str = "nats request/reply, sequential";
pub const REQUEST_REPLY_PIPELINED: &str = "nats request/reply, pipelined";
pub const PUBLISH_ACKED: &str = "jetstream publish, each ack awaited";
pub const PUBLISH_PIPELINED: &str = "jetstream publish, pipelined";

#[derive(Debug, Clone, Copy, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    File,
    Memory,
}

#[derive(Debug, Serialize, clap::Args)]
pub struct Options {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Requests or publishes in flight at once when pipelined.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Payload bytes per message (about a chat message's size).
    #[arg(long, default_value_t = 128)]
    payload: usize,
    /// Storage of the temporary stream: file, as the system's streams, or memory.
    #[arg(long, value_enum, default_value = "file")]
    storage: Storage,
}

impl Options {
    /// The baseline other scenarios run beside their own figures.
    pub fn short(seconds: f64) -> Self {
        Options { seconds, window: 256, payload: 128, storage: Storage::File }
    }
}

pub fn describe(options: &Options) -> String {
    format!(
        "baseline: {} B payloads, {:.1} s per measurement, pipelined window {}; JetStream into a temporary \
         stream BENCH_<random> with {} storage, deleted after",
        options.payload,
        options.seconds,
        options.window,
        match options.storage {
            Storage::File => "file",
            Storage::Memory => "memory",
        }
    )
}

pub async fn measure(url: &str, nkey: Option<&std::path::Path>, options: &Options) -> anyhow::Result<Vec<Figure>> {
    let seed = match nkey {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the NKey seed {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let connect = |name: &'static str| {
        let seed = seed.clone();
        async move {
            match seed {
                Some(seed) => async_nats::ConnectOptions::with_nkey(seed),
                None => async_nats::ConnectOptions::new(),
            }
            .name(name)
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .with_context(|| format!("connecting to NATS at {url} (set --nats to the system's nats-server)"))
        }
    };
    let client = connect("soulchat-bench").await?;
    let responder = connect("soulchat-bench-responder").await?;
    let token: u64 = rand::random();
    let subject = format!("_BENCH.{token:016x}.echo");
    let mut requests = responder.subscribe(subject.clone()).await?;
    responder.flush().await?;
    let echo = tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            if let Some(reply) = request.reply {
                let _ = responder.publish(reply, request.payload).await;
            }
        }
    });
    let payload = Bytes::from(vec![b'x'; options.payload]);
    let run_for = Duration::from_secs_f64(options.seconds);
    let mut figures = Vec::new();

    let call = |client: async_nats::Client, subject: String, payload: Bytes| async move {
        client.request(subject, payload).await.map(|_| ()).context("a NATS request")
    };
    let (count, elapsed, hist) =
        window_loop(REQUEST_REPLY, 1, run_for, || call(client.clone(), subject.clone(), payload.clone())).await?;
    figures.push(Figure::new(format!("{REQUEST_REPLY}: rate"), count as f64 / elapsed, "msg/s"));
    figures.extend(latencies(REQUEST_REPLY, &hist, None));
    let (count, elapsed, hist) = window_loop(REQUEST_REPLY_PIPELINED, options.window, run_for, || {
        call(client.clone(), subject.clone(), payload.clone())
    })
    .await?;
    figures.push(Figure::new(format!("{REQUEST_REPLY_PIPELINED}: rate"), count as f64 / elapsed, "msg/s"));
    figures.extend(latencies(REQUEST_REPLY_PIPELINED, &hist, None));
    echo.abort();

    let js = jetstream::new(client.clone());
    let stream = format!("BENCH_{token:016X}");
    let config = jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![format!("_bench.{token:016x}")],
        storage: match options.storage {
            Storage::File => StorageType::File,
            Storage::Memory => StorageType::Memory,
        },
        ..Default::default()
    };
    js.create_stream(config).await.with_context(|| format!("creating the temporary stream {stream}"))?;
    let published = publishes(&js, &format!("_bench.{token:016x}"), &payload, run_for, options.window).await;
    js.delete_stream(&stream).await.with_context(|| format!("deleting the temporary stream {stream}"))?;
    figures.extend(published?);
    client.flush().await?;
    Ok(figures)
}

/// `window` loops each calling `one` back to back for `run_for`: the count, the seconds it took,
/// and every call's latency.
async fn window_loop<F, Fut>(
    label: &str,
    window: usize,
    run_for: Duration,
    one: F,
) -> anyhow::Result<(u64, f64, Histogram<u64>)>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let done = Arc::new(AtomicU64::new(0));
    let shown = done.clone();
    let _progress = Progress::start(label, move || format!("{} done", shown.load(Ordering::Relaxed)));
    let started = Instant::now();
    let deadline = started + run_for;
    let loops = (0..window).map(|_| {
        let (one, done) = (&one, &done);
        async move {
            let mut hist = histogram();
            while Instant::now() < deadline {
                let at = Instant::now();
                one().await?;
                record(&mut hist, at.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(hist)
        }
    });
    let mut total = histogram();
    for hist in futures::future::try_join_all(loops).await? {
        total.add(&hist).expect("histograms of the same bounds");
    }
    Ok((total.len(), started.elapsed().as_secs_f64(), total))
}

/// JetStream publishes awaiting each ack, then pipelined with `window` acks outstanding.
async fn publishes(
    js: &jetstream::Context,
    subject: &str,
    payload: &Bytes,
    run_for: Duration,
    window: usize,
) -> anyhow::Result<Vec<Figure>> {
    let publish = move || async move {
        js.publish(subject.to_owned(), payload.clone()).await?.await?;
        anyhow::Ok(())
    };
    let (count, elapsed, hist) = window_loop(PUBLISH_ACKED, 1, run_for, publish).await?;
    let mut figures = vec![Figure::new(format!("{PUBLISH_ACKED}: rate"), count as f64 / elapsed, "msg/s")];
    figures.extend(latencies(PUBLISH_ACKED, &hist, None));

    // One publisher keeping `window` acks outstanding: what a batching writer gets from JetStream.
    let acked = Arc::new(AtomicU64::new(0));
    let shown = acked.clone();
    let _progress = Progress::start(PUBLISH_PIPELINED, move || format!("{} acked", shown.load(Ordering::Relaxed)));
    let started = Instant::now();
    let mut pending = VecDeque::with_capacity(window);
    while started.elapsed() < run_for || !pending.is_empty() {
        if pending.len() >= window || (started.elapsed() >= run_for && !pending.is_empty()) {
            let ack: jetstream::context::PublishAckFuture = pending.pop_front().expect("an outstanding ack");
            ack.await?;
            acked.fetch_add(1, Ordering::Relaxed);
        } else {
            pending.push_back(js.publish(subject.to_owned(), payload.clone()).await?);
        }
    }
    let rate = acked.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    figures.push(Figure::new(format!("{PUBLISH_PIPELINED}: rate"), rate, "msg/s"));
    Ok(figures)
}
