//! Test support: every test gets its own mesh — a private nats-server with JetStream (the pinned
//! release, on a free port, in a temporary store), private databases (SQLite files, or fresh
//! MariaDB databases dropped afterwards), and the gateway and workers started in-process, talking
//! over NATS exactly as in production.

mod api;
mod backend;
mod endpoint;
pub mod fault;
mod otlp;
mod proxy;
mod smtp;
mod socket;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use soulchat_runtime::admin::Readiness;
use soulchat_runtime::nats_server::NatsServer;
use soulchat_runtime::processed::Horizon;
use soulchat_runtime::service::{self, Common};
use soulchat_subjects::broker::Identity;
use soulchat_subjects::connect::{Disruptions, Nats};
use soulchat_subjects::{SERVICES, ServiceDef};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use api::{Api, Response};
pub use backend::Backend;
pub use endpoint::{Endpoint, Received};
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use proxy::Proxy;
pub use smtp::{Mail, SmtpServer};
pub use socket::{Closed, RawSocket, Socket, TcpEnd};

/// The user id inside an access token (its `sub`).
pub fn user_id(token: &str) -> String {
    use base64::Engine;
    let claims = token.split('.').nth(1).expect("a JWT");
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).expect("base64url claims");
    let claims: serde_json::Value = serde_json::from_slice(&claims).expect("JSON claims");
    claims["sub"].as_str().expect("a sub claim").to_owned()
}

pub const JWT_SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Gateway,
    User,
    Profile,
    Chat,
    Notification,
}

impl Role {
    /// The worker role serving `def` (one of `soulchat_subjects::SERVICES`).
    pub fn worker(def: ServiceDef) -> Role {
        use soulchat_subjects::{chat, notification, profile, user};
        match def {
            d if d == user::SERVICE => Role::User,
            d if d == profile::SERVICE => Role::Profile,
            d if d == chat::SERVICE => Role::Chat,
            d if d == notification::SERVICE => Role::Notification,
            d => panic!("the testkit cannot start {}", d.name),
        }
    }

    /// The contract a worker role serves; `None` for the gateway.
    pub fn contract(self) -> Option<ServiceDef> {
        SERVICES.into_iter().find(|&def| Role::worker(def) == self)
    }

    /// Whom it connects to NATS as.
    pub fn identity(self) -> Identity {
        match self.contract() {
            Some(def) => Identity::worker(def).expect("every service has an identity"),
            None => Identity::Gateway,
        }
    }
}

/// Knobs a test may turn before the mesh starts.
#[derive(Debug, Clone)]
pub struct Options {
    pub backend: Backend,
    pub request_timeout: Duration,
    pub access_ttl: Duration,
    /// How long a rotated refresh token still yields the same pair (production's 10 s).
    pub refresh_grace: Duration,
    /// The user worker's argon2 pool.
    pub password_hashing: soulchat_user::HashPool,
    pub login_limits: soulchat_gateway::LoginLimits,
    pub redis_url: Option<String>,
    /// Messages per second per user.
    pub send_limit: u32,
    /// Frames queued per socket before it counts as too slow.
    pub socket_queue: usize,
    /// The base of links in account emails.
    pub public_url: String,
    /// Who may send system alerts.
    pub admin_user_ids: Vec<String>,
    /// The notification worker's channels.
    pub notification: soulchat_notification::Config,
    /// The gateway's token buckets: high enough by default that no test meets them by chance.
    pub rate_limits: soulchat_gateway::RateLimits,
    /// The gateway's HTTP connection caps and timeouts.
    pub connections: soulchat_gateway::ConnectionLimits,
    /// Proxies the gateway believes `X-Forwarded-For` from.
    pub trusted_proxies: Vec<soulchat_gateway::ProxyNet>,
    /// A built web client for the gateway to serve at `/`.
    pub web_dir: Option<std::path::PathBuf>,
    /// The gateway's largest attachment upload.
    pub attachment_max_bytes: u64,
    /// The chat worker's settings (event retention, how long an unsent upload lives).
    pub chat: soulchat_chat::Config,
}

impl Options {
    pub fn new(backend: Backend) -> Self {
        Options {
            backend,
            request_timeout: Duration::from_secs(2),
            access_ttl: Duration::from_secs(900),
            refresh_grace: Duration::from_secs(10),
            password_hashing: soulchat_user::HashPool::default(),
            login_limits: soulchat_gateway::LoginLimits {
                per_account: 10,
                per_ip: 1000,
                window: Duration::from_secs(60),
            },
            redis_url: None,
            send_limit: 1000,
            socket_queue: 1024,
            public_url: "http://soulchat.test".into(),
            admin_user_ids: Vec::new(),
            notification: soulchat_notification::Config::default(),
            rate_limits: soulchat_gateway::RateLimits {
                per_address: "1000000/s".parse().unwrap(),
                per_user: "1000000/s".parse().unwrap(),
                accounts: "1000000/s".parse().unwrap(),
            },
            connections: soulchat_gateway::ConnectionLimits {
                max: None,
                per_address: 4096,
                header_timeout: Duration::from_secs(10),
                body_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(5),
            },
            trusted_proxies: Vec::new(),
            web_dir: None,
            attachment_max_bytes: soulchat_gateway::DEFAULT_ATTACHMENT_MAX_BYTES,
            chat: soulchat_chat::Config::default(),
        }
    }
}

