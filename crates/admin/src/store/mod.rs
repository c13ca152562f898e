//! The database behind comgate: one [`Store`] per process, shared by the
//! running gateway (`comgate serve`) and the `comgate admin` commands.
//!
//! Two databases are supported, chosen by [`Location`]: a SQLite file (the
//! default, for a single host) or a PostgreSQL server. They share the
//! migrations and every query: `Pool` holds the one pool a store has, and
//! `on_pool!` runs a block of query code against it. The block is written
//! once and compiled once per database, so sqlx checks its binds and decodes
//! with each driver's own types (BOOLEAN is a `bool` on both, BIGINT an
//! `i64`); rows are read through `StoreRow`, so each `from_row` is written
//! once too. (sqlx's `Any` driver was the other way to one code path; it
//! cannot decode SQLite BOOLEAN columns, and it would set SQLite's pragmas
//! from a URL.)
//!
//! With SQLite, the gateway and the CLI run as separate processes on the same
//! file, so the file is in WAL mode (readers never wait for the writer) with
//! a busy timeout (a writer waits up to 5 s for another instead of failing),
//! set on every connection. With either database the store caches nothing:
//! each CONNECT looks its proxy account, customer and system up through an
//! index (tests check the query plans), so a change the CLI commits
//! is seen by the next connection. That is the whole change-detection story;
//! if lookups ever become a cost, a `data_version` check (or `LISTEN`) can
//! sit in front of a cache here.
//!
//! SQL is portable between the two: runtime queries with `$n` placeholders
//! (sqlx's SQLite driver numbers `$n` like PostgreSQL), `ON CONFLICT`,
//! `RETURNING`, and no database-specific functions. Lists are sorted in Rust,
//! not by `ORDER BY`, because text order follows the database's collation
//! (bytes in SQLite, the server's locale in PostgreSQL). Text can't hold NUL in
//! PostgreSQL, so stored names never contain one, and lookups with one find
//! nothing on both, without asking the database.
//! Uniqueness is enforced by constraints; the checks made before a write
//! only give a better message, and a constraint violation after it (another
//! process won the race) is mapped to the same error.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::error::ErrorKind;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::{Decode, Postgres, Row, Sqlite, Type};

use crate::seal::SealKey;

/// Runs `$body` with `$pool` bound to the store's pool, whichever database
/// it is on. The body is compiled once per database; it should end in plain
/// Rust values (decode rows inside it with a `from_row`).
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}

mod alarms;
mod assignments;
mod audit;
mod customer_list;
mod customers;
mod login;
mod migrations;
mod proxy_accounts;
mod route;
mod sessions;
mod site_actions;
mod site_status;
mod systems;
mod users;

// The types callers need alongside the store, reachable from here too.
pub use crate::error::StoreError;
pub use crate::names::system_label;
pub use crate::role::Role;
pub use alarms::{Alarm, Cleared};
pub use assignments::Visibility;
pub use audit::{Actor, AuditEvent, AuditQuery, AuditRecord};
pub use customer_list::{CustomerListRow, ListedSystem};
pub use customers::{
    Customer, CustomerChanges, CustomerDetails, CustomerSettings, NewCustomer, ServicePassword,
};
pub use login::{LoginOutcome, LoginPolicy};
pub use proxy_accounts::ProxyAccount;
pub use sessions::{token_hash, NewSession, Session};
pub use site_actions::{LatestAction, SiteAction};
pub use site_status::{Reported, SiteStatus};
pub use systems::{NewSystem, System, SystemChanges, SystemKind};
pub use users::{NewUser, User, UserChanges, UserSettings, SESSION_TIMEOUT_MINUTES};

/// How long a SQLite write waits for another process's write to finish.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long opening a PostgreSQL store, or taking a connection from its
/// pool, keeps retrying a server that refuses connections (one starting up).
pub const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections per process. SQLite serialises writers anyway; a few
/// connections let concurrent CONNECT lookups read in parallel.
const MAX_CONNECTIONS: u32 = 8;

/// Two processes started at once on a new database may both try to apply the
/// first migration; the loser fails, and on retry finds it applied.
const MIGRATION_ATTEMPTS: u32 = 3;

