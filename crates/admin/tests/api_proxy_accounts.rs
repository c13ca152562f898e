//! Maintenance proxy accounts and remote-support addresses through the API
//! on each database: which owners a user manages (its labels), setting an
//! account so that the gateway's front door takes the new password and no
//! longer the old one, and the remote-support strings of a system for the
//! roles and customers that may see them.

mod common;

use admin::store::Reported;
use admin::{NewCustomer, NewUser, Role, UserSettings};
use axum::http::StatusCode;
use common::api_client::{Client, TestApi};
use common::{Backend, TestDb};
use serde_json::json;

const PW: &str = "Comgate-pass-1";

struct World {
    db: TestDb,
    api: TestApi,
    /// System ids: c1's primary, c1's annex, c2's primary.
    c1_main: i64,
    c1_annex: i64,
}

impl World {
    async fn client(&self, username: &str) -> Client {
        self.api.logged_in(username, PW).await
    }
}

async fn add_user(db: &TestDb, username: &str, role: Role, labels: &[&str]) {
    db.store
        .add_user_with(
            NewUser {
                username: username.into(),
                password: PW.into(),
                role,
                settings: UserSettings {
                    labels: labels.iter().map(|l| l.to_string()).collect(),
                    ..UserSettings::default()
                },
            },
            None,
        )
        .await
        .unwrap();
}

