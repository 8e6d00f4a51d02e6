//! A worker's own database: SQLite (the embedded default, one file per service) or
//! MySQL/MariaDB (production), chosen by URL, migrated at start under sqlx's migration lock.
//!
//! Queries go through sqlx's `Any` driver so each store is written once for both backends; the
//! SQL sticks to what both understand (no `RETURNING`, `?` placeholders, BIGINT milliseconds).
//! Where the dialects differ, a store asks [`Database::backend`].

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, FromRow};
use tokio::sync::{Notify, OwnedMutexGuard};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

impl Backend {
    pub fn of(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            Ok(Backend::MySql)
        } else {
            bail!("unsupported database URL {url:?}: use sqlite://<file> or mysql://<host>/<database>")
        }
    }
}

/// Pushes `(?, ?, …)` binding `items` for an `IN` list, padded to a power of two by repeating
/// the last item (harmless in `IN`): a list of any length then comes in a few statement shapes
/// that each connection's statement cache keeps, instead of a new statement to prepare (a round
/// trip on MySQL) for every length. Nothing is pushed for no items.
pub fn push_in_list<T>(q: &mut sqlx::QueryBuilder<Any>, items: &[T])
where
    T: Clone + for<'t> sqlx::Encode<'t, Any> + sqlx::Type<Any>,
{
    let Some(last) = items.last() else { return };
    q.push("(");
    let mut list = q.separated(", ");
    for item in items.iter().chain(std::iter::repeat_n(last, items.len().next_power_of_two() - items.len())) {
        list.push_bind(item.clone());
    }
    q.push(")");
}

/// One service's migrations, per backend (`migrations/<service>/<backend>/`).
pub struct Migrations {
    pub sqlite: Migrator,
    pub mysql: Migrator,
}

/// A service's database. The rule that matters is in the types: reads go through [`Reads`]
/// (a read-only connection from [`Database::reads`], or a write transaction reading its own
/// writes), and a write needs a [`WriteTx`], which only [`Database::begin`] makes. There is no
/// public pool and no `&mut AnyConnection` outside a write transaction, so a write that skips the
/// writer's turn does not compile; the read pool's connections are also read-only on the server
/// side, so SQL smuggled through a read fails.
#[derive(Debug, Clone)]
pub struct Database {
    /// Connections for write transactions (and migrations, checkpoints).
    writes: AnyPool,
    /// Read-only connections (`query_only` on SQLite, a read-only session on MySQL).
    reads: AnyPool,
    backend: Backend,
    /// SQLite: taken by every writing transaction of this process, in turn (see [`Database::begin`]).
    writers: Arc<tokio::sync::Mutex<()>>,
}

/// A query that can be read from: `sqlx::query`, `query_as` and `query_scalar`, with any binds.
pub trait Fetch: Send {
    type Row: Send;
    fn all<'c>(self, conn: &'c mut AnyConnection) -> BoxFuture<'c, sqlx::Result<Vec<Self::Row>>>
    where
        Self: 'c;
    fn optional<'c>(self, conn: &'c mut AnyConnection) -> BoxFuture<'c, sqlx::Result<Option<Self::Row>>>
    where
        Self: 'c;
}

impl<'q> Fetch for Query<'q, Any, AnyArguments> {
    type Row = AnyRow;
    fn all<'c>(self, conn: &'c mut AnyConnection) -> BoxFuture<'c, sqlx::Result<Vec<AnyRow>>>
    where
        Self: 'c,
    {
        Box::pin(self.fetch_all(conn))
    }
    fn optional<'c>(self, conn: &'c mut AnyConnection) -> BoxFuture<'c, sqlx::Result<Option<AnyRow>>>
    where
        Self: 'c,
    {
        Box::pin(self.fetch_optional(conn))
    }
}

