//! The COM users endpoints through the API on each database: who may list,
//! add, edit, delete and reset whom (Administrators everybody, Supervisors
//! their own Operators with their own labels, read-only roles nothing but
//! their profile), what the database holds afterwards, the sessions that
//! end, the fields errors name, search, sort and paging, and the audit log.
//!
//! Users a Supervisor may not manage answer 404, exactly as unknown ids.

mod common;

use admin::Role;
use axum::http::StatusCode;
use common::api_client::{Client, TestApi, START};
use common::{Backend, TestDb};
use serde_json::{json, Value};

const ADMIN_PW: &str = "Admin-pass-1";
const USER_PW: &str = "Operator-pass-1";

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

/// Adds a user through the API as `by`; returns its id.
async fn create(by: &Client, body: Value) -> i64 {
    let answer = by.post("/com/api/users", body.clone()).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{body}: {answer:?}");
    answer.body["id"].as_i64().unwrap()
}

async fn create_user(by: &Client, username: &str, role: &str) -> i64 {
    create(
        by,
        json!({"username": username, "password": USER_PW, "role": role}),
    )
    .await
}

fn ids(answer: &common::api_client::Answer) -> Vec<i64> {
    answer.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer:?}"))
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect()
}

fn assert_error(answer: &common::api_client::Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.code(), code, "{answer:?}");
}

