//! Behaviour of the storage as the CLI and the gateway use it, on each
//! database it supports. Every test is a function of the [`Backend`] and runs
//! twice (`on_each_database!`): `<test>::sqlite` on a SQLite file in a
//! temporary directory, `<test>::postgres` on a new database of the test
//! PostgreSQL server (`pg_harness`; skipped loudly where PostgreSQL is not
//! installed, failing when `CI=true`). What only SQLite has (the file, WAL)
//! is tested on SQLite alone.

use std::path::{Path, PathBuf};

use admin::password::verify_password;
use admin::store::{Cleared, Reported};
use admin::{
    Location, LoginOutcome, LoginPolicy, NewCustomer, NewUser, Role, Store, StoreError,
    UserChanges, UserField, UserSettings,
};
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::SqlitePool;
use tunnel_proto::report::{AlarmReport, AlarmSource, AlarmType, Severity};

mod common;
use common::{Backend, Place, TestDb};

fn customer(id: &str, reseller: &str, provider: Option<&str>) -> NewCustomer {
    NewCustomer {
        id: id.into(),
        name: format!("Customer {id}"),
        reseller: reseller.into(),
        provider: provider.map(Into::into),
        ..Default::default()
    }
}

async fn with_customer(backend: Backend, id: &str) -> TestDb {
    let db = TestDb::new(backend).await;
    db.store
        .add_customer(customer(id, "Reseller A", Some("Distributor D")))
        .await
        .unwrap();
    db
}

// ---------------------------------------------------------------- opening

#[tokio::test]
async fn sqlite_open_creates_the_file_and_its_directory_in_wal_mode() {
    let db = TestDb::new(Backend::Sqlite).await;
    assert!(db.path().exists());
    assert_eq!(db.raw_strings("PRAGMA journal_mode").await, ["wal"]);
}

async fn reopening_keeps_data_and_does_not_rerun_migrations(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store
        .add_customer(customer("1", "R", None))
        .await
        .unwrap();
    db.store.close().await;
    let again = db.open_again().await;
    assert!(again.customer("1").await.unwrap().is_some());
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM _sqlx_migrations").await,
        6
    );
    assert_eq!(
        db.raw_strings("SELECT description FROM _sqlx_migrations WHERE success ORDER BY version")
            .await,
        [
            "initial",
            "alarms_and_site_status",
            "users",
            "customer_details",
            "sessions_and_audit",
            "site_actions"
        ]
    );
}
on_each_database!(reopening_keeps_data_and_does_not_rerun_migrations);

async fn migrations_create_every_table(backend: Backend) {
    let db = TestDb::new(backend).await;
    for table in [
        "id_sequences",
        "proxy_accounts",
        "customers",
        "systems",
        "users",
        "alarms",
        "user_labels",
        "password_history",
        "login_failures",
        "customer_tags",
        "customer_assignments",
        "sessions",
        "audit_log",
        "site_actions",
    ] {
        assert_eq!(
            db.raw_count(&format!("SELECT COUNT(*) FROM {table}")).await,
            if table == "id_sequences" { 7 } else { 0 },
            "{table}"
        );
    }
}
on_each_database!(migrations_create_every_table);

async fn two_processes_opening_a_new_database_at_once_both_succeed(backend: Backend) {
    let place = Place::new(backend).await;
    let (a, b) = tokio::join!(place.open(), place.open());
    a.add_customer(customer("1", "R", None)).await.unwrap();
    assert!(b.customer("1").await.unwrap().is_some());
}
on_each_database!(two_processes_opening_a_new_database_at_once_both_succeed);

#[tokio::test]
async fn sqlite_open_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let path = dir.path().join("is-a-dir");
    std::fs::create_dir(&path).unwrap();
    let err = Store::open_sqlite(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.to_string().contains("is-a-dir"), "{err}");
}

#[tokio::test]
async fn postgres_open_error_names_the_database_without_its_password() {
    if !pg_harness::available() {
        return;
    }
    let server = pg_harness::server().unwrap();
    let url = format!(
        "postgres://postgres:s3cret@127.0.0.1:{}/no_such_database",
        server.port()
    );
    let err = Store::open(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("no_such_database"), "{message}");
    assert!(message.contains("postgres:********@127.0.0.1"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

/// A PostgreSQL elsewhere is reached over TLS, its certificate checked
/// against the root the URL names.
#[tokio::test]
async fn postgres_over_tls_verifies_the_server() {
    if !pg_harness::available() {
        return;
    }
    let server = pg_harness::server().unwrap();
    let url = pg_harness::fresh_database().await;
    let verified = format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        server.ca_cert().display()
    );
    let store = Store::open(&verified).await.unwrap();
    store.add_customer(customer("1", "R", None)).await.unwrap();
    assert!(Store::open(&url)
        .await
        .unwrap()
        .customer("1")
        .await
        .unwrap()
        .is_some());

    // Another root: the server's certificate is refused.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.pem");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(&other, cert.cert.pem()).unwrap();
    let err = Store::open(&format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        other.display()
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
}

#[tokio::test]
async fn open_takes_a_url_or_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let store = Store::open(path.to_str().unwrap()).await.unwrap();
    assert_eq!(store.kind(), "sqlite");
    let url = format!("sqlite://{}", dir.path().join("b.db").display());
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.kind(), "sqlite");
    assert!(dir.path().join("a.db").exists() && dir.path().join("b.db").exists());

    let err = Store::open("mysql://localhost/comgate").await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidLocation(_)), "{err}");

    if pg_harness::available() {
        let url = pg_harness::fresh_database().await;
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.kind(), "postgres");
        let url = url.replacen("postgres://", "postgresql://", 1);
        assert_eq!(Store::open(&url).await.unwrap().kind(), "postgres");
    }
}

// ---------------------------------------------------------- concurrency

async fn a_write_by_one_store_is_seen_by_another_immediately(backend: Backend) {
    let db = TestDb::new(backend).await;
    let other = db.open_again().await;
    // Warm the other store's pool first, so a stale connection would show.
    assert!(other
        .find_proxy_account_by_username("u")
        .await
        .unwrap()
        .is_none());
    assert!(other.customer("12345").await.unwrap().is_none());

    db.store.set_proxy_account("R", "u", "p1").await.unwrap();
    db.store
        .add_customer(customer("12345", "R", None))
        .await
        .unwrap();
    db.store
        .add_system("12345", "IPO Main", true)
        .await
        .unwrap();

    assert!(other
        .find_proxy_account_by_username("u")
        .await
        .unwrap()
        .is_some());
    assert!(other.customer("12345").await.unwrap().is_some());
    assert!(other.system("12345", None).await.unwrap().is_some());

    // And a change, not only an addition.
    db.store.set_proxy_account("R", "u", "p2").await.unwrap();
    assert!(other
        .authenticate_proxy_account("u", "p2")
        .await
        .unwrap()
        .is_some());
    assert!(other
        .authenticate_proxy_account("u", "p1")
        .await
        .unwrap()
        .is_none());
}
on_each_database!(a_write_by_one_store_is_seen_by_another_immediately);

async fn concurrent_writers_on_two_stores_all_succeed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let other = db.open_again().await;
    let writes = |store: Store, prefix: &'static str| async move {
        for i in 0..25 {
            store
                .add_customer(customer(&format!("{prefix}{i}"), "R", None))
                .await
                .unwrap();
        }
        for i in 0..3 {
            store
                .set_proxy_account(
                    &format!("{prefix}-owner{i}"),
                    &format!("{prefix}-user{i}"),
                    "pw",
                )
                .await
                .unwrap();
        }
    };
    tokio::join!(writes(db.store.clone(), "a"), writes(other, "b"));
    assert_eq!(db.store.list_customers().await.unwrap().len(), 50);
    let accounts = db.store.list_proxy_accounts().await.unwrap();
    assert_eq!(accounts.len(), 6);
    let mut ids: Vec<i64> = accounts.iter().map(|a| a.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "ids are unique");
}
on_each_database!(concurrent_writers_on_two_stores_all_succeed);

// ------------------------------------------------------- proxy accounts

async fn proxy_account_is_found_by_username(backend: Backend) {
    let db = TestDb::new(backend).await;
    let set = db
        .store
        .set_proxy_account("Reseller A", "acc-user", "pa:ss%w\\rd")
        .await
        .unwrap();
    let found = db
        .store
        .find_proxy_account_by_username("acc-user")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, set.id);
    assert_eq!(found.owner, "Reseller A");
    assert_eq!(found.username, "acc-user");
    assert!(found.password_hash.verify("pa:ss%w\\rd"));
    assert!(!found.password_hash.verify("wrong"));
    assert!(found.updated_at > 0);
    assert!(db
        .store
        .find_proxy_account_by_username("ACC-USER")
        .await
        .unwrap()
        .is_none());
    assert!(db
        .store
        .find_proxy_account_by_username("nobody")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        db.store
            .proxy_account_of("Reseller A")
            .await
            .unwrap()
            .unwrap()
            .id,
        set.id
    );
}
on_each_database!(proxy_account_is_found_by_username);

