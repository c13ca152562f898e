//! Customer account settings, sealed service passwords, assigned operators
//! and visibility, system kinds, and the customer list with its query, on
//! each database (`on_each_database!`: `<test>::sqlite`, `<test>::postgres`).

use std::collections::HashSet;

use admin::connectivity::{Colour, State};
use admin::customer_query::{Direction, ListQuery, SortColumn};
use admin::store::{Reported, SystemKind};
use admin::{
    CustomerChanges, CustomerField, CustomerListRow, CustomerSettings, Location, NewCustomer,
    NewSystem, Role, SealKey, ServicePassword, Store, StoreError, SystemChanges, Visibility,
};
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::SqlitePool;
use tunnel_proto::report::{AlarmReport, AlarmSource, AlarmType, Severity};

mod common;
use common::{Backend, TestDb};

const NOW: i64 = 1_700_000_000;

fn customer(id: &str, reseller: &str, provider: Option<&str>) -> NewCustomer {
    NewCustomer {
        id: id.into(),
        name: format!("Customer {id}"),
        reseller: reseller.into(),
        provider: provider.map(Into::into),
        ..Default::default()
    }
}

/// A database whose store has a seal key.
async fn sealed_db(backend: Backend) -> TestDb {
    let mut db = TestDb::new(backend).await;
    db.store = db.store.with_seal_key(SealKey::generate().unwrap());
    db
}

/// Runs a statement through an independent connection, as an admin with
/// `sqlite3` or `psql` (or an attacker with the file) would.
async fn raw_execute(db: &TestDb, sql: &str) -> Result<u64, sqlx::Error> {
    match &db.place.location {
        Location::Sqlite(path) => {
            let pool = SqlitePool::connect_with(
                SqliteConnectOptions::new()
                    .filename(path)
                    .foreign_keys(true),
            )
            .await
            .unwrap();
            let done = sqlx::query(sql).execute(&pool).await;
            pool.close().await;
            done.map(|d| d.rows_affected())
        }
        Location::Postgres(url) => {
            let pool = PgPool::connect(url).await.unwrap();
            let done = sqlx::query(sql).execute(&pool).await;
            pool.close().await;
            done.map(|d| d.rows_affected())
        }
    }
}

fn field_of(err: &StoreError) -> Option<CustomerField> {
    match err {
        StoreError::InvalidCustomerField { field, .. } => Some(*field),
        _ => None,
    }
}

fn ids(rows: &[CustomerListRow]) -> Vec<&str> {
    rows.iter().map(|r| r.id()).collect()
}

fn nobody_connected(_: &admin::store::SiteStatus) -> bool {
    false
}

// ------------------------------------------------------- account settings

async fn account_settings_are_stored_and_read_back(backend: Backend) {
    let db = sealed_db(backend).await;
    db.store
        .add_customer(NewCustomer {
            settings: CustomerSettings {
                service_user: " COMAdmin ".into(),
                tags: vec![" gold ".into(), "SE".into(), "gold".into()],
                phone: "+44 (0)20 7946-0000".into(),
                email: "it@example.com".into(),
                address: "1 High Street\nLondon".into(),
                notes: "Call before upgrading.\n\tThanks".into(),
            },
            service_password: Some("S3rvice!pw".into()),
            ..customer("C1", "Reseller A", Some("Distributor D"))
        })
        .await
        .unwrap();
    let details = db.store.customer_details("c1").await.unwrap().unwrap();
    assert_eq!(details.customer.id, "c1");
    assert_eq!(details.customer.provider.as_deref(), Some("Distributor D"));
    assert_eq!(
        details.settings,
        CustomerSettings {
            service_user: "COMAdmin".into(),
            tags: vec!["SE".into(), "gold".into()],
            phone: "+44 (0)20 7946-0000".into(),
            email: "it@example.com".into(),
            address: "1 High Street\nLondon".into(),
            notes: "Call before upgrading.\n\tThanks".into(),
        }
    );
    assert!(details.has_service_password);
    let mut stored = db
        .raw_strings("SELECT tag FROM customer_tags WHERE customer_id = 'c1'")
        .await;
    stored.sort();
    assert_eq!(stored, ["SE", "gold"]);
    assert_eq!(
        db.raw_strings("SELECT service_user FROM customers").await,
        ["COMAdmin"]
    );

    // A customer added the old way has empty settings and no password.
    db.store
        .add_customer(customer("c2", "R", None))
        .await
        .unwrap();
    let plain = db.store.customer_details("C2").await.unwrap().unwrap();
    assert_eq!(plain.settings, CustomerSettings::default());
    assert!(!plain.has_service_password);
    assert_eq!(db.store.reveal_service_password("c2").await.unwrap(), None);
    assert!(db.store.customer_details("nope").await.unwrap().is_none());
}
on_each_database!(account_settings_are_stored_and_read_back);

