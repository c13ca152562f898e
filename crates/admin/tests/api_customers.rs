//! The customer endpoints through the API on each database: Administrators
//! add, edit and delete customers (the service password stored encrypted
//! and never shown), each role sees only its customers (by label, by
//! manual assignment), Supervisors assign only their own Operators to their
//! own customers, the list searches, filters, sorts and pages, and its
//! connectivity follows what the gateway says is connected now.

mod common;

use admin::store::{Reported, SystemChanges};
use admin::{NewCustomer, NewUser, Role, UserSettings};
use axum::http::StatusCode;
use common::api_client::{Client, TestApi};
use common::{Backend, TestDb};
use serde_json::{json, Value};

const ADMIN_PW: &str = "Admin-pass-1";
const USER_PW: &str = "Member-pass-1";

async fn setup(backend: Backend) -> (TestDb, TestApi, Client) {
    let db = TestDb::new(backend).await;
    db.store
        .add_user("admin", ADMIN_PW, Role::Administrator)
        .await
        .unwrap();
    let api = TestApi::new(db.store.clone());
    let admin = api.logged_in("admin", ADMIN_PW).await;
    (db, api, admin)
}

async fn add_user(api: &TestApi, name: &str, role: Role, labels: &[&str], by: Option<i64>) -> i64 {
    api.store
        .add_user_with(
            NewUser {
                username: name.into(),
                password: USER_PW.into(),
                role,
                settings: UserSettings {
                    labels: labels.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                },
            },
            by,
        )
        .await
        .unwrap()
        .id
}

async fn add_customer(api: &TestApi, id: &str, name: &str, reseller: &str, provider: Option<&str>) {
    api.store
        .add_customer(NewCustomer {
            id: id.into(),
            name: name.into(),
            reseller: reseller.into(),
            provider: provider.map(Into::into),
            ..Default::default()
        })
        .await
        .unwrap();
}