/// Where the data is: what `[database] url` (or `data_dir`) names.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file, created (with its directory) if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://` or `postgresql://`); the
    /// database must exist, its tables are created by the migrations.
    Postgres(String),
}

/// A database URL that names no database comgate can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidLocation(String);

impl Location {
    /// Reads a database URL: `sqlite:PATH` (also `sqlite://PATH`; an
    /// absolute path is `sqlite:///var/lib/...`), `postgres://...` or
    /// `postgresql://...`. Anything else is refused.
    pub fn from_url(url: &str) -> Result<Location, InvalidLocation> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(InvalidLocation("sqlite: URL without a file path".into()));
            }
            return Ok(Location::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            PgConnectOptions::from_str(url).map_err(|e| {
                InvalidLocation(format!("invalid PostgreSQL URL {}: {e}", redact_url(url)))
            })?;
            return Ok(Location::Postgres(url.to_owned()));
        }
        Err(InvalidLocation(
            "must be a sqlite: URL (sqlite:///var/lib/comgate/comgate.db) or a PostgreSQL URL \
             (postgres://user:password@host/database)"
                .into(),
        ))
    }

    /// A database URL, or else a path to a SQLite file.
    pub fn from_url_or_path(url_or_path: &str) -> Result<Location, InvalidLocation> {
        let looks_like_url = url_or_path.split_once(':').is_some_and(|(scheme, _)| {
            scheme.len() > 1
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
        });
        if looks_like_url {
            Location::from_url(url_or_path)
        } else if url_or_path.is_empty() {
            Err(InvalidLocation("empty database path".into()))
        } else {
            Ok(Location::Sqlite(PathBuf::from(url_or_path)))
        }
    }

    /// "sqlite" or "postgres", for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Location::Sqlite(_) => "sqlite",
            Location::Postgres(_) => "postgres",
        }
    }
}

/// The path, or the URL without its password.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

/// Like Display: a URL's password never prints.
impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Location::Postgres(_) => f.debug_tuple("Postgres").field(&self.to_string()).finish(),
        }
    }
}

/// `url` with the password (in the user part, or a `password=` parameter)
/// replaced by `********`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = out[authority_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| authority_start + i);
        if let Some(at) = out[authority_start..authority_end].rfind('@') {
            let userinfo = authority_start..authority_start + at;
            if let Some(colon) = out[userinfo.clone()].find(':') {
                out.replace_range(userinfo.start + colon + 1..userinfo.end, "********");
            }
        }
    }
    if let Some(query_start) = out.find('?') {
        let (head, query) = out.split_at(query_start + 1);
        let query = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=********"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        out = format!("{head}{query}");
    }
    out
}

/// The pool of whichever database the store is on (see `on_pool!`).
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A value the store reads from a row, decodable by both databases.
pub(crate) trait Value:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

impl<T> Value for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

/// A row of either database, so that each `from_row` is written once.
pub(crate) trait StoreRow {
    fn col<T: Value>(&self, column: &str) -> Result<T, sqlx::Error>;
}

impl StoreRow for SqliteRow {
    fn col<T: Value>(&self, column: &str) -> Result<T, sqlx::Error> {
        self.try_get(column)
    }
}

impl StoreRow for PgRow {
    fn col<T: Value>(&self, column: &str) -> Result<T, sqlx::Error> {
        self.try_get(column)
    }
}

/// Handle to the database. Cheap to clone (a connection pool inside); clone
/// it into every task that needs it.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// Seals and opens customers' service passwords; without it they can
    /// be neither stored nor revealed (everything else works).
    seal_key: Option<Arc<SealKey>>,
}

impl Store {
    /// Opens the database `url_or_path` names (see
    /// [`Location::from_url_or_path`]) and brings its schema to the current
    /// version.
    pub async fn open(url_or_path: &str) -> Result<Store, StoreError> {
        let location = Location::from_url_or_path(url_or_path)?;
        Store::open_at(&location).await
    }