async fn second_set_for_an_owner_replaces_username_and_password(backend: Backend) {
    let db = TestDb::new(backend).await;
    let first = db
        .store
        .set_proxy_account("R", "old", "old-pw")
        .await
        .unwrap();
    let second = db
        .store
        .set_proxy_account("R", "new", "new-pw")
        .await
        .unwrap();
    assert_eq!(second.id, first.id, "same account, updated");
    assert_eq!(second.created_at, first.created_at);
    assert!(db
        .store
        .find_proxy_account_by_username("old")
        .await
        .unwrap()
        .is_none());
    assert!(db
        .store
        .authenticate_proxy_account("new", "new-pw")
        .await
        .unwrap()
        .is_some());
    assert!(db
        .store
        .authenticate_proxy_account("new", "old-pw")
        .await
        .unwrap()
        .is_none());
    assert_eq!(db.store.list_proxy_accounts().await.unwrap().len(), 1);

    // Keeping the username while changing the password is not a conflict.
    db.store
        .set_proxy_account("R", "new", "newer-pw")
        .await
        .unwrap();
    assert!(db
        .store
        .authenticate_proxy_account("new", "newer-pw")
        .await
        .unwrap()
        .is_some());
}
on_each_database!(second_set_for_an_owner_replaces_username_and_password);

async fn proxy_username_of_another_owner_is_refused_naming_it(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store
        .set_proxy_account("Reseller X", "acme", "pw-x")
        .await
        .unwrap();
    db.store
        .set_proxy_account("Reseller Y", "acme-y", "pw-y")
        .await
        .unwrap();

    // A new owner, and an existing owner, both asking for "acme".
    for owner in ["Reseller Z", "Reseller Y"] {
        let err = db
            .store
            .set_proxy_account(owner, "acme", "pw")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::UsernameTaken { username, owner } if username == "acme" && owner == "Reseller X"),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "username acme is already used by the proxy account of reseller or distributor Reseller X"
        );
    }
    // Nothing changed.
    assert!(db
        .store
        .authenticate_proxy_account("acme", "pw-x")
        .await
        .unwrap()
        .is_some());
    assert!(db
        .store
        .authenticate_proxy_account("acme-y", "pw-y")
        .await
        .unwrap()
        .is_some());
    assert!(db
        .store
        .proxy_account_of("Reseller Z")
        .await
        .unwrap()
        .is_none());
}
on_each_database!(proxy_username_of_another_owner_is_refused_naming_it);

async fn proxy_account_fields_are_checked(backend: Backend) {
    let db = TestDb::new(backend).await;
    let err = db.store.set_proxy_account(" ", "u", "p").await.unwrap_err();
    assert_eq!(err.to_string(), "owner: must not be empty");
    let err = db
        .store
        .set_proxy_account("R", "a:b", "p")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "username: must not contain ':'");
    let err = db.store.set_proxy_account("R", "u", "").await.unwrap_err();
    assert_eq!(err.to_string(), "password: must not be empty");
    assert!(db.store.list_proxy_accounts().await.unwrap().is_empty());
}
on_each_database!(proxy_account_fields_are_checked);

async fn proxy_accounts_are_listed_by_owner(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store.set_proxy_account("B", "ub", "p").await.unwrap();
    db.store.set_proxy_account("A", "ua", "p").await.unwrap();
    let owners: Vec<String> = db
        .store
        .list_proxy_accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.owner)
        .collect();
    assert_eq!(owners, ["A", "B"]);
}
on_each_database!(proxy_accounts_are_listed_by_owner);

async fn authenticate_proxy_account_needs_user_and_password_right(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store.set_proxy_account("R", "u", "right").await.unwrap();
    let ok = db
        .store
        .authenticate_proxy_account("u", "right")
        .await
        .unwrap();
    assert_eq!(ok.unwrap().owner, "R");
    assert!(db
        .store
        .authenticate_proxy_account("u", "wrong")
        .await
        .unwrap()
        .is_none());
    assert!(db
        .store
        .authenticate_proxy_account("nobody", "right")
        .await
        .unwrap()
        .is_none());
}
on_each_database!(authenticate_proxy_account_needs_user_and_password_right);

// ------------------------------------------------------------ customers

async fn customer_is_stored_lowercase_and_found_in_any_case(backend: Backend) {
    let db = TestDb::new(backend).await;
    let added = db
        .store
        .add_customer(customer("Cust1", "Reseller A", Some("Distributor D")))
        .await
        .unwrap();
    assert_eq!(added.id, "cust1");
    let found = db.store.customer("CUST1").await.unwrap().unwrap();
    assert_eq!(found, added);
    assert_eq!(found.name, "Customer Cust1");
    assert_eq!(found.reseller, "Reseller A");
    assert_eq!(found.provider.as_deref(), Some("Distributor D"));
    assert!(db.store.customer("cust2").await.unwrap().is_none());
    assert!(db.store.customer("cust-1").await.unwrap().is_none());
}
on_each_database!(customer_is_stored_lowercase_and_found_in_any_case);

async fn duplicate_customer_is_refused_in_any_case(backend: Backend) {
    let db = with_customer(backend, "12345").await;
    let err = db
        .store
        .add_customer(customer("12345", "Other", None))
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::DuplicateCustomer(id) if id == "12345"));
    assert_eq!(err.to_string(), "customer 12345 already exists");
    let err = db.store.add_customer(customer("ABC", "R", None)).await;
    assert!(err.is_ok());
    let err = db
        .store
        .add_customer(customer("abc", "R", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateCustomer(_)), "{err}");
    // The first one is untouched.
    assert_eq!(
        db.store.customer("12345").await.unwrap().unwrap().reseller,
        "Reseller A"
    );
}
on_each_database!(duplicate_customer_is_refused_in_any_case);

async fn customer_id_must_be_letters_and_digits(backend: Backend) {
    let db = TestDb::new(backend).await;
    for bad in ["12-345", "12.345", "", "a b"] {
        let err = db
            .store
            .add_customer(customer(bad, "R", None))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidCustomerId { id, .. } if id == bad),
            "{bad}: {err}"
        );
    }
    assert!(db.store.list_customers().await.unwrap().is_empty());
}
on_each_database!(customer_id_must_be_letters_and_digits);

async fn customer_fields_are_trimmed_and_blank_provider_is_none(backend: Backend) {
    let db = TestDb::new(backend).await;
    let c = db
        .store
        .add_customer(NewCustomer {
            id: "1".into(),
            name: " Name ".into(),
            reseller: " R ".into(),
            provider: Some("  ".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (c.name.as_str(), c.reseller.as_str(), c.provider),
        ("Name", "R", None)
    );
    let err = db
        .store
        .add_customer(customer("2", "", None))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "reseller: must not be empty");
}
on_each_database!(customer_fields_are_trimmed_and_blank_provider_is_none);

async fn customer_is_served_by_its_reseller_and_provider_only(backend: Backend) {
    let db = with_customer(backend, "12345").await;
    let c = db.store.customer("12345").await.unwrap().unwrap();
    assert!(c.is_served_by("Reseller A"));
    assert!(c.is_served_by("Distributor D"));
    assert!(!c.is_served_by("Reseller B"));
    assert!(!c.is_served_by("reseller a"));
}
on_each_database!(customer_is_served_by_its_reseller_and_provider_only);

async fn customers_are_listed_by_id(backend: Backend) {
    let db = TestDb::new(backend).await;
    for id in ["300", "100", "200"] {
        db.store
            .add_customer(customer(id, "R", None))
            .await
            .unwrap();
    }
    let ids: Vec<String> = db
        .store
        .list_customers()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["100", "200", "300"]);
}
on_each_database!(customers_are_listed_by_id);

// -------------------------------------------------------------- systems

async fn system_of_an_unknown_customer_is_refused_naming_it(backend: Backend) {
    let db = TestDb::new(backend).await;
    let err = db.store.add_system("99999", "IPO", true).await.unwrap_err();
    assert!(matches!(&err, StoreError::UnknownCustomer(id) if id == "99999"));
    assert_eq!(err.to_string(), "unknown customer 99999");
    let err = db.store.list_systems("99999").await.unwrap_err();
    assert_eq!(err.to_string(), "unknown customer 99999");
}
on_each_database!(system_of_an_unknown_customer_is_refused_naming_it);

async fn system_label_is_the_dns_label_form_of_its_name(backend: Backend) {
    let db = with_customer(backend, "12345").await;
    let (main, _) = db
        .store
        .add_system("12345", "IPO Main", true)
        .await
        .unwrap();
    let (sec, _) = db.store.add_system("12345", "sec_1", false).await.unwrap();
    assert_eq!(
        (main.name.as_str(), main.label.as_str()),
        ("IPO Main", "ipo-main")
    );
    assert_eq!(sec.label, "sec-1");
    // Found by label in any case, and with the customer id in any case.
    let found = db
        .store
        .system("12345", Some("IPO-MAIN"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, main.id);
    assert_eq!(
        db.store
            .system("12345", Some("sec-1"))
            .await
            .unwrap()
            .unwrap()
            .id,
        sec.id
    );
    assert!(db
        .store
        .system("12345", Some("sec_1"))
        .await
        .unwrap()
        .is_none());
    assert!(db
        .store
        .system("12345", Some("nope"))
        .await
        .unwrap()
        .is_none());
    assert!(db
        .store
        .system("54321", Some("sec-1"))
        .await
        .unwrap()
        .is_none());
}
on_each_database!(system_label_is_the_dns_label_form_of_its_name);

async fn system_name_without_letters_or_digits_is_refused(backend: Backend) {
    let db = with_customer(backend, "12345").await;
    let err = db.store.add_system("12345", "__", false).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidSystemName { .. }), "{err}");
    let err = db.store.add_system("12345", "  ", false).await.unwrap_err();
    assert_eq!(err.to_string(), "name: must not be empty");
}
on_each_database!(system_name_without_letters_or_digits_is_refused);

