//! The REST API's session rules, through the API itself on each database:
//! login and its cookie, the failed-login block and its expiry, CSRF, the
//! idle timeout, the forced password change, the error shape and limits of
//! every endpoint, and the audit log of logins and changes.

mod common;

use admin::api::ApiConfig;
use admin::{NewUser, Role, UserChanges, UserSettings};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::api_client::{test_deployment, TestApi, START};
use common::{Backend, TestDb};
use serde_json::json;

const ADMIN_PW: &str = "Admin-pass-1";
const USER_PW: &str = "Operator-pass-1";

async fn api_with_admin(backend: Backend) -> (TestDb, TestApi) {
    let db = TestDb::new(backend).await;
    db.store
        .add_user("admin", ADMIN_PW, Role::Administrator)
        .await
        .unwrap();
    let api = TestApi::new(db.store.clone());
    (db, api)
}

async fn add_user(api: &TestApi, username: &str, role: Role, settings: UserSettings) {
    api.store
        .add_user_with(
            NewUser {
                username: username.into(),
                password: USER_PW.into(),
                role,
                settings,
            },
            None,
        )
        .await
        .unwrap();
}

on_each_database!(
    login_sets_a_strict_cookie_and_starts_a_session,
    wrong_passwords_block_the_login_until_the_block_ends,
    disabled_and_expired_accounts_are_refused_after_the_right_password,
    state_changes_need_the_csrf_token,
    an_idle_session_ends_after_the_users_timeout,
    background_refreshes_do_not_keep_a_session_alive,
    a_forced_password_change_comes_first,
    disabling_a_user_ends_its_sessions,
    bad_bodies_get_specific_errors,
    unknown_endpoints_and_methods_answer_json,
    the_audit_log_is_for_administrators_and_pages,
    sessions_nobody_returns_to_are_purged_but_wallboards_stay,
    one_address_guessing_many_names_is_blocked,
    a_wallboard_stays_on_its_display_after_the_timeout,
    simultaneous_guesses_get_no_more_tries_than_the_rule,
);

async fn login_sets_a_strict_cookie_and_starts_a_session(backend: Backend) {
    let (_db, api) = api_with_admin(backend).await;
    let anonymous = api.client();
    let answer = anonymous.get("/com/api/session").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.code(), "not_authenticated");

    let mut client = api.client();
    let answer = client.login("admin", ADMIN_PW).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let cookie = answer.headers[header::SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/com"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert_eq!(answer.body["user"]["username"], "admin");
    assert_eq!(answer.body["user"]["role"], "administrator");
    assert!(answer.body["user"].get("password_hash").is_none());
    let actions = answer.body["allowed_actions"].as_array().unwrap();
    assert!(actions.contains(&json!("view_audit_log")));
    assert!(!actions.contains(&json!("set_proxy_accounts")));
    let csrf = answer.body["csrf_token"].as_str().unwrap().to_owned();
    assert!(csrf.len() >= 40);

    let me = client.get("/com/api/session").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["csrf_token"], csrf.as_str());
    assert_eq!(me.body["read_only"], false);

    // The database keeps only the token's hash.
    let token = client
        .cookie
        .as_ref()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let stored = _db.raw_strings("SELECT token_hash FROM sessions").await;
    assert_eq!(stored, [admin::store::token_hash(&token)]);
    assert_ne!(stored[0], token);

    let out = client.post("/com/api/logout", json!({})).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(out.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let after = client.get("/com/api/session").await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(_db.raw_count("SELECT COUNT(*) FROM sessions").await, 0);
}

async fn wrong_passwords_block_the_login_until_the_block_ends(backend: Backend) {
    let (db, api) = api_with_admin(backend).await;
    let mut client = api.client();
    for _ in 0..3 {
        let answer = client.login("admin", "Wrong-pass-1").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.code(), "invalid_credentials");
        api.clock.advance(60);
    }
    // Blocked now, even with the right password.
    let blocked = client.login("admin", ADMIN_PW).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS, "{blocked:?}");
    assert_eq!(blocked.code(), "login_blocked");
    let retry: i64 = blocked.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The block runs 600 s from the last failure, 60 s ago.
    assert_eq!(retry, 540);
    api.clock.advance(retry - 1);
    assert_eq!(
        client.login("admin", ADMIN_PW).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    api.clock.advance(1);
    assert_eq!(client.login("admin", ADMIN_PW).await.status, StatusCode::OK);

    // Unknown names answer exactly as wrong passwords.
    let unknown = api.client().login("nobody", ADMIN_PW).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.code(), "invalid_credentials");

    let outcomes = db
        .raw_strings("SELECT outcome FROM audit_log WHERE action = 'login' ORDER BY id")
        .await;
    assert_eq!(
        outcomes,
        ["invalid", "invalid", "invalid", "blocked", "blocked", "ok", "invalid"]
    );
}

