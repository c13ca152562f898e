//! The alarm endpoints, the dashboard's alarm counts and the shared
//! visibility rule, through the API on each database with alarms recorded
//! as the agents' reports record them: who sees which alarms (labels on
//! reseller and provider, Administrator and Support everything), the
//! filters, search, sorts and pages, clearing (never an active alarm, never
//! an alarm the caller does not see) and the dashboard links.

mod common;

use std::collections::HashMap;

use admin::{NewCustomer, NewUser, Role, UserSettings};
use axum::http::StatusCode;
use common::api_client::{Answer, Client, TestApi};
use common::{Backend, TestDb};
use serde_json::{json, Value};
use tunnel_proto::report::{AlarmReport, AlarmSource, AlarmType, Severity};

const PW: &str = "Comgate-pass-1";

/// A database with three customers, one system each, seven alarms and a
/// user of each kind; `ids` names the alarms.
struct World {
    _db: TestDb,
    api: TestApi,
    ids: HashMap<&'static str, i64>,
}

impl World {
    fn id(&self, name: &str) -> i64 {
        self.ids[name]
    }

    fn ids_of(&self, names: &[&str]) -> Vec<i64> {
        names.iter().map(|n| self.id(n)).collect()
    }

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

fn report(
    alarm_type: AlarmType,
    severity: Severity,
    text: &str,
    detail: Option<&str>,
    active: bool,
    at: i64,
) -> AlarmReport {
    AlarmReport {
        alarm_type,
        severity,
        text: text.into(),
        detail: detail.map(Into::into),
        active,
        source: AlarmSource::Site,
        occurred_at: at,
    }
}

async fn world(backend: Backend) -> World {
    let db = TestDb::new(backend).await;
    let store = &db.store;
    let mut systems = HashMap::new();
    for (id, name, reseller, provider, system) in [
        ("c1", "Alpha Dental", "Reseller A", None, "IPO Alpha"),
        (
            "c2",
            "Beta Bakery",
            "Reseller B",
            Some("Dist X"),
            "IPO Beta",
        ),
        ("c3", "Gamma Garage", "Reseller C", None, "IPO Gamma"),
    ] {
        store
            .add_customer(NewCustomer {
                id: id.into(),
                name: name.into(),
                reseller: reseller.into(),
                provider: provider.map(Into::into),
                ..Default::default()
            })
            .await
            .unwrap();
        let (s, _) = store.add_system(id, system, true).await.unwrap();
        systems.insert(id, s.id);
    }
    use AlarmType as T;
    use Severity as S;
    let t = 1_000;
    let mut ids = HashMap::new();
    for (name, customer, ty, sev, text, detail, active, at) in [
        (
            "a1",
            "c1",
            T::Trunk,
            S::Critical,
            "Trunk 1 down",
            Some("line 3"),
            true,
            t + 10,
        ),
        (
            "b1",
            "c2",
            T::Services,
            S::Major,
            "Voicemail stopped",
            None,
            false,
            t + 15,
        ),
        (
            "g1",
            "c3",
            T::Services,
            S::Warning,
            "Voicemail stopped",
            None,
            false,
            t + 5,
        ),
        (
            "a2",
            "c1",
            T::Services,
            S::Minor,
            "Voicemail stopped",
            None,
            false,
            t + 20,
        ),
        (
            "b2",
            "c2",
            T::Security,
            S::Critical,
            "Login failures",
            Some("from 10.0.0.9"),
            true,
            t + 25,
        ),
        (
            "g2",
            "c3",
            T::Link,
            S::Major,
            "SCN link down",
            None,
            true,
            t + 35,
        ),
    ] {
        let id = store
            .record_alarm(
                systems[customer],
                &report(ty, sev, text, detail, active, at),
            )
            .await
            .unwrap();
        ids.insert(name, id);
    }
    // Three occurrences, then over: first at t+28, last at t+30.
    for (active, at) in [
        (true, t + 28),
        (true, t + 29),
        (true, t + 30),
        (false, t + 31),
    ] {
        let id = store
            .record_alarm(
                systems["c1"],
                &report(T::Qos, S::Warning, "Jitter high", None, active, at),
            )
            .await
            .unwrap();
        ids.insert("a3", id);
    }

    add_user(&db, "admin", Role::Administrator, &[]).await;
    add_user(&db, "support", Role::Support, &[]).await;
    add_user(&db, "op_a", Role::Operator, &["Reseller A"]).await;
    add_user(&db, "sup_x", Role::Supervisor, &["Dist X"]).await;
    add_user(&db, "ro_a", Role::ReadOnly, &["Reseller A"]).await;
    add_user(&db, "op_none", Role::Operator, &["Reseller Z"]).await;
    let api = TestApi::new(db.store.clone());
    World { _db: db, api, ids }
}

fn ids(answer: &Answer) -> Vec<i64> {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect()
}

async fn list_ids(client: &Client, query: &str) -> Vec<i64> {
    ids(&client.get(&format!("/com/api/alarms{query}")).await)
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

on_each_database!(
    each_user_sees_the_alarms_of_its_customers_only,
    filters_search_sorts_and_pages_pick_the_right_alarms,
    bad_list_parameters_are_named,
    only_inactive_visible_alarms_are_cleared,
    clear_all_by_type_stays_within_the_callers_customers,
    dashboard_counts_match_the_lists_they_link_to,
);

async fn each_user_sees_the_alarms_of_its_customers_only(backend: Backend) {
    let w = world(backend).await;
    let all = sorted(w.ids_of(&["a1", "a2", "a3", "b1", "b2", "g1", "g2"]));
    for (user, expected) in [
        ("admin", all.clone()),
        ("support", all.clone()),
        // A label equal to the reseller.
        ("op_a", w.ids_of(&["a1", "a2", "a3"])),
        ("ro_a", w.ids_of(&["a1", "a2", "a3"])),
        // A label equal to the provider (distributor).
        ("sup_x", w.ids_of(&["b1", "b2"])),
        // A label that is no customer's reseller nor provider.
        ("op_none", vec![]),
    ] {
        let client = w.client(user).await;
        let answer = client.get("/com/api/alarms").await;
        assert_eq!(sorted(ids(&answer)), sorted(expected.clone()), "{user}");
        assert_eq!(answer.body["total"], expected.len(), "{user}");
    }
    // Asking for another customer's alarms finds none, rather than an error.
    let op_a = w.client("op_a").await;
    let other = op_a.get("/com/api/alarms?customer=c2").await;
    assert_eq!(ids(&other), Vec::<i64>::new());
    assert_eq!(other.body["total"], 0);
    // The listed fields.
    let one = op_a.get("/com/api/alarms?search=trunk").await;
    let item = &one.body["items"][0];
    assert_eq!(item["id"], w.id("a1"));
    assert_eq!(item["customer_id"], "c1");
    assert_eq!(item["customer_name"], "Alpha Dental");
    assert_eq!(item["system_name"], "IPO Alpha");
    assert_eq!(item["type"], "Trunk");
    assert_eq!(item["severity"], "critical");
    assert_eq!(item["text"], "Trunk 1 down");
    assert_eq!(item["detail"], "line 3");
    assert_eq!(item["source"], "site");
    assert_eq!(item["active"], true);
    assert_eq!(item["occurrences"], 1);
}

async fn filters_search_sorts_and_pages_pick_the_right_alarms(backend: Backend) {
    let w = world(backend).await;
    let admin = w.client("admin").await;
    let list = |query: &'static str| list_ids(&admin, query);
    // Sort ties are broken by id, ascending, whatever the direction.
    let by_id = |mut names: Vec<&'static str>| {
        names.sort_by_key(|n| w.id(n));
        names
    };
    let cases: Vec<(&'static str, Vec<&str>)> = vec![
        // Default: last occurrence, newest first.
        ("", vec!["g2", "a3", "b2", "a2", "b1", "a1", "g1"]),
        (
            "?sort=last_at&order=asc",
            vec!["g1", "a1", "b1", "a2", "b2", "a3", "g2"],
        ),
        (
            "?sort=first_at&order=asc",
            vec!["g1", "a1", "b1", "a2", "b2", "a3", "g2"],
        ),
        (
            "?sort=first_at&order=desc",
            vec!["g2", "a3", "b2", "a2", "b1", "a1", "g1"],
        ),
        // Filters, each alone and combined.
        ("?type=services", vec!["a2", "b1", "g1"]),
        ("?type=QoS", vec!["a3"]),
        ("?severity=CRITICAL", vec!["b2", "a1"]),
        ("?active=true", vec!["g2", "b2", "a1"]),
        ("?active=false", vec!["a3", "a2", "b1", "g1"]),
        ("?customer=C2", vec!["b2", "b1"]),
        ("?type=Services&customer=c1", vec!["a2"]),
        ("?active=false&severity=warning", vec!["a3", "g1"]),
        // Search: text, detail, customer id and name, system name.
        ("?search=VOICEMAIL", vec!["a2", "b1", "g1"]),
        ("?search=10.0.0.9", vec!["b2"]),
        ("?search=line%203", vec!["a1"]),
        ("?search=gamma%20gar", vec!["g2", "g1"]),
        ("?search=c1", vec!["a3", "a2", "a1"]),
        ("?search=ipo%20beta", vec!["b2", "b1"]),
        ("?search=voicemail&customer=c3", vec!["g1"]),
        ("?search=nothing-like-it", vec![]),
        // Other columns.
        ("?sort=occurrences&order=desc&type=QoS", vec!["a3"]),
        (
            "?sort=customer&order=asc&active=true",
            vec!["a1", "b2", "g2"],
        ),
        (
            "?sort=customer&order=desc&active=true",
            vec!["g2", "b2", "a1"],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(list(query).await, w.ids_of(&expected), "{query}");
    }

    // Severity by rank, critical highest.
    let mut desc = by_id(vec!["a1", "b2"]);
    desc.extend(by_id(vec!["b1", "g2"]));
    desc.push("a2");
    desc.extend(by_id(vec!["a3", "g1"]));
    assert_eq!(list("?sort=severity").await, w.ids_of(&desc));
    assert_eq!(list("?sort=severity&order=desc").await, w.ids_of(&desc));
    let mut asc = by_id(vec!["a3", "g1"]);
    asc.push("a2");
    asc.extend(by_id(vec!["b1", "g2"]));
    asc.extend(by_id(vec!["a1", "b2"]));
    assert_eq!(list("?sort=severity&order=asc").await, w.ids_of(&asc));

    // Type by name: Link, QoS, Security, Services, Trunk.
    let mut by_type = vec!["g2", "a3", "b2"];
    by_type.extend(by_id(vec!["a2", "b1", "g1"]));
    by_type.push("a1");
    assert_eq!(list("?sort=type&order=asc").await, w.ids_of(&by_type));

    // Occurrences: the three-time alarm first, the rest by id.
    let mut most = vec!["a3"];
    most.extend(by_id(vec!["a1", "a2", "b1", "b2", "g1", "g2"]));
    assert_eq!(list("?sort=occurrences&order=desc").await, w.ids_of(&most));

    // Pages of the default order.
    let whole = w.ids_of(&["g2", "a3", "b2", "a2", "b1", "a1", "g1"]);
    for (offset, range) in [(0, 0..3), (3, 3..6), (6, 6..7), (9, 7..7)] {
        let answer = admin
            .get(&format!("/com/api/alarms?limit=3&offset={offset}"))
            .await;
        assert_eq!(ids(&answer), whole[range], "offset {offset}");
        assert_eq!(answer.body["total"], 7);
        assert_eq!(answer.body["offset"], offset);
        assert_eq!(answer.body["limit"], 3);
    }
    // Filters apply before paging: total counts the matches.
    let answer = admin
        .get("/com/api/alarms?type=Services&limit=2&offset=1&sort=last_at&order=asc")
        .await;
    assert_eq!(ids(&answer), w.ids_of(&["b1", "a2"]));
    assert_eq!(answer.body["total"], 3);
}

async fn bad_list_parameters_are_named(backend: Backend) {
    let w = world(backend).await;
    let admin = w.client("admin").await;
    for (query, field) in [
        ("type=Bogus", Some("type")),
        ("severity=awful", Some("severity")),
        ("limit=0", Some("limit")),
        ("offset=-1", Some("offset")),
        ("sort=colour", None),
        ("order=sideways", None),
        ("active=maybe", None),
        ("colour=red", None),
    ] {
        let answer = admin.get(&format!("/com/api/alarms?{query}")).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {answer:?}"
        );
        assert_eq!(answer.body["field"].as_str(), field, "{query}");
    }
    assert_eq!(
        w.api.client().get("/com/api/alarms").await.status,
        StatusCode::UNAUTHORIZED
    );
}

fn cleared(answer: &Answer) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let list = |key: &str| -> Vec<i64> {
        answer.body[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    };
    (list("cleared"), list("still_active"), list("unknown"))
}

async fn all_ids(admin: &Client) -> Vec<i64> {
    sorted(ids(&admin.get("/com/api/alarms?limit=500").await))
}

async fn only_inactive_visible_alarms_are_cleared(backend: Backend) {
    let w = world(backend).await;
    let admin = w.client("admin").await;
    let op_a = w.client("op_a").await;

    // a1 is active, a2 inactive, b1 inactive but not op_a's, 999999 nothing.
    let answer = op_a
        .post(
            "/com/api/alarms/clear",
            json!({"ids": [w.id("a1"), w.id("a2"), w.id("b1"), 999_999, w.id("a2")]}),
        )
        .await;
    let (done, active, unknown) = cleared(&answer);
    assert_eq!(done, [w.id("a2")]);
    assert_eq!(active, [w.id("a1")]);
    assert_eq!(unknown, sorted(vec![w.id("b1"), 999_999]));
    assert_eq!(
        all_ids(&admin).await,
        sorted(w.ids_of(&["a1", "a3", "b1", "b2", "g1", "g2"]))
    );

    // Clearing again: already gone.
    let again = op_a
        .post("/com/api/alarms/clear", json!({"ids": [w.id("a2")]}))
        .await;
    assert_eq!(cleared(&again).2, [w.id("a2")]);

    // Read-only roles may not clear; nothing changes.
    for user in ["ro_a", "support"] {
        let client = w.client(user).await;
        let answer = client
            .post("/com/api/alarms/clear", json!({"ids": [w.id("a3")]}))
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{user}");
        assert_eq!(answer.code(), "forbidden");
        let answer = client
            .post("/com/api/alarms/clear-type", json!({"type": "QoS"}))
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{user}");
    }
    assert!(all_ids(&admin).await.contains(&w.id("a3")));

    // Bodies that name nothing.
    for body in [
        json!({"ids": []}),
        json!({}),
        json!({"ids": [1], "all": true}),
        json!({"ids": ["x"]}),
    ] {
        let answer = op_a.post("/com/api/alarms/clear", body.clone()).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }

    // An Administrator clears any customer's inactive alarm.
    let answer = admin
        .post(
            "/com/api/alarms/clear",
            json!({"ids": [w.id("b1"), w.id("g2")]}),
        )
        .await;
    let (done, active, unknown) = cleared(&answer);
    assert_eq!(
        (done, active, unknown),
        (vec![w.id("b1")], vec![w.id("g2")], vec![])
    );

    // Each clear is in the audit log with what was asked and what happened.
    let audit = admin.get("/com/api/audit?action=alarms.clear").await;
    assert_eq!(audit.status, StatusCode::OK);
    let records = audit.body["items"].as_array().unwrap();
    assert_eq!(records.len(), 3, "{records:?}");
    let first = records.last().unwrap();
    assert_eq!(first["actor"]["name"], "op_a");
    assert_eq!(first["target"], "alarms");
    assert_eq!(first["after"]["cleared"], json!([w.id("a2")]));
    assert_eq!(first["after"]["still_active"], json!([w.id("a1")]));
    assert_eq!(first["before"]["alarms"][0]["id"], w.id("a2"));
    assert_eq!(first["before"]["alarms"][0]["text"], "Voicemail stopped");
}

async fn clear_all_by_type_stays_within_the_callers_customers(backend: Backend) {
    let w = world(backend).await;
    let admin = w.client("admin").await;

    // Services: a2 (c1), b1 (c2), g1 (c3), all inactive. The distributor's
    // supervisor sees c2 only.
    let sup_x = w.client("sup_x").await;
    let answer = sup_x
        .post("/com/api/alarms/clear-type", json!({"type": "services"}))
        .await;
    assert_eq!(cleared(&answer), (vec![w.id("b1")], vec![], vec![]));
    assert_eq!(
        all_ids(&admin).await,
        sorted(w.ids_of(&["a1", "a2", "a3", "b2", "g1", "g2"]))
    );

    // Active alarms of the type stay: Trunk's only alarm is active.
    let op_a = w.client("op_a").await;
    let answer = op_a
        .post("/com/api/alarms/clear-type", json!({"type": "Trunk"}))
        .await;
    assert_eq!(cleared(&answer), (vec![], vec![], vec![]));
    assert!(all_ids(&admin).await.contains(&w.id("a1")));

    let answer = admin
        .post("/com/api/alarms/clear-type", json!({"type": "Services"}))
        .await;
    assert_eq!(
        cleared(&answer),
        (sorted(w.ids_of(&["a2", "g1"])), vec![], vec![])
    );
    assert_eq!(
        all_ids(&admin).await,
        sorted(w.ids_of(&["a1", "a3", "b2", "g2"]))
    );

    let bad = admin
        .post("/com/api/alarms/clear-type", json!({"type": "Weather"}))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["field"], "type");

