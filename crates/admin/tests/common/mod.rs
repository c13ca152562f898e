//! The test harness every admin test file shares: a new database of each
//! kind comgate supports, and `on_each_database!`, which runs a test
//! function once on each (`<test>::sqlite`, `<test>::postgres`).

#![allow(dead_code)] // each test file uses its own part of it

pub mod api_client;

use std::path::PathBuf;

use admin::{Location, Store};
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Row, SqlitePool};
use tempfile::TempDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each test function named on both databases, as `<test>::sqlite`
/// and `<test>::postgres`.
#[macro_export]
macro_rules! on_each_database {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                super::$test(Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                if pg_harness::available() {
                    super::$test(Backend::Postgres).await;
                }
            }
        }
    )+};
}

/// A new, empty database; a SQLite one lives as long as the value.
pub struct Place {
    pub location: Location,
    _dir: Option<TempDir>,
}

impl Place {
    pub async fn new(backend: Backend) -> Place {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                Place {
                    location: Location::Sqlite(db_path(&dir)),
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => Place {
                location: Location::Postgres(pg_harness::fresh_database().await),
                _dir: None,
            },
        }
    }

    /// A store on it, as one more process would open it.
    pub async fn open(&self) -> Store {
        Store::open_at(&self.location).await.unwrap()
    }
}

/// A store on a new database.
pub struct TestDb {
    pub place: Place,
    pub store: Store,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let place = Place::new(backend).await;
        let store = place.open().await;
        TestDb { place, store }
    }

    /// The SQLite file (SQLite tests only).
    pub fn path(&self) -> PathBuf {
        match &self.place.location {
            Location::Sqlite(path) => path.clone(),
            Location::Postgres(_) => panic!("not a SQLite database"),
        }
    }

    /// Another store on the same database: another process.
    pub async fn open_again(&self) -> Store {
        self.place.open().await
    }

    /// The first column of every row of `sql`, read through an independent
    /// connection, as another process (or a curious admin with `sqlite3`
    /// or `psql`) would see the database.
    pub async fn raw_strings(&self, sql: &str) -> Vec<String> {
        match &self.place.location {
            Location::Sqlite(path) => {
                let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(path))
                    .await
                    .unwrap();
                let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows.iter().map(|r| r.get(0)).collect()
            }
            Location::Postgres(url) => {
                let pool = PgPool::connect(url).await.unwrap();
                let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows.iter().map(|r| r.get(0)).collect()
            }
        }
    }

    /// A number `sql` yields (`COUNT(*)` is BIGINT on both), likewise.
    pub async fn raw_count(&self, sql: &str) -> i64 {
        match &self.place.location {
            Location::Sqlite(path) => {
                let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(path))
                    .await
                    .unwrap();
                let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
                pool.close().await;
                n
            }
            Location::Postgres(url) => {
                let pool = PgPool::connect(url).await.unwrap();
                let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
                pool.close().await;
                n
            }
        }
    }
}

pub fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("data").join("comgate.db")
}