/// A role on a runtime of its own: killing it drops every task the role spawned, mid-flight, as
/// a crash would, while stopping it lets it drain.
struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    runtime: RoleRuntime,
}

/// Shuts its runtime down without blocking, also when a failing test drops the mesh.
struct RoleRuntime(Option<tokio::runtime::Runtime>);

impl Drop for RoleRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

type RoleFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

pub struct Mesh {
    pub options: Options,
    pub nats: NatsServer,
    pub api: Api,
    /// The admin listener every role of the mesh reports to (`/metrics`, `/healthz`, `/readyz`),
    /// on a free port.
    pub admin: Api,
    readiness: Readiness,
    admin_stop: CancellationToken,
    databases: backend::Databases,
    /// Running roles by role and replica number (0 is the one `start` starts).
    roles: HashMap<(Role, u8), Running>,
    dir: tempfile::TempDir,
}

impl Mesh {
    pub async fn start(backend: Backend) -> Mesh {
        Self::start_with(Options::new(backend)).await
    }

    /// Starts nats-server (authentication on, as `soulchat up` runs it: one NKey per identity,
    /// the permissions generated from the contract), provisions its streams as `admin`, starts
    /// every worker and the gateway, each as its own identity, and waits until `/readyz` says so.
    pub async fn start_with(options: Options) -> Mesh {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = soulchat_runtime::nats_server::secured_config(&dir.path().join("keys"), "")
            .expect("generating the test's NATS identities");
        let nats = NatsServer::start_with(
            &dir.path().join("nats"),
            Some(soulchat_runtime::nats_server::free_port().unwrap()),
            Some(config),
        )
        .await
        .expect("starting the test's nats-server (run scripts/install-nats-server)");
        let databases = backend::Databases::create(options.backend, dir.path()).await;
        let readiness = Readiness::default();
        let listener = soulchat_runtime::admin::Listener::bind("127.0.0.1:0".parse().unwrap(), readiness.clone())
            .await
            .expect("binding the admin listener");
        let admin = Api::new(format!("http://{}", listener.local_addr()));
        let admin_stop = CancellationToken::new();
        tokio::spawn(listener.serve(admin_stop.clone()));
        let mut mesh = Mesh {
            options,
            nats,
            api: Api::new("http://unused".into()),
            admin,
            readiness,
            admin_stop,
            databases,
            roles: HashMap::new(),
            dir,
        };
        let js = async_nats::jetstream::new(mesh.client().await);
        soulchat_subjects::streams::provision(&js).await.expect("provisioning the streams as admin");
        for def in SERVICES {
            mesh.start_role(Role::worker(def)).await;
        }
        mesh.start_role(Role::Gateway).await;
        mesh.wait_ready().await;
        mesh
    }

    /// A scraped value: of one series written as scraped
    /// (`soulchat_limit_refusals_total{limit="send"}`), or of every series of a metric name
    /// together. The recorder is the test process's, shared by every mesh in it: counters only
    /// grow, so assert lower bounds.
    pub async fn metric(&self, series: &str) -> f64 {
        let scrape = self.admin.get("/metrics").await;
        let scrape = scrape.body.as_str().expect("Prometheus text");
        scrape
            .lines()
            .filter_map(|line| line.rsplit_once(' '))
            .filter(|(key, _)| *key == series || key.strip_prefix(series).is_some_and(|labels| labels.starts_with('{')))
            .filter_map(|(_, value)| value.parse::<f64>().ok())
            .sum()
    }

    /// A connection as `admin`, which may do anything.
    pub async fn client(&self) -> async_nats::Client {
        self.client_as(Identity::Admin).await
    }

    /// How `identity` reaches the test's server (its NKey, its inbox prefix).
    pub fn nats_as(&self, identity: Identity) -> Nats {
        Nats::with_key(self.nats.url(), identity, &self.dir.path().join("keys"))
    }

    /// A connection as any identity.
    pub async fn client_as(&self, identity: Identity) -> async_nats::Client {
        soulchat_subjects::connect::connect(self.nats_as(identity), &format!("test-{}", identity.name()))
            .await
            .expect("connecting to the test nats-server")
    }