async fn names_with_the_same_label_are_duplicates(backend: Backend) {
    let db = with_customer(backend, "12345").await;
    db.store
        .add_system("12345", "IPO Main", false)
        .await
        .unwrap();
    let err = db
        .store
        .add_system("12345", "ipo_main", false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::DuplicateSystem { customer, label } if customer == "12345" && label == "ipo-main"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "customer 12345 already has a system with address label ipo-main"
    );
    // The same label under another customer is fine.
    db.store
        .add_customer(customer("777", "R", None))
        .await
        .unwrap();
    db.store.add_system("777", "IPO Main", false).await.unwrap();
    assert_eq!(db.store.list_systems("12345").await.unwrap().len(), 1);
}
on_each_database!(names_with_the_same_label_are_duplicates);

async fn no_system_part_means_the_primary_system(backend: Backend) {
    let db = with_customer(backend, "12345").await;
    let (sec, _) = db.store.add_system("12345", "sec1", false).await.unwrap();
    assert!(
        !sec.is_primary,
        "the first system is primary only when asked"
    );
    assert!(db.store.system("12345", None).await.unwrap().is_none());
    let err = db.store.existing_system("12345", None).await.unwrap_err();
    assert_eq!(err.to_string(), "customer 12345 has no primary system");

    let (ipo, _) = db.store.add_system("12345", "ipo1", true).await.unwrap();
    assert!(ipo.is_primary);
    assert_eq!(
        db.store.system("12345", None).await.unwrap().unwrap().id,
        ipo.id
    );
    assert_eq!(
        db.store.existing_system("12345", None).await.unwrap().id,
        ipo.id
    );
}
on_each_database!(no_system_part_means_the_primary_system);

async fn a_second_primary_is_refused_naming_the_first(backend: Backend) {
    let db = with_customer(backend, "12345").await;
    db.store.add_system("12345", "ipo1", true).await.unwrap();
    let err = db
        .store
        .add_system("12345", "ipo2", true)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::PrimaryExists { customer, label } if customer == "12345" && label == "ipo1"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "customer 12345 already has a primary system (ipo1)"
    );
    assert!(db
        .store
        .system("12345", Some("ipo2"))
        .await
        .unwrap()
        .is_none());
    // A secondary is still welcome.
    db.store.add_system("12345", "ipo2", false).await.unwrap();
}
on_each_database!(a_second_primary_is_refused_naming_the_first);

async fn systems_are_listed_primary_first_then_by_label(backend: Backend) {
    let db = with_customer(backend, "12345").await;
    db.store.add_system("12345", "b", false).await.unwrap();
    db.store.add_system("12345", "z", true).await.unwrap();
    db.store.add_system("12345", "a", false).await.unwrap();
    let labels: Vec<String> = db
        .store
        .list_systems("12345")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.label)
        .collect();
    assert_eq!(labels, ["z", "a", "b"]);
}
on_each_database!(systems_are_listed_primary_first_then_by_label);

async fn agent_secret_verifies_only_itself(backend: Backend) {
    let db = with_customer(backend, "12345").await;
    let (system, secret) = db.store.add_system("12345", "ipo1", true).await.unwrap();
    assert_eq!(secret.len(), 43);
    assert!(system.secret_hash.verify(&secret));
    assert!(verify_password(system.secret_hash.expose(), &secret));
    assert!(!system.secret_hash.verify("not-the-secret"));
    assert!(!system.secret_hash.verify(&secret[..42]));

    let auth = |label: Option<&'static str>, secret: String| {
        let store = db.store.clone();
        async move {
            store
                .authenticate_system("12345", label, &secret)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        auth(Some("ipo1"), secret.clone()).await.unwrap().id,
        system.id
    );
    assert_eq!(auth(None, secret.clone()).await.unwrap().id, system.id);
    assert!(auth(Some("ipo1"), "wrong".into()).await.is_none());
    assert!(auth(Some("ipo9"), secret.clone()).await.is_none());

    // Every system gets its own secret.
    let (_, other) = db.store.add_system("12345", "ipo2", false).await.unwrap();
    assert_ne!(other, secret);
    assert!(auth(Some("ipo2"), secret).await.is_none());
}
on_each_database!(agent_secret_verifies_only_itself);

async fn rotating_a_secret_retires_the_old_one(backend: Backend) {
    let db = with_customer(backend, "12345").await;
    let (_, old) = db.store.add_system("12345", "ipo1", true).await.unwrap();
    let new = db
        .store
        .rotate_system_secret("12345", "ipo1")
        .await
        .unwrap();
    assert_ne!(new, old);
    let system = db.store.system("12345", None).await.unwrap().unwrap();
    assert!(system.secret_hash.verify(&new));
    assert!(!system.secret_hash.verify(&old));

    // Labels match in any case, like addresses.
    let newer = db
        .store
        .rotate_system_secret("12345", "IPO1")
        .await
        .unwrap();
    let system = db.store.system("12345", None).await.unwrap().unwrap();
    assert!(system.secret_hash.verify(&newer));
    assert!(!system.secret_hash.verify(&new));

    let err = db
        .store
        .rotate_system_secret("12345", "nope")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown system nope of customer 12345");
    let err = db
        .store
        .rotate_system_secret("99999", "ipo1")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown customer 99999");
}
on_each_database!(rotating_a_secret_retires_the_old_one);

// ---------------------------------------------------------------- users

async fn user_is_added_with_its_role(backend: Backend) {
    let db = TestDb::new(backend).await;
    let user = db
        .store
        .add_user("admin", "Adm1nPassw0rd", Role::Administrator)
        .await
        .unwrap();
    assert_eq!(user.role, Role::Administrator);
    let found = db.store.user("admin").await.unwrap().unwrap();
    assert_eq!(found.id, user.id);
    assert_eq!(found.role, Role::Administrator);
    assert!(found.password_hash.verify("Adm1nPassw0rd"));
    assert!(!found.password_hash.verify("adm1npassw0rd"));

    for role in Role::ALL {
        let name = format!("u-{}", role.as_str());
        let name = &name[..name.len().min(15)];
        db.store.add_user(name, "Passw0rdXX", role).await.unwrap();
        assert_eq!(db.store.user(name).await.unwrap().unwrap().role, role);
    }
    assert_eq!(db.store.list_users().await.unwrap().len(), 6);
}
on_each_database!(user_is_added_with_its_role);

async fn duplicate_user_is_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store
        .add_user("admin", "Adm1nPassw0rd", Role::Administrator)
        .await
        .unwrap();
    let err = db
        .store
        .add_user("admin", "Other-passw0rd", Role::Operator)
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::DuplicateUser(name) if name == "admin"));
    assert_eq!(err.to_string(), "user admin already exists");
    assert_eq!(
        db.store.user("admin").await.unwrap().unwrap().role,
        Role::Administrator
    );
}
on_each_database!(duplicate_user_is_refused);

async fn user_password_policy_is_enforced_naming_the_rule(backend: Backend) {
    let db = TestDb::new(backend).await;
    let cases = [
        ("Short1", "password: must be 9-31 characters"),
        ("Aa1-567890123456789012345678901x", "password: must be 9-31 characters"),
        (
            "alllowercase",
            "password: must contain characters of at least 2 of these types: uppercase, lowercase, digits, special characters",
        ),
        ("123456789", "password: must contain characters of at least 2 of these types: uppercase, lowercase, digits, special characters"),
    ];
    for (password, message) in cases {
        let err = db
            .store
            .add_user("someone", password, Role::Operator)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::WeakPassword(_)),
            "{password}: {err}"
        );
        assert_eq!(err.to_string(), message, "{password}");
    }
    assert!(db.store.list_users().await.unwrap().is_empty());
    db.store
        .add_user("someone", "lowercase1", Role::Operator)
        .await
        .unwrap();
}
on_each_database!(user_password_policy_is_enforced_naming_the_rule);

async fn login_name_is_checked(backend: Backend) {
    let db = TestDb::new(backend).await;
    let err = db
        .store
        .add_user("averyverylongname", "Passw0rdXX", Role::Operator)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "username: must be at most 15 characters");
    let err = db
        .store
        .add_user("", "Passw0rdXX", Role::Operator)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "username: must not be empty");
}
on_each_database!(login_name_is_checked);

// ------------------------------------------------------- user settings

const PW: &str = "Passw0rdXX";

fn new_user(username: &str, role: Role, settings: UserSettings) -> NewUser {
    NewUser {
        username: username.into(),
        password: PW.into(),
        role,
        settings,
    }
}

fn is_invalid(err: &StoreError, expected: UserField) -> bool {
    matches!(err, StoreError::InvalidUserSetting { field, .. } if *field == expected)
}

