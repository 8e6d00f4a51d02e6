//! Private databases per test: SQLite files in the test's temporary directory, or MariaDB
//! databases with a unique prefix, created by the workers at start and dropped at the end.

use std::path::Path;

use sqlx::Executor;

use crate::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

impl Backend {
    pub fn mysql_available() -> bool {
        std::env::var("SOULCHAT_TEST_MYSQL_URL").is_ok_and(|u| !u.is_empty())
    }
}

pub(crate) struct Databases {
    backend: Backend,
    /// `sqlite://<dir>` or `mysql://host:port`, without a database.
    base: String,
    prefix: String,
}

fn name(role: Role) -> &'static str {
    role.contract().expect("the gateway has no database").domain
}

impl Databases {
    pub async fn create(backend: Backend, dir: &Path) -> Databases {
        match backend {
            Backend::Sqlite => {
                Databases { backend, base: format!("sqlite://{}", dir.display()), prefix: String::new() }
            }
            Backend::MySql => {
                let base = std::env::var("SOULCHAT_TEST_MYSQL_URL").expect("SOULCHAT_TEST_MYSQL_URL");
                let prefix = format!("sc_{}", uuid::Uuid::new_v4().simple().to_string().get(..12).unwrap_or_default());
                Databases { backend, base: base.trim_end_matches('/').to_owned(), prefix }
            }
        }
    }

    /// Fresh databases on the MariaDB server at `base` (`mysql://user@host:port`).
    pub fn on_mysql(base: &str) -> Databases {
        let prefix = format!("sc_{}", uuid::Uuid::new_v4().simple().to_string().get(..12).unwrap_or_default());
        Databases { backend: Backend::MySql, base: base.trim_end_matches('/').to_owned(), prefix }
    }

    pub fn url(&self, role: Role) -> String {
        match self.backend {
            Backend::Sqlite => format!("{}/{}.db", self.base, name(role)),
            Backend::MySql => format!("{}/{}_{}_service", self.base, self.prefix, name(role)),
        }
    }

    pub async fn drop_all(&self) {
        if self.backend != Backend::MySql {
            return;
        }
        sqlx::any::install_default_drivers();
        let Ok(mut conn) = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.base).await else { return };
        for def in soulchat_subjects::SERVICES {
            let sql = format!("DROP DATABASE IF EXISTS `{}_{}_service`", self.prefix, def.domain);
            let _ = conn.execute(sqlx::AssertSqlSafe(sql)).await;
        }
    }
}