async fn world(backend: Backend) -> World {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    for (id, reseller, provider) in [
        ("c1", "Reseller A", None),
        ("c2", "Reseller B", Some("Dist X")),
        ("c3", "Reseller C", Some("Dist X")),
    ] {
        store
            .add_customer(NewCustomer {
                id: id.into(),
                name: format!("Customer {id}"),
                reseller: reseller.into(),
                provider: provider.map(Into::into),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let (c1_main, _) = store.add_system("c1", "IPO Main", true).await.unwrap();
    let (c1_annex, _) = store.add_system("c1", "IPO Annex", false).await.unwrap();
    store.add_system("c2", "IPO Main", true).await.unwrap();

    add_user(&db, "admin", Role::Administrator, &[]).await;
    add_user(&db, "support", Role::Support, &[]).await;
    add_user(&db, "op_a", Role::Operator, &["Reseller A"]).await;
    add_user(&db, "sup_x", Role::Supervisor, &["Dist X"]).await;
    add_user(&db, "ro_a", Role::ReadOnly, &["Reseller A"]).await;
    let api = TestApi::new(db.store.clone());
    World {
        api,
        c1_main: c1_main.id,
        c1_annex: c1_annex.id,
        db,
    }
}

on_each_database!(
    users_see_the_proxy_accounts_of_their_labels_only,
    setting_an_account_changes_what_the_front_door_accepts,
    bad_proxy_account_changes_are_refused,
    remote_support_addresses_follow_role_visibility_and_remote_access,
);

fn owners(answer: &common::api_client::Answer) -> Vec<(String, Option<String>)> {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["owner"].as_str().unwrap().to_owned(),
                i["username"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

async fn users_see_the_proxy_accounts_of_their_labels_only(backend: Backend) {
    let w = world(backend).await;
    w.db.store
        .set_proxy_account("Reseller B", "rb-maint", "Maint-pass-1")
        .await
        .unwrap();
    w.db.store
        .set_proxy_account("Dist X", "dx-maint", "Maint-pass-1")
        .await
        .unwrap();

    let op_a = w.client("op_a").await;
    // Listed before its account is set, without a username.
    assert_eq!(
        owners(&op_a.get("/com/api/proxy-accounts").await),
        [("Reseller A".to_owned(), None)]
    );
    let ro_a = w.client("ro_a").await;
    assert_eq!(
        owners(&ro_a.get("/com/api/proxy-accounts").await),
        [("Reseller A".to_owned(), None)]
    );
    // The distributor's label: its own account, not its resellers'.
    let sup_x = w.client("sup_x").await;
    let answer = sup_x.get("/com/api/proxy-accounts").await;
    assert_eq!(
        owners(&answer),
        [("Dist X".to_owned(), Some("dx-maint".to_owned()))]
    );
    let text = answer.body.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "{text}"
    );

    // The manual: proxy accounts are managed by users other than
    // Administrators (and Support, its read-only twin).
    for user in ["admin", "support"] {
        let client = w.client(user).await;
        let answer = client.get("/com/api/proxy-accounts").await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{user}");
        let answer = client
            .put(
                "/com/api/proxy-accounts/Reseller%20A",
                json!({"username": "x", "password": "Maint-pass-1"}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{user}");
    }
}

async fn setting_an_account_changes_what_the_front_door_accepts(backend: Backend) {
    let w = world(backend).await;
    let store = &w.db.store;
    let op_a = w.client("op_a").await;

    let answer = op_a
        .put(
            "/com/api/proxy-accounts/Reseller%20A",
            json!({"username": "ra-maint", "password": "First-pass-1"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["owner"], "Reseller A");
    assert_eq!(answer.body["username"], "ra-maint");
    assert!(!answer.body.to_string().contains("First-pass-1"));
    let account = store
        .authenticate_proxy_account("ra-maint", "First-pass-1")
        .await
        .unwrap()
        .expect("the new password opens the front door");
    assert_eq!(account.owner, "Reseller A");

    // A new username and password: the old ones stop working at once.
    let answer = op_a
        .put(
            "/com/api/proxy-accounts/Reseller%20A",
            json!({"username": "ra-support", "password": "Second-pass-2"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert!(store
        .authenticate_proxy_account("ra-support", "Second-pass-2")
        .await
        .unwrap()
        .is_some());
    for (user, password) in [
        ("ra-support", "First-pass-1"),
        ("ra-maint", "First-pass-1"),
        ("ra-maint", "Second-pass-2"),
    ] {
        assert!(
            store
                .authenticate_proxy_account(user, password)
                .await
                .unwrap()
                .is_none(),
            "{user} / {password}"
        );
    }
    assert_eq!(
        owners(&op_a.get("/com/api/proxy-accounts").await),
        [("Reseller A".to_owned(), Some("ra-support".to_owned()))]
    );

    // Audited, without the password.
    let admin = w.client("admin").await;
    let audit = admin
        .get("/com/api/audit?action=proxy_account.set&target=proxy_account:Reseller%20A")
        .await;
    let records = audit.body["items"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{audit:?}");
    assert_eq!(records[0]["actor"]["name"], "op_a");
    assert_eq!(records[0]["before"]["username"], "ra-maint");
    assert_eq!(records[0]["after"]["username"], "ra-support");
    assert_eq!(records[1]["before"], json!(null));
    let stored =
        w.db.raw_strings(
            "SELECT COALESCE(before_state, '') || COALESCE(after_state, '') FROM audit_log",
        )
        .await
        .join("\n");
    assert!(stored.contains("ra-support"), "{stored}");
    for secret in ["First-pass-1", "Second-pass-2", "argon2"] {
        assert!(!stored.contains(secret), "{stored}");
    }
}

async fn bad_proxy_account_changes_are_refused(backend: Backend) {
    let w = world(backend).await;
    let op_a = w.client("op_a").await;
    let put = |owner: &'static str, body: serde_json::Value| {
        let op_a = &op_a;
        async move {
            op_a.put(&format!("/com/api/proxy-accounts/{owner}"), body)
                .await
        }
    };
    let good = json!({"username": "ra-maint", "password": "Maint-pass-1"});

    // Owners the caller does not work for, and owners of nothing, alike.
    for owner in ["Reseller%20B", "Dist%20X", "Nobody", "reseller%20a"] {
        let answer = put(owner, good.clone()).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{owner}: {answer:?}");
        assert_eq!(answer.code(), "not_found");
    }
    // Read-Only users see their accounts but do not set them.
    let ro_a = w.client("ro_a").await;
    let answer = ro_a
        .put("/com/api/proxy-accounts/Reseller%20A", good.clone())
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    for (body, field) in [
        (
            json!({"username": "ra-maint", "password": "short"}),
            "password",
        ),
        (
            json!({"username": "ra-maint", "password": "alllowercaseletters"}),
            "password",
        ),
        (
            json!({"username": "ra:maint", "password": "Maint-pass-1"}),
            "username",
        ),
        (
            json!({"username": "ra maint", "password": "Maint-pass-1"}),
            "username",
        ),
        (
            json!({"username": "", "password": "Maint-pass-1"}),
            "username",
        ),
    ] {
        let answer = put("Reseller%20A", body.clone()).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(answer.body["field"], field, "{body}: {answer:?}");
    }
    let extra = put(
        "Reseller%20A",
        json!({"username": "ra-maint", "password": "Maint-pass-1", "owner": "Dist X"}),
    )
    .await;
    assert_eq!(extra.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(w
        .db
        .store
        .proxy_account_of("Reseller A")
        .await
        .unwrap()
        .is_none());

    // A username another owner has: refused without naming that owner.
    w.db.store
        .set_proxy_account("Dist X", "ra-maint", "Other-pass-1")
        .await
        .unwrap();
    let taken = put("Reseller%20A", good.clone()).await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{taken:?}");
    assert_eq!(taken.body["field"], "username");
    assert!(!taken.body.to_string().contains("Dist X"), "{taken:?}");
}

async fn remote_support_addresses_follow_role_visibility_and_remote_access(backend: Backend) {
    let w = world(backend).await;
    let store = &w.db.store;
    store
        .set_proxy_account("Reseller A", "ra-maint", "Maint-pass-1")
        .await
        .unwrap();
    let on = Reported {
        remote_access: true,
        agent_version: "1.0".into(),
        ..Reported::default()
    };
    store
        .record_site_connected(w.c1_main, &on, 100)
        .await
        .unwrap();
    const PATH: &str = "/com/api/customers/c1/systems/ipo-main/remote-support";

    for user in ["op_a", "ro_a"] {
        let client = w.client(user).await;
        let answer = client.get(PATH).await;
        assert_eq!(answer.status, StatusCode::OK, "{user}: {answer:?}");
        let body = &answer.body;
        assert_eq!(body["customer_id"], "c1");
        assert_eq!(body["system_label"], "ipo-main");
        assert_eq!(body["proxy_owner"], "Reseller A");
        let rs = &body["remote_support"];
        assert_eq!(rs["state"], "enabled");
        // The primary system is reached by the customer id alone.
        assert_eq!(rs["destination"], "c1.maint.example.test");
        assert_eq!(
            rs["linux_ssh"],
            "ssh <user-name>@<external-server-ip-address> -p 22 -oProxyCommand=\"proxytunnel -E --proxy=\"maint.example.test:6443\" --dest='c1.maint.example.test:22' -P 'ra-maint:<proxy-password>' -C '<full-path-to-comgate-ca.pem>'\""
        );
        assert_eq!(
            rs["web_control_panel"],
            "https://c1-ipo-main.maint.example.test:7071/login"
        );
        // This deployment runs no central-management proxy.
        assert_eq!(rs["web_manager"], json!(null));
    }
    // Any case of id and label.
    let op_a = w.client("op_a").await;
    let upper = op_a
        .get("/com/api/customers/C1/systems/IPO-Main/remote-support")
        .await;
    assert_eq!(upper.status, StatusCode::OK);
    assert_eq!(upper.body["remote_support"]["state"], "enabled");

    // The matrix: Administrators and Support do not see the addresses.
    for user in ["admin", "support"] {
        let answer = w.client(user).await.get(PATH).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{user}");
        assert_eq!(answer.code(), "forbidden");
    }

    // A customer the caller does not see answers as one that does not exist.
    let invisible = op_a
        .get("/com/api/customers/c2/systems/ipo-main/remote-support")
        .await;
    let missing = op_a
        .get("/com/api/customers/c9/systems/ipo-main/remote-support")
        .await;
    let no_system = op_a
        .get("/com/api/customers/c1/systems/ipo-nothing/remote-support")
        .await;
    for answer in [&invisible, &missing, &no_system] {
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
        assert_eq!(answer.code(), "not_found");
    }
    // The distributor's supervisor does see c2, but no account is set.
    let sup_x = w.client("sup_x").await;
    let c2 = sup_x
        .get("/com/api/customers/c2/systems/ipo-main/remote-support")
        .await;
    assert_eq!(c2.status, StatusCode::OK, "{c2:?}");
    assert_eq!(c2.body["proxy_owner"], json!(null));
    // c2's agent never reported Remote Access on.
    assert_eq!(
        c2.body["remote_support"],
        json!({"state": "disabled", "message": "Remote Access is Disabled"})
    );

    // A system whose agent never connected, and one that turned it off.
    let annex = op_a
        .get("/com/api/customers/c1/systems/ipo-annex/remote-support")
        .await;
    assert_eq!(annex.status, StatusCode::OK);
    assert_eq!(
        annex.body["remote_support"]["message"],
        "Remote Access is Disabled"
    );
    store
        .record_site_connected(w.c1_annex, &on, 200)
        .await
        .unwrap();
    let annex = op_a
        .get("/com/api/customers/c1/systems/ipo-annex/remote-support")
        .await;
    assert_eq!(
        annex.body["remote_support"]["destination"],
        "c1-ipo-annex.maint.example.test"
    );
    store
        .record_site_connected(w.c1_main, &Reported::default(), 300)
        .await
        .unwrap();
    let off = op_a.get(PATH).await;
    assert_eq!(
        off.body["remote_support"],
        json!({"state": "disabled", "message": "Remote Access is Disabled"})
    );
}
