//! Fault runs: the production topology as real processes ([`soulchat_runtime::cluster`]: a NATS
//! cluster, gateways, worker replicas), a chat load across the gateways, and a ledger that says
//! afterwards whether anything acknowledged was lost, stored or delivered twice, and whether
//! every client resumed. A test kills, stops or restarts parts between [`ChatLoad::start`] and
//! [`ChatLoad::finish`].
//!
//! The load: every user sends over REST (retrying with the same `client_id` until acknowledged,
//! switching gateway when one is unreachable) into one group, and reads it over a socket
//! (reconnecting to any gateway and resuming from the last seq it saw whenever the socket ends).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use soulchat_runtime::cluster::{Cluster, Spec};
use soulchat_runtime::nats_server::free_port;
use soulchat_subjects::SERVICES;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_util::sync::CancellationToken;

use crate::backend::Databases;
use crate::{Api, Backend, JWT_SECRET, Role};

/// The deadline of every gateway → worker call in a fault run: a stalled worker is given up on
/// after this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// What a fault run starts.
#[derive(Debug, Clone)]
pub struct Topology {
    pub backend: Backend,
    pub nats_nodes: usize,
    pub gateways: usize,
    pub worker_replicas: usize,
    pub redis_url: Option<String>,
    /// A MariaDB server for the workers' databases (`mysql://root@host:port`) instead of the
    /// backend's.
    pub mysql_url: Option<String>,
}

impl Topology {
    /// Three NATS nodes, two gateways, two replicas of every worker.
    pub fn cluster(backend: Backend) -> Topology {
        Topology { backend, nats_nodes: 3, gateways: 2, worker_replicas: 2, redis_url: None, mysql_url: None }
    }
}

