//! The customer list at the manual's scale ("COM can support up to 1000
//! customers and a total of 3000 IP Office servers"): the store's three
//! statements on SQLite, and the pure query (search, filters, sort, page)
//! on their rows.
//!
//! The data is written with plain SQL in one transaction (the store would
//! hash 3000 agent secrets with argon2 first, minutes of set-up for nothing
//! measured here); the store migrates the file and reads it.

use std::collections::HashSet;
use std::hint::black_box;
use std::time::Duration;

use admin::customer_query::ListQuery;
use admin::{Role, Store, UserChanges, Visibility};
use criterion::{criterion_group, criterion_main, Criterion};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::SqlitePool;

const CUSTOMERS: i64 = 1000;
const SYSTEMS_PER_CUSTOMER: i64 = 3;
const NOW: i64 = 1_700_000_000;
const VERSIONS: [&str; 4] = ["11.1.3.0", "11.0.4.7", "12.1.0.0", "9.1.12"];

async fn fill(path: &std::path::Path) {
    let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(path))
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let mut alarm_id = 0;
    for i in 0..CUSTOMERS {
        let id = format!("c{i:04}");
        sqlx::query(
            "INSERT INTO customers (id, name, reseller, provider, created_at, updated_at, \
             service_user, service_password, phone, email, address, notes) \
             VALUES ($1, $2, $3, $4, $5, $5, 'COMAdmin', NULL, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(format!("Customer {i} Ltd"))
        .bind(format!("Reseller {}", i % 20))
        .bind((i % 2 == 0).then(|| format!("Distributor {}", i % 5)))
        .bind(NOW)
        .bind(format!("+44 20 7946 {i:04}"))
        .bind(format!("it{i}@customer{i}.example"))
        .bind(format!("{i} High Street\nTown {}", i % 50))
        .bind(format!(
            "Site notes for customer {i}: call before upgrading."
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
        let mut tags = vec![format!("region-{}", i % 8)];
        if i % 3 == 0 {
            tags.push("gold".into());
        }
        if i % 7 == 0 {
            tags.push("server-edition".into());
        }
        for tag in tags {
            sqlx::query("INSERT INTO customer_tags (customer_id, tag) VALUES ($1, $2)")
                .bind(&id)
                .bind(tag)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        for (n, (name, kind)) in [
            ("IPO Main", "primary"),
            ("Sec", "secondary"),
            ("Exp", "expansion"),
        ]
        .into_iter()
        .enumerate()
        {
            let system_id = i * SYSTEMS_PER_CUSTOMER + n as i64 + 1;
            let seen = (system_id % 5 != 0).then_some(NOW - (system_id % 97) * 60);
            sqlx::query(
                "INSERT INTO systems (id, customer_id, name, label, is_primary, secret_hash, \
                 created_at, updated_at, kind, profile, version, last_connected_at, last_seen_at, \
                 remote_access, agent_version) \
                 VALUES ($1, $2, $3, $4, $5, 'x', $6, $6, $7, 'Server Edition', $8, $9, $9, TRUE, \
                 'agent 1.0')",
            )
            .bind(system_id)
            .bind(&id)
            .bind(format!("{name} {i}"))
            .bind(format!("{}-{i}", name.to_lowercase().replace(' ', "-")))
            .bind(kind == "primary")
            .bind(NOW)
            .bind(kind)
            .bind(VERSIONS[(i as usize + n) % VERSIONS.len()])
            .bind(seen)
            .execute(&mut *tx)
            .await
            .unwrap();
            if system_id % 4 == 0 {
                alarm_id += 1;
                sqlx::query(
                    "INSERT INTO alarms (id, system_id, alarm_type, text, severity, detail, \
                     source, active, first_at, last_at, occurrences) \
                     VALUES ($1, $2, 'Trunk', 'Trunk 1 out of service', 'major', NULL, 'site', \
                     TRUE, $3, $3, 1)",
                )
                .bind(alarm_id)
                .bind(system_id)
                .bind(NOW)
                .execute(&mut *tx)
                .await
                .unwrap();
            }
        }
    }
    sqlx::query("UPDATE id_sequences SET last_value = $1 WHERE name = 'systems'")
        .bind(CUSTOMERS * SYSTEMS_PER_CUSTOMER)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE id_sequences SET last_value = $1 WHERE name = 'alarms'")
        .bind(alarm_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    pool.close().await;
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("comgate.db");
    let (store, operator) = rt.block_on(async {
        let store = Store::open_sqlite(&path).await.unwrap();
        fill(&path).await;
        // An operator who sees one reseller's and one distributor's customers.
        let user = store
            .add_user("operator", "Operator-pw1", Role::Operator)
            .await
            .unwrap();
        let user = store
            .update_user(
                user.id,
                UserChanges {
                    labels: Some(vec!["Reseller 3".into(), "Distributor 1".into()]),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        (store, user)
    });
    // Three of four agents connected now.
    let connected: HashSet<i64> = (1..=CUSTOMERS * SYSTEMS_PER_CUSTOMER)
        .filter(|id| id % 4 != 0)
        .collect();
    let connected_now = |s: &admin::store::SiteStatus| connected.contains(&s.system_id);
    let list = |visibility: Visibility| {
        rt.block_on(store.customer_list(&visibility, &connected_now, NOW))
            .unwrap()
    };
    let rows = list(Visibility::All);
    assert_eq!(rows.len(), CUSTOMERS as usize);
    assert_eq!(
        rows.iter().map(|r| r.systems.len()).sum::<usize>(),
        (CUSTOMERS * SYSTEMS_PER_CUSTOMER) as usize
    );
    let operator_visibility = Visibility::of(&operator);
    eprintln!(
        "customer_list: {} rows for an administrator, {} for the operator",
        rows.len(),
        list(operator_visibility).len()
    );

    let mut g = c.benchmark_group("customer_list");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    g.bench_function("store_all_1000_customers_3000_systems", |b| {
        b.iter(|| black_box(list(Visibility::All)))
    });
    g.bench_function("store_operator_by_labels", |b| {
        b.iter(|| black_box(list(operator_visibility)))
    });
    g.finish();

    let queries: [(&str, &[(&str, &str)]); 4] = [
        ("default_first_page", &[]),
        (
            "search_filter_sort_page",
            &[
                ("search", "main 1"),
                ("tag", "gold"),
                ("sort", "version"),
                ("order", "desc"),
                ("offset", "10"),
                ("limit", "50"),
            ],
        ),
        ("search_no_match_scans_all_text", &[("search", "zzzz")]),
        (
            "sort_by_name_desc_last_page",
            &[("sort", "name"), ("order", "desc"), ("offset", "950")],
        ),
    ];
    let mut g = c.benchmark_group("customer_query");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for (name, pairs) in queries {
        let query = ListQuery::from_pairs(pairs.iter().copied()).unwrap();
        let page = query.apply(&rows);
        eprintln!(
            "customer_query {name}: {} matching, {} on the page",
            page.total,
            page.items.len()
        );
        g.bench_function(name, |b| {
            b.iter(|| black_box(query.apply(black_box(&rows))))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("customer_list_and_query");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let query = ListQuery::from_pairs([("search", "main 1"), ("tag", "gold"), ("sort", "version")])
        .unwrap();
    g.bench_function("all_1000_search_filter_sort_page", |b| {
        b.iter(|| black_box(query.apply(&list(Visibility::All))))
    });
    g.finish();
    rt.block_on(store.close());
}

criterion_group!(benches, bench);
criterion_main!(benches);