async fn user_settings_are_stored_and_read_back(backend: Backend) {
    let db = TestDb::new(backend).await;
    let settings = UserSettings {
        first_name: " Ada ".into(),
        last_name: "Lovelace".into(),
        phone: "+441234567890".into(),
        mobile: "015112345678".into(),
        email: "ada@example.com".into(),
        labels: vec![
            "Reseller B".into(),
            " Reseller A".into(),
            "Reseller B".into(),
        ],
        session_timeout_minutes: 25,
        wallboard: true,
        disabled: false,
        force_password_change: true,
        expires_at: Some(2_000_000_000),
    };
    let added = db
        .store
        .add_user_with(new_user("ada", Role::ReadOnly, settings), None)
        .await
        .unwrap();
    let expected = UserSettings {
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        phone: "+441234567890".into(),
        mobile: "015112345678".into(),
        email: "ada@example.com".into(),
        labels: vec!["Reseller A".into(), "Reseller B".into()],
        session_timeout_minutes: 25,
        wallboard: true,
        disabled: false,
        force_password_change: true,
        expires_at: Some(2_000_000_000),
    };
    assert_eq!(added.settings, expected);
    let by_id = db.store.user_by_id(added.id).await.unwrap().unwrap();
    let by_name = db.store.user_by_username("ada").await.unwrap().unwrap();
    let listed = db.store.list_users().await.unwrap();
    for user in [&by_id, &by_name, &listed[0]] {
        assert_eq!(user.id, added.id);
        assert_eq!(user.role, Role::ReadOnly);
        assert_eq!(user.settings, expected);
        assert_eq!(user.created_by, None);
    }
    assert!(db.store.user_by_id(added.id + 1).await.unwrap().is_none());
    assert_eq!(
        db.raw_strings("SELECT first_name || '|' || last_name || '|' || phone || '|' || mobile || '|' || email FROM users")
            .await,
        ["Ada|Lovelace|+441234567890|015112345678|ada@example.com"]
    );
    assert_eq!(
        db.raw_count("SELECT session_timeout_minutes FROM users")
            .await,
        25
    );
    assert_eq!(
        db.raw_count("SELECT expires_at FROM users WHERE wallboard AND force_password_change AND NOT disabled")
            .await,
        2_000_000_000
    );
    let mut labels = db.raw_strings("SELECT label FROM user_labels").await;
    labels.sort();
    assert_eq!(labels, ["Reseller A", "Reseller B"]);
}
on_each_database!(user_settings_are_stored_and_read_back);

async fn add_user_gives_the_default_settings(backend: Backend) {
    let db = TestDb::new(backend).await;
    let user = db.store.add_user("op", PW, Role::Operator).await.unwrap();
    assert_eq!(user.settings, UserSettings::default());
    assert_eq!(user.settings.session_timeout_minutes, 10);
    assert_eq!(
        db.raw_count("SELECT session_timeout_minutes FROM users")
            .await,
        10
    );
    assert_eq!(
        db.raw_count(
            "SELECT COUNT(*) FROM users WHERE NOT wallboard AND NOT disabled \
             AND NOT force_password_change AND expires_at IS NULL AND created_by IS NULL"
        )
        .await,
        1
    );
    // The first password is the first entry of the history.
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM password_history").await,
        1
    );
}
on_each_database!(add_user_gives_the_default_settings);