/// One fault run at a time in a test process: each is a dozen processes, and two together on a
/// small machine would turn their timing into a measure of the machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct FaultRun {
    pub cluster: Cluster,
    /// Each gateway's API, in process order (`gateway-1` first).
    pub gateways: Vec<Api>,
    databases: Databases,
    _dir: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl FaultRun {
    /// Starts `topology` from the `soulchat` binary at `binary` (a test's
    /// `env!("CARGO_BIN_EXE_soulchat")`).
    pub async fn start(binary: &str, topology: Topology) -> FaultRun {
        let turn = ONE_AT_A_TIME.lock().await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let databases = match &topology.mysql_url {
            Some(url) => Databases::on_mysql(url),
            None => Databases::create(topology.backend, dir.path()).await,
        };
        let mut env = BTreeMap::from([
            ("SOULCHAT_JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
            ("SOULCHAT_REQUEST_TIMEOUT".to_owned(), humantime(REQUEST_TIMEOUT)),
            ("SOULCHAT_LOG_FORMAT".to_owned(), "text".to_owned()),
            ("SOULCHAT_SEND_LIMIT".to_owned(), "1000".to_owned()),
            ("SOULCHAT_RATE_LIMIT".to_owned(), "1000000/s".to_owned()),
            ("SOULCHAT_USER_RATE_LIMIT".to_owned(), "1000000/s".to_owned()),
            ("SOULCHAT_ACCOUNT_RATE_LIMIT".to_owned(), "1000000/s".to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ]);
        for def in SERVICES {
            let variable = format!("SOULCHAT_{}_DATABASE_URL", def.domain.to_uppercase());
            env.insert(variable, databases.url(Role::worker(def)));
        }
        if let Some(redis) = &topology.redis_url {
            env.insert("REDIS_URL".to_owned(), redis.clone());
        }
        let gateways = (0..topology.gateways)
            .map(|_| std::net::SocketAddr::from(([127, 0, 0, 1], free_port().expect("a free port"))))
            .collect::<Vec<_>>();
        let spec = Spec {
            binary: binary.into(),
            dir: dir.path().to_owned(),
            nats_nodes: topology.nats_nodes,
            gateways: gateways.clone(),
            worker_replicas: topology.worker_replicas,
            env,
        };
        let cluster = Cluster::start(spec).await.expect("starting the cluster");
        let gateways = gateways.iter().map(|addr| Api::new(format!("http://{addr}"))).collect();
        FaultRun { cluster, gateways, databases, _dir: dir, _turn: turn }
    }

    /// A client as `admin` (stream and consumer info, say).
    pub async fn admin(&self) -> async_nats::Client {
        let nats = soulchat_subjects::connect::Nats::with_key(
            self.cluster.nats_url(),
            soulchat_subjects::broker::Identity::Admin,
            &self.cluster.keys,
        );
        soulchat_subjects::connect::connect(nats, "fault-admin").await.expect("connecting as admin")
    }

    /// Fails naming every process that exited without the test asking.
    pub fn assert_none_died(&mut self) {
        let died = self.cluster.died();
        let logs: Vec<String> = died
            .iter()
            .filter_map(|d| d.split(' ').next())
            .map(|name| format!("--- {name}:\n{}", tail(&self.cluster.process(name).log(), 3000)))
            .collect();
        assert!(died.is_empty(), "processes died that the test did not kill: {died:?}\n{}", logs.join("\n"));
    }

    pub async fn stop(mut self) {
        self.assert_none_died();
        self.cluster.stop(Duration::from_secs(10)).await.expect("stopping the cluster");
        self.databases.drop_all().await;
    }
}

fn humantime(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn tail(text: &str, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// What a sender was told: client id → (seq, when).
type Acks = Arc<Mutex<Vec<(String, i64, Instant)>>>;

/// One reader's view: the seqs it was given, in order, and how often it resumed.
#[derive(Default)]
struct Reader {
    seqs: Vec<i64>,
    resumes: usize,
    connected: bool,
}

pub struct ChatLoad {
    stop_sending: CancellationToken,
    stop_reading: CancellationToken,
    senders: Vec<JoinHandle<()>>,
    readers: Vec<(String, Arc<Mutex<Reader>>, JoinHandle<()>)>,
    acks: Acks,
    refused: Arc<Mutex<Vec<String>>>,
    conversation: String,
    owner_token: String,
    bases: Vec<String>,
    started: Instant,
}

/// What a run amounted to; [`Outcome::assert_clean`] is the verdict.
#[derive(Debug)]
pub struct Outcome {
    /// Messages acknowledged (and stored: each once).
    pub acknowledged: usize,
    /// Reconnect-and-resume cycles, over all readers.
    pub resumes: usize,
    /// The longest time without any acknowledgement, while the load ran: the outage a user saw.
    pub longest_gap: Duration,
    pub problems: Vec<String>,
}

impl Outcome {
    pub fn assert_clean(&self) {
        assert!(self.acknowledged > 0, "nothing was acknowledged");
        assert!(self.problems.is_empty(), "{} problems: {:#?}", self.problems.len(), self.problems);
    }
}

impl ChatLoad {
    /// Registers `users` users, puts them in one group, connects a reader per user (spread over
    /// the gateways) and starts each sending one message every `interval`.
    pub async fn start(run: &FaultRun, users: usize, interval: Duration) -> ChatLoad {
        let bases: Vec<String> = run.gateways.iter().map(|g| g.base.clone()).collect();
        let api = &run.gateways[0];
        let tag = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
        let mut people = Vec::new();
        for n in 0..users {
            let name = format!("u{tag}{n}");
            let user = api.register(&name, "correct horse battery staple").await;
            people.push((name, user["token"].as_str().expect("a token").to_owned()));
        }
        let members: Vec<&str> = people[1..].iter().map(|(name, _)| name.as_str()).collect();
        let created =
            api.post("/api/conversations", Some(&people[0].1), json!({"name": "faults", "members": members})).await;
        assert_eq!(created.status, 201, "{:?}", created.body);
        let conversation = created.body["conversation"]["id"].as_str().expect("an id").to_owned();

        let (stop_sending, stop_reading) = (CancellationToken::new(), CancellationToken::new());
        let mut readers = Vec::new();
        for (n, (name, token)) in people.iter().enumerate() {
            let reader = Arc::new(Mutex::new(Reader::default()));
            let task = tokio::spawn(read(
                bases.clone(),
                n,
                token.clone(),
                conversation.clone(),
                reader.clone(),
                stop_reading.clone(),
            ));
            readers.push((name.clone(), reader, task));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !readers.iter().all(|(_, r, _)| r.lock().unwrap().connected) {
            assert!(Instant::now() < deadline, "the readers did not connect within 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (acks, refused) = (Acks::default(), Arc::new(Mutex::new(Vec::new())));
        let senders = people
            .iter()
            .enumerate()
            .map(|(n, (name, token))| {
                let sender = Sender {
                    bases: bases.clone(),
                    preferred: n,
                    token: token.clone(),
                    name: name.clone(),
                    conversation: conversation.clone(),
                    acks: acks.clone(),
                    refused: refused.clone(),
                };
                tokio::spawn(sender.run(interval, stop_sending.clone()))
            })
            .collect();
        ChatLoad {
            stop_sending,
            stop_reading,
            senders,
            readers,
            acks,
            refused,
            conversation,
            owner_token: people[0].1.clone(),
            bases,
            started: Instant::now(),
        }
    }

    /// Acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    /// Waits until `more` further messages are acknowledged (the system serves), and says how long
    /// that took.
    pub async fn until_acknowledged(&self, more: usize, within: Duration) -> Duration {
        let (started, target) = (Instant::now(), self.acknowledged() + more);
        while self.acknowledged() < target {
            assert!(started.elapsed() < within, "fewer than {more} messages acknowledged within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        started.elapsed()
    }

    /// Stops sending (each sender finishes the message it is on, retrying until acknowledged),
    /// gives the readers up to `settle` to catch up, and checks the ledger against history.
    pub async fn finish(self, settle: Duration) -> Outcome {
        self.stop_sending.cancel();
        for sender in self.senders {
            sender.await.expect("a sender task");
        }
        let mut acks = self.acks.lock().unwrap().clone();
        acks.sort_by_key(|(_, seq, _)| *seq);
        let mut problems = self.refused.lock().unwrap().clone();
        let last = acks.last().map_or(0, |(_, seq, _)| *seq);

        let deadline = Instant::now() + settle;
        while Instant::now() < deadline
            && !self.readers.iter().all(|(_, r, _)| r.lock().unwrap().seqs.last().copied().unwrap_or(0) >= last)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop_reading.cancel();
        let mut resumes = 0;
        for (name, reader, task) in self.readers {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
            let reader = reader.lock().unwrap();
            resumes += reader.resumes;
            // Every acknowledged message once, in seq order (the group's other events, such as
            // its creation, have seqs too but are not messages).
            let expected: Vec<i64> = acks.iter().map(|(_, seq, _)| *seq).collect();
            if reader.seqs != expected {
                let twice = reader.seqs.windows(2).filter(|w| w[1] <= w[0]).count();
                let missing = expected.iter().filter(|s| !reader.seqs.contains(s)).take(10).collect::<Vec<_>>();
                problems.push(format!(
                    "{name} was delivered {} of {} messages: {twice} out of order or twice, missing {missing:?}…",
                    reader.seqs.len(),
                    expected.len()
                ));
            }
        }

        // The record: every acknowledged message stored once, nothing else stored.
        let history = history(&self.bases, &self.owner_token, &self.conversation).await;
        let mut stored: HashMap<String, i64> = HashMap::new();
        for (seq, client_id) in &history {
            if let Some(earlier) = stored.insert(client_id.clone(), *seq) {
                problems.push(format!("{client_id} stored twice: seqs {earlier} and {seq}"));
            }
        }
        if history.windows(2).any(|w| w[1].0 <= w[0].0) {
            problems.push("history is not in strictly increasing seq order".to_owned());
        }
        for (client_id, seq, _) in &acks {
            match stored.get(client_id) {
                Some(stored_seq) if stored_seq == seq => {}
                Some(other) => problems.push(format!("{client_id} acknowledged as seq {seq}, stored as {other}")),
                None => problems.push(format!("{client_id} acknowledged as seq {seq}, not stored")),
            }
        }
        if history.len() != acks.len() {
            problems.push(format!("{} messages stored, {} acknowledged", history.len(), acks.len()));
        }

        let mut times: Vec<Instant> = acks.iter().map(|(_, _, at)| *at).collect();
        times.sort();
        let mut longest_gap = Duration::ZERO;
        let mut previous = self.started;
        for at in times {
            longest_gap = longest_gap.max(at.duration_since(previous));
            previous = at;
        }
        Outcome { acknowledged: acks.len(), resumes, longest_gap, problems }
    }
}

struct Sender {
    bases: Vec<String>,
    preferred: usize,
    token: String,
    name: String,
    conversation: String,
    acks: Acks,
    refused: Arc<Mutex<Vec<String>>>,
}

impl Sender {
    async fn run(self, interval: Duration, stop: CancellationToken) {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("an HTTP client");
        let mut gateway = self.preferred;
        let mut tick = tokio::time::interval(interval);
        for n in 0.. {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let client_id = format!("{}-{n}", self.name);
            // Until acknowledged: a retry with the same client id is answered with the original.
            let give_up = Instant::now() + Duration::from_secs(60);
            loop {
                let base = &self.bases[gateway % self.bases.len()];
                let url = format!("{base}/api/conversations/{}/messages", self.conversation);
                let body = json!({"client_id": client_id, "content": client_id});
                let sent = http.post(&url).header("Authorization", format!("Token {}", self.token)).json(&body).send();
                match sent.await {
                    Ok(r) if r.status().is_success() => {
                        let body: Value = r.json().await.unwrap_or_default();
                        let seq = body["message"]["seq"].as_i64().unwrap_or_default();
                        self.acks.lock().unwrap().push((client_id, seq, Instant::now()));
                        break;
                    }
                    // The system is recovering: the same request again, a moment later.
                    Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {}
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        self.refused.lock().unwrap().push(format!("{client_id}: {status} {body}"));
                        break;
                    }
                    // Unreachable: the other gateway.
                    Err(_) => gateway += 1,
                }
                if Instant::now() > give_up {
                    self.refused.lock().unwrap().push(format!("{client_id}: not acknowledged within 60 s"));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads the group over a socket until `stop`; whenever the socket ends, reconnects (to the
/// next gateway when one refuses) and resumes from the last seq seen.
async fn read(
    bases: Vec<String>,
    mut gateway: usize,
    token: String,
    conversation: String,
    reader: Arc<Mutex<Reader>>,
    stop: CancellationToken,
) {
    let mut first = true;
    while !stop.is_cancelled() {
        let base = &bases[gateway % bases.len()];
        let mut request = format!("{}/ws", base.replacen("http", "ws", 1)).into_client_request().expect("a URL");
        request.headers_mut().insert("Authorization", HeaderValue::from_str(&format!("Token {token}")).unwrap());
        let Ok(Ok((mut ws, _))) =
            tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::connect_async(request)).await
        else {
            gateway += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let last = reader.lock().unwrap().seqs.last().copied().unwrap_or(0);
        let resume = json!({"type": "resume", "conversations": {conversation.clone(): last}});
        if ws.send(Message::Text(resume.to_string().into())).await.is_err() {
            continue;
        }
        if !first {
            reader.lock().unwrap().resumes += 1;
        }
        first = false;
        loop {
            let message = tokio::select! {
                message = ws.next() => message,
                _ = stop.cancelled() => return,
            };
            let frame: Value = match message {
                Some(Ok(Message::Text(text))) => serde_json::from_str(&text).unwrap_or_default(),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            };
            let mut reader = reader.lock().unwrap();
            match frame["type"].as_str() {
                Some("resumed") => reader.connected = true,
                Some("message") if frame["conversation_id"] == conversation.as_str() => {
                    reader.seqs.extend(frame["seq"].as_i64());
                }
                _ => {}
            }
        }
        reader.lock().unwrap().connected = false;
    }
}

/// The conversation's history, (seq, client id), oldest first, through whichever gateway answers.
async fn history(bases: &[String], token: &str, conversation: &str) -> Vec<(i64, String)> {
    let mut messages = Vec::new();
    let mut after = 0;
    'pages: loop {
        for base in bases {
            let api = Api::new(base.clone());
            let Ok(page) = api
                .try_get_as(&format!("/api/conversations/{conversation}/messages?after={after}&limit=100"), token)
                .await
            else {
                continue;
            };
            assert_eq!(page.status, 200, "history: {:?}", page.body);
            let batch = page.body["messages"].as_array().cloned().unwrap_or_default();
            if batch.is_empty() {
                break 'pages;
            }
            for message in batch {
                let seq = message["seq"].as_i64().unwrap_or_default();
                messages.push((seq, message["client_id"].as_str().unwrap_or_default().to_owned()));
                after = seq;
            }
            continue 'pages;
        }
        panic!("no gateway answered for the history");
    }
    messages
}

/// A private `redis-server` on a free port, stopped and started by the test.
pub struct RedisServer {
    port: u16,
    child: Option<tokio::process::Child>,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        let mut redis = RedisServer { port: free_port().expect("a free port"), child: None };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("stopping redis-server");
        }
    }

    /// Starts it (again) on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop().await;
        let port = self.port.to_string();
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen within 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether `redis-server` can be started here.
pub fn redis_server_available() -> bool {
    Path::new("/usr/bin/redis-server").exists()
        || std::process::Command::new("redis-server").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// A private MariaDB server (Debian's `mariadb-server` binaries) in a fresh data directory on a
/// free port, restarted by the test.
pub struct MariaDbServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<tokio::process::Child>,
}

impl MariaDbServer {
    /// Whether `mariadbd` and `mariadb-install-db` are installed.
    pub fn available() -> bool {
        ["mariadbd", "mariadb-install-db"].iter().all(|b| locate(b).is_some())
    }

    pub async fn start() -> MariaDbServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let install = tokio::process::Command::new(locate("mariadb-install-db").expect("mariadb-install-db"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--user={}", user()))
            .output()
            .await
            .expect("running mariadb-install-db");
        assert!(install.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&install.stderr));
        let mut server = MariaDbServer { dir, port: free_port().expect("a free port"), child: None };
        server.spawn().await;
        server
    }

    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let data = self.dir.path().join("data");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mariadbd.log"))
            .expect("the server's log");
        let child = tokio::process::Command::new(locate("mariadbd").expect("mariadbd"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", self.dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", self.dir.path().join("pid").display()))
            .arg(format!("--port={}", self.port))
            .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
            .arg(format!("--user={}", user()))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("starting mariadbd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        sqlx::any::install_default_drivers();
        while <sqlx::AnyConnection as sqlx::Connection>::connect(&self.url()).await.is_err() {
            let log = std::fs::read_to_string(self.dir.path().join("mariadbd.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "mariadbd did not answer within 60 s:\n{}", tail(&log, 3000));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops it (SIGTERM: InnoDB shuts down cleanly), leaves it down for `down`, then starts it
    /// again on the same data and port, and waits until it answers.
    pub async fn restart(&mut self, down: Duration) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().and_then(|id| rustix::process::Pid::from_raw(id as i32));
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            if tokio::time::timeout(Duration::from_secs(30), child.wait()).await.is_err() {
                child.kill().await.expect("killing mariadbd");
            }
        }
        tokio::time::sleep(down).await;
        self.spawn().await;
    }
}

/// The account mariadbd runs as: itself (as root, it must be told so).
fn user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| if rustix::process::getuid().is_root() { "root".to_owned() } else { "nobody".to_owned() })
}

/// A program on PATH or in /usr/sbin (where Debian puts mariadbd).
fn locate(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([std::path::PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