async fn disabled_and_expired_accounts_are_refused_after_the_right_password(backend: Backend) {
    let (_db, api) = api_with_admin(backend).await;
    add_user(
        &api,
        "gone",
        Role::Operator,
        UserSettings {
            disabled: true,
            ..Default::default()
        },
    )
    .await;
    add_user(
        &api,
        "late",
        Role::Operator,
        UserSettings {
            expires_at: Some(START - 1),
            ..Default::default()
        },
    )
    .await;
    let mut client = api.client();
    let wrong = client.login("gone", "Wrong-pass-1").await;
    assert_eq!(wrong.code(), "invalid_credentials");
    let disabled = client.login("gone", USER_PW).await;
    assert_eq!(disabled.status, StatusCode::FORBIDDEN);
    assert_eq!(disabled.code(), "account_disabled");
    let expired = client.login("late", USER_PW).await;
    assert_eq!(expired.status, StatusCode::FORBIDDEN);
    assert_eq!(expired.code(), "account_expired");
    assert!(client.cookie.is_none());
}

async fn state_changes_need_the_csrf_token(backend: Backend) {
    let (_db, api) = api_with_admin(backend).await;
    let mut client = api.logged_in("admin", ADMIN_PW).await;
    let token = client.csrf.take();
    let without = client.post("/com/api/logout", json!({})).await;
    assert_eq!(without.status, StatusCode::FORBIDDEN);
    assert_eq!(without.code(), "csrf_token_invalid");
    client.csrf = Some("not-the-token".into());
    let wrong = client.post("/com/api/logout", json!({})).await;
    assert_eq!(wrong.code(), "csrf_token_invalid");
    // Reads need no token.
    assert_eq!(client.get("/com/api/session").await.status, StatusCode::OK);
    client.csrf = token;
    assert_eq!(
        client.post("/com/api/logout", json!({})).await.status,
        StatusCode::NO_CONTENT
    );
}

async fn an_idle_session_ends_after_the_users_timeout(backend: Backend) {
    let (_db, api) = api_with_admin(backend).await;
    add_user(
        &api,
        "op",
        Role::Operator,
        UserSettings {
            session_timeout_minutes: 5,
            ..Default::default()
        },
    )
    .await;
    let client = api.logged_in("op", USER_PW).await;
    api.clock.advance(299);
    assert_eq!(client.get("/com/api/session").await.status, StatusCode::OK);
    // Activity restarts the count.
    api.clock.advance(299);
    assert_eq!(client.get("/com/api/session").await.status, StatusCode::OK);
    api.clock.advance(300);
    let expired = client.get("/com/api/session").await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.code(), "session_expired");
    // And it stays ended.
    api.clock.advance(-600);
    assert_eq!(
        client.get("/com/api/session").await.code(),
        "not_authenticated"
    );
}

async fn background_refreshes_do_not_keep_a_session_alive(backend: Backend) {
    let (_db, api) = api_with_admin(backend).await;
    let mut client = api.logged_in("admin", ADMIN_PW).await;
    // The administrator's timeout is the default, 10 minutes.
    client.background = true;
    for _ in 0..3 {
        api.clock.advance(150);
        assert_eq!(client.get("/com/api/session").await.status, StatusCode::OK);
    }
    api.clock.advance(149);
    let answer = client.get("/com/api/session").await;
    assert_eq!(answer.status, StatusCode::OK, "599 s idle");
    api.clock.advance(1);
    assert_eq!(
        client.get("/com/api/session").await.code(),
        "session_expired"
    );
}