async fn invalid_settings_are_refused_naming_the_field(backend: Backend) {
    let db = sealed_db(backend).await;
    let with = |settings: CustomerSettings| NewCustomer {
        settings,
        ..customer("c1", "R", None)
    };
    let tags = |tags: &[&str]| CustomerSettings {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    let cases: Vec<(NewCustomer, CustomerField, &str)> = vec![
        (
            with(tags(&["a", "b", "c", "d", "e", "f"])),
            CustomerField::Tags,
            "tags: at most 5 tags per customer",
        ),
        (
            with(tags(&["a", "  "])),
            CustomerField::Tags,
            "tags: a tag must not be empty",
        ),
        (
            with(tags(&[&"x".repeat(33)])),
            CustomerField::Tags,
            "tags: a tag must be at most 32 characters",
        ),
        (
            with(tags(&["bad\u{7}tag"])),
            CustomerField::Tags,
            "tags: must not contain control characters",
        ),
        (
            with(CustomerSettings {
                phone: "call me".into(),
                ..Default::default()
            }),
            CustomerField::Phone,
            "",
        ),
        (
            with(CustomerSettings {
                phone: "+1234567890123456".into(),
                ..Default::default()
            }),
            CustomerField::Phone,
            "",
        ),
        (
            with(CustomerSettings {
                email: "not-an-address".into(),
                ..Default::default()
            }),
            CustomerField::Email,
            "",
        ),
        (
            with(CustomerSettings {
                service_user: "x".repeat(65),
                ..Default::default()
            }),
            CustomerField::ServiceUser,
            "",
        ),
        (
            with(CustomerSettings {
                notes: "a\0b".into(),
                ..Default::default()
            }),
            CustomerField::Notes,
            "",
        ),
        (
            with(CustomerSettings {
                address: "x".repeat(501),
                ..Default::default()
            }),
            CustomerField::Address,
            "",
        ),
        (
            NewCustomer {
                service_password: Some("".into()),
                ..customer("c1", "R", None)
            },
            CustomerField::ServicePassword,
            "",
        ),
        (
            NewCustomer {
                name: "n".repeat(256),
                ..customer("c1", "R", None)
            },
            CustomerField::Name,
            "",
        ),
    ];
    // Five distinct tags after trimming and removing duplicates are fine.
    let five = tags(&["a", "b", "c", "d", "e", " a "]);
    for (new, field, message) in cases {
        let err = db.store.add_customer(new).await.unwrap_err();
        assert_eq!(field_of(&err), Some(field), "{err}");
        assert!(err.to_string().starts_with(field.as_str()), "{err}");
        if !message.is_empty() {
            assert_eq!(err.to_string(), message);
        }
    }
    // Nothing of the refused customers was stored.
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM customers").await, 0);
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM customer_tags").await, 0);
    db.store.add_customer(with(five)).await.unwrap();
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM customer_tags").await, 5);
}
on_each_database!(invalid_settings_are_refused_naming_the_field);

async fn update_changes_only_the_given_fields(backend: Backend) {
    let db = sealed_db(backend).await;
    db.store
        .add_customer(NewCustomer {
            settings: CustomerSettings {
                service_user: "COMAdmin".into(),
                tags: vec!["gold".into()],
                phone: "123".into(),
                notes: "old notes".into(),
                ..Default::default()
            },
            service_password: Some("first-pw".into()),
            ..customer("c1", "R", Some("D"))
        })
        .await
        .unwrap();
    let updated = db
        .store
        .update_customer(
            "C1",
            CustomerChanges {
                name: Some(" New Name ".into()),
                provider: Some(None),
                tags: Some(vec!["silver".into(), "bronze".into()]),
                email: Some("ops@example.com".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.customer.name, "New Name");
    assert_eq!(updated.customer.reseller, "R");
    assert_eq!(updated.customer.provider, None);
    assert_eq!(updated.settings.tags, ["bronze", "silver"]);
    assert_eq!(updated.settings.phone, "123");
    assert_eq!(updated.settings.notes, "old notes");
    assert!(updated.has_service_password);
    let read = db.store.customer_details("c1").await.unwrap().unwrap();
    assert_eq!(read, updated);
    assert_eq!(
        db.store
            .reveal_service_password("c1")
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "first-pw"
    );

    // A bad field changes nothing, the others given with it included.
    let err = db
        .store
        .update_customer(
            "c1",
            CustomerChanges {
                notes: Some("new notes".into()),
                email: Some("bad".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), Some(CustomerField::Email));
    assert_eq!(
        db.store.customer_details("c1").await.unwrap().unwrap(),
        read
    );

    // The password is replaced, then removed.
    db.store
        .update_customer(
            "c1",
            CustomerChanges {
                service_password: Some(Some("second-pw".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        db.store
            .reveal_service_password("c1")
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "second-pw"
    );
    let removed = db
        .store
        .update_customer(
            "c1",
            CustomerChanges {
                service_password: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!removed.has_service_password);
    assert_eq!(db.store.reveal_service_password("c1").await.unwrap(), None);
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM customers WHERE service_password IS NULL")
            .await,
        1
    );

    let err = db
        .store
        .update_customer("nope", CustomerChanges::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownCustomer(ref id) if id == "nope"),
        "{err}"
    );
}
on_each_database!(update_changes_only_the_given_fields);

async fn deleting_a_customer_removes_what_belongs_to_it(backend: Backend) {
    let db = sealed_db(backend).await;
    db.store
        .add_customer(NewCustomer {
            settings: CustomerSettings {
                tags: vec!["t".into()],
                ..Default::default()
            },
            ..customer("c1", "R", None)
        })
        .await
        .unwrap();
    db.store
        .add_customer(customer("c2", "R", None))
        .await
        .unwrap();
    let (system, _) = db.store.add_system("c1", "Main", true).await.unwrap();
    let user = db
        .store
        .add_user("op1", "Operator-pw1", Role::Operator)
        .await
        .unwrap();
    db.store.assign_customer(user.id, "c1").await.unwrap();
    db.store.assign_customer(user.id, "c2").await.unwrap();

    db.store.delete_customer("C1").await.unwrap();
    assert!(db.store.customer("c1").await.unwrap().is_none());
    assert!(db.store.system_by_id(system.id).await.unwrap().is_none());
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM customer_tags").await, 0);
    assert_eq!(
        db.raw_strings("SELECT customer_id FROM customer_assignments")
            .await,
        ["c2"]
    );
    let err = db.store.delete_customer("c1").await.unwrap_err();
    assert!(matches!(err, StoreError::UnknownCustomer(_)), "{err}");
    assert!(db.store.customer("c2").await.unwrap().is_some());
}
on_each_database!(deleting_a_customer_removes_what_belongs_to_it);

// ------------------------------------------------------ service passwords

async fn service_password_is_sealed_not_stored_plain(backend: Backend) {
    let db = sealed_db(backend).await;
    let password = "Plain-Text-Pw-42";
    for id in ["c1", "c2"] {
        db.store
            .add_customer(NewCustomer {
                service_password: Some(password.into()),
                ..customer(id, "R", None)
            })
            .await
            .unwrap();
    }
    let sealed = db
        .raw_strings("SELECT service_password FROM customers ORDER BY id")
        .await;
    assert_eq!(sealed.len(), 2);
    for value in &sealed {
        assert!(value.starts_with("v1:"), "{value}");
        assert!(!value.contains(password), "{value}");
    }
    // The same password sealed twice gives two different values.
    assert_ne!(sealed[0], sealed[1]);
    // No column of any row holds it.
    let everything = db
        .raw_strings(
            "SELECT id || name || reseller || service_user || COALESCE(service_password, '') \
             || phone || email || address || notes FROM customers",
        )
        .await;
    assert!(everything.iter().all(|row| !row.contains(password)));

    let revealed = db
        .store
        .reveal_service_password("C1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revealed.expose(), password);
    assert!(!format!("{revealed:?}").contains(password));

    // Neither the details nor the list carry it, in Debug or in JSON.
    let details = db.store.customer_details("c1").await.unwrap().unwrap();
    let list = db
        .store
        .customer_list(&Visibility::All, &nobody_connected, NOW)
        .await
        .unwrap();
    for shown in [
        format!("{details:?}"),
        serde_json::to_string(&details).unwrap(),
        format!("{list:?}"),
        serde_json::to_string(&list).unwrap(),
    ] {
        assert!(!shown.contains(password), "{shown}");
        assert!(!shown.contains("v1:"), "{shown}");
    }
    let new = NewCustomer {
        service_password: Some(password.into()),
        ..customer("c3", "R", None)
    };
    assert!(!format!("{new:?}").contains(password));
    let changes = CustomerChanges {
        service_password: Some(Some(ServicePassword::new(password))),
        ..Default::default()
    };
    assert!(!format!("{changes:?}").contains(password));

    // Searching for the password finds nothing.
    let query = ListQuery::from_pairs([("search", password)]).unwrap();
    assert_eq!(query.apply(&list).total, 0);
}
on_each_database!(service_password_is_sealed_not_stored_plain);

async fn service_password_needs_the_seal_key(backend: Backend) {
    let db = TestDb::new(backend).await;
    assert!(!db.store.has_seal_key());
    let err = db
        .store
        .add_customer(NewCustomer {
            service_password: Some("pw".into()),
            ..customer("c1", "R", None)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSealKey), "{err}");
    assert!(err.to_string().starts_with("service_password:"), "{err}");
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM customers").await, 0);

    db.store
        .add_customer(customer("c1", "R", None))
        .await
        .unwrap();
    let err = db.store.reveal_service_password("c1").await.unwrap_err();
    assert!(matches!(err, StoreError::NoSealKey), "{err}");
    let err = db
        .store
        .update_customer(
            "c1",
            CustomerChanges {
                service_password: Some(Some("pw".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSealKey), "{err}");
}
on_each_database!(service_password_needs_the_seal_key);

async fn wrong_key_or_altered_value_does_not_reveal(backend: Backend) {
    let db = sealed_db(backend).await;
    for id in ["c1", "c2"] {
        db.store
            .add_customer(NewCustomer {
                service_password: Some(format!("pw-of-{id}").as_str().into()),
                ..customer(id, "R", None)
            })
            .await
            .unwrap();
    }
    // Another process with another key.
    let other = db
        .open_again()
        .await
        .with_seal_key(SealKey::generate().unwrap());
    let err = other.reveal_service_password("c1").await.unwrap_err();
    assert!(
        matches!(err, StoreError::Unseal { ref customer, .. } if customer == "c1"),
        "{err}"
    );
    assert!(!err.to_string().contains("pw-of-c1"), "{err}");

    // One byte of the ciphertext changed.
    let sealed = db
        .raw_strings("SELECT service_password FROM customers WHERE id = 'c1'")
        .await
        .remove(0);
    let last = sealed.chars().last().unwrap();
    let flipped = if last == 'A' { 'B' } else { 'A' };
    let tampered = format!("{}{flipped}", &sealed[..sealed.len() - 1]);
    raw_execute(
        &db,
        &format!("UPDATE customers SET service_password = '{tampered}' WHERE id = 'c1'"),
    )
    .await
    .unwrap();
    let err = db.store.reveal_service_password("c1").await.unwrap_err();
    assert!(matches!(err, StoreError::Unseal { .. }), "{err}");

    // c2's sealed value copied into c1's row does not open there.
    raw_execute(
        &db,
        "UPDATE customers SET service_password = \
         (SELECT service_password FROM customers WHERE id = 'c2') WHERE id = 'c1'",
    )
    .await
    .unwrap();
    let err = db.store.reveal_service_password("c1").await.unwrap_err();
    assert!(matches!(err, StoreError::Unseal { .. }), "{err}");
    // c2 itself is intact.
    assert_eq!(
        db.store
            .reveal_service_password("c2")
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "pw-of-c2"
    );
}
on_each_database!(wrong_key_or_altered_value_does_not_reveal);

// ----------------------------------------------- assignments, visibility

async fn manual_assignments_are_kept_and_cascade(backend: Backend) {
    let db = TestDb::new(backend).await;
    for id in ["c1", "c2"] {
        db.store
            .add_customer(customer(id, "R", None))
            .await
            .unwrap();
    }
    let op = db
        .store
        .add_user("op1", "Operator-pw1", Role::Operator)
        .await
        .unwrap();
    let admin = db
        .store
        .add_user("admin1", "Admin-pw-01", Role::Administrator)
        .await
        .unwrap();
    db.store.assign_customer(op.id, "C1").await.unwrap();
    db.store.assign_customer(op.id, "c1").await.unwrap(); // twice: no error
    db.store.assign_customer(op.id, "c2").await.unwrap();
    assert_eq!(
        db.store.assigned_customer_ids(op.id).await.unwrap(),
        ["c1", "c2"]
    );
    assert_eq!(db.store.assigned_user_ids("c1").await.unwrap(), [op.id]);
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM customer_assignments")
            .await,
        2
    );

    assert!(db.store.unassign_customer(op.id, "c2").await.unwrap());
    assert!(!db.store.unassign_customer(op.id, "c2").await.unwrap());
    assert_eq!(db.store.assigned_customer_ids(op.id).await.unwrap(), ["c1"]);

    let err = db.store.assign_customer(op.id, "nope").await.unwrap_err();
    assert!(matches!(err, StoreError::UnknownCustomer(_)), "{err}");
    let err = db.store.assign_customer(9999, "c1").await.unwrap_err();
    assert!(matches!(err, StoreError::UnknownUserId(9999)), "{err}");
    let err = db.store.assigned_user_ids("nope").await.unwrap_err();
    assert!(matches!(err, StoreError::UnknownCustomer(_)), "{err}");

    // Deleting the user removes its assignments.
    db.store.delete_user(admin.id, op.id).await.unwrap();
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM customer_assignments")
            .await,
        0
    );
    assert!(db.store.assigned_user_ids("c1").await.unwrap().is_empty());
}
on_each_database!(manual_assignments_are_kept_and_cascade);

async fn users_see_assigned_customers_and_admins_see_all(backend: Backend) {
    let db = TestDb::new(backend).await;
    // by-hand: assigned manually; by-res / by-prov: through a label equal
    // to their reseller / provider; other: nothing links it to the user.
    for (id, reseller, provider) in [
        ("byhand", "Reseller Z", None),
        ("byres", "Reseller L", None),
        ("byprov", "Reseller Z", Some("Distributor L")),
        ("other", "Reseller Z", Some("Distributor Z")),
    ] {
        db.store
            .add_customer(customer(id, reseller, provider))
            .await
            .unwrap();
    }
    let mut users = Vec::new();
    for (name, role) in [
        ("admin", Role::Administrator),
        ("support", Role::Support),
        ("super", Role::Supervisor),
        ("operator", Role::Operator),
        ("readonly", Role::ReadOnly),
    ] {
        let mut user = db
            .store
            .add_user(name, "Passw0rd-long", role)
            .await
            .unwrap();
        if !matches!(role, Role::Administrator | Role::Support) {
            user = db
                .store
                .update_user(
                    user.id,
                    admin::UserChanges {
                        labels: Some(vec!["Reseller L".into(), "Distributor L".into()]),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            db.store.assign_customer(user.id, "byhand").await.unwrap();
        }
        users.push(user);
    }
    // A user with no labels and no assignment sees nothing.
    let lonely = db
        .store
        .add_user("lonely", "Passw0rd-long", Role::Operator)
        .await
        .unwrap();

    let all = ["byhand", "byprov", "byres", "other"];
    let assigned = ["byhand", "byprov", "byres"];
    for user in &users {
        let visibility = Visibility::of(user);
        let expected: &[&str] = match user.role {
            Role::Administrator | Role::Support => &all,
            _ => &assigned,
        };
        assert_eq!(
            db.store.visible_customer_ids(&visibility).await.unwrap(),
            expected,
            "{}",
            user.username
        );
        let list = db
            .store
            .customer_list(&visibility, &nobody_connected, NOW)
            .await
            .unwrap();
        assert_eq!(ids(&list), expected, "{}", user.username);
        for id in all {
            assert_eq!(
                db.store.customer_visible_to(user, id).await.unwrap(),
                expected.contains(&id),
                "{} {id}",
                user.username
            );
        }
        assert!(!db.store.customer_visible_to(user, "nope").await.unwrap());
    }
    assert!(db
        .store
        .visible_customer_ids(&Visibility::of(&lonely))
        .await
        .unwrap()
        .is_empty());
    assert!(db
        .store
        .customer_list(&Visibility::of(&lonely), &nobody_connected, NOW)
        .await
        .unwrap()
        .is_empty());
    assert!(!db
        .store
        .customer_visible_to(&lonely, "byres")
        .await
        .unwrap());

    // Seen both by hand and by label: listed once, its systems once.
    let operator = &users[3];
    db.store
        .assign_customer(operator.id, "byres")
        .await
        .unwrap();
    db.store.add_system("byres", "Main", true).await.unwrap();
    let list = db
        .store
        .customer_list(&Visibility::of(operator), &nobody_connected, NOW)
        .await
        .unwrap();
    assert_eq!(ids(&list), assigned);
    assert_eq!(list[2].systems.len(), 1);

    // A label added later counts at once; removing it takes it away
    // (byprov goes; byres stays, now assigned by hand).
    db.store
        .update_user(
            operator.id,
            admin::UserChanges {
                labels: Some(vec!["Distributor Z".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        db.store
            .visible_customer_ids(&Visibility::of(operator))
            .await
            .unwrap(),
        ["byhand", "byres", "other"]
    );
}
on_each_database!(users_see_assigned_customers_and_admins_see_all);

// ------------------------------------------------------------- systems

async fn systems_have_a_kind_profile_and_version(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store
        .add_customer(customer("c1", "R", None))
        .await
        .unwrap();
    let (primary, _) = db.store.add_system("c1", "Main", true).await.unwrap();
    assert_eq!(
        (primary.kind, primary.is_primary),
        (SystemKind::Primary, true)
    );
    let (second, _) = db.store.add_system("c1", "Sec", false).await.unwrap();
    assert_eq!(
        (second.kind, second.is_primary),
        (SystemKind::Secondary, false)
    );
    let (expansion, _) = db
        .store
        .add_system_with(
            "c1",
            NewSystem {
                profile: " Server Edition ".into(),
                version: "11.1.3.0 build 12".into(),
                ..NewSystem::new("Exp", SystemKind::Expansion)
            },
        )
        .await
        .unwrap();
    assert_eq!(expansion.kind, SystemKind::Expansion);
    assert_eq!(expansion.profile, "Server Edition");
    let read = db.store.system("c1", Some("exp")).await.unwrap().unwrap();
    assert_eq!(
        (read.kind, read.profile.as_str(), read.version.as_str()),
        (SystemKind::Expansion, "Server Edition", "11.1.3.0 build 12")
    );
    // The router's look-up reads them too.
    let (_, routed) = db.store.route("c1", None).await.unwrap().unwrap();
    assert_eq!(routed.kind, SystemKind::Primary);
    assert_eq!(
        db.raw_strings("SELECT kind FROM systems ORDER BY id").await,
        ["primary", "secondary", "expansion"]
    );

    // A second primary is refused, by add and by update.
    let err = db
        .store
        .add_system_with("c1", NewSystem::new("Other", SystemKind::Primary))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PrimaryExists { .. }), "{err}");
    let err = db
        .store
        .update_system(
            second.id,
            SystemChanges {
                kind: Some(SystemKind::Primary),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PrimaryExists { ref label, .. } if label == "main"),
        "{err}"
    );

    // Version and profile change; kind moves with is_primary.
    let updated = db
        .store
        .update_system(
            primary.id,
            SystemChanges {
                kind: Some(SystemKind::Secondary),
                version: Some("12.0".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.kind, updated.is_primary),
        (SystemKind::Secondary, false)
    );
    assert_eq!(updated.version, "12.0");
    let promoted = db
        .store
        .update_system(
            second.id,
            SystemChanges {
                kind: Some(SystemKind::Primary),
                profile: Some("IP500 V2".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(promoted.is_primary);
    assert_eq!(
        db.store.system("c1", None).await.unwrap().unwrap().id,
        second.id
    );
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM systems WHERE (kind = 'primary') <> is_primary")
            .await,
        0
    );

    // Bad values name the field; unknown ids are errors.
    for (changes, field) in [
        (
            SystemChanges {
                profile: Some("p".repeat(65)),
                ..Default::default()
            },
            "profile",
        ),
        (
            SystemChanges {
                version: Some("1.0\n".repeat(2) + "x"),
                ..Default::default()
            },
            "version",
        ),
    ] {
        let err = db
            .store
            .update_system(second.id, changes)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidField { field: f, .. } if f == field),
            "{err}"
        );
    }
    let err = db
        .store
        .update_system(424242, SystemChanges::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownSystemId(424242)), "{err}");

    // The database itself refuses a kind that contradicts is_primary, and
    // a row written without a kind reads it from is_primary.
    assert!(raw_execute(
        &db,
        "UPDATE systems SET kind = 'primary' WHERE id = (SELECT MIN(id) FROM systems WHERE NOT is_primary)"
    )
    .await
    .is_err());
    assert!(raw_execute(&db, "UPDATE systems SET kind = 'tertiary'")
        .await
        .is_err());
    raw_execute(&db, "UPDATE systems SET kind = NULL")
        .await
        .unwrap();
    let kinds: Vec<(SystemKind, bool)> = db
        .store
        .list_systems("c1")
        .await
        .unwrap()
        .iter()
        .map(|s| (s.kind, s.is_primary))
        .collect();
    assert_eq!(
        kinds,
        [
            (SystemKind::Primary, true),
            (SystemKind::Secondary, false),
            (SystemKind::Secondary, false)
        ]
    );
}
on_each_database!(systems_have_a_kind_profile_and_version);

// ------------------------------------------------------- the list, query

fn alarm(text: &str) -> AlarmReport {
    AlarmReport {
        alarm_type: AlarmType::Trunk,
        severity: Severity::Major,
        text: text.into(),
        detail: None,
        active: true,
        source: AlarmSource::Site,
        occurred_at: NOW - 60,
    }
}

fn reported() -> Reported {
    Reported {
        remote_access: true,
        agent_version: "agent 1.2".into(),
        ..Default::default()
    }
}

/// Five customers:
/// - a1 (Acme): primary connected now (green), a secondary offline, 3 alarms,
///   tags gold + SE, version 11.1;
/// - b2 (Bravo): primary seen an hour ago (red, offline), version 9.0;
/// - c3 (Charlie): no systems (amber, waiting for initial connection);
/// - d4 (Delta): only a secondary, whose agent failed authorization (red);
/// - e5 (Echo): primary never connected (amber), version 11.1, notes.
async fn list_fixture(db: &TestDb) -> (HashSet<i64>, Vec<i64>) {
    let store = &db.store;
    let add =
        |id: &str, name: &str, reseller: &str, provider: Option<&str>, tags: &[&str]| NewCustomer {
            id: id.into(),
            name: name.into(),
            reseller: reseller.into(),
            provider: provider.map(Into::into),
            settings: CustomerSettings {
                tags: tags.iter().map(|t| t.to_string()).collect(),
                ..Default::default()
            },
            service_password: None,
        };
    store
        .add_customer(add(
            "a1",
            "Acme",
            "Reseller A",
            Some("Dist X"),
            &["gold", "SE"],
        ))
        .await
        .unwrap();
    store
        .add_customer(add("b2", "Bravo", "Reseller B", None, &["silver"]))
        .await
        .unwrap();
    store
        .add_customer(add("c3", "Charlie", "Reseller A", None, &[]))
        .await
        .unwrap();
    store
        .add_customer(add("d4", "Delta", "Reseller B", Some("Dist X"), &["gold"]))
        .await
        .unwrap();
    store
        .add_customer(NewCustomer {
            settings: CustomerSettings {
                notes: "Night shift only".into(),
                ..Default::default()
            },
            ..add("e5", "echo", "Reseller A", None, &[])
        })
        .await
        .unwrap();

    let system = |name: &str, kind, version: &str| NewSystem {
        profile: "Server Edition".into(),
        version: version.into(),
        ..NewSystem::new(name, kind)
    };
    let (a_main, _) = store
        .add_system_with("a1", system("Acme Main", SystemKind::Primary, "11.1"))
        .await
        .unwrap();
    let (a_sec, _) = store
        .add_system_with("a1", system("Acme Sec", SystemKind::Secondary, "11.1"))
        .await
        .unwrap();
    let (b_main, _) = store
        .add_system_with("b2", system("Bravo Main", SystemKind::Primary, "9.0"))
        .await
        .unwrap();
    let (d_sec, _) = store
        .add_system_with("d4", system("Delta Sec", SystemKind::Secondary, "10.0"))
        .await
        .unwrap();
    let (e_main, _) = store
        .add_system_with("e5", system("Echo Main", SystemKind::Primary, "11.1"))
        .await
        .unwrap();

    store
        .record_site_connected(a_main.id, &reported(), NOW - 600)
        .await
        .unwrap();
    store
        .record_site_connected(a_sec.id, &reported(), NOW - 7200)
        .await
        .unwrap();
    store.record_site_seen(a_sec.id, NOW - 3600).await.unwrap();
    store
        .record_site_connected(b_main.id, &reported(), NOW - 7200)
        .await
        .unwrap();
    store.record_site_seen(b_main.id, NOW - 3600).await.unwrap();
    assert!(store
        .record_auth_failure("d4", &d_sec.label, NOW - 30)
        .await
        .unwrap());
    for text in ["one", "two"] {
        store.record_alarm(a_main.id, &alarm(text)).await.unwrap();
    }
    store.record_alarm(a_sec.id, &alarm("three")).await.unwrap();

    let connected = HashSet::from([a_main.id]);
    (
        connected,
        vec![a_main.id, a_sec.id, b_main.id, d_sec.id, e_main.id],
    )
}

async fn the_list_carries_systems_status_alarms_and_connectivity(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (connected, system_ids) = list_fixture(&db).await;
    let connected_now = |s: &admin::store::SiteStatus| connected.contains(&s.system_id);
    let rows = db
        .store
        .customer_list(&Visibility::All, &connected_now, NOW)
        .await
        .unwrap();
    assert_eq!(ids(&rows), ["a1", "b2", "c3", "d4", "e5"]);

    let a = &rows[0];
    assert_eq!(a.details.settings.tags, ["SE", "gold"]);
    assert_eq!(
        a.systems
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["Acme Main", "Acme Sec"]
    );
    assert_eq!(a.systems[0].status.system_id, system_ids[0]);
    assert_eq!(a.systems[0].alarms, 2);
    assert_eq!(a.systems[1].alarms, 1);
    assert_eq!(a.alarms, 3);
    assert_eq!(a.systems[0].connectivity.colour, Colour::Green);
    assert_eq!(a.systems[1].connectivity.state, State::Offline);
    assert_eq!(
        a.systems[0].status.agent_version.as_deref(),
        Some("agent 1.2")
    );
    assert_eq!(a.systems[0].version, "11.1");
    assert_eq!(a.systems[0].profile, "Server Edition");
    // The customer's is its primary system's.
    assert_eq!(a.connectivity.state, State::Connected);
    assert_eq!(a.primary().unwrap().name, "Acme Main");

    let b = &rows[1];
    assert_eq!(
        (b.connectivity.colour, b.connectivity.state),
        (Colour::Red, State::Offline)
    );
    assert_eq!(
        b.connectivity.message,
        "System is either not reachable or offline for last 1 hour"
    );
    let c = &rows[2];
    assert!(c.systems.is_empty());
    assert_eq!(c.connectivity.state, State::WaitingForInitialConnection);
    let d = &rows[3];
    assert!(d.primary().is_none());
    assert_eq!(d.connectivity.state, State::AuthorizationFailed);
    let e = &rows[4];
    assert_eq!(e.connectivity.state, State::WaitingForInitialConnection);

    // The hub's answer is what counts: nobody connected, a1 is offline.
    let rows = db
        .store
        .customer_list(&Visibility::All, &nobody_connected, NOW)
        .await
        .unwrap();
    assert_eq!(rows[0].connectivity.state, State::Offline);
}
on_each_database!(the_list_carries_systems_status_alarms_and_connectivity);

async fn the_query_searches_filters_sorts_and_pages(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (connected, _) = list_fixture(&db).await;
    let connected_now = |s: &admin::store::SiteStatus| connected.contains(&s.system_id);
    let rows = db
        .store
        .customer_list(&Visibility::All, &connected_now, NOW)
        .await
        .unwrap();
    let run = |pairs: &[(&str, &str)]| {
        let page = ListQuery::from_pairs(pairs.iter().copied())
            .unwrap()
            .apply(&rows);
        (
            page.total,
            page.items
                .iter()
                .map(|r| r.id().to_owned())
                .collect::<Vec<_>>(),
        )
    };
    let found = |pairs: &[(&str, &str)]| run(pairs).1;

    // Search: any text of the customer or its systems, any case.
    assert_eq!(found(&[("search", "ACME")]), ["a1"]);
    assert_eq!(found(&[("search", "delta sec")]), ["d4"]);
    assert_eq!(found(&[("search", "night SHIFT")]), ["e5"]);
    assert_eq!(found(&[("search", "silver")]), ["b2"]);
    assert_eq!(found(&[("search", "dist x")]), ["a1", "d4"]);
    assert_eq!(found(&[("search", "9.0")]), ["b2"]);
    assert_eq!(found(&[("search", "agent 1.2")]), ["a1", "b2"]);
    assert_eq!(found(&[("search", "waiting for initial")]), ["c3", "e5"]);
    assert_eq!(found(&[("search", "expansion")]), Vec::<String>::new());

    // Filters, all of which must hold.
    assert_eq!(found(&[("reseller", "reseller a")]), ["a1", "c3", "e5"]);
    assert_eq!(found(&[("provider", "Dist X")]), ["a1", "d4"]);
    assert_eq!(found(&[("tag", "GOLD")]), ["a1", "d4"]);
    assert_eq!(found(&[("version", "11.1")]), ["a1", "e5"]);
    assert_eq!(
        found(&[("state", "waiting_for_initial_connection")]),
        ["c3", "e5"]
    );
    assert_eq!(found(&[("colour", "red")]), ["b2", "d4"]);
    assert_eq!(found(&[("tag", "gold"), ("colour", "red")]), ["d4"]);
    assert_eq!(
        found(&[("reseller", "Reseller A"), ("search", "echo")]),
        ["e5"]
    );

    // Sorting: natural, case ignored, ties by id; descending too.
    assert_eq!(found(&[("sort", "name")]), ["a1", "b2", "c3", "d4", "e5"]);
    assert_eq!(
        found(&[("sort", "name"), ("order", "desc")]),
        ["e5", "d4", "c3", "b2", "a1"]
    );
    // By version of the primary (or only) system: "" < 9.0 < 10.0 < 11.1;
    // a1 and e5 tie on 11.1 and stay in id order either way.
    assert_eq!(
        found(&[("sort", "version")]),
        ["c3", "b2", "d4", "a1", "e5"]
    );
    assert_eq!(
        found(&[("sort", "version"), ("order", "desc")]),
        ["a1", "e5", "d4", "b2", "c3"]
    );
    assert_eq!(
        found(&[("sort", "alarms"), ("order", "desc")]),
        ["a1", "b2", "c3", "d4", "e5"]
    );
    // Green, then amber (its states in order), then red.
    assert_eq!(
        found(&[("sort", "connectivity")]),
        ["a1", "c3", "e5", "d4", "b2"]
    );
    assert_eq!(
        found(&[("sort", "provider")]),
        ["b2", "c3", "e5", "a1", "d4"]
    );

    // Paging: total counts every match, items only the page.
    assert_eq!(
        run(&[("sort", "name"), ("offset", "1"), ("limit", "2")]),
        (5, vec!["b2".to_owned(), "c3".to_owned()])
    );
    assert_eq!(run(&[("offset", "5")]), (5, vec![]));
    assert_eq!(
        run(&[("reseller", "Reseller A"), ("limit", "1"), ("offset", "2")]),
        (3, vec!["e5".to_owned()])
    );
    let query = ListQuery::from_pairs([("sort", "id")]).unwrap();
    assert_eq!(query.sort.column, SortColumn::Id);
    assert_eq!(query.sort.direction, Direction::Asc);
    let page = query.apply(&rows);
    assert_eq!((page.offset, page.limit), (0, 50));
}
on_each_database!(the_query_searches_filters_sorts_and_pages);

/// A store shared by two processes: one with the key writes, the other
/// (another `comgate admin`, same key file) reads.
async fn two_stores_with_the_same_key_file_share_passwords(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("data").join("seal.key");
    let writer = db
        .store
        .clone()
        .with_seal_key(SealKey::load_or_create(&key_file).unwrap());
    writer
        .add_customer(NewCustomer {
            service_password: Some("shared-pw".into()),
            ..customer("c1", "R", None)
        })
        .await
        .unwrap();
    let reader: Store = db
        .open_again()
        .await
        .with_seal_key(SealKey::load_or_create(&key_file).unwrap());
    assert_eq!(
        reader
            .reveal_service_password("c1")
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "shared-pw"
    );
}
on_each_database!(two_stores_with_the_same_key_file_share_passwords);