    let audit = admin
        .get("/com/api/audit?action=alarms.clear&target=alarms:type:Services")
        .await;
    let records = audit.body["items"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[1]["before"]["requested"]["type"], "Services");
    assert_eq!(records[1]["after"]["cleared"], json!([w.id("b1")]));
}

async fn dashboard_counts_match_the_lists_they_link_to(backend: Backend) {
    let w = world(backend).await;
    for (user, critical, services, total) in [
        ("admin", 2, 3, 7),
        ("support", 2, 3, 7),
        ("op_a", 1, 1, 3),
        ("sup_x", 1, 1, 2),
        ("op_none", 0, 0, 0),
    ] {
        let client = w.client(user).await;
        let answer = client.get("/com/api/dashboard").await;
        assert_eq!(answer.status, StatusCode::OK, "{user}: {answer:?}");
        let alarms = &answer.body["alarms"];
        let by_severity = alarms["by_severity"].as_array().unwrap();
        let by_type = alarms["by_type"].as_array().unwrap();
        assert_eq!(by_severity.len(), 4);
        assert_eq!(by_type.len(), 6);
        let count_of = |list: &[Value], key: &str, value: &str| {
            list.iter().find(|e| e[key] == value).unwrap()["count"].clone()
        };
        assert_eq!(
            count_of(by_severity, "severity", "critical"),
            critical,
            "{user}"
        );
        assert_eq!(count_of(by_type, "type", "Services"), services, "{user}");
        for (list, key) in [(by_severity, "severity"), (by_type, "type")] {
            let mut sum = 0;
            for entry in list {
                let link = entry["link"].as_str().unwrap();
                assert!(link.starts_with("/com/api/alarms?"), "{link}");
                let listed = client.get(link).await;
                assert_eq!(listed.status, StatusCode::OK, "{link}");
                assert_eq!(listed.body["total"], entry["count"], "{user}: {link}");
                assert!(listed.body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|a| a[key] == entry[key]));
                sum += entry["count"].as_i64().unwrap();
            }
            assert_eq!(sum, total, "{user}: by {key}");
        }
    }
}

