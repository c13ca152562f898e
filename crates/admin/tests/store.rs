//! Behaviour of the storage as the CLI and the gateway use it, on a real
//! SQLite file in a temporary directory.

use std::path::{Path, PathBuf};

use admin::password::verify_password;
use admin::{NewCustomer, Role, Store, StoreError};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Row, SqlitePool};
use tempfile::TempDir;

/// A store on a fresh file; the directory lives as long as the value.
struct TestDb {
    dir: TempDir,
    store: Store,
}

impl TestDb {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&db_path(&dir)).await.unwrap();
        TestDb { dir, store }
    }

    fn path(&self) -> PathBuf {
        db_path(&self.dir)
    }

    /// A second, independent connection to the file, as another process
    /// (or a curious admin with `sqlite3`) would have.
    async fn raw(&self) -> SqlitePool {
        SqlitePool::connect_with(SqliteConnectOptions::new().filename(self.path()))
            .await
            .unwrap()
    }
}

fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("data").join("comgate.db")
}

fn customer(id: &str, reseller: &str, provider: Option<&str>) -> NewCustomer {
    NewCustomer {
        id: id.into(),
        name: format!("Customer {id}"),
        reseller: reseller.into(),
        provider: provider.map(Into::into),
    }
}

async fn with_customer(id: &str) -> TestDb {
    let db = TestDb::new().await;
    db.store
        .add_customer(customer(id, "Reseller A", Some("Distributor D")))
        .await
        .unwrap();
    db
}

// ---------------------------------------------------------------- opening

#[tokio::test]
async fn open_creates_the_file_and_its_directory_in_wal_mode() {
    let db = TestDb::new().await;
    assert!(db.path().exists());
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&db.raw().await)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn reopening_keeps_data_and_does_not_rerun_migrations() {
    let db = TestDb::new().await;
    db.store
        .add_customer(customer("1", "R", None))
        .await
        .unwrap();
    db.store.close().await;
    let again = Store::open_sqlite(&db.path()).await.unwrap();
    assert!(again.customer("1").await.unwrap().is_some());
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&db.raw().await)
        .await
        .unwrap();
    assert_eq!(applied, 1);
}

#[tokio::test]
async fn two_processes_opening_a_new_file_at_once_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let (a, b) = tokio::join!(Store::open_sqlite(&path), Store::open_sqlite(&path));
    let (a, b) = (a.unwrap(), b.unwrap());
    a.add_customer(customer("1", "R", None)).await.unwrap();
    assert!(b.customer("1").await.unwrap().is_some());
}

#[tokio::test]
async fn open_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let path = dir.path().join("is-a-dir");
    std::fs::create_dir(&path).unwrap();
    let err = Store::open_sqlite(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.to_string().contains("is-a-dir"), "{err}");
}

// ---------------------------------------------------------- concurrency