async fn a_forced_password_change_comes_first(backend: Backend) {
    let (db, api) = api_with_admin(backend).await;
    add_user(
        &api,
        "fresh",
        Role::Administrator,
        UserSettings {
            force_password_change: true,
            ..Default::default()
        },
    )
    .await;
    let other = api.logged_in("fresh", USER_PW).await;
    let client = api.logged_in("fresh", USER_PW).await;
    let me = client.get("/com/api/session").await;
    assert_eq!(me.body["must_change_password"], true);
    let audit = client.get("/com/api/audit").await;
    assert_eq!(audit.status, StatusCode::FORBIDDEN);
    assert_eq!(audit.code(), "password_change_required");

    let wrong = client
        .put(
            "/com/api/session/password",
            json!({"current_password": "Wrong-pass-1", "new_password": "Brand-new-pass-2"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(wrong.code(), "wrong_password");
    let weak = client
        .put(
            "/com/api/session/password",
            json!({"current_password": USER_PW, "new_password": "short"}),
        )
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(weak.code(), "invalid_field");
    assert_eq!(weak.body["field"], "new_password");
    let reused = client
        .put(
            "/com/api/session/password",
            json!({"current_password": USER_PW, "new_password": USER_PW}),
        )
        .await;
    assert_eq!(
        reused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{reused:?}"
    );

    let done = client
        .put(
            "/com/api/session/password",
            json!({"current_password": USER_PW, "new_password": "Brand-new-pass-2"}),
        )
        .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{done:?}");
    assert_eq!(client.get("/com/api/audit").await.status, StatusCode::OK);
    // The other session ended with the old password.
    assert_eq!(
        other.get("/com/api/session").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.client().login("fresh", USER_PW).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        db.raw_strings("SELECT outcome FROM audit_log WHERE action = 'user.password' ORDER BY id")
            .await,
        ["wrong_current_password", "ok"]
    );
}

async fn disabling_a_user_ends_its_sessions(backend: Backend) {
    let (_db, api) = api_with_admin(backend).await;
    add_user(&api, "op", Role::Operator, UserSettings::default()).await;
    let client = api.logged_in("op", USER_PW).await;
    let id = api.store.user("op").await.unwrap().unwrap().id;
    api.store
        .update_user(
            id,
            UserChanges {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let answer = client.get("/com/api/session").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.code(), "not_authenticated");
}

async fn bad_bodies_get_specific_errors(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut config = ApiConfig::new(test_deployment());
    config.max_body_bytes = 1024;
    let api = TestApi::with_config(db.store.clone(), config);
    let client = api.client();
    let post = |content_type: Option<&str>, body: String| {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/com/api/login");
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        request.body(Body::from(body)).unwrap()
    };
    let big = format!(
        r#"{{"username": "admin", "password": "{}"}}"#,
        "x".repeat(2000)
    );
    let too_large = client.raw(post(Some("application/json"), big)).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.code(), "body_too_large");
    let not_json = client.raw(post(Some("text/plain"), "{}".into())).await;
    assert_eq!(not_json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(not_json.code(), "unsupported_media_type");
    let broken = client
        .raw(post(Some("application/json"), "{\"username\": ".into()))
        .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(broken.code(), "invalid_json");
    let shape = client
        .raw(post(
            Some("application/json"),
            r#"{"username": "a", "password": "b", "extra": 1}"#.into(),
        ))
        .await;
    assert_eq!(shape.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(shape.code(), "invalid_body");
    assert!(shape.body["message"].as_str().unwrap().contains("extra"));
}

async fn unknown_endpoints_and_methods_answer_json(backend: Backend) {
    let (_db, api) = api_with_admin(backend).await;
    let client = api.logged_in("admin", ADMIN_PW).await;
    let missing = client.get("/com/api/no-such-thing").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "unknown_endpoint");
    let method = client.delete("/com/api/login").await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(method.code(), "method_not_allowed");
}

async fn the_audit_log_is_for_administrators_and_pages(backend: Backend) {
    let (_db, api) = api_with_admin(backend).await;
    add_user(&api, "op", Role::Operator, UserSettings::default()).await;
    api.logged_in("admin", ADMIN_PW).await;
    for _ in 0..3 {
        api.clock.advance(10);
        api.client().login("op", "Wrong-pass-1").await;
    }
    // op is blocked now: its login failed three times.
    let mut operator = api.client();
    assert_eq!(operator.login("op", USER_PW).await.code(), "login_blocked");
    api.clock.advance(600);
    let admin = api.logged_in("admin", ADMIN_PW).await;
    let operator = api.logged_in("op", USER_PW).await;
    let forbidden = operator.get("/com/api/audit").await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(forbidden.code(), "forbidden");
    assert_eq!(
        api.client().get("/com/api/audit").await.status,
        StatusCode::UNAUTHORIZED
    );

    let all = admin.get("/com/api/audit?action=login").await;
    assert_eq!(all.status, StatusCode::OK, "{all:?}");
    let outcomes: Vec<&str> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    // Newest first.
    assert_eq!(outcomes.first(), Some(&"ok"));
    assert_eq!(all.body["total"], outcomes.len());
    let failures = admin
        .get("/com/api/audit?action=login&actor=op&limit=2&offset=1")
        .await;
    assert_eq!(failures.body["limit"], 2);
    assert_eq!(failures.body["offset"], 1);
    let items = failures.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|r| r["actor"]["name"] == "op"));
    assert!(items.iter().all(|r| r["actor"]["source"] == "127.0.0.1"));

    let bad = admin.get("/com/api/audit?limit=0").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["field"], "limit");
    let bad = admin.get("/com/api/audit?since=yesterday").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.code(), "invalid_query");
}