/// The OpenAPI document describes the new endpoints, their errors and
/// their parameters, generated from the handlers.
#[tokio::test]
async fn the_openapi_document_describes_these_endpoints() {
    let db = TestDb::new(Backend::Sqlite).await;
    let api = TestApi::new(db.store.clone());
    let doc = api.client().get("/com/api/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = &doc.body["paths"];
    for (path, method, codes) in [
        ("/alarms", "get", &["200", "401", "403", "422"][..]),
        ("/alarms/clear", "post", &["200", "401", "403", "422"]),
        ("/alarms/clear-type", "post", &["200", "401", "403", "422"]),
        ("/dashboard", "get", &["200", "401", "403"]),
        ("/proxy-accounts", "get", &["200", "401", "403"]),
        (
            "/proxy-accounts/{owner}",
            "put",
            &["200", "401", "403", "404", "409", "422"],
        ),
        (
            "/customers/{id}/systems/{label}/remote-support",
            "get",
            &["200", "401", "403", "404"],
        ),
    ] {
        let op = &paths[path][method];
        assert!(op.is_object(), "{method} {path} missing");
        for code in codes {
            assert!(
                op["responses"][code].is_object(),
                "{method} {path} lacks {code}"
            );
        }
    }
    let params: Vec<&str> = paths["/alarms"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "type", "severity", "active", "customer", "search", "sort", "order", "offset", "limit",
    ] {
        assert!(params.contains(&name), "{params:?} lacks {name}");
    }
}
