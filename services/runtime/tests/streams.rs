//! Provisioning brings a stream that already exists, declared before it had size limits, to the
//! limits the contract gives now: an existing deployment gets them at its next `migrate`.

use async_nats::jetstream::stream::DiscardPolicy;
use soulchat_runtime::nats_server::{NatsServer, free_port};
use soulchat_subjects::streams::{self, EVENTS_STREAM};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_updates_an_existing_stream_to_its_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::start(&dir.path().join("nats"), Some(free_port().unwrap())).await.expect("nats-server");
    let client = soulchat_subjects::connect::connect(&nats.url(), "test").await.unwrap();
    let js = async_nats::jetstream::new(client);
    let wanted = streams::stream_configs().into_iter().find(|s| s.name == EVENTS_STREAM).unwrap();
    let old = async_nats::jetstream::stream::Config {
        max_bytes: -1,
        max_message_size: -1,
        discard: DiscardPolicy::Old,
        ..wanted.clone()
    };
    js.create_stream(old).await.expect("the stream as an older release declared it");

    streams::provision(&js).await.expect("provisioning");
    let mut stream = js.get_stream(EVENTS_STREAM).await.unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert_eq!(
        (config.max_bytes, config.max_message_size, config.discard),
        (wanted.max_bytes, wanted.max_message_size, DiscardPolicy::New)
    );
    nats.stop().await.unwrap();
}