    /// Opens the database at `location` and brings its schema to the
    /// current version.
    pub async fn open_at(location: &Location) -> Result<Store, StoreError> {
        match location {
            Location::Sqlite(path) => Store::open_sqlite(path).await,
            Location::Postgres(url) => Store::open_postgres(url).await,
        }
    }

    /// Opens (creating the file and its directory if missing) the SQLite
    /// database at `path` and brings its schema to the current version.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open {
            database: path.display().to_string(),
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
        let store = Store {
            pool: Pool::Sqlite(pool),
            seal_key: None,
        };
        store.migrate().await?;
        tracing::debug!(path = %path.display(), "database open (SQLite)");
        Ok(store)
    }

    /// Connects to the PostgreSQL database `url` names (which must exist)
    /// and brings its schema to the current version.
    pub async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open {
            database: redact_url(url),
            source,
        };
        // Notices ("relation _sqlx_migrations already exists, skipping" on
        // every start) would reach the CLI's output at info level.
        let options = PgConnectOptions::from_str(url)
            .map_err(open_error)?
            .options([("client_min_messages", "warning")]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(POSTGRES_CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        let store = Store {
            pool: Pool::Postgres(pool),
            seal_key: None,
        };
        store.migrate().await?;
        tracing::debug!(url = %redact_url(url), "database open (PostgreSQL)");
        Ok(store)
    }

    /// This store with `key` for customers' service passwords (see
    /// [`crate::seal`]); every process on the database must use the same
    /// key (`comgate serve` and `comgate admin` read `data_dir/seal.key`).
    pub fn with_seal_key(self, key: SealKey) -> Store {
        Store {
            seal_key: Some(Arc::new(key)),
            ..self
        }
    }

    /// Whether service passwords can be stored and revealed.
    pub fn has_seal_key(&self) -> bool {
        self.seal_key.is_some()
    }

    /// "sqlite" or "postgres".
    pub fn kind(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Closes every connection (letting SQLite fold the WAL back into the
    /// database file). Other clones of this store stop working.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = migrations::migrator().await?;
        let mut attempt = 1;
        loop {
            match on_pool!(self, |pool| migrator.run(pool).await) {
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
        const NEXT: &str =
            "UPDATE id_sequences SET last_value = last_value + 1 WHERE name = $1 RETURNING last_value";
        let id = on_pool!(self, |pool| sqlx::query_scalar(NEXT)
            .bind(table)
            .fetch_one(pool)
            .await?);
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

/// The error of a failed write of a row that belongs to system
/// `system_id`: a foreign-key violation means there is no such system.
fn system_row_error(system_id: i64) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| {
        if is_foreign_key_violation(&e) {
            StoreError::UnknownSystemId(system_id)
        } else {
            e.into()
        }
    }
}

fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    is_violation(error, ErrorKind::ForeignKeyViolation)
}

/// Whether `s` could never have been stored (PostgreSQL text holds no NUL):
/// a lookup by it finds nothing, on either database.
fn unstorable(s: &str) -> bool {
    s.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
        Store::open_sqlite(&dir.path().join("db.sqlite"))
            .await
            .unwrap()
    }

    fn sqlite_pool(store: &Store) -> &SqlitePool {
        match &store.pool {
            Pool::Sqlite(pool) => pool,
            Pool::Postgres(_) => unreachable!("a SQLite store"),
        }
    }

    /// A store on a new database of each kind: SQLite always, PostgreSQL
    /// when the test harness has it (see `pg_harness::available`).
    async fn each_database() -> Vec<(Store, tempfile::TempDir)> {
        let dir = tempfile::tempdir().unwrap();
        let mut stores = vec![(sqlite_store(&dir).await, dir)];
        if pg_harness::available() {
            let url = pg_harness::fresh_database().await;
            let store = Store::open_postgres(&url).await.unwrap();
            stores.push((store, tempfile::tempdir().unwrap()));
        }
        stores
    }

    /// The look-ups the gateway makes on every CONNECT and the admin plane
    /// on every login, with their number of parameters: none may scan a
    /// table, on either database.
    const INDEXED_LOOKUPS: &[(&str, usize)] = &[
        (proxy_accounts::BY_USERNAME, 1),
        (customers::BY_ID, 1),
        (route::BY_LABEL, 2),
        (route::PRIMARY, 1),
        (users::BY_USERNAME, 1),
        (login::FAILURES, 1),
        (login::FORGET_OLD, 1),
        (login::CLEAR, 1),
    ];

    /// The gateway runs these on every CONNECT, the admin plane on every
    /// login: none may scan a table.
    #[tokio::test]
    async fn connect_time_lookups_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir).await;
        for &(sql, params) in INDEXED_LOOKUPS {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let mut query = sqlx::query(&explain);
            for _ in 0..params {
                query = query.bind("x");
            }
            let plan: Vec<String> = query
                .fetch_all(sqlite_pool(&store))
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

    /// The same on PostgreSQL: with sequential scans discouraged, each
    /// lookup has an index to use (on near-empty tables the planner would
    /// rightly scan, so the plan itself says little without that).
    #[tokio::test]
    async fn postgres_connect_time_lookups_can_use_indexes() {
        if !pg_harness::available() {
            return;
        }
        let store = Store::open_postgres(&pg_harness::fresh_database().await)
            .await
            .unwrap();
        let Pool::Postgres(pool) = &store.pool else {
            unreachable!("a PostgreSQL store")
        };
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut *conn)
            .await
            .unwrap();
        for &(sql, params) in INDEXED_LOOKUPS {
            let explain = format!("EXPLAIN {sql}");
            let mut query = sqlx::query(&explain);
            for _ in 0..params {
                // PostgreSQL types the parameters: that one is a time.
                query = if sql == login::FORGET_OLD {
                    query.bind(0_i64)
                } else {
                    query.bind("x")
                };
            }
            let plan: Vec<String> = query
                .fetch_all(&mut *conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|row| sqlx::Row::get::<String, _>(row, 0))
                .collect();
            assert!(
                plan.iter().any(|step| step.contains("Index")),
                "{sql}: {plan:?}"
            );
            assert!(
                plan.iter().all(|step| !step.contains("Seq Scan")),
                "{sql}: {plan:?}"
            );
        }
    }

    /// The CLI and the gateway share the file: each connection must wait for
    /// the other process's writes and enforce references.
    #[tokio::test]
    async fn every_sqlite_connection_has_busy_timeout_and_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(&dir).await;
        // Hold several connections at once so that not only the first is checked.
        let mut connections = Vec::new();
        for _ in 0..3 {
            connections.push(sqlite_pool(&store).acquire().await.unwrap());
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
            let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut **connection)
                .await
                .unwrap();
            assert_eq!(journal_mode, "wal");
        }
    }

    /// The races the store's checks cannot see are told apart by these on
    /// both databases: a reference to a missing row, a taken unique key.
    #[tokio::test]
    async fn constraint_violations_are_recognised_on_each_database() {
        const ORPHAN: &str = "INSERT INTO systems \
            (id, customer_id, name, label, is_primary, secret_hash, created_at, updated_at) \
            VALUES (1, 'nobody', 'n', 'n', FALSE, 'x', 0, 0)";
        const CUSTOMER: &str = "INSERT INTO customers \
            (id, name, reseller, provider, created_at, updated_at) \
            VALUES ('c1', 'n', 'r', NULL, 0, 0)";
        for (store, _dir) in each_database().await {
            let kind = store.kind();
            let orphan = on_pool!(store, |pool| sqlx::query(ORPHAN)
                .execute(pool)
                .await
                .map(drop));
            let orphan = orphan.unwrap_err();
            assert!(is_foreign_key_violation(&orphan), "{kind}: {orphan}");
            assert!(!is_unique_violation(&orphan), "{kind}: {orphan}");

            let first = on_pool!(store, |pool| sqlx::query(CUSTOMER)
                .execute(pool)
                .await
                .map(drop));
            first.unwrap();
            let again = on_pool!(store, |pool| sqlx::query(CUSTOMER)
                .execute(pool)
                .await
                .map(drop));
            let again = again.unwrap_err();
            assert!(is_unique_violation(&again), "{kind}: {again}");
            assert!(!is_foreign_key_violation(&again), "{kind}: {again}");

            // The partial unique index: one primary system per customer.
            let primary = |id: i64, label: &'static str| {
                let store = store.clone();
                async move {
                    on_pool!(store, |pool| {
                        sqlx::query(
                        "INSERT INTO systems \
                         (id, customer_id, name, label, is_primary, secret_hash, created_at, updated_at) \
                         VALUES ($1, 'c1', $2, $2, TRUE, 'x', 0, 0)"
                    )
                    .bind(id)
                    .bind(label)
                    .execute(pool)
                    .await
                    .map(drop)
                    })
                }
            };
            primary(1, "a").await.unwrap();
            let second = primary(2, "b").await.unwrap_err();
            assert!(is_unique_violation(&second), "{kind}: {second}");
        }
    }

    #[tokio::test]
    async fn ids_come_from_the_sequence_and_are_not_reused() {
        for (store, _dir) in each_database().await {
            assert_eq!(
                store.next_id("systems").await.unwrap(),
                1,
                "{}",
                store.kind()
            );
            assert_eq!(store.next_id("systems").await.unwrap(), 2);
            assert_eq!(store.next_id("users").await.unwrap(), 1);
            assert!(store.next_id("no_such_table").await.is_err());
        }
    }

    #[test]
    fn locations_are_read_from_urls_and_paths() {
        let sqlite = |p: &str| Location::Sqlite(PathBuf::from(p));
        for (input, expected) in [
            (
                "sqlite:///var/lib/comgate/comgate.db",
                sqlite("/var/lib/comgate/comgate.db"),
            ),
            ("sqlite://data/comgate.db", sqlite("data/comgate.db")),
            ("sqlite:comgate.db", sqlite("comgate.db")),
            (
                "postgres://comgate:pw@db.example.com:5432/comgate",
                Location::Postgres("postgres://comgate:pw@db.example.com:5432/comgate".into()),
            ),
            (
                "postgresql://localhost/comgate",
                Location::Postgres("postgresql://localhost/comgate".into()),
            ),
        ] {
            assert_eq!(Location::from_url(input).unwrap(), expected, "{input}");
            assert_eq!(
                Location::from_url_or_path(input).unwrap(),
                expected,
                "{input}"
            );
        }
        assert_eq!(
            Location::from_url_or_path("/var/lib/comgate/comgate.db").unwrap(),
            sqlite("/var/lib/comgate/comgate.db")
        );
        assert_eq!(
            Location::from_url_or_path("data/comgate.db").unwrap(),
            sqlite("data/comgate.db")
        );
        for bad in [
            "mysql://localhost/comgate",
            "comgate.db",
            "sqlite:",
            "sqlite://",
            "",
        ] {
            assert!(Location::from_url(bad).is_err(), "{bad}");
        }
        for bad in ["mysql://localhost/comgate", "redis:x", "sqlite:", ""] {
            assert!(Location::from_url_or_path(bad).is_err(), "{bad}");
        }
        let err = Location::from_url("postgres://h:notaport/db").unwrap_err();
        assert!(err.to_string().contains("invalid PostgreSQL URL"), "{err}");
    }

    #[test]
    fn passwords_in_urls_never_print() {
        for (url, shown) in [
            (
                "postgres://comgate:s3cret@db:5432/comgate",
                "postgres://comgate:********@db:5432/comgate",
            ),
            (
                "postgresql://comgate:p@ss@db/comgate?sslmode=require",
                "postgresql://comgate:********@db/comgate?sslmode=require",
            ),
            (
                "postgres://db/comgate?user=c&password=s3cret",
                "postgres://db/comgate?user=c&password=********",
            ),
            (
                "postgres://comgate@db/comgate",
                "postgres://comgate@db/comgate",
            ),
        ] {
            assert_eq!(redact_url(url), shown);
            let location = Location::from_url(url).unwrap();
            assert_eq!(location.to_string(), shown);
            assert!(!format!("{location:?}").contains("s3cret"));
        }
    }
}