async fn first_and_last_name_are_at_most_31_characters_together(backend: Backend) {
    let db = TestDb::new(backend).await;
    let named = |first: &str, last: &str| UserSettings {
        first_name: first.into(),
        last_name: last.into(),
        ..UserSettings::default()
    };
    // 15 + space + 15 = 31.
    db.store
        .add_user_with(
            new_user("a", Role::Operator, named(&"f".repeat(15), &"l".repeat(15))),
            None,
        )
        .await
        .unwrap();
    db.store
        .add_user_with(
            new_user("b", Role::Operator, named(&"f".repeat(31), "")),
            None,
        )
        .await
        .unwrap();
    for (first, last) in [
        ("f".repeat(16), "l".repeat(15)),
        ("f".repeat(32), String::new()),
        (String::new(), "ü".repeat(32)),
    ] {
        let err = db
            .store
            .add_user_with(new_user("c", Role::Operator, named(&first, &last)), None)
            .await
            .unwrap_err();
        assert!(is_invalid(&err, UserField::Name), "{err}");
        assert_eq!(
            err.to_string(),
            "name: first and last name together must be at most 31 characters"
        );
    }
    let err = db
        .store
        .add_user_with(
            new_user("c", Role::Operator, named("Ada\n", "x\u{7}y")),
            None,
        )
        .await
        .unwrap_err();
    assert!(is_invalid(&err, UserField::Name), "{err}");
    assert!(db.store.user("c").await.unwrap().is_none());
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM users").await, 2);
    // Editing is checked the same way, and leaves the stored names alone.
    let a = db.store.user("a").await.unwrap().unwrap();
    let err = db
        .store
        .update_user(
            a.id,
            UserChanges {
                first_name: Some("f".repeat(16)),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap_err();
    assert!(is_invalid(&err, UserField::Name), "{err}");
    assert_eq!(
        db.raw_strings("SELECT first_name FROM users WHERE username = 'a'")
            .await,
        ["f".repeat(15)]
    );
}
on_each_database!(first_and_last_name_are_at_most_31_characters_together);

async fn session_timeout_is_5_to_30_minutes_in_steps_of_5(backend: Backend) {
    let db = TestDb::new(backend).await;
    let user = db.store.add_user("op", PW, Role::Operator).await.unwrap();
    for minutes in [5, 10, 15, 20, 25, 30] {
        let updated = db
            .store
            .update_user(
                user.id,
                UserChanges {
                    session_timeout_minutes: Some(minutes),
                    ..UserChanges::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(updated.settings.session_timeout_minutes, minutes);
        assert_eq!(
            db.raw_count("SELECT session_timeout_minutes FROM users")
                .await,
            minutes
        );
    }
    for minutes in [0, 4, 7, 29, 31, 35, 60, -5] {
        let err = db
            .store
            .update_user(
                user.id,
                UserChanges {
                    session_timeout_minutes: Some(minutes),
                    ..UserChanges::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            is_invalid(&err, UserField::SessionTimeout),
            "{minutes}: {err}"
        );
        let err = db
            .store
            .add_user_with(
                new_user(
                    "other",
                    Role::Operator,
                    UserSettings {
                        session_timeout_minutes: minutes,
                        ..UserSettings::default()
                    },
                ),
                None,
            )
            .await
            .unwrap_err();
        assert!(
            is_invalid(&err, UserField::SessionTimeout),
            "{minutes}: {err}"
        );
    }
    assert_eq!(
        db.raw_count("SELECT session_timeout_minutes FROM users")
            .await,
        30
    );
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM users").await, 1);
}
on_each_database!(session_timeout_is_5_to_30_minutes_in_steps_of_5);

async fn wallboard_is_only_for_support_and_read_only(backend: Backend) {
    let db = TestDb::new(backend).await;
    let wallboard = || UserSettings {
        wallboard: true,
        ..UserSettings::default()
    };
    for (name, role) in [("sup", Role::Support), ("ro", Role::ReadOnly)] {
        let user = db
            .store
            .add_user_with(new_user(name, role, wallboard()), None)
            .await
            .unwrap();
        assert!(user.settings.wallboard);
    }
    for role in [Role::Administrator, Role::Supervisor, Role::Operator] {
        let err = db
            .store
            .add_user_with(new_user("x", role, wallboard()), None)
            .await
            .unwrap_err();
        assert!(is_invalid(&err, UserField::Wallboard), "{role}: {err}");
    }
    // A role change that would leave wallboard on a role without it is
    // refused; with wallboard switched off it is allowed.
    let ro = db.store.user("ro").await.unwrap().unwrap();
    let err = db
        .store
        .update_user(
            ro.id,
            UserChanges {
                role: Some(Role::Operator),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap_err();
    assert!(is_invalid(&err, UserField::Wallboard), "{err}");
    assert_eq!(
        db.raw_strings("SELECT role FROM users WHERE username = 'ro'")
            .await,
        ["read-only"]
    );
    db.store
        .update_user(
            ro.id,
            UserChanges {
                role: Some(Role::Operator),
                wallboard: Some(false),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM users WHERE wallboard")
            .await,
        1
    );
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM users").await, 2);
}
on_each_database!(wallboard_is_only_for_support_and_read_only);

async fn phone_and_mobile_are_at_most_15_digits(backend: Backend) {
    let db = TestDb::new(backend).await;
    let user = db.store.add_user("op", PW, Role::Operator).await.unwrap();
    for good in ["", "123456789012345", "+441234567890", "0"] {
        let updated = db
            .store
            .update_user(
                user.id,
                UserChanges {
                    phone: Some(good.into()),
                    mobile: Some(good.into()),
                    ..UserChanges::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(updated.settings.phone, good);
        assert_eq!(db.raw_strings("SELECT mobile FROM users").await, [good]);
    }
    for bad in [
        "1234567890123456",
        "+1234567890123456",
        "12-34",
        "0123 456",
        "abc",
        "+",
    ] {
        for field in [UserField::Phone, UserField::Mobile] {
            let mut changes = UserChanges::default();
            if field == UserField::Phone {
                changes.phone = Some(bad.into());
            } else {
                changes.mobile = Some(bad.into());
            }
            let err = db.store.update_user(user.id, changes).await.unwrap_err();
            assert!(is_invalid(&err, field), "{bad}: {err}");
            assert!(err.to_string().starts_with(field.as_str()), "{err}");
        }
    }
    assert_eq!(db.raw_strings("SELECT phone FROM users").await, ["0"]);
}
on_each_database!(phone_and_mobile_are_at_most_15_digits);

async fn email_must_look_like_an_address(backend: Backend) {
    let db = TestDb::new(backend).await;
    let user = db.store.add_user("op", PW, Role::Operator).await.unwrap();
    for bad in ["ada", "@example.com", "ada@", "a b@example.com", "a@b@c"] {
        let err = db
            .store
            .update_user(
                user.id,
                UserChanges {
                    email: Some(bad.into()),
                    ..UserChanges::default()
                },
            )
            .await
            .unwrap_err();
        assert!(is_invalid(&err, UserField::Email), "{bad}: {err}");
    }
    db.store
        .update_user(
            user.id,
            UserChanges {
                email: Some("ada@example.com".into()),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        db.raw_strings("SELECT email FROM users").await,
        ["ada@example.com"]
    );
}
on_each_database!(email_must_look_like_an_address);

async fn labels_are_stored_listed_and_replaced(backend: Backend) {
    let db = TestDb::new(backend).await;
    let labelled = |labels: &[&str]| UserSettings {
        labels: labels.iter().map(|l| l.to_string()).collect(),
        ..UserSettings::default()
    };
    let op = db
        .store
        .add_user_with(
            new_user(
                "op",
                Role::Operator,
                labelled(&["Reseller B", "Reseller A"]),
            ),
            None,
        )
        .await
        .unwrap();
    db.store
        .add_user_with(
            new_user("sv", Role::Supervisor, labelled(&["Distributor D"])),
            None,
        )
        .await
        .unwrap();
    db.store
        .add_user("admin", PW, Role::Administrator)
        .await
        .unwrap();
    let listed: Vec<(String, Vec<String>)> = db
        .store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.username, u.settings.labels))
        .collect();
    assert_eq!(
        listed,
        [
            ("admin".to_string(), vec![]),
            (
                "op".to_string(),
                vec!["Reseller A".to_string(), "Reseller B".to_string()]
            ),
            ("sv".to_string(), vec!["Distributor D".to_string()]),
        ]
    );
    assert_eq!(
        db.raw_count(&format!(
            "SELECT COUNT(*) FROM user_labels WHERE user_id = {}",
            op.id
        ))
        .await,
        2
    );

    // Replaced as a whole by an edit.
    let updated = db
        .store
        .update_user(
            op.id,
            UserChanges {
                labels: Some(vec!["Reseller C".into()]),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.settings.labels, ["Reseller C"]);
    assert_eq!(
        db.raw_strings(&format!(
            "SELECT label FROM user_labels WHERE user_id = {}",
            op.id
        ))
        .await,
        ["Reseller C"]
    );

    // Empty labels, and labels on roles that see every customer, are refused.
    for bad in [
        vec!["".to_string()],
        vec!["  ".to_string()],
        vec!["a\0b".to_string()],
    ] {
        let err = db
            .store
            .update_user(
                op.id,
                UserChanges {
                    labels: Some(bad.clone()),
                    ..UserChanges::default()
                },
            )
            .await
            .unwrap_err();
        assert!(is_invalid(&err, UserField::Labels), "{bad:?}: {err}");
    }
    for role in [Role::Administrator, Role::Support] {
        let err = db
            .store
            .add_user_with(new_user("x", role, labelled(&["Reseller A"])), None)
            .await
            .unwrap_err();
        assert!(is_invalid(&err, UserField::Labels), "{role}: {err}");
    }
    let err = db
        .store
        .update_user(
            op.id,
            UserChanges {
                role: Some(Role::Administrator),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap_err();
    assert!(is_invalid(&err, UserField::Labels), "{err}");
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM user_labels").await, 2);
}
on_each_database!(labels_are_stored_listed_and_replaced);

async fn a_supervisor_is_recorded_as_creator_of_its_operators(backend: Backend) {
    let db = TestDb::new(backend).await;
    let admin = db
        .store
        .add_user("admin", PW, Role::Administrator)
        .await
        .unwrap();
    let sv = db.store.add_user("sv", PW, Role::Supervisor).await.unwrap();
    let op = db
        .store
        .add_user_with(
            new_user("op", Role::Operator, UserSettings::default()),
            Some(sv.id),
        )
        .await
        .unwrap();
    assert_eq!(op.created_by, Some(sv.id));
    assert_eq!(
        db.store
            .user_by_id(op.id)
            .await
            .unwrap()
            .unwrap()
            .created_by,
        Some(sv.id)
    );
    for (creator, role) in [
        (admin.id, Role::Operator),
        (sv.id, Role::Support),
        (sv.id, Role::Supervisor),
        (9999, Role::Operator),
    ] {
        let err = db
            .store
            .add_user_with(new_user("x", role, UserSettings::default()), Some(creator))
            .await
            .unwrap_err();
        assert!(
            is_invalid(&err, UserField::CreatedBy),
            "{creator} {role}: {err}"
        );
    }
    // Deleting the Supervisor leaves its Operator, no longer anyone's.
    db.store.delete_user(admin.id, sv.id).await.unwrap();
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM users WHERE created_by IS NULL")
            .await,
        2
    );
    assert!(db
        .store
        .user_by_id(op.id)
        .await
        .unwrap()
        .unwrap()
        .created_by
        .is_none());
}
on_each_database!(a_supervisor_is_recorded_as_creator_of_its_operators);

async fn a_user_cannot_delete_itself(backend: Backend) {
    let db = TestDb::new(backend).await;
    let admin = db
        .store
        .add_user("admin", PW, Role::Administrator)
        .await
        .unwrap();
    let op = db
        .store
        .add_user_with(
            new_user(
                "op",
                Role::Operator,
                UserSettings {
                    labels: vec!["Reseller A".into()],
                    ..UserSettings::default()
                },
            ),
            None,
        )
        .await
        .unwrap();
    let err = db.store.delete_user(admin.id, admin.id).await.unwrap_err();
    assert!(matches!(err, StoreError::CannotDeleteSelf), "{err}");
    assert!(db.store.user_by_id(admin.id).await.unwrap().is_some());

    db.store.delete_user(admin.id, op.id).await.unwrap();
    assert!(db.store.user("op").await.unwrap().is_none());
    assert_eq!(
        db.raw_strings("SELECT username FROM users").await,
        ["admin"]
    );
    // Its labels and password history went with it.
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM user_labels").await, 0);
    assert_eq!(
        db.raw_count(&format!(
            "SELECT COUNT(*) FROM password_history WHERE user_id = {}",
            op.id
        ))
        .await,
        0
    );
    let err = db.store.delete_user(admin.id, op.id).await.unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownUserId(id) if id == op.id),
        "{err}"
    );
    let err = db
        .store
        .update_user(op.id, UserChanges::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownUserId(_)), "{err}");
}
on_each_database!(a_user_cannot_delete_itself);

// ------------------------------------------------------- passwords, logins

const T0: i64 = 1_800_000_000;

async fn login(db: &TestDb, username: &str, password: &str, now: i64) -> LoginOutcome {
    db.store
        .check_login(username, password, now, LoginPolicy::default())
        .await
        .unwrap()
}

fn accepted(outcome: &LoginOutcome) -> bool {
    matches!(outcome, LoginOutcome::Accepted { .. })
}

async fn three_failures_within_ten_minutes_block_for_ten_minutes(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store.add_user("op", PW, Role::Operator).await.unwrap();
    for at in [T0, T0 + 100, T0 + 200] {
        assert!(matches!(
            login(&db, "op", "wrong-Passw0rd", at).await,
            LoginOutcome::Invalid
        ));
    }
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM login_failures WHERE username = 'op'")
            .await,
        3
    );
    // Blocked until 10 minutes after the last failure, even with the right
    // password, and these attempts are not counted.
    for at in [T0 + 201, T0 + 500, T0 + 799] {
        let outcome = login(&db, "op", PW, at).await;
        assert!(
            matches!(outcome, LoginOutcome::Blocked { until } if until == T0 + 800),
            "{at}: {outcome:?}"
        );
    }
    assert!(matches!(
        login(&db, "op", "wrong-Passw0rd", T0 + 300).await,
        LoginOutcome::Blocked { .. }
    ));
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM login_failures").await, 3);
    // When the block is over the right password works, and clears the failures.
    let outcome = login(&db, "op", PW, T0 + 800).await;
    assert!(accepted(&outcome), "{outcome:?}");
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM login_failures").await, 0);
}
on_each_database!(three_failures_within_ten_minutes_block_for_ten_minutes);

async fn three_failures_spread_over_more_than_ten_minutes_do_not_block(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store.add_user("op", PW, Role::Operator).await.unwrap();
    for at in [T0, T0 + 400, T0 + 601] {
        assert!(matches!(
            login(&db, "op", "wrong-Passw0rd", at).await,
            LoginOutcome::Invalid
        ));
    }
    let outcome = login(&db, "op", PW, T0 + 602).await;
    assert!(accepted(&outcome), "{outcome:?}");
}
on_each_database!(three_failures_spread_over_more_than_ten_minutes_do_not_block);

async fn a_successful_login_clears_the_failures(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store.add_user("op", PW, Role::Operator).await.unwrap();
    db.store
        .add_user("other", PW, Role::Operator)
        .await
        .unwrap();
    login(&db, "op", "wrong-Passw0rd", T0).await;
    login(&db, "op", "wrong-Passw0rd", T0 + 10).await;
    login(&db, "other", "wrong-Passw0rd", T0 + 10).await;
    assert!(accepted(&login(&db, "op", PW, T0 + 20).await));
    // Only that name's failures.
    assert_eq!(
        db.raw_strings("SELECT username FROM login_failures").await,
        ["other"]
    );
    login(&db, "op", "wrong-Passw0rd", T0 + 30).await;
    login(&db, "op", "wrong-Passw0rd", T0 + 40).await;
    let outcome = login(&db, "op", PW, T0 + 50).await;
    assert!(accepted(&outcome), "{outcome:?}");
}
on_each_database!(a_successful_login_clears_the_failures);

async fn unknown_login_names_are_blocked_too(backend: Backend) {
    let db = TestDb::new(backend).await;
    for at in [T0, T0 + 1, T0 + 2] {
        assert!(matches!(
            login(&db, "ghost", "Passw0rdXX", at).await,
            LoginOutcome::Invalid
        ));
    }
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM login_failures WHERE username = 'ghost'")
            .await,
        3
    );
    assert!(matches!(
        login(&db, "ghost", "Passw0rdXX", T0 + 3).await,
        LoginOutcome::Blocked { until } if until == T0 + 602
    ));
    // A user created later under that name is blocked like any other.
    db.store
        .add_user("ghost", PW, Role::Operator)
        .await
        .unwrap();
    assert!(matches!(
        login(&db, "ghost", PW, T0 + 4).await,
        LoginOutcome::Blocked { .. }
    ));
    assert!(accepted(&login(&db, "ghost", PW, T0 + 602).await));
    // Names no user can have are refused without being stored.
    login(&db, "much-too-long-a-name", "x", T0).await;
    login(&db, "nul\0", "x", T0).await;
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM login_failures").await, 0);
    // Failures too old to block anything are deleted by any later attempt.
    login(&db, "guess1", "x", T0).await;
    login(&db, "guess2", "x", T0 + 1).await;
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM login_failures").await, 2);
    login(&db, "guess3", "x", T0 + 1201).await;
    assert_eq!(
        db.raw_strings("SELECT username FROM login_failures ORDER BY at")
            .await,
        ["guess2", "guess3"]
    );
}
on_each_database!(unknown_login_names_are_blocked_too);

async fn disabled_and_expired_accounts_are_refused(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store
        .add_user_with(
            new_user(
                "off",
                Role::Operator,
                UserSettings {
                    disabled: true,
                    ..UserSettings::default()
                },
            ),
            None,
        )
        .await
        .unwrap();
    assert!(matches!(
        login(&db, "off", PW, T0).await,
        LoginOutcome::Disabled
    ));
    // The wrong password says only Invalid, and counts.
    assert!(matches!(
        login(&db, "off", "wrong-Passw0rd", T0).await,
        LoginOutcome::Invalid
    ));
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM login_failures").await, 1);

    let exp = db
        .store
        .add_user_with(
            new_user(
                "exp",
                Role::Operator,
                UserSettings {
                    expires_at: Some(T0 + 100),
                    ..UserSettings::default()
                },
            ),
            None,
        )
        .await
        .unwrap();
    assert!(accepted(&login(&db, "exp", PW, T0 + 99).await));
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM users WHERE username = 'exp' AND disabled")
            .await,
        0
    );
    assert!(matches!(
        login(&db, "exp", PW, T0 + 100).await,
        LoginOutcome::Expired
    ));
    // Now disabled in the database, and refused as such from then on.
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM users WHERE username = 'exp' AND disabled")
            .await,
        1
    );
    assert!(
        db.store
            .user_by_id(exp.id)
            .await
            .unwrap()
            .unwrap()
            .settings
            .disabled
    );
    assert!(matches!(
        login(&db, "exp", PW, T0 + 101).await,
        LoginOutcome::Disabled
    ));
    // Re-enabled with a later date, it logs in again.
    db.store
        .update_user(
            exp.id,
            UserChanges {
                disabled: Some(false),
                expires_at: Some(Some(T0 + 1000)),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap();
    assert!(accepted(&login(&db, "exp", PW, T0 + 102).await));
}
on_each_database!(disabled_and_expired_accounts_are_refused);

async fn set_password_clears_force_password_change(backend: Backend) {
    let db = TestDb::new(backend).await;
    let user = db
        .store
        .add_user_with(
            new_user(
                "op",
                Role::Operator,
                UserSettings {
                    force_password_change: true,
                    ..UserSettings::default()
                },
            ),
            None,
        )
        .await
        .unwrap();
    let outcome = login(&db, "op", PW, T0).await;
    assert!(
        matches!(&outcome, LoginOutcome::Accepted { must_change_password: true, user: u } if u.id == user.id),
        "{outcome:?}"
    );
    db.store
        .set_password(user.id, "New-passw0rd", 5)
        .await
        .unwrap();
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM users WHERE force_password_change")
            .await,
        0
    );
    assert!(matches!(
        login(&db, "op", "New-passw0rd", T0 + 1).await,
        LoginOutcome::Accepted {
            must_change_password: false,
            ..
        }
    ));
    assert!(matches!(
        login(&db, "op", PW, T0 + 2).await,
        LoginOutcome::Invalid
    ));
    let hash = db.raw_strings("SELECT password_hash FROM users").await;
    assert!(verify_password(&hash[0], "New-passw0rd"));
}
on_each_database!(set_password_clears_force_password_change);

async fn previous_passwords_cannot_be_reused(backend: Backend) {
    let db = TestDb::new(backend).await;
    let user = db
        .store
        .add_user("op", "Passw0rd-0", Role::Operator)
        .await
        .unwrap();
    for n in 1..=3 {
        db.store
            .set_password(user.id, &format!("Passw0rd-{n}"), 3)
            .await
            .unwrap();
    }
    // Four passwords set, but only the last 3 are ever read: the rest go.
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM password_history").await,
        3
    );
    // Setting `Passw0rd-{n}` again (history 3) is refused as a reuse.
    let refused_as_reused = async |n: u32| {
        let err = db
            .store
            .set_password(user.id, &format!("Passw0rd-{n}"), 3)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::PasswordReused), "{n}: {err}");
        assert_eq!(
            err.to_string(),
            "password: must not be one of the previous passwords"
        );
    };
    // The current one and the two before it are the last 3.
    for n in [3, 2, 1] {
        refused_as_reused(n).await;
    }
    // The policy still applies.
    let err = db
        .store
        .set_password(user.id, "short", 3)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WeakPassword(_)), "{err}");
    assert!(accepted(&login(&db, "op", "Passw0rd-3", T0).await));
    // Older than the last 3: allowed again.
    db.store
        .set_password(user.id, "Passw0rd-0", 3)
        .await
        .unwrap();
    assert!(accepted(&login(&db, "op", "Passw0rd-0", T0).await));
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM password_history").await,
        3
    );
    // Passwords 2 and 3 are still remembered; 1 went with the trim.
    for n in [3, 2] {
        refused_as_reused(n).await;
    }
    // Even with no history asked for, the current password is no change.
    let err = db
        .store
        .set_password(user.id, "Passw0rd-0", 0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PasswordReused), "{err}");
    let err = db
        .store
        .set_password(user.id + 1, "Passw0rd-9", 3)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownUserId(_)), "{err}");
}
on_each_database!(previous_passwords_cannot_be_reused);