fn ids(answer: &Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

on_each_database!(
    administrators_add_edit_and_delete_customers,
    each_role_sees_its_customers_by_label_and_assignment,
    supervisors_assign_their_operators_to_their_customers,
    the_list_searches_filters_sorts_and_pages,
    connectivity_follows_the_live_view,
    dashboard_counts_link_to_the_lists_they_count,
    administrators_add_and_edit_systems_and_their_secrets,
    status_icons_show_attention_and_new_versions,
);

async fn administrators_add_edit_and_delete_customers(backend: Backend) {
    let (db, _api, admin) = setup(backend).await;
    let created = admin
        .post(
            "/com/api/customers",
            json!({
                "id": "12345", "name": "Acme", "reseller": "Reseller A",
                "service_user": "svc", "service_password": "Very-secret-9",
                "tags": ["gold", "north"], "email": "ops@acme.example"
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.body["customer"]["has_service_password"], true);
    assert!(!created.body.to_string().contains("Very-secret-9"));
    let stored = db
        .raw_strings("SELECT service_password FROM customers WHERE id = '12345'")
        .await;
    assert!(!stored[0].contains("Very-secret-9") && !stored[0].is_empty());

    let dup = admin
        .post(
            "/com/api/customers",
            json!({"id": "12345", "name": "X", "reseller": "R"}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let bad = admin
        .post(
            "/com/api/customers",
            json!({"id": "no-dash!", "name": "X", "reseller": "R"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["field"], "id");

    let tags = admin
        .patch(
            "/com/api/customers/12345",
            json!({"tags": ["a", "b", "c", "d", "e", "f"]}),
        )
        .await;
    assert_eq!(tags.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(tags.body["field"], "tags");
    let edited = admin
        .patch(
            "/com/api/customers/12345",
            json!({"name": "Acme Ltd", "service_password": null}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{edited:?}");
    assert_eq!(edited.body["customer"]["name"], "Acme Ltd");
    assert_eq!(edited.body["customer"]["has_service_password"], false);
    assert_eq!(edited.body["customer"]["tags"], json!(["gold", "north"]));

    let audit = admin
        .get("/com/api/audit?action=customer.update&target=customer:12345")
        .await;
    let record = &audit.body["items"][0];
    assert_eq!(record["before"]["name"], "Acme");
    assert_eq!(record["after"]["name"], "Acme Ltd");
    assert!(!audit.body.to_string().contains("Very-secret-9"));

    assert_eq!(
        admin.delete("/com/api/customers/12345").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        admin.get("/com/api/customers/12345").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM customers").await, 0);
}

async fn each_role_sees_its_customers_by_label_and_assignment(backend: Backend) {
    let (_db, api, admin) = setup(backend).await;
    add_customer(&api, "1", "One", "Reseller A", None).await;
    add_customer(&api, "2", "Two", "Reseller B", Some("Distributor D")).await;
    add_customer(&api, "3", "Three", "Reseller C", None).await;
    let op = add_user(&api, "op", Role::Operator, &["Reseller A"], None).await;
    add_user(&api, "dist", Role::ReadOnly, &["Distributor D"], None).await;
    add_user(&api, "help", Role::Support, &[], None).await;

    let operator = api.logged_in("op", USER_PW).await;
    assert_eq!(ids(&operator.get("/com/api/customers").await.body), ["1"]);
    assert_eq!(
        operator.get("/com/api/customers/2").await.status,
        StatusCode::NOT_FOUND
    );
    let dist = api.logged_in("dist", USER_PW).await;
    assert_eq!(ids(&dist.get("/com/api/customers").await.body), ["2"]);
    let help = api.logged_in("help", USER_PW).await;
    assert_eq!(
        ids(&help.get("/com/api/customers").await.body),
        ["1", "2", "3"]
    );
    // Support sees all but changes nothing.
    let denied = help
        .patch("/com/api/customers/1", json!({"notes": "x"}))
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    let assigned = admin
        .put(&format!("/com/api/customers/3/assignments/{op}"), json!({}))
        .await;
    assert_eq!(assigned.status, StatusCode::NO_CONTENT, "{assigned:?}");
    assert_eq!(
        ids(&operator.get("/com/api/customers").await.body),
        ["1", "3"]
    );
    let detail = admin.get("/com/api/customers/3").await;
    assert_eq!(detail.body["assigned_users"][0]["username"], "op");
    // Manual assignment also shows the customer's alarms' owner scope.
    assert_eq!(
        operator.get("/com/api/customers/3").await.status,
        StatusCode::OK
    );
    admin
        .delete(&format!("/com/api/customers/3/assignments/{op}"))
        .await;
    assert_eq!(ids(&operator.get("/com/api/customers").await.body), ["1"]);

    // Administrators and Support see all customers: nothing to assign.
    let help_id = api.store.user("help").await.unwrap().unwrap().id;
    let pointless = admin
        .put(
            &format!("/com/api/customers/1/assignments/{help_id}"),
            json!({}),
        )
        .await;
    assert_eq!(pointless.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn supervisors_assign_their_operators_to_their_customers(backend: Backend) {
    let (_db, api, _admin) = setup(backend).await;
    add_customer(&api, "1", "One", "Reseller A", None).await;
    add_customer(&api, "2", "Two", "Reseller A", None).await;
    let boss = add_user(&api, "boss", Role::Supervisor, &["Reseller A"], None).await;
    api.store.assign_customer(boss, "1").await.unwrap();
    let own = add_user(&api, "mine", Role::Operator, &[], Some(boss)).await;
    let foreign = add_user(&api, "theirs", Role::Operator, &[], None).await;
    let supervisor = api.logged_in("boss", USER_PW).await;

    let ok = supervisor
        .put(
            &format!("/com/api/customers/1/assignments/{own}"),
            json!({}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{ok:?}");
    assert_eq!(api.store.assigned_customer_ids(own).await.unwrap(), ["1"]);
    // Customer 2 the supervisor sees by label, but is not assigned to.
    let not_own = supervisor
        .put(
            &format!("/com/api/customers/2/assignments/{own}"),
            json!({}),
        )
        .await;
    assert_eq!(not_own.status, StatusCode::FORBIDDEN);
    assert_eq!(not_own.code(), "customer_not_assigned");
    let other = supervisor
        .put(
            &format!("/com/api/customers/1/assignments/{foreign}"),
            json!({}),
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(api
        .store
        .assigned_customer_ids(foreign)
        .await
        .unwrap()
        .is_empty());

    // An Operator assigns nobody.
    let operator = api.logged_in("mine", USER_PW).await;
    let denied = operator
        .put(
            &format!("/com/api/customers/1/assignments/{own}"),
            json!({}),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.code(), "forbidden");
}

async fn the_list_searches_filters_sorts_and_pages(backend: Backend) {
    let (_db, api, admin) = setup(backend).await;
    add_customer(&api, "10", "Delta Dental", "Reseller A", None).await;
    add_customer(&api, "2", "alpha Bakery", "Reseller B", None).await;
    add_customer(&api, "33", "Charlie Cars", "Reseller A", Some("Dist")).await;
    add_customer(&api, "4", "Bravo Bikes", "Reseller B", None).await;
    admin
        .patch(
            "/com/api/customers/4",
            json!({"tags": ["gold"], "notes": "ring before noon"}),
        )
        .await;

    let by_name = admin.get("/com/api/customers?sort=name").await;
    assert_eq!(ids(&by_name.body), ["2", "4", "33", "10"]);
    let desc = admin
        .get("/com/api/customers?sort=name&order=desc&limit=2&offset=1")
        .await;
    assert_eq!(ids(&desc.body), ["33", "4"]);
    assert_eq!(desc.body["total"], 4);
    assert_eq!(desc.body["limit"], 2);
    let reseller = admin
        .get("/com/api/customers?reseller=Reseller%20A&sort=id")
        .await;
    assert_eq!(ids(&reseller.body), ["10", "33"]);
    assert_eq!(
        ids(&admin.get("/com/api/customers?tag=gold").await.body),
        ["4"]
    );
    assert_eq!(
        ids(&admin.get("/com/api/customers?search=NOON").await.body),
        ["4"]
    );
    assert_eq!(
        ids(&admin.get("/com/api/customers?search=dist").await.body),
        ["33"]
    );

    let bad = admin.get("/com/api/customers?sort=bogus").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["field"], "sort");
    let unknown = admin.get("/com/api/customers?colour=purple").await;
    assert_eq!(unknown.body["field"], "colour");
}

async fn connectivity_follows_the_live_view(backend: Backend) {
    let (_db, api, admin) = setup(backend).await;
    add_customer(&api, "1", "One", "R", None).await;
    add_customer(&api, "2", "Two", "R", None).await;
    let (one, _) = api.store.add_system("1", "ipo1", true).await.unwrap();
    api.store.add_system("2", "ipo1", true).await.unwrap();
    api.store
        .record_site_connected(
            one.id,
            &Reported {
                remote_access: true,
                agent_version: "1.0".into(),
                ..Default::default()
            },
            common::api_client::START - 60,
        )
        .await
        .unwrap();
    api.live.set("1", "ipo1", true);
    let connected = admin.get("/com/api/customers?state=connected").await;
    assert_eq!(ids(&connected.body), ["1"], "{connected:?}");
    assert_eq!(
        connected.body["items"][0]["connectivity"]["colour"],
        "green"
    );
    let waiting = admin
        .get("/com/api/customers?state=waiting_for_initial_connection")
        .await;
    assert_eq!(ids(&waiting.body), ["2"]);

    // The agent goes away: offline, and no longer green.
    api.live.set("1", "ipo1", false);
    let offline = admin.get("/com/api/customers?state=offline").await;
    assert_eq!(ids(&offline.body), ["1"], "{offline:?}");
    assert_ne!(offline.body["items"][0]["connectivity"]["colour"], "green");
}

async fn dashboard_counts_link_to_the_lists_they_count(backend: Backend) {
    let (_db, api, admin) = setup(backend).await;
    for (id, reseller, version, tags) in [
        ("1", "Reseller A", "11.1", vec!["gold"]),
        ("2", "Reseller A", "12.0 SP1", vec!["gold", "north"]),
        ("3", "Reseller B", "11.1", vec![]),
    ] {
        add_customer(&api, id, &format!("Customer {id}"), reseller, None).await;
        let (system, _) = api.store.add_system(id, "ipo1", true).await.unwrap();
        api.store
            .update_system(
                system.id,
                SystemChanges {
                    version: Some(version.into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if !tags.is_empty() {
            admin
                .patch(&format!("/com/api/customers/{id}"), json!({"tags": tags}))
                .await;
        }
    }
    api.live.set("2", "ipo1", true);
    api.store
        .record_site_connected(
            api.store
                .system("2", Some("ipo1"))
                .await
                .unwrap()
                .unwrap()
                .id,
            &Reported {
                remote_access: true,
                ..Default::default()
            },
            common::api_client::START,
        )
        .await
        .unwrap();
    add_user(&api, "op", Role::Operator, &["Reseller A"], None).await;
    let operator = api.logged_in("op", USER_PW).await;

    for (client, total) in [(&admin, 3), (&operator, 2)] {
        let board = client.get("/com/api/dashboard").await;
        assert_eq!(board.status, StatusCode::OK, "{board:?}");
        let section = &board.body["customers"];
        assert_eq!(section["total"], total);
        let mut followed = 0;
        for group in ["by_state", "by_version", "by_tag"] {
            let mut sum = 0;
            for count in section[group].as_array().unwrap() {
                let link = count["link"].as_str().unwrap();
                let listed = client.get(link).await;
                assert_eq!(listed.status, StatusCode::OK, "{link}: {listed:?}");
                assert_eq!(listed.body["total"], count["count"], "{group}: {link}");
                sum += count["count"].as_i64().unwrap();
                followed += 1;
            }
            if group == "by_state" {
                // Each customer has exactly one state.
                assert_eq!(sum, total, "{section}");
            }
        }
        assert!(followed >= 8, "{section}");
    }
    let board = admin.get("/com/api/dashboard").await;
    let versions: Vec<(String, i64)> = board.body["customers"]["by_version"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["value"].as_str().unwrap().to_owned(),
                c["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [("11.1".to_owned(), 2), ("12.0 SP1".to_owned(), 1)]
    );
    let connected = board.body["customers"]["by_state"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["value"] == "connected")
        .unwrap()
        .clone();
    assert_eq!(connected["count"], 1);
}

async fn administrators_add_and_edit_systems_and_their_secrets(backend: Backend) {
    let (db, api, admin) = setup(backend).await;
    add_customer(&api, "1", "One", "Reseller A", None).await;
    let added = admin
        .post(
            "/com/api/customers/1/systems",
            json!({"name": "IPO Main", "kind": "primary", "profile": "IP500 V2", "version": "11.1"}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{added:?}");
    assert_eq!(added.body["system"]["label"], "ipo-main");
    assert_eq!(added.body["system"]["kind"], "primary");
    assert!(added.body["system"].get("secret_hash").is_none());
    let secret = added.body["secret"].as_str().unwrap().to_owned();
    assert!(api
        .store
        .authenticate_system("1", Some("ipo-main"), &secret)
        .await
        .unwrap()
        .is_some());

    let second = admin
        .post(
            "/com/api/customers/1/systems",
            json!({"name": "Other", "kind": "primary"}),
        )
        .await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    let expansion = admin
        .post(
            "/com/api/customers/1/systems",
            json!({"name": "Exp 1", "kind": "expansion"}),
        )
        .await;
    assert_eq!(expansion.status, StatusCode::CREATED);

    let edited = admin
        .patch(
            "/com/api/customers/1/systems/ipo-main",
            json!({"version": "12.0"}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{edited:?}");
    assert_eq!(edited.body["version"], "12.0");
    let detail = admin.get("/com/api/customers/1").await;
    assert_eq!(detail.body["systems"].as_array().unwrap().len(), 2);

    add_user(&api, "op", Role::Operator, &["Reseller A"], None).await;
    let operator = api.logged_in("op", USER_PW).await;
    let denied = operator
        .patch(
            "/com/api/customers/1/systems/ipo-main",
            json!({"version": "13"}),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(
        admin
            .patch("/com/api/customers/1/systems/nope", json!({"version": "1"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let rotated = admin
        .post("/com/api/customers/1/systems/ipo-main/secret", json!({}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{rotated:?}");
    let new_secret = rotated.body["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert!(api
        .store
        .authenticate_system("1", Some("ipo-main"), &secret)
        .await
        .unwrap()
        .is_none());
    assert!(api
        .store
        .authenticate_system("1", Some("ipo-main"), new_secret)
        .await
        .unwrap()
        .is_some());
    let audit = db
        .raw_strings("SELECT action FROM audit_log WHERE action LIKE 'system.%' ORDER BY id")
        .await;
    assert_eq!(
        audit,
        [
            "system.create",
            "system.create",
            "system.update",
            "system.secret"
        ]
    );
    let all = db
        .raw_strings("SELECT COALESCE(after_state, '') FROM audit_log")
        .await
        .join(" ");
    assert!(!all.contains(&secret) && !all.contains(new_secret));
}

async fn status_icons_show_attention_and_new_versions(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store
        .add_user("admin", ADMIN_PW, Role::Administrator)
        .await
        .unwrap();
    let mut config = admin::api::ApiConfig::new(common::api_client::test_deployment());
    config.available_version = Some("12.0".into());
    let api = TestApi::with_config(db.store.clone(), config);
    let admin = api.logged_in("admin", ADMIN_PW).await;
    for (id, version) in [("1", "11.1"), ("2", "12.0"), ("3", "")] {
        add_customer(&api, id, id, "R", None).await;
        let (system, _) = api.store.add_system(id, "ipo1", true).await.unwrap();
        api.store
            .update_system(
                system.id,
                SystemChanges {
                    version: Some(version.into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        api.store
            .record_site_connected(
                system.id,
                &Reported {
                    remote_access: true,
                    ..Default::default()
                },
                common::api_client::START,
            )
            .await
            .unwrap();
    }
    api.live.set("1", "ipo1", true);
    api.live.set("2", "ipo1", true);
    let list = admin.get("/com/api/customers?sort=id").await;
    let icons: Vec<(bool, bool)> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["status"]["needs_attention"].as_bool().unwrap(),
                c["status"]["new_version_available"].as_bool().unwrap(),
            )
        })
        .collect();
    // 1: connected, below 12.0; 2: connected, current; 3: offline, unknown version.
    assert_eq!(
        icons,
        [(false, true), (false, false), (true, false)],
        "{list:?}"
    );
    assert!(list.body["items"][0]["status"]["action"].is_null());
}