fn assert_field(answer: &common::api_client::Answer, field: &str) {
    assert_error(answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(answer.body["field"], field, "{answer:?}");
}

on_each_database!(
    administrators_add_view_edit_and_delete_users,
    supervisors_add_operators_with_their_own_labels_only,
    supervisors_see_and_manage_only_their_own_operators,
    read_only_roles_change_nothing_but_their_profile,
    nobody_deletes_demotes_or_disables_itself,
    a_password_reset_forces_a_change_and_ends_sessions,
    disabling_or_changing_the_role_ends_sessions,
    validation_errors_name_the_field,
    an_expired_user_is_enabled_only_with_a_future_expiry,
    search_sort_and_pages,
    changes_are_audited_without_password_hashes,
);

async fn administrators_add_view_edit_and_delete_users(backend: Backend) {
    let (db, api, admin) = setup(backend).await;
    let created = admin
        .post(
            "/com/api/users",
            json!({
                "username": "op1",
                "password": USER_PW,
                "role": "operator",
                "first_name": " Olga ",
                "last_name": "Peters",
                "phone": "+4930123",
                "email": "olga@example.test",
                "labels": ["Reseller B", "Reseller A", "Reseller A"],
                "session_timeout_minutes": 20,
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let id = created.body["id"].as_i64().unwrap();
    assert_eq!(created.body["first_name"], "Olga");
    assert_eq!(created.body["labels"], json!(["Reseller A", "Reseller B"]));
    assert_eq!(created.body["created_by"], Value::Null);
    assert!(created.body.get("password_hash").is_none());
    assert!(!created.body.to_string().contains("argon2"));

    // What the database holds.
    let row = db
        .raw_strings(&format!(
            "SELECT username || '|' || role || '|' || first_name || '|' || email \
             FROM users WHERE id = {id}"
        ))
        .await;
    assert_eq!(row, ["op1|operator|Olga|olga@example.test"]);
    let mut labels = db
        .raw_strings(&format!(
            "SELECT label FROM user_labels WHERE user_id = {id}"
        ))
        .await;
    labels.sort();
    assert_eq!(labels, ["Reseller A", "Reseller B"]);
    let timeout = db
        .raw_count(&format!(
            "SELECT CAST(session_timeout_minutes AS BIGINT) FROM users WHERE id = {id}"
        ))
        .await;
    assert_eq!(timeout, 20);

    let shown = admin.get(&format!("/com/api/users/{id}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.body, created.body);

    // The new user logs in with the password given.
    api.logged_in("op1", USER_PW).await;

    let patched = admin
        .patch(
            &format!("/com/api/users/{id}"),
            json!({"last_name": "Paulsen", "labels": ["Reseller C"], "phone": ""}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{patched:?}");
    assert_eq!(patched.body["last_name"], "Paulsen");
    assert_eq!(patched.body["first_name"], "Olga");
    assert_eq!(patched.body["phone"], "");
    assert_eq!(patched.body["session_timeout_minutes"], 20);
    let labels = db
        .raw_strings(&format!(
            "SELECT label FROM user_labels WHERE user_id = {id}"
        ))
        .await;
    assert_eq!(labels, ["Reseller C"]);
    let stored = api.store.user_by_id(id).await.unwrap().unwrap();
    assert_eq!(stored.settings.last_name, "Paulsen");
    assert_eq!(stored.settings.phone, "");

    let duplicate = admin
        .post(
            "/com/api/users",
            json!({"username": "op1", "password": USER_PW, "role": "support"}),
        )
        .await;
    assert_error(&duplicate, StatusCode::CONFLICT, "conflict");

    let unknown_field = admin
        .patch(&format!("/com/api/users/{id}"), json!({"password": "x"}))
        .await;
    assert_error(
        &unknown_field,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );

    let deleted = admin.delete(&format!("/com/api/users/{id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    assert_eq!(
        db.raw_count(&format!("SELECT COUNT(*) FROM users WHERE id = {id}"))
            .await,
        0
    );
    assert_eq!(
        db.raw_count(&format!(
            "SELECT COUNT(*) FROM user_labels WHERE user_id = {id}"
        ))
        .await,
        0
    );
    assert_error(
        &admin.get(&format!("/com/api/users/{id}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &admin.delete(&format!("/com/api/users/{id}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // The OpenAPI document describes the endpoints.
    let doc = api.client().get("/com/api/openapi.json").await;
    let paths = &doc.body["paths"];
    for (path, method) in [
        ("/users", "get"),
        ("/users", "post"),
        ("/users/{id}", "get"),
        ("/users/{id}", "patch"),
        ("/users/{id}", "delete"),
        ("/users/{id}/password", "put"),
        ("/session/profile", "patch"),
    ] {
        assert!(paths[path][method].is_object(), "{path} {method}");
    }
}

/// A Supervisor with labels "Reseller A" and "Reseller B", logged in.
async fn supervisor(api: &TestApi, admin: &Client, username: &str) -> (i64, Client) {
    let id = create(
        admin,
        json!({
            "username": username,
            "password": USER_PW,
            "role": "supervisor",
            "labels": ["Reseller A", "Reseller B"],
        }),
    )
    .await;
    (id, api.logged_in(username, USER_PW).await)
}

async fn supervisors_add_operators_with_their_own_labels_only(backend: Backend) {
    let (db, api, admin) = setup(backend).await;
    let (sup_id, sup) = supervisor(&api, &admin, "sup").await;

    let id = create(
        &sup,
        json!({"username": "op1", "password": USER_PW, "role": "operator", "labels": ["Reseller A"]}),
    )
    .await;
    assert_eq!(
        db.raw_count(&format!("SELECT created_by FROM users WHERE id = {id}"))
            .await,
        sup_id
    );
    let stored = api.store.user_by_id(id).await.unwrap().unwrap();
    assert_eq!(stored.created_by, Some(sup_id));
    assert_eq!(stored.settings.labels, ["Reseller A"]);

    for role in ["supervisor", "administrator", "support", "read-only"] {
        let answer = sup
            .post(
                "/com/api/users",
                json!({"username": "x1", "password": USER_PW, "role": role}),
            )
            .await;
        assert_error(&answer, StatusCode::FORBIDDEN, "role_not_allowed");
        assert_eq!(answer.body["field"], "role");
    }
    let foreign = sup
        .post(
            "/com/api/users",
            json!({"username": "x2", "password": USER_PW, "role": "operator",
                   "labels": ["Reseller A", "Reseller C"]}),
        )
        .await;
    assert_error(&foreign, StatusCode::FORBIDDEN, "label_not_allowed");
    assert_eq!(foreign.body["field"], "labels");
    assert!(
        foreign.body["message"]
            .as_str()
            .unwrap()
            .contains("Reseller C"),
        "{foreign:?}"
    );
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM users WHERE username IN ('x1', 'x2')")
            .await,
        0
    );
}

async fn supervisors_see_and_manage_only_their_own_operators(backend: Backend) {
    let (_db, api, admin) = setup(backend).await;
    let admin_id = api.store.user("admin").await.unwrap().unwrap().id;
    let (sup_id, sup) = supervisor(&api, &admin, "sup").await;
    let (_, sup2) = supervisor(&api, &admin, "sup2").await;
    let own = create_user(&sup, "mine", "operator").await;
    let theirs = create_user(&sup2, "theirs", "operator").await;
    let admins_op = create_user(&admin, "adminsop", "operator").await;

    let list = sup.get("/com/api/users").await;
    assert_eq!(list.status, StatusCode::OK, "{list:?}");
    assert_eq!(ids(&list), [own, sup_id]);
    assert_eq!(list.body["total"], 2);

    assert_eq!(
        sup.get(&format!("/com/api/users/{sup_id}")).await.status,
        StatusCode::OK
    );
    for other in [theirs, admins_op, admin_id, 9999] {
        let path = format!("/com/api/users/{other}");
        assert_error(&sup.get(&path).await, StatusCode::NOT_FOUND, "not_found");
        assert_error(
            &sup.patch(&path, json!({"first_name": "X"})).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        assert_error(&sup.delete(&path).await, StatusCode::NOT_FOUND, "not_found");
        assert_error(
            &sup.put(
                &format!("{path}/password"),
                json!({"password": "New-pass-123"}),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    // Its own account only through its profile: no new labels for itself.
    assert_error(
        &sup.patch(
            &format!("/com/api/users/{sup_id}"),
            json!({"labels": ["Reseller Z"]}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "own_account",
    );

    let mine = format!("/com/api/users/{own}");
    assert_error(
        &sup.patch(&mine, json!({"labels": ["Reseller Z"]})).await,
        StatusCode::FORBIDDEN,
        "label_not_allowed",
    );
    assert_error(
        &sup.patch(&mine, json!({"role": "supervisor"})).await,
        StatusCode::FORBIDDEN,
        "role_not_allowed",
    );
    let edited = sup
        .patch(
            &mine,
            json!({"first_name": "Mina", "labels": ["Reseller B"], "disabled": true}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{edited:?}");
    let stored = api.store.user_by_id(own).await.unwrap().unwrap();
    assert_eq!(stored.settings.first_name, "Mina");
    assert_eq!(stored.settings.labels, ["Reseller B"]);
    assert!(stored.settings.disabled);
    assert_eq!(
        sup.put(
            &format!("{mine}/password"),
            json!({"password": "New-pass-123"})
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sup.delete(&mine).await.status, StatusCode::NO_CONTENT);
    assert!(api.store.user_by_id(own).await.unwrap().is_none());
    // The others are untouched.
    for other in [theirs, admins_op] {
        let user = api.store.user_by_id(other).await.unwrap().unwrap();
        assert_eq!(user.settings.first_name, "");
    }

    // An Administrator sees everybody.
    let all = admin.get("/com/api/users?limit=500").await;
    assert_eq!(all.body["total"], 5, "{all:?}");
}

async fn read_only_roles_change_nothing_but_their_profile(backend: Backend) {
    let (db, api, admin) = setup(backend).await;
    let victim = create_user(&admin, "victim", "operator").await;
    for (username, role) in [
        ("support1", "support"),
        ("readonly1", "read-only"),
        ("operator1", "operator"),
    ] {
        let id = create_user(&admin, username, role).await;
        let client = api.logged_in(username, USER_PW).await;
        let path = format!("/com/api/users/{victim}");
        for answer in [
            client.get("/com/api/users").await,
            client.get(&path).await,
            client
                .post(
                    "/com/api/users",
                    json!({"username": "new1", "password": USER_PW, "role": "operator"}),
                )
                .await,
            client.patch(&path, json!({"first_name": "X"})).await,
            client
                .patch(&format!("/com/api/users/{id}"), json!({"first_name": "X"}))
                .await,
            client.delete(&path).await,
            client
                .put(
                    &format!("{path}/password"),
                    json!({"password": "New-pass-123"}),
                )
                .await,
        ] {
            assert_error(&answer, StatusCode::FORBIDDEN, "forbidden");
        }

        let profile = client
            .patch(
                "/com/api/session/profile",
                json!({"first_name": "Rita", "last_name": "Ross", "phone": "+491234",
                       "mobile": "0170", "email": "rita@example.test"}),
            )
            .await;
        assert_eq!(profile.status, StatusCode::OK, "{profile:?}");
        assert_eq!(profile.body["id"], id);
        assert_eq!(profile.body["email"], "rita@example.test");
        assert!(profile.body.get("password_hash").is_none());
        let row = db
            .raw_strings(&format!(
                "SELECT first_name || ' ' || last_name || ' ' || phone || ' ' || mobile \
                 FROM users WHERE id = {id}"
            ))
            .await;
        assert_eq!(row, ["Rita Ross +491234 0170"]);

        // Nothing but the profile's fields.
        for body in [
            json!({"labels": ["Reseller A"]}),
            json!({"role": "administrator"}),
            json!({"disabled": false}),
        ] {
            assert_error(
                &client.patch("/com/api/session/profile", body).await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            );
        }
        assert_field(
            &client
                .patch("/com/api/session/profile", json!({"email": "no-at-sign"}))
                .await,
            "email",
        );
    }
    assert_eq!(
        db.raw_count("SELECT COUNT(*) FROM users WHERE username = 'new1'")
            .await,
        0
    );
    let victim = api.store.user_by_id(victim).await.unwrap().unwrap();
    assert_eq!(victim.settings.first_name, "");
}

async fn nobody_deletes_demotes_or_disables_itself(backend: Backend) {
    let (db, api, admin) = setup(backend).await;
    let admin_id = api.store.user("admin").await.unwrap().unwrap().id;
    let me = format!("/com/api/users/{admin_id}");
    assert_error(
        &admin.delete(&me).await,
        StatusCode::CONFLICT,
        "cannot_delete_self",
    );
    assert_error(
        &admin.patch(&me, json!({"role": "support"})).await,
        StatusCode::CONFLICT,
        "cannot_change_own_role",
    );
    assert_error(
        &admin.patch(&me, json!({"disabled": true})).await,
        StatusCode::CONFLICT,
        "cannot_disable_self",
    );
    assert_error(
        &admin
            .put(
                &format!("{me}/password"),
                json!({"password": "New-pass-123"}),
            )
            .await,
        StatusCode::FORBIDDEN,
        "own_account",
    );
    // Its own other settings it may change here.
    let own = admin
        .patch(&me, json!({"session_timeout_minutes": 30}))
        .await;
    assert_eq!(own.status, StatusCode::OK, "{own:?}");

    let (sup_id, sup) = supervisor(&api, &admin, "sup").await;
    assert_error(
        &sup.delete(&format!("/com/api/users/{sup_id}")).await,
        StatusCode::CONFLICT,
        "cannot_delete_self",
    );
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM users").await, 2);
    assert_eq!(admin.get("/com/api/session").await.status, StatusCode::OK);
}

async fn a_password_reset_forces_a_change_and_ends_sessions(backend: Backend) {
    let (db, api, admin) = setup(backend).await;
    let id = create_user(&admin, "op1", "operator").await;
    let op = api.logged_in("op1", USER_PW).await;
    let other = api.logged_in("op1", USER_PW).await;

    let weak = admin
        .put(
            &format!("/com/api/users/{id}/password"),
            json!({"password": "short"}),
        )
        .await;
    assert_field(&weak, "password");
    assert_eq!(op.get("/com/api/session").await.status, StatusCode::OK);

    let reset = admin
        .put(
            &format!("/com/api/users/{id}/password"),
            json!({"password": "Reset-pass-123"}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT, "{reset:?}");
    assert_eq!(
        db.raw_count(&format!(
            "SELECT COUNT(*) FROM sessions WHERE user_id = {id}"
        ))
        .await,
        0
    );
    for client in [&op, &other] {
        assert_error(
            &client.get("/com/api/session").await,
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
        );
    }
    assert!(
        api.store
            .user_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .settings
            .force_password_change
    );

    let mut client = api.client();
    assert_eq!(
        client.login("op1", USER_PW).await.status,
        StatusCode::UNAUTHORIZED
    );
    let login = client.login("op1", "Reset-pass-123").await;
    assert_eq!(login.status, StatusCode::OK, "{login:?}");
    assert_eq!(login.body["must_change_password"], true);
    assert_error(
        &client.get("/com/api/audit").await,
        StatusCode::FORBIDDEN,
        "password_change_required",
    );
    let changed = client
        .put(
            "/com/api/session/password",
            json!({"current_password": "Reset-pass-123", "new_password": "Chosen-pass-123"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{changed:?}");
    let after = client.get("/com/api/session").await;
    assert_eq!(after.body["must_change_password"], false);
}

async fn disabling_or_changing_the_role_ends_sessions(backend: Backend) {
    let (db, api, admin) = setup(backend).await;
    let count = |id: i64| format!("SELECT COUNT(*) FROM sessions WHERE user_id = {id}");
    let a = create_user(&admin, "opa", "operator").await;
    let b = create_user(&admin, "opb", "operator").await;
    let c = create_user(&admin, "opc", "operator").await;
    let clients = [
        api.logged_in("opa", USER_PW).await,
        api.logged_in("opb", USER_PW).await,
        api.logged_in("opc", USER_PW).await,
    ];

    let role = admin
        .patch(&format!("/com/api/users/{a}"), json!({"role": "read-only"}))
        .await;
    assert_eq!(role.status, StatusCode::OK, "{role:?}");
    assert_eq!(db.raw_count(&count(a)).await, 0);
    let disable = admin
        .patch(&format!("/com/api/users/{b}"), json!({"disabled": true}))
        .await;
    assert_eq!(disable.status, StatusCode::OK, "{disable:?}");
    assert_eq!(db.raw_count(&count(b)).await, 0);
    // Other changes leave the sessions alone.
    let name = admin
        .patch(
            &format!("/com/api/users/{c}"),
            json!({"first_name": "Carl", "role": "operator"}),
        )
        .await;
    assert_eq!(name.status, StatusCode::OK, "{name:?}");
    assert_eq!(db.raw_count(&count(c)).await, 1);

    assert_eq!(
        clients[0].get("/com/api/session").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        clients[1].get("/com/api/session").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        clients[2].get("/com/api/session").await.status,
        StatusCode::OK
    );
    // The new role applies from the next login.
    let again = api.logged_in("opa", USER_PW).await;
    let session = again.get("/com/api/session").await;
    assert_eq!(session.body["user"]["role"], "read-only");
    assert_eq!(session.body["read_only"], true);
}

async fn validation_errors_name_the_field(backend: Backend) {
    let (_db, _api, admin) = setup(backend).await;
    let new = |extra: Value| {
        let mut body = json!({"username": "new1", "password": USER_PW, "role": "operator"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (extra, field) in [
        (
            json!({"session_timeout_minutes": 7}),
            "session_timeout_minutes",
        ),
        (
            json!({"session_timeout_minutes": 35}),
            "session_timeout_minutes",
        ),
        (json!({"wallboard": true}), "wallboard"),
        (json!({"password": "alllowercase"}), "password"),
        (json!({"password": "Sh0rt"}), "password"),
        (json!({"username": "much-too-long-name"}), "username"),
        (json!({"username": "with space"}), "username"),
        (json!({"email": "nope"}), "email"),
        (json!({"phone": "12-34"}), "phone"),
        (json!({"mobile": "1234567890123456"}), "mobile"),
        (
            json!({"first_name": "A".repeat(20), "last_name": "B".repeat(20)}),
            "name",
        ),
        (
            json!({"role": "administrator", "labels": ["Reseller A"]}),
            "labels",
        ),
        (json!({"labels": [" "]}), "labels"),
    ] {
        let answer = admin.post("/com/api/users", new(extra.clone())).await;
        assert_eq!(answer.body["field"], field, "{extra}: {answer:?}");
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Wallboard is for support and read-only users.
    let wall = create(&admin, new(json!({"role": "read-only", "wallboard": true}))).await;
    let op = create_user(&admin, "op1", "operator").await;
    let path = format!("/com/api/users/{op}");
    assert_field(
        &admin
            .patch(&path, json!({"session_timeout_minutes": 7}))
            .await,
        "session_timeout_minutes",
    );
    assert_field(
        &admin.patch(&path, json!({"wallboard": true})).await,
        "wallboard",
    );
    // A read-only wallboard user cannot become an operator and keep it.
    assert_field(
        &admin
            .patch(
                &format!("/com/api/users/{wall}"),
                json!({"role": "operator"}),
            )
            .await,
        "wallboard",
    );
    assert_error(
        &admin
            .post(
                "/com/api/users",
                json!({"username": "x", "role": "operator"}),
            )
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    assert_error(
        &admin
            .post("/com/api/users", new(json!({"role": "boss"})))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    );
    for (query, field) in [
        ("sort=email", "sort"),
        ("order=up", "order"),
        ("role=boss", "role"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
    ] {
        assert_field(&admin.get(&format!("/com/api/users?{query}")).await, field);
    }
    assert_error(
        &admin.get("/com/api/users?colour=red").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_query",
    );
    // Nothing half-made.
    let list = admin.get("/com/api/users").await;
    assert_eq!(list.body["total"], 3, "{list:?}");
}

async fn an_expired_user_is_enabled_only_with_a_future_expiry(backend: Backend) {
    let (_db, api, admin) = setup(backend).await;
    let past = admin
        .post(
            "/com/api/users",
            json!({"username": "late", "password": USER_PW, "role": "operator",
                   "expires_at": START - 1}),
        )
        .await;
    assert_field(&past, "expires_at");

    let id = create(
        &admin,
        json!({"username": "op1", "password": USER_PW, "role": "operator",
               "expires_at": START + 100}),
    )
    .await;
    api.clock.advance(200);
    let mut client = api.client();
    assert_error(
        &client.login("op1", USER_PW).await,
        StatusCode::FORBIDDEN,
        "account_expired",
    );
    let path = format!("/com/api/users/{id}");
    assert_eq!(admin.get(&path).await.body["disabled"], true);

    // Enabling alone would disable it again at the next login.
    assert_field(
        &admin.patch(&path, json!({"disabled": false})).await,
        "expires_at",
    );
    assert_field(
        &admin
            .patch(&path, json!({"disabled": false, "expires_at": START + 150}))
            .await,
        "expires_at",
    );
    // Other edits of the expired user are fine.
    assert_eq!(
        admin
            .patch(&path, json!({"first_name": "Otto"}))
            .await
            .status,
        StatusCode::OK
    );
    let enabled = admin
        .patch(
            &path,
            json!({"disabled": false, "expires_at": START + 10_000}),
        )
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{enabled:?}");
    assert_eq!(enabled.body["disabled"], false);
    assert_eq!(enabled.body["expires_at"], START + 10_000);
    assert_eq!(client.login("op1", USER_PW).await.status, StatusCode::OK);

    // `null` removes the expiry.
    let cleared = admin.patch(&path, json!({"expires_at": null})).await;
    assert_eq!(cleared.status, StatusCode::OK, "{cleared:?}");
    assert_eq!(cleared.body["expires_at"], Value::Null);
    let stored = api.store.user_by_id(id).await.unwrap().unwrap();
    assert_eq!(stored.settings.expires_at, None);
}

async fn search_sort_and_pages(backend: Backend) {
    let (_db, api, admin) = setup(backend).await;
    let admin_id = api.store.user("admin").await.unwrap().unwrap().id;
    let zed = create(
        &admin,
        json!({"username": "zed", "password": USER_PW, "role": "operator",
               "last_name": "Adams", "email": "zed@ACME.example"}),
    )
    .await;
    let amy = create(
        &admin,
        json!({"username": "Amy", "password": USER_PW, "role": "support",
               "last_name": "Young", "phone": "+4912345"}),
    )
    .await;
    let bob = create(
        &admin,
        json!({"username": "bob", "password": USER_PW, "role": "supervisor",
               "last_name": "miller", "labels": ["Acme Resale"]}),
    )
    .await;
    let carl = create(
        &admin,
        json!({"username": "carl", "password": USER_PW, "role": "read-only",
               "last_name": "Brown", "mobile": "0170555"}),
    )
    .await;

    let cases: &[(&str, &[i64])] = &[
        ("", &[admin_id, amy, bob, carl, zed]),
        ("sort=username&order=desc", &[zed, carl, bob, amy, admin_id]),
        ("search=acme", &[bob, zed]),
        ("search=ACME&order=desc", &[zed, bob]),
        ("search=12345", &[amy]),
        ("search=0170", &[carl]),
        ("search=read-only", &[carl]),
        ("search=SUPPORT", &[amy]),
        ("search=%20young%20", &[amy]),
        ("search=nobody", &[]),
        ("role=operator", &[zed]),
        ("role=Read-Only", &[carl]),
        ("search=a&role=supervisor", &[bob]),
        ("sort=last_name", &[admin_id, zed, carl, bob, amy]),
        (
            "sort=last_name&order=desc",
            &[amy, bob, carl, zed, admin_id],
        ),
        ("sort=role", &[admin_id, zed, carl, bob, amy]),
        ("sort=created_at", &[admin_id, zed, amy, bob, carl]),
        (
            "sort=created_at&order=desc",
            &[carl, bob, amy, zed, admin_id],
        ),
    ];
    for (query, expected) in cases {
        let answer = admin.get(&format!("/com/api/users?{query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{query}: {answer:?}");
        assert_eq!(ids(&answer), *expected, "{query}");
        assert_eq!(answer.body["total"], expected.len(), "{query}");
    }

    let page = admin
        .get("/com/api/users?sort=username&offset=1&limit=2")
        .await;
    assert_eq!(ids(&page), [amy, bob]);
    assert_eq!(
        (
            &page.body["total"],
            &page.body["offset"],
            &page.body["limit"]
        ),
        (&json!(5), &json!(1), &json!(2))
    );
    let last = admin.get("/com/api/users?offset=4&limit=2").await;
    assert_eq!(ids(&last), [zed]);
    let beyond = admin.get("/com/api/users?offset=10").await;
    assert_eq!(ids(&beyond), Vec::<i64>::new());
    assert_eq!(beyond.body["total"], 5);
    for item in page.body["items"].as_array().unwrap() {
        assert!(item.get("password_hash").is_none());
    }
}

async fn changes_are_audited_without_password_hashes(backend: Backend) {
    let (db, api, admin) = setup(backend).await;
    let (sup_id, sup) = supervisor(&api, &admin, "sup").await;
    let id = create(
        &sup,
        json!({"username": "op1", "password": USER_PW, "role": "operator", "labels": ["Reseller A"]}),
    )
    .await;
    let path = format!("/com/api/users/{id}");
    assert_eq!(
        sup.patch(&path, json!({"first_name": "Otto"})).await.status,
        StatusCode::OK
    );
    assert_eq!(
        sup.put(
            &format!("{path}/password"),
            json!({"password": "Reset-pass-123"})
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let me = api.logged_in("sup", USER_PW).await;
    assert_eq!(
        me.patch("/com/api/session/profile", json!({"phone": "+4912"}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(sup.delete(&path).await.status, StatusCode::NO_CONTENT);

    let log = admin.get(&format!("/com/api/audit?target=user:{id}")).await;
    assert_eq!(log.status, StatusCode::OK, "{log:?}");
    let items = log.body["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    // Newest first.
    assert_eq!(
        actions,
        [
            "user.delete",
            "user.password_reset",
            "user.update",
            "user.create"
        ]
    );
    for record in items {
        assert_eq!(record["actor"]["name"], "sup");
        assert_eq!(record["actor"]["id"], sup_id);
        assert_eq!(record["outcome"], "ok");
    }
    let [delete, reset, update, create] = [&items[0], &items[1], &items[2], &items[3]];
    assert_eq!(create["before"], Value::Null);
    assert_eq!(create["after"]["username"], "op1");
    assert_eq!(create["after"]["labels"], json!(["Reseller A"]));
    assert_eq!(update["before"]["first_name"], "");
    assert_eq!(update["after"]["first_name"], "Otto");
    assert_eq!(reset["before"]["force_password_change"], false);
    assert_eq!(reset["after"]["force_password_change"], true);
    assert_eq!(delete["before"]["first_name"], "Otto");
    assert_eq!(delete["after"], Value::Null);

    let profile = admin
        .get(&format!(
            "/com/api/audit?target=user:{sup_id}&action=user.update"
        ))
        .await;
    let items = profile.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{profile:?}");
    assert_eq!(items[0]["before"]["phone"], "");
    assert_eq!(items[0]["after"]["phone"], "+4912");

    // No hash anywhere in the stored records.
    let stored = db
        .raw_strings(
            "SELECT COALESCE(before_state, '') || COALESCE(after_state, '') FROM audit_log",
        )
        .await;
    assert!(stored.iter().any(|s| s.contains("Otto")));
    for text in stored {
        assert!(!text.contains("argon2"), "{text}");
        assert!(!text.contains("password_hash"), "{text}");
    }
}
