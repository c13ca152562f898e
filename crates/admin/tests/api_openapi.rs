//! The OpenAPI document at `/com/api/openapi.json` is valid and tells the
//! truth: it validates against the OpenAPI 3.1 schema (the OpenAPI
//! Initiative's `schema/2022-10-07`, Apache-2.0, vendored in
//! `fixtures/oas-3.1-schema.json`), every operation it names is served, and
//! what each operation answers (status and body) is what it documents.

mod common;

use axum::http::{Method, StatusCode};
use common::api_client::{Answer, Client, TestApi};
use common::{Backend, TestDb};
use serde_json::{json, Value};

const ADMIN_PW: &str = "Admin-pass-1";

async fn document(api: &TestApi) -> Value {
    let answer = api.client().get("/com/api/openapi.json").await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "the document needs no session"
    );
    answer.body
}

#[tokio::test]
async fn the_document_validates_against_the_openapi_3_1_schema() {
    let db = TestDb::new(Backend::Sqlite).await;
    let doc = document(&TestApi::new(db.store.clone())).await;
    let meta: Value = serde_json::from_str(include_str!("fixtures/oas-3.1-schema.json")).unwrap();
    let validator = jsonschema::draft202012::new(&meta).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["servers"][0]["url"], "/com/api");
    assert_eq!(
        doc["components"]["securitySchemes"]["session"]["in"],
        "cookie"
    );
}

/// `(method, path)` of every operation the document names.
fn operations(doc: &Value) -> Vec<(Method, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            let method = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                _ => continue,
            };
            out.push((method, path.clone()));
        }
    }
    out
}

/// The path with each `{parameter}` filled in.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        out.push('1');
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Checks `answer` against what the document says `operation` answers.
fn check_documented(doc: &Value, method: &Method, path: &str, answer: &Answer) {
    let op = &doc["paths"][path][method.as_str().to_lowercase()];
    let documented = &op["responses"][answer.status.as_str()];
    assert!(
        !documented.is_null(),
        "{method} {path} answered {} ({}), which it does not document",
        answer.status,
        answer.body
    );
    let Some(schema) = documented["content"]["application/json"]["schema"].as_object() else {
        return;
    };
    let mut root = Value::Object(schema.clone());
    root["components"] = doc["components"].clone();
    let validator = jsonschema::draft202012::new(&root).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&answer.body)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} ({}): body {} breaks its schema: {errors:#?}",
        answer.status,
        answer.body
    );
}

async fn every_operation_is_served_as_documented(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store
        .add_user("admin", ADMIN_PW, admin::Role::Administrator)
        .await
        .unwrap();
    let api = TestApi::new(db.store.clone());
    let doc = document(&api).await;
    let ops = operations(&doc);
    assert!(ops.len() >= 5, "{ops:?}");
    for (method, path) in ops {
        if path == "/logout" {
            continue; // would end the session the other calls use
        }
        let url = format!("/com/api{}", concrete(&path));
        // Without a session: 401, documented, except for login itself.
        let anonymous = api.client();
        let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
        if path != "/login" {
            let answer = anonymous.send(method.clone(), &url, body.clone()).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {url}");
            check_documented(&doc, &method, &path, &answer);
        }
        // As an administrator, with a body that is likely wrong: the
        // endpoint exists, and whatever it answers is documented.
        let client: Client = api.logged_in("admin", ADMIN_PW).await;
        let answer = client.send(method.clone(), &url, body).await;
        assert_ne!(answer.code(), "unknown_endpoint", "{method} {url}");
        assert_ne!(answer.code(), "method_not_allowed", "{method} {url}");
        check_documented(&doc, &method, &path, &answer);
    }
    // And the session endpoint's success shape, with real content.
    let client = api.logged_in("admin", ADMIN_PW).await;
    let answer = client.get("/com/api/session").await;
    assert_eq!(answer.status, StatusCode::OK);
    check_documented(&doc, &Method::GET, "/session", &answer);
    let answer = client.get("/com/api/audit").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body["total"].as_i64().unwrap() >= 1);
    check_documented(&doc, &Method::GET, "/audit", &answer);
}
on_each_database!(every_operation_is_served_as_documented);