impl<'q, O> Fetch for QueryAs<'q, Any, O, AnyArguments>
where
    O: Send + Unpin + for<'r> FromRow<'r, AnyRow>,
{
    type Row = O;
    fn all<'c>(self, conn: &'c mut AnyConnection) -> BoxFuture<'c, sqlx::Result<Vec<O>>>
    where
        Self: 'c,
    {
        Box::pin(self.fetch_all(conn))
    }
    fn optional<'c>(self, conn: &'c mut AnyConnection) -> BoxFuture<'c, sqlx::Result<Option<O>>>
    where
        Self: 'c,
    {
        Box::pin(self.fetch_optional(conn))
    }
}

impl<'q, O> Fetch for QueryScalar<'q, Any, O, AnyArguments>
where
    O: Send + Unpin,
    (O,): for<'r> FromRow<'r, AnyRow>,
{
    type Row = O;
    fn all<'c>(self, conn: &'c mut AnyConnection) -> BoxFuture<'c, sqlx::Result<Vec<O>>>
    where
        Self: 'c,
    {
        Box::pin(self.fetch_all(conn))
    }
    fn optional<'c>(self, conn: &'c mut AnyConnection) -> BoxFuture<'c, sqlx::Result<Option<O>>>
    where
        Self: 'c,
    {
        Box::pin(self.fetch_optional(conn))
    }
}

