//! A worker's own database: SQLite (the embedded default, one file per service) or
//! MySQL/MariaDB (production), chosen by URL, migrated at start under sqlx's migration lock.
//!
//! Queries go through sqlx's `Any` driver so each store is written once for both backends; the
//! SQL sticks to what both understand (no `RETURNING`, `?` placeholders, BIGINT milliseconds).
//! Where the dialects differ, a store asks [`Database::backend`].

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::{Any, AnyPool, Executor};

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

/// One service's migrations, per backend (`migrations/<service>/<backend>/`).
pub struct Migrations {
    pub sqlite: Migrator,
    pub mysql: Migrator,
}

#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
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
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // One writer at a time anyway; a few connections serve concurrent readers (WAL).
                Backend::Sqlite => 8,
                Backend::MySql => 16,
            })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Durable on commit (the ack follows the commit), readers never block the writer.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    } else {
                        conn.execute("SET time_zone = '+00:00'").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to {}", redact(&url)))?;
        Ok(Database { pool, backend })
    }

    pub async fn migrate(&self, migrations: &Migrations) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &migrations.sqlite,
            Backend::MySql => &migrations.mysql,
        };
        migrator.run(&self.pool).await.context("applying migrations")?;
        Ok(())
    }

    /// Begins a transaction that may write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes fails at once with
    /// SQLITE_BUSY when another writer committed meanwhile, which `busy_timeout` cannot wait out.
    pub async fn begin(&self) -> sqlx::Result<sqlx::Transaction<'static, Any>> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::MySql => self.pool.begin().await,
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether an error is a unique-key violation (a lost race on a taken name, say).
    pub fn is_unique_violation(error: &sqlx::Error) -> bool {
        error.as_database_error().is_some_and(|e| e.is_unique_violation())
    }

    pub async fn close(&self) {
        self.pool.close().await;
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

/// Maps a database failure to the 500 a client sees, logging the detail it must not see.
pub fn internal(error: sqlx::Error) -> soulchat_subjects::ServiceError {
    tracing::error!("database: {error}");
    soulchat_subjects::ServiceError::internal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("mysql://root:secret@db/x"), "mysql://root:***@db/x");
        assert_eq!(redact("sqlite://data/user.db"), "sqlite://data/user.db");
    }

    #[test]
    fn sqlite_urls_create_the_file() {
        assert_eq!(sqlite_url("sqlite::memory:").unwrap(), "sqlite://:memory:?mode=rwc");
        assert!(sqlite_url("sqlite:///tmp/x.db?mode=ro").unwrap().ends_with("?mode=ro"));
    }
}