async fn sessions_nobody_returns_to_are_purged_but_wallboards_stay(backend: Backend) {
    let (db, api) = api_with_admin(backend).await;
    add_user(
        &api,
        "board",
        Role::Support,
        UserSettings {
            wallboard: true,
            ..Default::default()
        },
    )
    .await;
    let state = api.state.clone();
    let admin = api.logged_in("admin", ADMIN_PW).await;
    let board = api.logged_in("board", USER_PW).await;
    api.clock.advance(29 * 60);
    assert_eq!(
        admin::api::session::purge_idle_sessions(&state)
            .await
            .unwrap(),
        0
    );
    api.clock.advance(60);
    assert_eq!(
        admin::api::session::purge_idle_sessions(&state)
            .await
            .unwrap(),
        1
    );
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM sessions").await, 1);
    assert_eq!(
        admin.get("/com/api/session").await.code(),
        "not_authenticated"
    );
    // The wallboard is still logged in, locked to its display.
    let me = board.get("/com/api/session").await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert!(me.body["wallboard_view"].is_string(), "{me:?}");
}

async fn one_address_guessing_many_names_is_blocked(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store
        .add_user("admin", ADMIN_PW, Role::Administrator)
        .await
        .unwrap();
    let mut config = ApiConfig::new(test_deployment());
    config.address_quota = admin::failure_limit::FailureQuota {
        per_minute: 1,
        burst: 3,
    };
    let api = TestApi::with_config(db.store.clone(), config);
    for name in ["alice", "bob", "carol"] {
        let answer = api.client().login(name, "Wrong-pass-1").await;
        assert_eq!(answer.code(), "invalid_credentials", "{name}");
    }
    // A fourth name, even the right password of a real user, is refused
    // from this address; no name was tried three times, so the per-name
    // block is not what refuses it.
    let answer = api.client().login("admin", ADMIN_PW).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{answer:?}");
    assert_eq!(answer.code(), "too_many_failures");
    assert!(answer.headers.contains_key(header::RETRY_AFTER));
}

async fn a_wallboard_stays_on_its_display_after_the_timeout(backend: Backend) {
    let (_db, api) = api_with_admin(backend).await;
    add_user(
        &api,
        "board",
        Role::ReadOnly,
        UserSettings {
            wallboard: true,
            session_timeout_minutes: 5,
            ..Default::default()
        },
    )
    .await;
    let mut board = api.logged_in("board", USER_PW).await;
    assert_eq!(board.get("/com/api/dashboard").await.status, StatusCode::OK);
    let display = "/com/api/customers?sort=name";
    assert_eq!(board.get(display).await.status, StatusCode::OK);
    // Before the timeout it navigates freely.
    api.clock.advance(299);
    assert_eq!(board.get("/com/api/alarms").await.status, StatusCode::OK);
    assert_eq!(board.get(display).await.status, StatusCode::OK);
    // Past it: still logged in, refreshing its display (in the background
    // too), but nothing else.
    api.clock.advance(300);
    assert_eq!(board.get(display).await.status, StatusCode::OK);
    board.background = true;
    api.clock.advance(3600);
    assert_eq!(board.get(display).await.status, StatusCode::OK);
    board.background = false;
    for other in [
        "/com/api/dashboard",
        "/com/api/customers?sort=id",
        "/com/api/alarms",
    ] {
        let answer = board.get(other).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{other}");
        assert_eq!(answer.code(), "wallboard_locked", "{other}");
    }
    let me = board.get("/com/api/session").await;
    assert_eq!(me.body["wallboard_view"], "/customers?sort=name");
    assert_eq!(
        board.post("/com/api/logout", json!({})).await.status,
        StatusCode::NO_CONTENT
    );
}

async fn simultaneous_guesses_get_no_more_tries_than_the_rule(backend: Backend) {
    let (db, api) = api_with_admin(backend).await;
    let mut guesses = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let api = api.clone();
        guesses.spawn(async move { api.client().login("admin", "Wrong-pass-1").await });
    }
    let answers = guesses.join_all().await;
    let mut codes: Vec<&str> = answers.iter().map(|a| a.code()).collect();
    codes.sort_unstable();
    // Three are checked (and fail); the rest find the name blocked.
    assert_eq!(
        codes,
        [
            "invalid_credentials",
            "invalid_credentials",
            "invalid_credentials",
            "login_blocked",
            "login_blocked",
            "login_blocked",
            "login_blocked",
            "login_blocked"
        ]
    );
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM login_failures").await, 3);
}
