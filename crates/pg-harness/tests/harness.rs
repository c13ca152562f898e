//! The harness itself: the server is reachable on 127.0.0.1 only, each test
//! gets its own database, and nothing is left behind when the process ends,
//! whether it exits or is killed.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, Row};

/// Set in the child processes the exit tests start.
const CHILD_ENV: &str = "PG_HARNESS_TEST_CHILD";

#[tokio::test]
async fn fresh_databases_are_separate_and_the_server_is_local_only() {
    if std::env::var_os(CHILD_ENV).is_some() || !pg_harness::available() {
        return;
    }
    let a = pg_harness::fresh_database().await;
    let b = pg_harness::fresh_database().await;
    assert_ne!(a, b);
    let mut conn_a = PgConnection::connect(&a).await.unwrap();
    sqlx::query("CREATE TABLE t (x BIGINT)")
        .execute(&mut conn_a)
        .await
        .unwrap();
    let mut conn_b = PgConnection::connect(&b).await.unwrap();
    let tables: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 't'")
            .fetch_one(&mut conn_b)
            .await
            .unwrap();
    assert_eq!(tables, 0, "b does not see a's table");

    let listen: String = sqlx::query_scalar("SHOW listen_addresses")
        .fetch_one(&mut conn_a)
        .await
        .unwrap();
    assert_eq!(listen, "127.0.0.1");
    let rules = sqlx::query("SELECT type, address FROM pg_hba_file_rules ORDER BY line_number")
        .fetch_all(&mut conn_a)
        .await
        .unwrap();
    let rules: Vec<(String, Option<String>)> = rules
        .iter()
        .map(|r| (r.get("type"), r.get("address")))
        .collect();
    assert_eq!(
        rules,
        [
            ("local".to_owned(), None),
            ("host".to_owned(), Some("127.0.0.1".to_owned()))
        ]
    );
}

/// In a child process: starts the server, says where it is, then exits or
/// waits to be killed.
#[tokio::test]
async fn child_process() {
    let Some(mode) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let server = pg_harness::server().expect("checked by the parent");
    // A database proves the server was really up.
    pg_harness::fresh_database().await;
    println!("SERVER {} {}", server.port(), server.root().display());
    if mode == "wait" {
        std::thread::sleep(Duration::from_secs(600));
    }
}

/// Starts the child test in `mode`; returns it and where its server is.
fn start_child(mode: &str) -> (std::process::Child, u16, PathBuf) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next() {
        let line = line.unwrap();
        // libtest may have written "test child_process ... " before it.
        if let Some((_, rest)) = line.split_once("SERVER ") {
            let (port, root) = rest.split_once(' ').unwrap();
            // Keep reading, or the child's last lines would fail on a closed pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return (child, port.parse().unwrap(), PathBuf::from(root));
        }
    }
    let status = child.wait();
    panic!("the child test printed no SERVER line ({status:?})");
}

/// Waits until nothing listens on `port` and `root` is gone.
fn assert_gone(port: u16, root: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listening = TcpStream::connect(("127.0.0.1", port)).is_ok();
        if !listening && !root.exists() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "server still there: listening {listening}, {} exists {}",
            root.display(),
            root.exists()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn server_stops_when_the_process_exits() {
    if std::env::var_os(CHILD_ENV).is_some() || !pg_harness::available() {
        return;
    }
    let (mut child, port, root) = start_child("exit");
    assert!(child.wait().unwrap().success());
    // Gone by the time the process has exited: atexit waited for it.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!root.exists(), "{} left behind", root.display());
}

#[test]
fn server_stops_when_the_process_is_killed() {
    if std::env::var_os(CHILD_ENV).is_some() || !pg_harness::available() {
        return;
    }
    let (mut child, port, root) = start_child("wait");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(root.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_gone(port, &root);
}

#[tokio::test]
async fn the_server_speaks_tls_with_its_certificate() {
    if std::env::var_os(CHILD_ENV).is_some() || !pg_harness::available() {
        return;
    }
    let server = pg_harness::server().unwrap();
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg_harness::fresh_database().await,
        server.ca_cert().display()
    );
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(ssl);
}
