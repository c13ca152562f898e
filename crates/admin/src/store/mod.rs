//! The database behind comgate: one [`Store`] per process, shared by the
//! running gateway (`comgate serve`) and the `comgate admin` commands.
//!
//! The two run as separate processes on the same SQLite file, so the file is
//! in WAL mode (readers never wait for the writer) with a busy timeout
//! (a writer waits up to 5 s for another instead of failing), and the store
//! caches nothing: each CONNECT looks its proxy account, customer and system
//! up through an index (a test checks the query plans), so a change the CLI
//! commits is seen by the next connection. That is the whole change-detection
//! story; if lookups ever become a cost, a `data_version` check can sit in
//! front of a cache here.
//!
//! SQL is kept portable to PostgreSQL (the admin plane adds it): runtime
//! queries with `$n` placeholders (sqlx's SQLite driver numbers `$n` like
//! PostgreSQL), `ON CONFLICT`, `RETURNING`, and no SQLite-only functions.
//! Uniqueness is enforced by constraints; the checks made before a write
//! only give a better message, and a constraint violation after it (another
//! process won the race) is mapped to the same error.

mod customers;
mod migrations;
mod proxy_accounts;
mod systems;
mod users;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::error::ErrorKind;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

// The types callers need alongside the store, reachable from here too.
pub use crate::error::StoreError;
pub use crate::names::system_label;
pub use crate::role::Role;
pub use customers::{Customer, NewCustomer};
pub use proxy_accounts::ProxyAccount;
pub use systems::System;
pub use users::User;

/// How long a write waits for another process's write to finish.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections per process. SQLite serialises writers anyway; a few
/// connections let concurrent CONNECT lookups read in parallel.
const MAX_CONNECTIONS: u32 = 8;

/// Two processes started at once on a new file may both try to apply the
/// first migration; the loser fails, and on retry finds it applied.
const MIGRATION_ATTEMPTS: u32 = 3;

/// Handle to the database. Cheap to clone (a connection pool inside); clone
/// it into every task that needs it.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating the file and its directory if missing) the SQLite
    /// database at `path` and brings its schema to the current version.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_error(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        let store = Store { pool };
        store.migrate().await?;
        tracing::debug!(path = %path.display(), "database open");
        Ok(store)
    }

    /// Closes every connection, letting SQLite fold the WAL back into the
    /// database file. Other clones of this store stop working.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = migrations::migrator().await?;
        let mut attempt = 1;
        loop {
            match migrator.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(error) if attempt < MIGRATION_ATTEMPTS => {
                    tracing::warn!(%error, attempt, "database migration failed, retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// The next id for `table`, from `id_sequences` (see the first migration
    /// for why ids are not left to the database).
    async fn next_id(&self, table: &str) -> Result<i64, StoreError> {
        let id = sqlx::query_scalar(
            "UPDATE id_sequences SET last_value = last_value + 1 WHERE name = $1 RETURNING last_value",
        )
        .bind(table)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }
}

/// Now, in unix seconds, as stored.
fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn is_violation(error: &sqlx::Error, kind: ErrorKind) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.kind() == kind)
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    is_violation(error, ErrorKind::UniqueViolation)
}

fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    is_violation(error, ErrorKind::ForeignKeyViolation)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gateway runs these on every CONNECT: none may scan a table.
    #[tokio::test]
    async fn connect_time_lookups_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite"))
            .await
            .unwrap();
        for (sql, params) in [
            (proxy_accounts::BY_USERNAME, 1),
            (customers::BY_ID, 1),
            (systems::BY_LABEL, 2),
            (systems::PRIMARY, 1),
        ] {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let mut query = sqlx::query(&explain);
            for _ in 0..params {
                query = query.bind("x");
            }
            let plan: Vec<String> = query
                .fetch_all(&store.pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
                .collect();
            assert!(!plan.is_empty(), "{sql}");
            assert!(
                plan.iter().all(|step| !step.starts_with("SCAN")),
                "{sql}: {plan:?}"
            );
        }
    }

    /// The CLI and the gateway share the file: each connection must wait for
    /// the other process's writes and enforce references.
    #[tokio::test]
    async fn every_connection_has_busy_timeout_and_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite"))
            .await
            .unwrap();
        // Hold several connections at once so that not only the first is checked.
        let mut connections = Vec::new();
        for _ in 0..3 {
            connections.push(store.pool.acquire().await.unwrap());
        }
        for connection in &mut connections {
            let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&mut **connection)
                .await
                .unwrap();
            assert_eq!(timeout, 5000);
            let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(&mut **connection)
                .await
                .unwrap();
            assert_eq!(foreign_keys, 1);
        }
        drop(connections);

        let orphan = sqlx::query(
            "INSERT INTO systems (id, customer_id, name, label, is_primary, secret_hash, created_at, updated_at) \
             VALUES (1, 'nobody', 'n', 'n', FALSE, 'x', 0, 0)",
        )
        .execute(&store.pool)
        .await
        .unwrap_err();
        assert!(is_foreign_key_violation(&orphan), "{orphan}");
    }

    #[tokio::test]
    async fn ids_come_from_the_sequence_and_are_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite"))
            .await
            .unwrap();
        assert_eq!(store.next_id("systems").await.unwrap(), 1);
        assert_eq!(store.next_id("systems").await.unwrap(), 2);
        assert_eq!(store.next_id("users").await.unwrap(), 1);
        assert!(store.next_id("no_such_table").await.is_err());
    }
}
