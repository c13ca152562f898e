//! The actions sites report (an upgrade, a backup) on each database: a run
//! moves from in progress to its end and then stays there, the history per
//! system is bounded, and the customer list's action icon and filter, the
//! dashboard's counts and a customer's details show them through the API.

mod common;

use admin::store::Visibility;
use admin::{NewCustomer, Role, StoreError};
use common::api_client::TestApi;
use common::{Backend, TestDb};
use tunnel_proto::report::{ActionReport, ActionState};

on_each_database!(
    a_run_moves_to_its_end_and_stays_there,
    history_is_trimmed_per_system,
    the_list_shows_the_action_in_progress_before_the_last_ended,
    the_api_shows_filters_and_details_actions,
);

fn report(id: &str, kind: &str, state: ActionState, at: i64) -> ActionReport {
    ActionReport {
        id: id.into(),
        kind: kind.into(),
        state,
        detail: None,
        occurred_at: at,
    }
}

/// Customer `id` with systems `ipo1` (primary) and `ipo2`; their ids.
async fn customer(db: &TestDb, id: &str) -> (i64, i64) {
    db.store
        .add_customer(NewCustomer {
            id: id.into(),
            name: format!("Customer {id}"),
            reseller: "R".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (a, _) = db.store.add_system(id, "ipo1", true).await.unwrap();
    let (b, _) = db.store.add_system(id, "ipo2", false).await.unwrap();
    (a.id, b.id)
}

async fn a_run_moves_to_its_end_and_stays_there(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (a, _) = customer(&db, "1").await;
    let store = &db.store;
    let mut start = report("up-1", "upgrade", ActionState::InProgress, 1_000);
    start.detail = Some("to 12.1".into());
    let id = store.record_action(a, &start, 20).await.unwrap().unwrap();
    // Progress: the same run, a newer detail.
    let mut progress = report("up-1", "upgrade", ActionState::InProgress, 1_100);
    progress.detail = Some("40 %".into());
    assert_eq!(
        store.record_action(a, &progress, 20).await.unwrap(),
        Some(id)
    );
    // The end keeps the last detail when it brings none.
    let done = report("up-1", "upgrade", ActionState::Completed, 1_200);
    assert_eq!(store.record_action(a, &done, 20).await.unwrap(), Some(id));
    // Over is over: a late "in progress" or "failed" of that run changes nothing.
    for late in [
        report("up-1", "upgrade", ActionState::InProgress, 1_300),
        report("up-1", "upgrade", ActionState::Failed, 1_400),
    ] {
        assert_eq!(store.record_action(a, &late, 20).await.unwrap(), None);
    }
    let actions = store.actions_of_customer("1").await.unwrap();
    assert_eq!(actions.len(), 1, "{actions:?}");
    let run = &actions[0];
    assert_eq!(
        (
            run.id,
            run.site_action_id.as_str(),
            run.kind.as_str(),
            run.state,
            run.detail.as_deref(),
            run.system_name.as_str(),
        ),
        (
            id,
            "up-1",
            "upgrade",
            ActionState::Completed,
            Some("40 %"),
            "ipo1"
        )
    );
    assert_eq!(
        (run.started_at, run.updated_at, run.ended_at),
        (1_000, 1_200, Some(1_200))
    );

    // A run first heard of at its end is stored ended.
    let failed = report("bk-7", "backup", ActionState::Failed, 2_000);
    let other = store.record_action(a, &failed, 20).await.unwrap().unwrap();
    assert_ne!(other, id);
    let actions = store.actions_of_customer("1").await.unwrap();
    assert_eq!(
        actions
            .iter()
            .map(|r| (r.site_action_id.as_str(), r.state, r.ended_at))
            .collect::<Vec<_>>(),
        [
            ("bk-7", ActionState::Failed, Some(2_000)),
            ("up-1", ActionState::Completed, Some(1_200))
        ],
        "last reported first"
    );

    // Bad reports and unknown systems are named errors; nothing is stored.
    let err = store
        .record_action(a, &report(" ", "upgrade", ActionState::InProgress, 1), 20)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidAction(m) if m.contains("id")),
        "{err}"
    );
    let err = store
        .record_action(
            9_999,
            &report("x", "upgrade", ActionState::InProgress, 1),
            20,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownSystemId(9_999)), "{err}");
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM site_actions").await, 2);

    // The runs go with their customer's systems.
    store.delete_customer("1").await.unwrap();
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM site_actions").await, 0);
}

async fn history_is_trimmed_per_system(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (a, b) = customer(&db, "1").await;
    let store = &db.store;
    store
        .record_action(b, &report("b", "backup", ActionState::Completed, 1), 3)
        .await
        .unwrap();
    for i in 0..6 {
        let run = report(&format!("r{i}"), "backup", ActionState::Completed, 100 + i);
        store.record_action(a, &run, 3).await.unwrap().unwrap();
    }
    let kept: Vec<String> = store
        .actions_of_customer("1")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.site_action_id)
        .collect();
    assert_eq!(
        kept,
        ["r5", "r4", "r3", "b"],
        "the newest 3 of ipo1, ipo2's own"
    );
    assert_eq!(db.raw_count("SELECT COUNT(*) FROM site_actions").await, 4);
}

