//! `--searches N`: after the run, N message searches through the REST API, [`AT_ONCE`] at a
//! time, each by one of the run's users for one or two words of the prefill's vocabulary
//! ([`super::words`]), timed from request to answer.

use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;

use super::words::{self, VOCABULARY};
use crate::api::{Api, User};
use crate::report::{histogram, record};

/// Searches in flight at once: a few people searching together.
const AT_ONCE: usize = 4;

pub struct Searched {
    pub latencies: Histogram<u64>,
    /// Searches that found nothing (a word no message of the user's holds).
    pub empty: u64,
}

pub async fn run(client: &Api, users: &[User], count: u64) -> anyhow::Result<Searched> {
    eprintln!("chat: {count} message searches, {AT_ONCE} at a time");
    let timed: Vec<(std::time::Duration, usize)> = futures::stream::iter(0..count)
        .map(|i| async move {
            let r = words::mix(i);
            let user = &users[(r % users.len() as u64) as usize];
            let mut q = words::word((r >> 16) % VOCABULARY);
            // Every fourth search is for two words (both must be in the message).
            if i % 4 == 3 {
                q = format!("{q} {}", words::word((r >> 40) % VOCABULARY));
            }
            let started = Instant::now();
            let found = client.search(user, &q).await?;
            anyhow::Ok((started.elapsed(), found))
        })
        .buffer_unordered(AT_ONCE)
        .try_collect()
        .await?;
    let mut latencies = histogram();
    let mut empty = 0;
    for (elapsed, found) in timed {
        record(&mut latencies, elapsed);
        empty += u64::from(found == 0);
    }
    Ok(Searched { latencies, empty })
}
