//! The schema versions, embedded in the binary.
//!
//! We use sqlx's migrator (its `_sqlx_migrations` table records each applied
//! version with a checksum, and it works the same on PostgreSQL), but feed it
//! from `include_str!` rather than the `migrate!` macro, which would need
//! sqlx's `macros` feature for the whole workspace. A release therefore
//! carries its schema and needs no migrations folder at run time.
//!
//! To change the schema, add `migrations/NNNN_what.sql` and a line below;
//! never edit a file that has shipped (its checksum is checked at start).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// (version, description, SQL), in order.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/0001_initial.sql"),
    ),
    (
        2,
        "alarms_and_site_status",
        include_str!("../../migrations/0002_alarms_and_site_status.sql"),
    ),
    (3, "users", include_str!("../../migrations/0003_users.sql")),
    (
        4,
        "customer_details",
        include_str!("../../migrations/0004_customer_details.sql"),
    ),
    (
        5,
        "sessions_and_audit",
        include_str!("../../migrations/0005_sessions_and_audit.sql"),
    ),
    (
        6,
        "site_actions",
        include_str!("../../migrations/0006_site_actions.sql"),
    ),
];

#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The migrator over the embedded versions.
pub(crate) async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file added to `migrations/` but not listed above would silently
    /// never run.
    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|&(version, description, _)| format!("{version:04}_{description}.sql"))
            .collect();
        assert_eq!(files, listed);
    }
}