// ------------------------------------------------------- secrets at rest

async fn database_holds_no_plaintext_password_or_secret(backend: Backend) {
    let db = with_customer(backend, "12345").await;
    let proxy_password = "Proxy-Pa55word-plain";
    let user_password = "User-Pa55word-plain";
    db.store
        .set_proxy_account("Reseller A", "acc", proxy_password)
        .await
        .unwrap();
    db.store
        .add_user("admin", user_password, Role::Administrator)
        .await
        .unwrap();
    let (_, secret) = db.store.add_system("12345", "ipo1", true).await.unwrap();

    for (sql, plaintext) in [
        ("SELECT password_hash FROM proxy_accounts", proxy_password),
        ("SELECT password_hash FROM users", user_password),
        ("SELECT secret_hash FROM systems", secret.as_str()),
    ] {
        let stored = db.raw_strings(sql).await;
        assert_eq!(stored.len(), 1, "{sql}");
        let stored = &stored[0];
        assert!(stored.starts_with("$argon2id$"), "{sql}: {stored}");
        assert!(!stored.contains(plaintext), "{sql}");
        assert!(verify_password(stored, plaintext), "{sql}");
    }

    // Nor anywhere in the SQLite files (database and write-ahead log).
    if backend == Backend::Sqlite {
        db.store.close().await;
        for path in files_of(&db.path()) {
            let bytes = std::fs::read(&path).unwrap();
            for plaintext in [proxy_password, user_password, secret.as_str()] {
                assert!(
                    !bytes
                        .windows(plaintext.len())
                        .any(|w| w == plaintext.as_bytes()),
                    "{} holds a plaintext",
                    path.display()
                );
            }
        }
    }
}
on_each_database!(database_holds_no_plaintext_password_or_secret);

fn files_of(db: &Path) -> Vec<PathBuf> {
    let mut files = vec![db.to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        if path.exists() {
            files.push(path);
        }
    }
    files
}