    /// Connects as `identity`, or with no credentials at all (`None`), without retrying, and
    /// reports every error the server sends (permissions violations among them).
    pub async fn probe(
        &self,
        identity: Option<Identity>,
    ) -> Result<
        (async_nats::Client, tokio::sync::mpsc::UnboundedReceiver<async_nats::ServerError>),
        async_nats::ConnectError,
    > {
        let nats = identity.map_or_else(|| Nats::anonymous(self.nats.url()), |i| self.nats_as(i));
        let (errors, received) = tokio::sync::mpsc::unbounded_channel();
        let client = soulchat_subjects::connect::options(&nats)
            .await
            .expect("connect options")
            .event_callback(move |event| {
                let errors = errors.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        let _ = errors.send(e);
                    }
                }
            })
            .connect(self.nats.url())
            .await?;
        Ok((client, received))
    }

    pub fn database_url(&self, role: Role) -> String {
        self.databases.url(role)
    }

    /// The first `count` domain events on `SOULCHAT_EVENTS` matching `filter` (subject, payload,
    /// `Nats-Msg-Id`), waiting up to 10 s for each.
    pub async fn events(&self, filter: &str, count: usize) -> Vec<(String, bytes::Bytes, String)> {
        use futures::StreamExt;
        let js = async_nats::jetstream::new(self.client().await);
        let stream = js.get_stream(soulchat_subjects::streams::EVENTS_STREAM).await.expect("the events stream");
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                filter_subject: filter.to_owned(),
                ..Default::default()
            })
            .await
            .expect("a consumer");
        let mut messages = consumer.messages().await.expect("a message stream");
        let mut seen = Vec::new();
        while seen.len() < count {
            let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .unwrap_or_else(|_| panic!("only {} of {count} events on {filter} within 10 s", seen.len()))
                .expect("the stream goes on")
                .expect("a message");
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            seen.push((message.subject.to_string(), message.payload.clone(), id));
        }
        seen
    }

    /// A direct connection to a worker's database, for a test to inspect (or break) it.
    pub async fn database(&self, role: Role) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        <sqlx::AnyConnection as sqlx::Connection>::connect(&self.databases.url(role))
            .await
            .expect("connecting to a worker's database")
    }

    /// One column of strings from a worker's database.
    pub async fn strings(&self, role: Role, sql: &str) -> Vec<String> {
        let mut conn = self.database(role).await;
        let rows: Vec<(String,)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned())).fetch_all(&mut conn).await.expect("a query");
        rows.into_iter().map(|(s,)| s).collect()
    }

    /// Starts (or restarts) one role, with its own NATS connection.
    pub async fn start_role(&mut self, role: Role) {
        if let Some(api) = self.start_replica(role, 0, None).await {
            self.api = api;
        }
    }

    /// Starts replica `replica` of `role`, connected to `nats_url` (default: the test's server),
    /// e.g. a second gateway or chat worker, or one behind a [`Proxy`]. A gateway's API is returned.
    pub async fn start_replica(&mut self, role: Role, replica: u8, nats_url: Option<String>) -> Option<Api> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("{role:?}").to_lowercase())
            .enable_all()
            .build()
            .expect("a runtime for the role");
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let url = nats_url.unwrap_or_else(|| self.nats.url());
        let name = format!("test-{role:?}-{replica}").to_lowercase();
        let nats = Nats { url, ..self.nats_as(role.identity()) };
        let connect = {
            let (nats, name) = (nats.clone(), name.clone());
            async move { soulchat_subjects::connect::connect_observed(nats, &name).await }
        };
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let future: RoleFuture = match role {
            Role::Gateway => {
                let config = soulchat_gateway::Config {
                    http_addr: "127.0.0.1:0".parse().unwrap(),
                    jwt_secret: JWT_SECRET.into(),
                    request_timeout: self.options.request_timeout,
                    cors_origins: vec!["https://app.example".into()],
                    redis_url: self.options.redis_url.clone(),
                    login_limits: self.options.login_limits.clone(),
                    send_limit: self.options.send_limit,
                    socket_queue: self.options.socket_queue,
                    admin_user_ids: self.options.admin_user_ids.clone(),
                    rate_limits: self.options.rate_limits.clone(),
                    connections: self.options.connections.clone(),
                    trusted_proxies: self.options.trusted_proxies.clone(),
                    web_dir: self.options.web_dir.clone(),
                    attachment_max_bytes: self.options.attachment_max_bytes,
                };
                let readiness = self.readiness.clone();
                Box::pin(async move {
                    let (client, disruptions) = soulchat_subjects::connect::connect_observed(nats, &name).await?;
                    let gateway =
                        soulchat_gateway::Gateway::bind(config, client.clone(), disruptions, token.clone()).await?;
                    readiness.add_nats("soulchat-gateway", client);
                    let _ = bound_tx.send(gateway.local_addr());
                    gateway.serve(token).await
                })
            }
            Role::User => {
                let config = soulchat_user::Config {
                    tokens: soulchat_user::TokenConfig {
                        jwt_secret: JWT_SECRET.into(),
                        access_ttl: self.options.access_ttl,
                        refresh_ttl: Duration::from_secs(30 * 24 * 3600),
                        refresh_grace: self.options.refresh_grace,
                    },
                    public_url: self.options.public_url.clone(),
                    hashing: self.options.password_hashing,
                };
                self.worker_future::<soulchat_user::Users>(role, config, connect, token)
            }
            Role::Profile => {
                let config = soulchat_profile::Config { redis_url: self.options.redis_url.clone() };
                self.worker_future::<soulchat_profile::Profiles>(role, config, connect, token)
            }
            Role::Chat => self.worker_future::<soulchat_chat::Chat>(role, self.options.chat.clone(), connect, token),
            Role::Notification => {
                let config = self.options.notification.clone();
                self.worker_future::<soulchat_notification::Notifications>(role, config, connect, token)
            }
        };
        let task = runtime.spawn(future);
        self.roles.insert((role, replica), Running { shutdown, task, runtime: RoleRuntime(Some(runtime)) });
        if role == Role::Gateway {
            let addr = tokio::time::timeout(Duration::from_secs(30), bound_rx)
                .await
                .expect("the gateway binds within 30 s")
                .expect("the gateway bound its listener");
            Some(Api::new(format!("http://{addr}")))
        } else {
            self.wait_serving(role, replica).await;
            None
        }
    }

    /// A worker's run, once its connection is made.
    fn worker_future<S: soulchat_runtime::Service>(
        &self,
        role: Role,
        config: S::Config,
        connect: impl Future<Output = anyhow::Result<(async_nats::Client, Disruptions)>> + Send + 'static,
        shutdown: CancellationToken,
    ) -> RoleFuture {
        let (database_url, request_timeout) = (self.databases.url(role), self.options.request_timeout);
        let readiness = self.readiness.clone();
        Box::pin(async move {
            let (client, disruptions) = connect.await?;
            let common = Common {
                client,
                disruptions,
                database_url,
                request_timeout,
                readiness,
                processed_events_retention: Horizon::default(),
            };
            service::run::<S>(config, common, shutdown).await
        })
    }

    /// Stops one role gracefully and waits until it has.
    pub async fn stop_role(&mut self, role: Role) {
        self.stop_replica(role, 0).await;
    }

    pub async fn stop_replica(&mut self, role: Role, replica: u8) {
        if let Some(running) = self.roles.remove(&(role, replica)) {
            running.shutdown.cancel();
            match tokio::time::timeout(Duration::from_secs(20), running.task).await {
                Ok(Ok(Ok(()))) => {}
                other => panic!("{role:?} did not stop cleanly: {other:?}"),
            }
        }
    }

    /// Kills one role: every task it runs is dropped where it stands and its NATS connection
    /// closes, with no drain; what it had not committed is lost, as in a crash.
    pub fn kill_role(&mut self, role: Role) {
        if let Some(running) = self.roles.remove(&(role, 0)) {
            drop(running.runtime);
        }
    }

    async fn wait_serving(&self, role: Role, replica: u8) {
        let client = self.client().await;
        let Some(subject) = role.contract().map(|def| def.health) else { return };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(running) = self.roles.get(&(role, replica)) {
                assert!(!running.task.is_finished(), "{role:?} exited during start");
            }
            if client.request(subject, "".into()).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{role:?} did not start serving within 30 s");
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.api.get("/readyz").await.status == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the mesh did not become ready within 30 s");
    }

    /// Stops every role, then drops the databases.
    pub async fn shutdown(mut self) {
        let roles: Vec<(Role, u8)> = self.roles.keys().copied().collect();
        for (role, replica) in roles {
            self.stop_replica(role, replica).await;
        }
        self.admin_stop.cancel();
        self.databases.drop_all().await;
    }
}

/// Generates one test per backend from `async fn name(backend: Backend)`: SQLite always,
/// MariaDB when `SOULCHAT_TEST_MYSQL_URL` is set (otherwise that variant says it skipped).
#[macro_export]
macro_rules! each_backend {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$scenario($crate::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mysql() {
                    if $crate::Backend::mysql_available() {
                        super::$scenario($crate::Backend::MySql).await
                    } else {
                        eprintln!("skipped: SOULCHAT_TEST_MYSQL_URL is not set");
                    }
                }
            }
        )*
    };
}
