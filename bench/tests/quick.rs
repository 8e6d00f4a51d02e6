//! `soulchat-bench chat --quick --prefill 200` against an in-process mesh, so that CI runs the
//! same lost-or-duplicated check the benchmark makes, and finds the prefilled messages in
//! history, without timing anything.

use soulchat_testkit::{Backend, Mesh};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_chat_loses_and_duplicates_nothing() {
    let mesh = Mesh::start(Backend::Sqlite).await;
    let outcome = soulchat_bench::quick_check(&mesh.api.base, 200).await;
    mesh.shutdown().await;
    outcome.expect("nothing acknowledged lost, nothing duplicated, every prefilled message stored");
}