async fn hashes_never_print_or_serialize(backend: Backend) {
    let db = with_customer(backend, "12345").await;
    let account = db.store.set_proxy_account("R", "u", "p").await.unwrap();
    let (system, _) = db.store.add_system("12345", "ipo1", true).await.unwrap();
    let user = db
        .store
        .add_user("admin", "Adm1nPassw0rd", Role::Administrator)
        .await
        .unwrap();

    let debug = format!("{account:?} {system:?} {user:?}");
    assert!(!debug.contains("argon2"), "{debug}");
    assert!(debug.contains("password_hash: ********"), "{debug}");
    assert!(debug.contains("secret_hash: ********"), "{debug}");

    let json = serde_json::to_string(&(account, system, user)).unwrap();
    assert!(!json.contains("argon2"), "{json}");
    assert!(!json.contains("_hash"), "{json}");
    assert!(json.contains("\"role\":\"administrator\""), "{json}");
}
on_each_database!(hashes_never_print_or_serialize);

// ------------------------------------------- the same on both databases

/// Lists come in byte order whatever the database's collation (PostgreSQL
/// sorts text by its locale, SQLite by bytes).
async fn lists_are_in_byte_order(backend: Backend) {
    let db = TestDb::new(backend).await;
    let owners = ["b", "B", "a", "A-b", "ab", "Ab"];
    for (i, owner) in owners.iter().enumerate() {
        db.store
            .set_proxy_account(owner, &format!("user{i}"), "pw")
            .await
            .unwrap();
    }
    let listed: Vec<String> = db
        .store
        .list_proxy_accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.owner)
        .collect();
    assert_eq!(listed, ["A-b", "Ab", "B", "a", "ab", "b"]);

    db.store
        .add_customer(customer("1", "R", None))
        .await
        .unwrap();
    for name in ["ab-c", "abb", "a-z", "ab"] {
        db.store.add_system("1", name, false).await.unwrap();
    }
    let labels: Vec<String> = db
        .store
        .list_systems("1")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.label)
        .collect();
    assert_eq!(labels, ["a-z", "ab", "ab-c", "abb"]);

    for name in ["zed", "Zed", "amy"] {
        db.store
            .add_user(name, "Passw0rdXX", Role::Operator)
            .await
            .unwrap();
    }
    let users: Vec<String> = db
        .store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(users, ["Zed", "amy", "zed"]);
}
on_each_database!(lists_are_in_byte_order);

/// PostgreSQL text cannot hold NUL: such a name is refused on both, and a
/// lookup by one (a forged Proxy-Authorization) finds nothing on both
/// instead of failing on one.
async fn nul_in_names_is_refused_and_finds_nothing(backend: Backend) {
    let db = with_customer(backend, "12345").await;
    db.store.add_system("12345", "ipo1", true).await.unwrap();
    db.store.set_proxy_account("R", "u", "pw").await.unwrap();

    let err = db
        .store
        .add_customer(customer("1", "Res\0ller", None))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "reseller: must not contain NUL characters");
    let err = db
        .store
        .set_proxy_account("O\0wner", "v", "pw")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "owner: must not contain NUL characters");
    let err = db
        .store
        .add_system("12345", "ipo\0two", false)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "name: must not contain NUL characters");

    assert!(db
        .store
        .find_proxy_account_by_username("u\0")
        .await
        .unwrap()
        .is_none());
    assert!(db
        .store
        .authenticate_proxy_account("u\0", "pw")
        .await
        .unwrap()
        .is_none());
    assert!(db.store.proxy_account_of("R\0").await.unwrap().is_none());
    assert!(db.store.customer("12345\0").await.unwrap().is_none());
    assert!(db
        .store
        .system("12345", Some("ipo1\0"))
        .await
        .unwrap()
        .is_none());
    assert!(db.store.system("12345\0", None).await.unwrap().is_none());
    assert!(db.store.user("admin\0").await.unwrap().is_none());
    let err = db.store.list_systems("12345\0").await.unwrap_err();
    assert!(matches!(err, StoreError::UnknownCustomer(_)), "{err}");
    // The real ones are still found.
    assert!(db
        .store
        .system("12345", Some("ipo1"))
        .await
        .unwrap()
        .is_some());
    assert_eq!(db.store.list_proxy_accounts().await.unwrap().len(), 1);
    assert_eq!(db.store.list_customers().await.unwrap().len(), 1);
}
on_each_database!(nul_in_names_is_refused_and_finds_nothing);

/// Two processes adding the same customer at the same moment: the
/// database's constraint decides, and the loser gets the same error as a
/// later duplicate.
async fn racing_duplicate_customers_are_refused_by_the_constraint(backend: Backend) {
    let db = TestDb::new(backend).await;
    let other = db.open_again().await;
    for round in 0..10 {
        let id = format!("race{round}");
        let (a, b) = tokio::join!(
            db.store.add_customer(customer(&id, "A", None)),
            other.add_customer(customer(&id, "B", None)),
        );
        let (ok, err) = match (a, b) {
            (Ok(c), Err(e)) | (Err(e), Ok(c)) => (c, e),
            other => panic!("exactly one must win: {other:?}"),
        };
        assert!(
            matches!(&err, StoreError::DuplicateCustomer(i) if *i == id),
            "{err}"
        );
        let stored = db.store.customer(&id).await.unwrap().unwrap();
        assert_eq!(stored.reseller, ok.reseller);
    }
    assert_eq!(db.store.list_customers().await.unwrap().len(), 10);
}
on_each_database!(racing_duplicate_customers_are_refused_by_the_constraint);

// ---------------------------------------------------------------- alarms

fn report(alarm_type: AlarmType, text: &str, active: bool, at: i64) -> AlarmReport {
    AlarmReport {
        alarm_type,
        severity: Severity::Major,
        text: text.into(),
        detail: None,
        active,
        source: AlarmSource::Site,
        occurred_at: at,
    }
}

/// A customer with two systems; returns their ids.
async fn two_systems(db: &TestDb) -> (i64, i64) {
    db.store
        .add_customer(customer("77", "Reseller A", None))
        .await
        .unwrap();
    let (a, _) = db.store.add_system("77", "IPO Main", true).await.unwrap();
    let (b, _) = db.store.add_system("77", "IPO Two", false).await.unwrap();
    (a.id, b.id)
}

async fn repeated_reports_update_one_row_per_alarm(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (a, b) = two_systems(&db).await;
    let store = &db.store;
    let trunk = report(AlarmType::Trunk, "Trunk 2 down", true, 1_000);
    let id = store.record_alarm(a, &trunk).await.unwrap();
    let mut again = report(AlarmType::Trunk, "Trunk 2 down", true, 1_500);
    again.severity = Severity::Critical;
    again.detail = Some("second time".into());
    assert_eq!(store.record_alarm(a, &again).await.unwrap(), id, "same row");
    // Over: not an occurrence, the last occurrence stays.
    assert_eq!(
        store
            .record_alarm(a, &report(AlarmType::Trunk, "Trunk 2 down", false, 1_700))
            .await
            .unwrap(),
        id
    );
    // The same text on another system, or as another type, is another alarm.
    let other_system = store.record_alarm(b, &trunk).await.unwrap();
    let other_type = store
        .record_alarm(a, &report(AlarmType::Link, "Trunk 2 down", true, 1_100))
        .await
        .unwrap();
    assert!(other_system != id && other_type != id && other_system != other_type);

    let alarms = store.list_alarms().await.unwrap();
    assert_eq!(alarms.len(), 3);
    let row = alarms.iter().find(|x| x.id == id).unwrap();
    assert_eq!(
        (row.first_at, row.last_at, row.occurrences, row.active),
        (1_000, 1_500, 2, false)
    );
    assert_eq!(
        (
            row.severity,
            row.detail.as_deref(),
            row.customer_id.as_str()
        ),
        (Severity::Critical, Some("second time"), "77"),
        "the last occurrence's severity and detail"
    );
    assert_eq!(
        (row.customer_name.as_str(), row.system_name.as_str()),
        ("Customer 77", "IPO Main")
    );
    // Newest occurrence first.
    let order: Vec<i64> = alarms.iter().map(|x| x.last_at).collect();
    assert_eq!(order, [1_500, 1_100, 1_000]);
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM alarms").await, 3);
}
on_each_database!(repeated_reports_update_one_row_per_alarm);

async fn only_inactive_alarms_can_be_cleared(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (a, _) = two_systems(&db).await;
    let store = &db.store;
    let active = store
        .record_alarm(a, &report(AlarmType::Qos, "Jitter", true, 10))
        .await
        .unwrap();
    let over = store
        .record_alarm(a, &report(AlarmType::Qos, "Packet loss", true, 10))
        .await
        .unwrap();
    store
        .record_alarm(a, &report(AlarmType::Qos, "Packet loss", false, 20))
        .await
        .unwrap();
    let cleared = store.clear_alarms(&[active, over, 999_999]).await.unwrap();
    assert_eq!(
        cleared,
        Cleared {
            cleared: vec![over],
            still_active: vec![active],
            unknown: vec![999_999],
        }
    );
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM alarms").await, 1);
    // A cleared alarm that occurs again starts a new row.
    let again = store
        .record_alarm(a, &report(AlarmType::Qos, "Packet loss", true, 30))
        .await
        .unwrap();
    assert_ne!(again, over);
    let row = store
        .list_alarms()
        .await
        .unwrap()
        .into_iter()
        .find(|x| x.id == again)
        .unwrap();
    assert_eq!((row.first_at, row.occurrences), (30, 1));
}
on_each_database!(only_inactive_alarms_can_be_cleared);