/// Where reads run: [`ReadConn`] (outside a transaction) or [`WriteTx`] (inside one). The
/// futures are boxed: an `impl Future + Send` here trips the compiler's higher-ranked lifetime
/// checks (rust-lang/rust#100013) in every handler that awaits one.
pub trait Reads: Send {
    fn fetch_all<'a, Q: Fetch + 'a>(&'a mut self, query: Q) -> BoxFuture<'a, sqlx::Result<Vec<Q::Row>>>;
    fn fetch_optional<'a, Q: Fetch + 'a>(&'a mut self, query: Q) -> BoxFuture<'a, sqlx::Result<Option<Q::Row>>>;
    fn fetch_one<'a, Q: Fetch + 'a>(&'a mut self, query: Q) -> BoxFuture<'a, sqlx::Result<Q::Row>> {
        let row = self.fetch_optional(query);
        Box::pin(async move { row.await?.ok_or(sqlx::Error::RowNotFound) })
    }
}

/// A read-only connection from [`Database::reads`]; several reads on it share one connection.
pub struct ReadConn(PoolConnection<Any>);

impl Reads for ReadConn {
    fn fetch_all<'a, Q: Fetch + 'a>(&'a mut self, query: Q) -> BoxFuture<'a, sqlx::Result<Vec<Q::Row>>> {
        query.all(&mut self.0)
    }
    fn fetch_optional<'a, Q: Fetch + 'a>(&'a mut self, query: Q) -> BoxFuture<'a, sqlx::Result<Option<Q::Row>>> {
        query.optional(&mut self.0)
    }
}

/// A connection a constant writer keeps for itself (see [`Database::begin_on`]); it offers
/// nothing but beginning write transactions.
pub struct WriterConn(PoolConnection<Any>);

/// A writing transaction; on SQLite it also holds this process's turn to write. What was recorded
/// for a relay in it (see [`WriteTx::wake_on_commit`]) wakes that relay when it commits.
pub struct WriteTx<'c> {
    tx: sqlx::Transaction<'c, Any>,
    _turn: Option<OwnedMutexGuard<()>>,
    wakes: Vec<Arc<Notify>>,
    /// Ends with the transaction (see [`Database::begin`]).
    _span: tracing::Span,
}

impl WriteTx<'_> {
    pub async fn commit(self) -> sqlx::Result<()> {
        self.tx.commit().await?;
        for wake in self.wakes {
            wake.notify_one();
        }
        Ok(())
    }

    pub async fn rollback(self) -> sqlx::Result<()> {
        self.tx.rollback().await
    }

    /// Wakes `relay` once this transaction commits (nothing if it rolls back).
    pub fn wake_on_commit(&mut self, relay: &Arc<Notify>) {
        if !self.wakes.iter().any(|w| Arc::ptr_eq(w, relay)) {
            self.wakes.push(relay.clone());
        }
    }
}

impl Reads for WriteTx<'_> {
    fn fetch_all<'a, Q: Fetch + 'a>(&'a mut self, query: Q) -> BoxFuture<'a, sqlx::Result<Vec<Q::Row>>> {
        query.all(&mut self.tx)
    }
    fn fetch_optional<'a, Q: Fetch + 'a>(&'a mut self, query: Q) -> BoxFuture<'a, sqlx::Result<Option<Q::Row>>> {
        query.optional(&mut self.tx)
    }
}

impl Deref for WriteTx<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

impl Database {
    /// Opens the database (creating it if missing) and applies pending migrations.
    pub async fn connect(url: &str, migrations: &Migrations) -> anyhow::Result<Database> {
        let db = Self::open(url).await?;
        db.migrate(migrations).await?;
        Ok(db)
    }

    /// Opens the database, creating it if missing, without migrating.
    pub async fn open(url: &str) -> anyhow::Result<Database> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        let url = match backend {
            Backend::Sqlite => sqlite_url(url)?,
            Backend::MySql => url.replace("mariadb:", "mysql:"),
        };
        if backend == Backend::MySql && !Any::database_exists(&url).await.unwrap_or(false) {
            // Racing creators (several workers starting at once) are fine: IF NOT EXISTS.
            if let Err(e) = Any::create_database(&url).await {
                tracing::debug!("create database: {e}");
            }
        }
        let options = AnyConnectOptions::from_str(&url).with_context(|| format!("database URL {url:?}"))?;
        let (write_max, read_max) = match backend {
            // One writer at a time anyway (plus a committer's own); readers share the WAL.
            Backend::Sqlite => (4, 8),
            Backend::MySql => (10, 10),
        };
        let writes = pool(backend, options.clone(), write_max, false)
            .await
            .with_context(|| format!("connecting to {}", redact(&url)))?;
        let reads =
            pool(backend, options, read_max, true).await.with_context(|| format!("connecting to {}", redact(&url)))?;
        let db = Database { writes, reads, backend, writers: Arc::default() };
        if backend == Backend::Sqlite {
            tokio::spawn(checkpoint_in_background(db.clone()));
        }
        Ok(db)
    }

    pub async fn migrate(&self, migrations: &Migrations) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &migrations.sqlite,
            Backend::MySql => &migrations.mysql,
        };
        migrator.run(&self.writes).await.context("applying migrations")?;
        Ok(())
    }

    /// Begins a transaction that may write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes fails at once with
    /// SQLITE_BUSY when another writer committed meanwhile, which `busy_timeout` cannot wait out.
    /// Before that it waits for its turn among this process's writers, first come first served:
    /// SQLite's own wait for the lock is a sleep-and-retry that a busy writer (the chat group
    /// committer, say) can keep losing for seconds.
    pub async fn begin(&self) -> sqlx::Result<WriteTx<'static>> {
        // In a trace, a span of the caller's from waiting for the writer's turn to the end.
        let span = tracing::info_span!("transaction", otel.name = "db transaction");
        match self.backend {
            Backend::Sqlite => {
                let turn = self.writers.clone().lock_owned().await;
                let tx = self.writes.begin_with("BEGIN IMMEDIATE").await?;
                Ok(WriteTx { tx, _turn: Some(turn), wakes: Vec::new(), _span: span })
            }
            Backend::MySql => {
                Ok(WriteTx { tx: self.writes.begin().await?, _turn: None, wakes: Vec::new(), _span: span })
            }
        }
    }