async fn the_list_shows_the_action_in_progress_before_the_last_ended(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (a, b) = customer(&db, "1").await;
    customer(&db, "2").await;
    let store = &db.store;
    let list = || async {
        let rows = store
            .customer_list(&Visibility::All, &|_| false, 10_000)
            .await
            .unwrap();
        rows.into_iter()
            .map(|r| {
                (
                    r.action(),
                    r.systems
                        .iter()
                        .map(|s| s.action.as_ref().map(|x| (x.kind.clone(), x.state, x.at)))
                        .collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list().await,
        [(None, vec![None, None]), (None, vec![None, None])]
    );

    store
        .record_action(
            a,
            &report("up", "upgrade", ActionState::InProgress, 100),
            20,
        )
        .await
        .unwrap();
    // A backup on the other system ends later: the upgrade still runs, and
    // that is what the customer shows.
    store
        .record_action(b, &report("bk", "backup", ActionState::Completed, 200), 20)
        .await
        .unwrap();
    let rows = list().await;
    assert_eq!(
        rows[0],
        (
            Some(ActionState::InProgress),
            vec![
                Some(("upgrade".to_string(), ActionState::InProgress, 100)),
                Some(("backup".to_string(), ActionState::Completed, 200)),
            ]
        )
    );
    assert_eq!(rows[1].0, None, "customer 2 has no actions");

    // The upgrade fails after the backup ended: failed is the last word.
    store
        .record_action(a, &report("up", "upgrade", ActionState::Failed, 300), 20)
        .await
        .unwrap();
    assert_eq!(list().await[0].0, Some(ActionState::Failed));
    // A later success on the other system is the last word then.
    store
        .record_action(b, &report("bk2", "backup", ActionState::Completed, 400), 20)
        .await
        .unwrap();
    assert_eq!(list().await[0].0, Some(ActionState::Completed));
    // On one system, a run in progress shows before a later-ended one.
    store
        .record_action(a, &report("re", "reboot", ActionState::InProgress, 350), 20)
        .await
        .unwrap();
    let rows = list().await;
    assert_eq!(rows[0].0, Some(ActionState::InProgress));
    assert_eq!(
        rows[0].1[0],
        Some(("reboot".to_string(), ActionState::InProgress, 350))
    );
}

async fn the_api_shows_filters_and_details_actions(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.store
        .add_user("admin", "Admin-pass-1", Role::Administrator)
        .await
        .unwrap();
    let (a1, _) = customer(&db, "1").await;
    let (a2, _) = customer(&db, "2").await;
    customer(&db, "3").await;
    let store = &db.store;
    let mut upgrade = report("up", "upgrade", ActionState::InProgress, 100);
    upgrade.detail = Some("to 12.1".into());
    store.record_action(a1, &upgrade, 20).await.unwrap();
    store
        .record_action(a2, &report("bk", "backup", ActionState::Failed, 100), 20)
        .await
        .unwrap();
    let api = TestApi::new(db.store.clone());
    let admin = api.logged_in("admin", "Admin-pass-1").await;

    let list = admin.get("/com/api/customers?sort=id").await;
    let icons: Vec<serde_json::Value> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"]["action"].clone())
        .collect();
    assert_eq!(
        icons,
        [
            serde_json::json!("in_progress"),
            serde_json::json!("failed"),
            serde_json::Value::Null
        ],
        "{list:?}"
    );
    let system = &list.body["items"][0]["systems"][0];
    assert_eq!(system["action"]["kind"], "upgrade", "{system}");
    assert_eq!(system["action"]["state"], "in_progress", "{system}");

    for (filter, expected) in [
        ("in_progress", vec!["1"]),
        ("failed", vec!["2"]),
        ("completed", vec![]),
    ] {
        let page = admin
            .get(&format!("/com/api/customers?action={filter}"))
            .await;
        let ids: Vec<&str> = page.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, expected, "{filter}: {page:?}");
    }
    let bad = admin.get("/com/api/customers?action=paused").await;
    assert_eq!(bad.status, 422, "{bad:?}");
    assert_eq!(bad.body["field"], "action", "{bad:?}");

    // The dashboard counts each icon, and each count's link lists exactly
    // the customers it counts.
    let board = admin.get("/com/api/dashboard").await;
    let by_action = board.body["customers"]["by_action"].as_array().unwrap();
    let counts: Vec<(&str, i64)> = by_action
        .iter()
        .map(|c| (c["value"].as_str().unwrap(), c["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        counts,
        [("in_progress", 1), ("completed", 0), ("failed", 1)],
        "{board:?}"
    );
    for count in by_action {
        let listed = admin.get(count["link"].as_str().unwrap()).await;
        assert_eq!(listed.body["total"], count["count"], "{count}");
    }

    let details = admin.get("/com/api/customers/1").await;
    let actions = details.body["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{details:?}");
    assert_eq!(actions[0]["site_action_id"], "up");
    assert_eq!(actions[0]["detail"], "to 12.1");
    assert_eq!(actions[0]["system_name"], "ipo1");
    assert_eq!(actions[0]["ended_at"], serde_json::Value::Null);
}
