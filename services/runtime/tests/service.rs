//! The runtime against a real nats-server and SQLite: a worker serves a `v2` operation beside
//! its `v1` one, and the database refuses a write outside a write transaction.

use std::sync::Arc;
use std::time::Duration;

use soulchat_runtime::database::Migrations;
use soulchat_runtime::nats_server::{NatsServer, free_port};
use soulchat_runtime::service::{self, Common, Context, Service};
use soulchat_runtime::{Database, Endpoints, Reads, RequestContext};
use soulchat_subjects::proto::common::v1::{HealthReply, HealthRequest};
use soulchat_subjects::{CallContext, Caller, Operation};
use tokio_util::sync::CancellationToken;

mod contract {
    use soulchat_subjects::proto::common::v1::{HealthReply, HealthRequest};

    soulchat_subjects::service! {
        SERVICE = "versioned", "A contract with two versions of one operation";
        v1 {
            /// The first shape.
            Echo = "echo": HealthRequest => HealthReply, by [Gateway];
        }
        v2 {
            /// The breaking change, served beside the first.
            EchoV2 = "echo": HealthRequest => HealthReply, by [Gateway];
        }
    }
}

static NO_MIGRATIONS: Migrations =
    Migrations { sqlite: sqlx::migrate::Migrator::DEFAULT, mysql: sqlx::migrate::Migrator::DEFAULT };

struct Versioned;

impl Service for Versioned {
    const CONTRACT: soulchat_subjects::ServiceDef = contract::SERVICE;
    type Config = ();

    fn migrations() -> &'static Migrations {
        &NO_MIGRATIONS
    }

    async fn start(_config: (), _ctx: &mut Context) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Versioned))
    }

    fn endpoints(endpoints: Endpoints<Self>) -> Endpoints<Self> {
        endpoints
            .handle::<contract::Echo>(|_, _, _| answer("v1"))
            .handle::<contract::EchoV2>(|_: Arc<Versioned>, _: RequestContext, _| answer("v2"))
    }
}

async fn answer(version: &str) -> soulchat_runtime::Result<HealthReply> {
    Ok(HealthReply { service: "versioned".into(), version: version.into() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_operation_is_served_beside_v1() {
    assert_eq!(contract::Echo::SUBJECT, "soulchat.versioned.v1.echo");
    assert_eq!(contract::EchoV2::SUBJECT, "soulchat.versioned.v2.echo");
    assert_ne!(contract::Echo::ENDPOINT, contract::EchoV2::ENDPOINT);
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::start(&dir.path().join("nats"), Some(free_port().unwrap())).await.expect("nats-server");
    let (client, disruptions) = soulchat_subjects::connect::connect_observed(&nats.url(), "test").await.unwrap();
    let shutdown = CancellationToken::new();
    let common = Common {
        client: client.clone(),
        disruptions,
        database_url: format!("sqlite://{}/versioned.db", dir.path().display()),
        request_timeout: Duration::from_secs(2),
        readiness: Default::default(),
        processed_events_retention: Default::default(),
    };
    let worker = tokio::spawn(service::run::<Versioned>((), common, shutdown.clone()));
    let caller = Caller::new(client, Duration::from_secs(2));
    let ctx = CallContext::internal();
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(reply) = caller.call::<contract::Echo>(&ctx, &HealthRequest {}).await {
            answered = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answered.expect("v1 answers").version, "v1");
    assert_eq!(caller.call::<contract::EchoV2>(&ctx, &HealthRequest {}).await.unwrap().version, "v2");
    let health = caller.call::<contract::Health>(&ctx, &HealthRequest {}).await.unwrap();
    assert_eq!(health.service, "soulchat-versioned");
    shutdown.cancel();
    worker.await.unwrap().expect("the worker stops cleanly");
    nats.stop().await.unwrap();
}

/// The read pool is read-only at the database too: SQL smuggled through a read fails, while the
/// same statement in a write transaction commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&format!("sqlite://{}/reads.db", dir.path().display())).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let mut reads = db.reads().await.unwrap();
    let refused = reads.fetch_optional(sqlx::query("INSERT INTO t (id) VALUES (1)")).await;
    assert!(refused.is_err(), "a read connection wrote");
    let mut tx = db.begin().await.unwrap();
    sqlx::query("INSERT INTO t (id) VALUES (1)").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let count: i64 = reads.fetch_one(sqlx::query_scalar("SELECT COUNT(*) FROM t")).await.unwrap();
    assert_eq!(count, 1);
    db.close().await;
}