    /// [`Database::begin`] on a connection the caller keeps: a writer that writes all the time
    /// (the chat group committer) keeps its SQLite page cache warm, where a pooled connection
    /// finds it emptied by whichever connection wrote last.
    pub async fn begin_on<'c>(&self, conn: &'c mut WriterConn) -> sqlx::Result<WriteTx<'c>> {
        let conn = &mut *conn.0;
        match self.backend {
            Backend::Sqlite => {
                let turn = self.writers.clone().lock_owned().await;
                let tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                Ok(WriteTx { tx, _turn: Some(turn), wakes: Vec::new(), _span: tracing::Span::none() })
            }
            Backend::MySql => {
                Ok(WriteTx { tx: conn.begin().await?, _turn: None, wakes: Vec::new(), _span: tracing::Span::none() })
            }
        }
    }

    /// A write connection for [`Database::begin_on`].
    pub async fn writer_conn(&self) -> sqlx::Result<WriterConn> {
        Ok(WriterConn(self.writes.acquire().await?))
    }

    /// A read-only connection.
    pub async fn reads(&self) -> sqlx::Result<ReadConn> {
        Ok(ReadConn(self.reads.acquire().await?))
    }

    /// Whether the database answers a trivial read (the worker's readiness).
    pub async fn ping(&self) -> sqlx::Result<()> {
        let mut conn = self.reads().await?;
        sqlx::query("SELECT 1").execute(&mut *conn.0).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the server rolled the transaction back to break a deadlock (SQLSTATE 40001,
    /// MySQL's 1213): running it again is the remedy.
    pub fn is_deadlock(error: &sqlx::Error) -> bool {
        error.as_database_error().and_then(|e| e.code()).is_some_and(|code| code == "40001")
    }

    /// Whether an error is a unique-key violation (a lost race on a taken name, say).
    pub fn is_unique_violation(error: &sqlx::Error) -> bool {
        error.as_database_error().is_some_and(|e| e.is_unique_violation())
    }

    /// Closes the pool, waiting up to [`CLOSE_WAIT`] for connections still in use: a stop must
    /// not hang on one (on MySQL, a connection dropped in the middle of a statement is only
    /// closed once the server finishes it). What is still out then is closed when released.
    pub async fn close(&self) {
        let both = async { tokio::join!(self.writes.close(), self.reads.close()) };
        if tokio::time::timeout(CLOSE_WAIT, both).await.is_err() {
            tracing::warn!("database connections still in use after {CLOSE_WAIT:?}; stopping without them");
        }
    }
}

/// A pool of `max` connections, read-only ones when `read_only`.
async fn pool(backend: Backend, options: AnyConnectOptions, max: u32, read_only: bool) -> sqlx::Result<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // Set before WAL mode, so that it takes effect for a new file (an existing
                    // one keeps its size). Each commit writes every page it changed to the WAL,
                    // and a send changes one page in each of several keyed indexes: with 2 KiB
                    // pages a chat send writes 12 KB to disk where SQLite's default 4 KiB wrote
                    // 17 KB, for ~10 % more sends/s on the bench (README, issue 15).
                    conn.execute(SQLITE_PAGE_SIZE).await?;
                    // Durable on commit (the ack follows the commit), readers never block the writer.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    // Checkpoints run in the background (see `checkpoint_in_background`), not
                    // inside whichever commit crosses the threshold.
                    conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                    // 64 MiB: the WAL file is truncated back to it after a checkpoint.
                    conn.execute("PRAGMA journal_size_limit = 67108864").await?;
                    // 256 MiB: reads map the file instead of copying each page through a syscall.
                    conn.execute("PRAGMA mmap_size = 268435456").await?;
                    // 16 MiB of page cache, so that a large batch's changed pages do not spill
                    // to the WAL before the commit; statement journals stay in memory.
                    conn.execute("PRAGMA cache_size = -16384").await?;
                    conn.execute("PRAGMA temp_store = MEMORY").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    if read_only {
                        conn.execute("PRAGMA query_only = ON").await?;
                    }
                } else {
                    conn.execute("SET time_zone = '+00:00'").await?;
                    if read_only {
                        conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
                    }
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
}

/// The page size of a new SQLite database (see [`pool`]).
const SQLITE_PAGE_SIZE: &str = "PRAGMA page_size = 2048";