#[tokio::test]
async fn a_write_by_one_store_is_seen_by_another_immediately() {
    let db = TestDb::new().await;
    let other = Store::open_sqlite(&db.path()).await.unwrap();
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

#[tokio::test]
async fn concurrent_writers_on_two_stores_all_succeed() {
    let db = TestDb::new().await;
    let other = Store::open_sqlite(&db.path()).await.unwrap();
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

// ------------------------------------------------------- proxy accounts

#[tokio::test]
async fn proxy_account_is_found_by_username() {
    let db = TestDb::new().await;
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

#[tokio::test]
async fn second_set_for_an_owner_replaces_username_and_password() {
    let db = TestDb::new().await;
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

#[tokio::test]
async fn proxy_username_of_another_owner_is_refused_naming_it() {
    let db = TestDb::new().await;
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

#[tokio::test]
async fn proxy_account_fields_are_checked() {
    let db = TestDb::new().await;
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

#[tokio::test]
async fn proxy_accounts_are_listed_by_owner() {
    let db = TestDb::new().await;
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

#[tokio::test]
async fn authenticate_proxy_account_needs_user_and_password_right() {
    let db = TestDb::new().await;
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

// ------------------------------------------------------------ customers

#[tokio::test]
async fn customer_is_stored_lowercase_and_found_in_any_case() {
    let db = TestDb::new().await;
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

#[tokio::test]
async fn duplicate_customer_is_refused_in_any_case() {
    let db = with_customer("12345").await;
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

#[tokio::test]
async fn customer_id_must_be_letters_and_digits() {
    let db = TestDb::new().await;
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

#[tokio::test]
async fn customer_fields_are_trimmed_and_blank_provider_is_none() {
    let db = TestDb::new().await;
    let c = db
        .store
        .add_customer(NewCustomer {
            id: "1".into(),
            name: " Name ".into(),
            reseller: " R ".into(),
            provider: Some("  ".into()),
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

#[tokio::test]
async fn customer_is_served_by_its_reseller_and_provider_only() {
    let db = with_customer("12345").await;
    let c = db.store.customer("12345").await.unwrap().unwrap();
    assert!(c.is_served_by("Reseller A"));
    assert!(c.is_served_by("Distributor D"));
    assert!(!c.is_served_by("Reseller B"));
    assert!(!c.is_served_by("reseller a"));
}

#[tokio::test]
async fn customers_are_listed_by_id() {
    let db = TestDb::new().await;
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

// -------------------------------------------------------------- systems

#[tokio::test]
async fn system_of_an_unknown_customer_is_refused_naming_it() {
    let db = TestDb::new().await;
    let err = db.store.add_system("99999", "IPO", true).await.unwrap_err();
    assert!(matches!(&err, StoreError::UnknownCustomer(id) if id == "99999"));
    assert_eq!(err.to_string(), "unknown customer 99999");
    let err = db.store.list_systems("99999").await.unwrap_err();
    assert_eq!(err.to_string(), "unknown customer 99999");
}

#[tokio::test]
async fn system_label_is_the_dns_label_form_of_its_name() {
    let db = with_customer("12345").await;
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

#[tokio::test]
async fn system_name_without_letters_or_digits_is_refused() {
    let db = with_customer("12345").await;
    let err = db.store.add_system("12345", "__", false).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidSystemName { .. }), "{err}");
    let err = db.store.add_system("12345", "  ", false).await.unwrap_err();
    assert_eq!(err.to_string(), "name: must not be empty");
}

#[tokio::test]
async fn names_with_the_same_label_are_duplicates() {
    let db = with_customer("12345").await;
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

#[tokio::test]
async fn no_system_part_means_the_primary_system() {
    let db = with_customer("12345").await;
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

#[tokio::test]
async fn a_second_primary_is_refused_naming_the_first() {
    let db = with_customer("12345").await;
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

#[tokio::test]
async fn systems_are_listed_primary_first_then_by_label() {
    let db = with_customer("12345").await;
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

#[tokio::test]
async fn agent_secret_verifies_only_itself() {
    let db = with_customer("12345").await;
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

#[tokio::test]
async fn rotating_a_secret_retires_the_old_one() {
    let db = with_customer("12345").await;
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

// ---------------------------------------------------------------- users

#[tokio::test]
async fn user_is_added_with_its_role() {
    let db = TestDb::new().await;
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

#[tokio::test]
async fn duplicate_user_is_refused() {
    let db = TestDb::new().await;
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

#[tokio::test]
async fn user_password_policy_is_enforced_naming_the_rule() {
    let db = TestDb::new().await;
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

#[tokio::test]
async fn login_name_is_checked() {
    let db = TestDb::new().await;
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

// ------------------------------------------------------- secrets at rest

#[tokio::test]
async fn database_holds_no_plaintext_password_or_secret() {
    let db = with_customer("12345").await;
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

    let raw = db.raw().await;
    for (sql, plaintext) in [
        ("SELECT password_hash FROM proxy_accounts", proxy_password),
        ("SELECT password_hash FROM users", user_password),
        ("SELECT secret_hash FROM systems", secret.as_str()),
    ] {
        let stored: String = sqlx::query(sql).fetch_one(&raw).await.unwrap().get(0);
        assert!(stored.starts_with("$argon2id$"), "{sql}: {stored}");
        assert!(!stored.contains(plaintext), "{sql}");
        assert!(verify_password(&stored, plaintext), "{sql}");
    }
    raw.close().await;

    // Nor anywhere in the files (database and write-ahead log).
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

#[tokio::test]
async fn hashes_never_print_or_serialize() {
    let db = with_customer("12345").await;
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
