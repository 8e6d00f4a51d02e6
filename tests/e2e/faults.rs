//! Faults under load, on the production topology as real processes (a NATS cluster, two
//! gateways, worker replicas: `soulchat_testkit::fault`). Each test asserts that nothing
//! acknowledged was lost, nothing was stored or delivered twice, every reader resumed, no process
//! died that the test did not kill, and the system served again within a stated time. Each prints
//! its figures (`cargo test faults -- --nocapture`).

use std::time::Duration;

use soulchat_testkit::Backend;
use soulchat_testkit::fault::{ChatLoad, FaultRun, MariaDbServer, Outcome, REQUEST_TIMEOUT, RedisServer, Topology};

const BINARY: &str = env!("CARGO_BIN_EXE_soulchat");
const USERS: usize = 6;
/// Each user sends one message this often: 60 messages a second in all.
const INTERVAL: Duration = Duration::from_millis(100);
/// How long readers get to catch up once sending stops.
const SETTLE: Duration = Duration::from_secs(30);

fn report(fault: &str, outcome: &Outcome, recovered: Duration) {
    println!(
        "fault: {fault}: {} messages acknowledged, {} resumes, longest pause in acknowledgements {:.1} s, serving again after {:.1} s",
        outcome.acknowledged,
        outcome.resumes,
        outcome.longest_gap.as_secs_f64(),
        recovered.as_secs_f64()
    );
}

/// The only chat worker is killed (`kill -9`) and started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_worker_killed_under_load() {
    let topology = Topology { worker_replicas: 1, ..Topology::cluster(Backend::Sqlite) };
    let mut run = FaultRun::start(BINARY, topology).await;
    let load = ChatLoad::start(&run, USERS, INTERVAL).await;
    load.until_acknowledged(50, Duration::from_secs(20)).await;
    run.cluster.process("chat-1").kill().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    run.cluster.process("chat-1").restart().unwrap();
    let recovered = load.until_acknowledged(USERS, Duration::from_secs(30)).await;
    load.until_acknowledged(50, Duration::from_secs(20)).await;
    let outcome = load.finish(SETTLE).await;
    report("chat worker kill -9 and restart", &outcome, recovered);
    outcome.assert_clean();
    assert!(recovered < Duration::from_secs(15), "served again only after {recovered:?}");
    run.stop().await;
}

/// One of two chat replicas is killed; the other serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_chat_replica_killed_while_the_other_serves() {
    let mut run = FaultRun::start(BINARY, Topology::cluster(Backend::Sqlite)).await;
    let load = ChatLoad::start(&run, USERS, INTERVAL).await;
    load.until_acknowledged(50, Duration::from_secs(20)).await;
    run.cluster.process("chat-1").kill().await.unwrap();
    let recovered = load.until_acknowledged(USERS, Duration::from_secs(20)).await;
    load.until_acknowledged(100, Duration::from_secs(20)).await;
    let outcome = load.finish(SETTLE).await;
    report("one of two chat replicas kill -9", &outcome, recovered);
    outcome.assert_clean();
    // Calls that were on the killed replica wait out their deadline; nothing else does.
    assert!(outcome.longest_gap < REQUEST_TIMEOUT * 3, "longest pause {:?}", outcome.longest_gap);
    run.stop().await;
}

/// One NATS node of three is lost under load, then comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_node_lost_and_returned() {
    let mut run = FaultRun::start(BINARY, Topology::cluster(Backend::Sqlite)).await;
    // Three nodes: every stream and bucket was provisioned with three replicas (`auto`).
    let js = async_nats::jetstream::new(run.admin().await);
    let mut names = js.stream_names();
    let mut streams = 0;
    while let Some(name) = futures::StreamExt::next(&mut names).await {
        let name = name.unwrap();
        let info = js.get_stream(&name).await.unwrap().info().await.unwrap().clone();
        assert_eq!(info.config.num_replicas, 3, "{name}");
        streams += 1;
    }
    assert!(streams >= 8, "{streams} streams and buckets");
    let load = ChatLoad::start(&run, USERS, INTERVAL).await;
    load.until_acknowledged(50, Duration::from_secs(20)).await;
    run.cluster.nats[1].stop().await.unwrap();
    let recovered = load.until_acknowledged(USERS, Duration::from_secs(30)).await;
    load.until_acknowledged(100, Duration::from_secs(30)).await;
    run.cluster.nats[1].restart().await.unwrap();
    load.until_acknowledged(100, Duration::from_secs(30)).await;
    let outcome = load.finish(SETTLE).await;
    report("one NATS node of three lost and returned", &outcome, recovered);
    outcome.assert_clean();
    assert!(recovered < Duration::from_secs(15), "served again only after {recovered:?}");
    run.stop().await;
}