/// How long [`Database::close`] waits for connections in use.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// SQLite's automatic checkpoint runs inside the commit that crosses its threshold, so every few
/// commits one of them (and every send waiting on it) also copied the WAL back and synced the
/// database file. Here a checkpoint runs once a second instead, until the pool closes.
///
/// A passive checkpoint never blocks a writer, but under a steady stream of commits it never
/// catches up either: the WAL only starts over from its beginning when a writer begins while
/// every frame is already in the database file, so the file would grow for as long as the load
/// lasts (each page look-up searching more of it). So each round ends with a pass that holds
/// this process's writers back (see [`Database::begin`]), after which the next writer starts the
/// WAL over. Two passes beside the writers come first (the bulk, then what was written during
/// it), so that the one they wait for copies only a few milliseconds' worth.
async fn checkpoint_in_background(db: Database) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = db.writes.close_event() => return,
        }
        if checkpoint(&db.writes).await && checkpoint(&db.writes).await {
            let _turn = db.writers.lock().await;
            checkpoint(&db.writes).await;
        }
    }
}

/// A passive checkpoint; whether it ran.
async fn checkpoint(pool: &AnyPool) -> bool {
    match pool.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!("WAL checkpoint: {e}");
            false
        }
    }
}

/// `sqlite://path` with the file created if missing and its directory made.
fn sqlite_url(url: &str) -> anyhow::Result<String> {
    let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if let Some(dir) = Path::new(path).parent().filter(|d| path != ":memory:" && !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let query = if query.contains("mode=") {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// A URL without its password, for logs and errors.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}://{user}:***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_lists_come_in_power_of_two_shapes() {
        let shape = |n: i64| {
            let mut q = sqlx::QueryBuilder::<Any>::new("x IN ");
            push_in_list(&mut q, &(0..n).collect::<Vec<_>>());
            q.sql().as_str().matches('?').count()
        };
        assert_eq!([1, 2, 3, 5, 8, 9].map(shape), [1, 2, 4, 8, 8, 16]);
        assert_eq!(shape(0), 0);
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("mysql://root:secret@db/x"), "mysql://root:***@db/x");
        assert_eq!(redact("sqlite://data/user.db"), "sqlite://data/user.db");
    }

    #[tokio::test]
    async fn new_databases_have_small_pages() {
        let dir = std::env::temp_dir().join(format!("soulchat-pages-{}-{}", std::process::id(), now_nanos()));
        let db = Database::open(&format!("sqlite://{}/pages.db", dir.display())).await.expect("opens");
        let mut tx = db.begin().await.unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)").execute(&mut *tx).await.unwrap();
        let (size,): (i64,) = sqlx::query_as("PRAGMA page_size").fetch_one(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(size, 2048);
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Commits that never pause still let the WAL start over (see `checkpoint_in_background`):
    /// it holds about a second of writes, not everything written since the load began.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_continuous_writes() {
        let dir = std::env::temp_dir().join(format!("soulchat-wal-{}-{}", std::process::id(), now_nanos()));
        let db = Database::open(&format!("sqlite://{}/wal.db", dir.display())).await.expect("opens");
        let mut tx = db.begin().await.unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)").execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        let row = vec![7u8; 8192];
        let mut written = 0;
        let until = std::time::Instant::now() + CHECKPOINT_EVERY * 6;
        while std::time::Instant::now() < until {
            let mut tx = db.begin().await.unwrap();
            sqlx::query("INSERT INTO t (body) VALUES (?)").bind(&row).execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
            written += row.len() as u64;
        }
        let wal = std::fs::metadata(dir.join("wal.db-wal")).expect("a WAL file").len();
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
        // Each commit adds more to the WAL than its row (pages, frame headers): a WAL that never
        // started over would be larger than everything written.
        assert!(wal < written, "the WAL grew to {wal} bytes for {written} bytes written");
    }

    fn now_nanos() -> u128 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
    }

    #[test]
    fn sqlite_urls_create_the_file() {
        assert_eq!(sqlite_url("sqlite::memory:").unwrap(), "sqlite://:memory:?mode=rwc");
        assert!(sqlite_url("sqlite:///tmp/x.db?mode=ro").unwrap().ends_with("?mode=ro"));
    }
}