async fn clear_all_of_a_type_leaves_active_ones_and_other_types(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (a, b) = two_systems(&db).await;
    let store = &db.store;
    let mut inactive_trunks = Vec::new();
    for (system, text) in [(a, "T1"), (b, "T2")] {
        store
            .record_alarm(system, &report(AlarmType::Trunk, text, true, 1))
            .await
            .unwrap();
        inactive_trunks.push(
            store
                .record_alarm(system, &report(AlarmType::Trunk, text, false, 2))
                .await
                .unwrap(),
        );
    }
    store
        .record_alarm(a, &report(AlarmType::Trunk, "T3", true, 1))
        .await
        .unwrap();
    store
        .record_alarm(a, &report(AlarmType::Link, "L1", false, 1))
        .await
        .unwrap();
    inactive_trunks.sort_unstable();
    let ids = store
        .inactive_alarm_ids_of_type(AlarmType::Trunk)
        .await
        .unwrap();
    assert_eq!(ids, inactive_trunks);
    let cleared = store.clear_alarms(&ids).await.unwrap();
    assert_eq!(cleared.cleared, inactive_trunks);
    let left: Vec<(AlarmType, String)> = store
        .list_alarms()
        .await
        .unwrap()
        .into_iter()
        .map(|x| (x.alarm_type, x.text))
        .collect();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&(AlarmType::Trunk, "T3".into())));
    assert!(left.contains(&(AlarmType::Link, "L1".into())));
}
on_each_database!(clear_all_of_a_type_leaves_active_ones_and_other_types);

async fn alarm_reports_are_checked(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (a, _) = two_systems(&db).await;
    let empty = report(AlarmType::Link, "  ", true, 1);
    assert!(matches!(
        db.store.record_alarm(a, &empty).await,
        Err(StoreError::InvalidAlarm(_))
    ));
    let unknown = db
        .store
        .record_alarm(123_456, &report(AlarmType::Link, "x", true, 1))
        .await;
    assert!(
        matches!(unknown, Err(StoreError::UnknownSystemId(123_456))),
        "{unknown:?}"
    );
    // Deleting a system takes its alarms along.
    db.store
        .record_alarm(a, &report(AlarmType::Link, "x", true, 1))
        .await
        .unwrap();
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM alarms").await, 1);
}
on_each_database!(alarm_reports_are_checked);

// ---------------------------------------------------------------- site status

async fn site_status_records_sessions_and_auth_failures(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (a, b) = two_systems(&db).await;
    let store = &db.store;
    let fresh = store.site_statuses().await.unwrap();
    assert_eq!(fresh.len(), 2);
    assert!(fresh
        .iter()
        .all(|s| s.last_seen_at.is_none() && s.last_connected_at.is_none() && !s.remote_access));

    let reported = Reported {
        remote_access: true,
        colocated_servers: false,
        centralized_management: true,
        legacy: false,
        agent_version: "0.9.1".into(),
    };
    store
        .record_site_connected(a, &reported, 100)
        .await
        .unwrap();
    store.record_site_seen(a, 160).await.unwrap();
    assert!(store
        .record_auth_failure("77", "ipo-two", 170)
        .await
        .unwrap());
    assert!(!store.record_auth_failure("77", "nope", 170).await.unwrap());
    assert!(!store.record_auth_failure("no\0pe", "x", 170).await.unwrap());

    let all = store.site_statuses().await.unwrap();
    let sa = all.iter().find(|s| s.system_id == a).unwrap();
    assert_eq!(
        (
            sa.last_connected_at,
            sa.last_seen_at,
            sa.remote_access,
            sa.centralized_management
        ),
        (Some(100), Some(160), true, true)
    );
    assert_eq!(
        (
            sa.agent_version.as_deref(),
            sa.is_primary,
            sa.label.as_str()
        ),
        (Some("0.9.1"), true, "ipo-main")
    );
    let sb = all.iter().find(|s| s.system_id == b).unwrap();
    assert_eq!(
        (sb.last_auth_failure_at, sb.last_seen_at),
        (Some(170), None)
    );
    // What the customer list makes of it.
    let offline = admin::connectivity::connectivity(&sa.observation(false), 160 + 3_600);
    assert_eq!(
        offline.message,
        "System is either not reachable or offline for last 1 hour"
    );
    let failed = admin::connectivity::connectivity(&sb.observation(false), 200);
    assert_eq!(failed.message, "Authorization failed");
    let up = admin::connectivity::connectivity(&sa.observation(true), 200);
    assert_eq!(up.message, "Connection successful");
}
on_each_database!(site_status_records_sessions_and_auth_failures);

async fn connected_sites_are_marked_seen_in_one_go(backend: Backend) {
    let db = with_customer(backend, "1").await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(db.store.add_system("1", name, false).await.unwrap().0.id);
    }
    db.store.record_sites_seen(&ids[..2], 1_000).await.unwrap();
    db.store.record_sites_seen(&[], 2_000).await.unwrap();
    let seen = db
        .raw_strings(
            "SELECT label || '=' || COALESCE(CAST(last_seen_at AS TEXT), '-') FROM systems ORDER BY label",
        )
        .await;
    assert_eq!(seen, ["a=1000", "b=1000", "c=-"]);
    // More ids than one statement takes.
    let many: Vec<i64> = (0..1200).map(|i| ids[i % 3]).collect();
    db.store.record_sites_seen(&many, 3_000).await.unwrap();
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM systems WHERE last_seen_at = 3000")
            .await,
        3
    );
}
on_each_database!(connected_sites_are_marked_seen_in_one_go);

// ---------------------------------------------------------------- routing

async fn route_finds_customer_and_system_in_one_lookup(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (main, two) = two_systems(&db).await;
    let store = &db.store;
    let (c, s) = store.route("77", Some("IPO-TWO")).await.unwrap().unwrap();
    assert_eq!(
        (c.id.as_str(), c.name.as_str(), c.reseller.as_str()),
        ("77", "Customer 77", "Reseller A")
    );
    assert_eq!(
        (s.id, s.label.as_str(), s.is_primary),
        (two, "ipo-two", false)
    );
    let (_, primary) = store.route("77", None).await.unwrap().unwrap();
    assert_eq!(primary.id, main);
    // The same as the two separate lookups give.
    assert_eq!(Some(c), store.customer("77").await.unwrap());
    assert_eq!(
        store
            .system("77", Some("ipo-two"))
            .await
            .unwrap()
            .map(|x| x.id),
        Some(s.id)
    );
    for (customer, label) in [
        ("78", None),
        ("77", Some("nope")),
        ("7\0", None),
        ("77", Some("a\0")),
    ] {
        assert!(
            store.route(customer, label).await.unwrap().is_none(),
            "{customer:?} {label:?}"
        );
    }
    store.add_customer(customer("79", "R", None)).await.unwrap();
    assert!(
        store.route("79", None).await.unwrap().is_none(),
        "no primary yet"
    );
}
on_each_database!(route_finds_customer_and_system_in_one_lookup);
/// Only the first schema version, as a database made before users had
/// settings has it.
#[derive(Debug)]
struct FirstVersionOnly;

impl sqlx::migrate::MigrationSource<'static> for FirstVersionOnly {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>,
                > + Send
                + 'static,
        >,
    > {
        Box::pin(async {
            Ok(vec![sqlx::migrate::Migration::new(
                1,
                "initial".into(),
                sqlx::migrate::MigrationType::Simple,
                include_str!("../migrations/0001_initial.sql").into(),
                false,
            )])
        })
    }
}

/// Users added before version 3 keep their login, with the default
/// settings, and can change their password.
async fn users_of_the_first_version_get_default_settings(backend: Backend) {
    const INSERT_V1_USER: &str = "INSERT INTO users \
        (id, username, password_hash, role, created_at, updated_at) VALUES (1, 'old', $1, 'operator', 0, 0)";
    let place = Place::new(backend).await;
    let hash = admin::password::hash_password(PW).unwrap();
    let migrator = sqlx::migrate::Migrator::new(FirstVersionOnly)
        .await
        .unwrap();
    match &place.location {
        Location::Sqlite(path) => {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let pool = SqlitePool::connect_with(
                SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true),
            )
            .await
            .unwrap();
            migrator.run(&pool).await.unwrap();
            sqlx::query(INSERT_V1_USER)
                .bind(hash.expose())
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("UPDATE id_sequences SET last_value = 1 WHERE name = 'users'")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        Location::Postgres(url) => {
            let pool = PgPool::connect(url).await.unwrap();
            migrator.run(&pool).await.unwrap();
            sqlx::query(INSERT_V1_USER)
                .bind(hash.expose())
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("UPDATE id_sequences SET last_value = 1 WHERE name = 'users'")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
    let store = place.open().await;
    let old = store.user("old").await.unwrap().unwrap();
    assert_eq!(old.settings, UserSettings::default());
    assert_eq!(old.created_by, None);
    let outcome = store
        .check_login("old", PW, T0, LoginPolicy::default())
        .await
        .unwrap();
    assert!(accepted(&outcome), "{outcome:?}");
    // No history yet, but the current password still counts as used.
    let err = store.set_password(old.id, PW, 5).await.unwrap_err();
    assert!(matches!(err, StoreError::PasswordReused), "{err}");
    store.set_password(old.id, "New-passw0rd", 5).await.unwrap();
    let new = store.add_user("new", PW, Role::Operator).await.unwrap();
    assert_eq!(new.id, 2);
}
on_each_database!(users_of_the_first_version_get_default_settings);