/// A single nats-server restarts: every connection drops, the memory buckets are lost and
/// declared again, every socket resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_nats_server_restarted() {
    let topology = Topology { nats_nodes: 1, worker_replicas: 1, ..Topology::cluster(Backend::Sqlite) };
    let mut run = FaultRun::start(BINARY, topology).await;
    let load = ChatLoad::start(&run, USERS, INTERVAL).await;
    load.until_acknowledged(50, Duration::from_secs(20)).await;
    run.cluster.nats[0].restart().await.unwrap();
    let recovered = load.until_acknowledged(USERS, Duration::from_secs(30)).await;
    load.until_acknowledged(100, Duration::from_secs(30)).await;
    let outcome = load.finish(SETTLE).await;
    report("single nats-server restart", &outcome, recovered);
    outcome.assert_clean();
    assert!(outcome.resumes >= USERS, "every socket resumes after the restart: {} resumes", outcome.resumes);
    assert!(recovered < Duration::from_secs(15), "served again only after {recovered:?}");
    run.stop().await;
}

/// A gateway is killed: its clients reconnect to the other and resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_and_its_clients_resume_on_the_other() {
    let mut run = FaultRun::start(BINARY, Topology::cluster(Backend::Sqlite)).await;
    let load = ChatLoad::start(&run, USERS, INTERVAL).await;
    load.until_acknowledged(50, Duration::from_secs(20)).await;
    run.cluster.process("gateway-1").kill().await.unwrap();
    let recovered = load.until_acknowledged(USERS, Duration::from_secs(20)).await;
    load.until_acknowledged(100, Duration::from_secs(20)).await;
    let outcome = load.finish(SETTLE).await;
    report("a gateway kill -9", &outcome, recovered);
    outcome.assert_clean();
    // Readers are spread over the gateways: half of them were on the one killed.
    assert!(outcome.resumes >= USERS / 2, "{} resumes", outcome.resumes);
    assert!(recovered < Duration::from_secs(10), "served again only after {recovered:?}");
    run.stop().await;
}

/// The only chat worker stalls (SIGSTOP) for longer than the request timeout, then goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stalled_past_the_request_timeout() {
    let topology = Topology { worker_replicas: 1, ..Topology::cluster(Backend::Sqlite) };
    let mut run = FaultRun::start(BINARY, topology).await;
    let load = ChatLoad::start(&run, USERS, INTERVAL).await;
    load.until_acknowledged(50, Duration::from_secs(20)).await;
    run.cluster.process("chat-1").pause().unwrap();
    tokio::time::sleep(REQUEST_TIMEOUT + Duration::from_secs(2)).await;
    run.cluster.process("chat-1").resume().unwrap();
    let recovered = load.until_acknowledged(USERS, Duration::from_secs(20)).await;
    load.until_acknowledged(50, Duration::from_secs(20)).await;
    let outcome = load.finish(SETTLE).await;
    report("chat worker stalled 4 s (SIGSTOP, SIGCONT)", &outcome, recovered);
    outcome.assert_clean();
    assert!(recovered < Duration::from_secs(10), "served again only after {recovered:?}");
    run.stop().await;
}

/// Redis (the gateways' shared limits, the profile cache) stops under load and starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_started() {
    if !soulchat_testkit::fault::redis_server_available() {
        eprintln!("skipped: no redis-server here");
        return;
    }
    let mut redis = RedisServer::start().await;
    let topology = Topology { redis_url: Some(redis.url()), ..Topology::cluster(Backend::Sqlite) };
    let run = FaultRun::start(BINARY, topology).await;
    let load = ChatLoad::start(&run, USERS, INTERVAL).await;
    load.until_acknowledged(50, Duration::from_secs(20)).await;
    redis.stop().await;
    let during = load.until_acknowledged(USERS, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.restart().await;
    let recovered = load.until_acknowledged(50, Duration::from_secs(20)).await;
    let outcome = load.finish(SETTLE).await;
    report("Redis stopped 3 s and started", &outcome, during.max(recovered));
    outcome.assert_clean();
    // The limits fail open at once and the cache falls back to the database: no outage at all.
    assert!(outcome.longest_gap < Duration::from_secs(3), "longest pause {:?}", outcome.longest_gap);
    run.stop().await;
}

/// MariaDB, every worker's database, restarts under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_restarted_under_load() {
    if !MariaDbServer::available() {
        eprintln!("skipped: no mariadbd here (apt-get install mariadb-server)");
        return;
    }
    let mut mariadb = MariaDbServer::start().await;
    let topology = Topology { mysql_url: Some(mariadb.url()), ..Topology::cluster(Backend::MySql) };
    let run = FaultRun::start(BINARY, topology).await;
    let load = ChatLoad::start(&run, USERS, INTERVAL).await;
    load.until_acknowledged(50, Duration::from_secs(20)).await;
    let restarting = std::time::Instant::now();
    mariadb.restart(Duration::from_secs(3)).await;
    let down = restarting.elapsed();
    let recovered = load.until_acknowledged(USERS, Duration::from_secs(30)).await;
    load.until_acknowledged(50, Duration::from_secs(30)).await;
    let outcome = load.finish(SETTLE).await;
    report(&format!("MariaDB restarted (down {:.1} s)", down.as_secs_f64()), &outcome, recovered);
    outcome.assert_clean();
    assert!(recovered < Duration::from_secs(15), "served again only after {recovered:?}");
    run.stop().await;
}
