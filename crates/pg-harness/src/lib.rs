//! Tests only: a real PostgreSQL server for the tests of one process.
//!
//! The first test that asks starts the server: `initdb` into a new directory
//! under the temp dir (trust authentication, and only for the local socket
//! and 127.0.0.1), then `postgres` listening on 127.0.0.1 alone, on a free
//! port, with its socket in that directory, TLS on (a self-signed
//! certificate for 127.0.0.1, [`Server::ca_cert`]) and durability off
//! (fsync, synchronous commit, full page writes: a crash loses nothing a
//! test needs). Each test then gets a database of its own from
//! [`fresh_database`], so tests stay parallel and independent.
//!
//! The server stops when the process exits: an `atexit` handler asks the
//! wrapper shell the server runs under to stop it (SIGINT, PostgreSQL's fast
//! shutdown), waits for it and removes the directory. The wrapper also
//! watches its standard input, a pipe from this process, so a test process
//! that is killed (where no `atexit` runs) takes its server down with it
//! too: no orphan `postgres` is left either way.
//!
//! PostgreSQL refuses to run as root. As root (CI, the project's machines)
//! the server runs as the `postgres` system user, which owns the directory;
//! otherwise as the current user.
//!
//! The binaries are looked for in `$COMGATE_PG_BINDIR`, then in Debian's
//! `/usr/lib/postgresql/<version>/bin` (the newest), then on `PATH`. Where
//! there are none, [`available`] fails the test when `CI=true`, and
//! otherwise writes a loud line to the terminal (past the test harness's
//! output capture) and returns false, for the test to skip.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::{Connection, Executor, PgConnection};

/// Overrides where `initdb`, `postgres` and `pg_isready` are looked for.
pub const BINDIR_ENV: &str = "COMGATE_PG_BINDIR";

/// The server's superuser, whom every test database belongs to.
pub const SUPERUSER: &str = "postgres";

/// How long the server may take to accept connections after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the server may take to stop at exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The programs the harness runs.
const PROGRAMS: [&str; 3] = ["initdb", "postgres", "pg_isready"];

/// Runs the server, and stops it when this shell's standard input (a pipe
/// from the test process) closes: at exit, or when the process dies.
/// Arguments: the directory, then the server's command line. A background
/// job's stdin is /dev/null unless redirected, hence fd 3.
const WRAPPER: &str = r#"
root=$1; shift
exec 3<&0
"$@" </dev/null &
pid=$!
( read -r _ <&3; touch "$root/stopping"; kill -INT "$pid" 2>/dev/null ) &
wait "$pid"
status=$?
if [ -e "$root/stopping" ]; then rm -rf "$root"; fi
exit "$status"
"#;

/// The running server of this process.
#[derive(Debug)]
pub struct Server {
    port: u16,
    root: PathBuf,
}

impl Server {
    /// The TCP port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` on it, as the superuser.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Its directory: the data directory (`data`), its socket and its log
    /// (`postgres.log`). Removed when the server stops.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The server's self-signed certificate (for 127.0.0.1), PEM: the root
    /// to trust for `sslmode=verify-full`.
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }
}

/// Why there is no server.
#[derive(Debug)]
enum Unavailable {
    /// No PostgreSQL binaries: skip, except on CI.
    NotInstalled(String),
    /// Installed but would not start: always a failure.
    Failed(String),
}

static SERVER: OnceLock<Result<Server, Unavailable>> = OnceLock::new();

/// The wrapper shell and the write end of its standard input, for `atexit`.
struct Running {
    wrapper: Child,
    stdin: Option<ChildStdin>,
    root: PathBuf,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// Whether CI runs us: there, a missing PostgreSQL fails instead of skipping.
fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The server, started on first use.
///
/// Panics when it cannot be had and the test must not skip: PostgreSQL is
/// installed but did not start, or it is missing and `CI=true`.
pub fn server() -> Option<&'static Server> {
    match SERVER.get_or_init(start) {
        Ok(server) => Some(server),
        Err(Unavailable::Failed(message)) => panic!("test PostgreSQL: {message}"),
        Err(Unavailable::NotInstalled(message)) if on_ci() => panic!(
            "test PostgreSQL: {message}. CI=true, so the PostgreSQL tests must run: \
             install PostgreSQL (Debian: apt-get install postgresql; scripts/test-all.sh does) \
             or set {BINDIR_ENV}"
        ),
        Err(Unavailable::NotInstalled(message)) => {
            skipped(message);
            None
        }
    }
}

/// Whether this test can use PostgreSQL; see [`server`] for when it panics
/// instead. False is said loudly, once per test.
pub fn available() -> bool {
    server().is_some()
}

/// Writes straight to the terminal: the test harness captures `eprintln!`
/// of passing tests, and a skip must not go unseen.
fn skipped(message: &str) {
    static BANNER: Once = Once::new();
    let mut stderr = std::io::stderr();
    BANNER.call_once(|| {
        let _ = writeln!(
            stderr,
            "\n!!!!! PostgreSQL tests SKIPPED: {message}.\n\
             !!!!! Install PostgreSQL (Debian: apt-get install postgresql) or set {BINDIR_ENV}; \
             with CI=true these tests fail instead.\n"
        );
    });
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(
        stderr,
        "!!!!! SKIPPED on PostgreSQL (not installed): {test}"
    );
}

/// A new, empty database on the server, and its URL. Each call gives
/// another, so tests do not see each other's data.
///
/// Panics if there is no server: check [`available`] first.
pub async fn fresh_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let server =
        server().expect("PostgreSQL is not available: check pg_harness::available() first");
    let name = format!("test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let mut admin = PgConnection::connect(&server.url("postgres"))
        .await
        .unwrap_or_else(|e| panic!("test PostgreSQL on port {}: {e}", server.port));
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap_or_else(|e| panic!("test PostgreSQL: CREATE DATABASE {name}: {e}"));
    let _ = admin.close().await;
    server.url(&name)
}

// ------------------------------------------------------------ starting

/// The directory holding all of [`PROGRAMS`].
fn find_bindir() -> Option<PathBuf> {
    let has_all = |dir: &Path| PROGRAMS.iter().all(|p| dir.join(p).is_file());
    if let Some(dir) = std::env::var_os(BINDIR_ENV) {
        return Some(PathBuf::from(dir)).filter(|d| has_all(d));
    }
    // Debian: /usr/lib/postgresql/<major>/bin, newest first.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_all(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).find(|d| has_all(d))
}

/// Who the server runs as: `None` for this process's user, or the uid and
/// gid of `postgres` when this process is root.
fn server_user() -> Result<Option<(u32, u32)>, Unavailable> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = CString::new(SUPERUSER).expect("no NUL");
    // SAFETY: getpwnam takes a NUL-terminated name; the entry it returns is
    // read at once, before any other getpw* call (tests start the server
    // under a OnceLock, so not concurrently with another start).
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return Err(Unavailable::Failed(
            "running as root, which PostgreSQL refuses, and there is no `postgres` system user \
             to run it as (Debian's postgresql package creates one)"
                .into(),
        ));
    }
    // SAFETY: non-null, so it points to a valid passwd entry.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(Some((uid, gid)))
}

fn failed(what: &str, error: impl std::fmt::Display) -> Unavailable {
    Unavailable::Failed(format!("{what}: {error}"))
}

/// A command running as `user`, in `root` (the server user may not be
/// allowed into the test's working directory).
fn command(program: &Path, user: Option<(u32, u32)>, root: &Path) -> Command {
    let mut command = Command::new(program);
    command.current_dir(root).env("LC_ALL", "C");
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command
}

fn start() -> Result<Server, Unavailable> {
    let Some(bindir) = find_bindir() else {
        return Err(Unavailable::NotInstalled(format!(
            "no {} found in ${BINDIR_ENV}, /usr/lib/postgresql/*/bin or PATH",
            PROGRAMS.join(", ")
        )));
    };
    let user = server_user()?;

    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let root = std::env::temp_dir().join(format!("comgate-pg-{}-{nanos:08x}", std::process::id()));
    std::fs::create_dir(&root).map_err(|e| failed(&format!("create {}", root.display()), e))?;
    let started = init_and_start(&bindir, user, &root);
    if started.is_err() {
        let _ = std::fs::remove_dir_all(&root);
    }
    started
}

fn init_and_start(
    bindir: &Path,
    user: Option<(u32, u32)>,
    root: &Path,
) -> Result<Server, Unavailable> {
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(root, Some(uid), Some(gid))
            .map_err(|e| failed(&format!("chown {} to postgres", root.display()), e))?;
    }
    let data = root.join("data");
    let output = command(&bindir.join("initdb"), user, root)
        .arg("--pgdata")
        .arg(&data)
        .args([
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
            "--no-instructions",
        ])
        .output()
        .map_err(|e| failed(&format!("run {}/initdb", bindir.display()), e))?;
    if !output.status.success() {
        return Err(Unavailable::Failed(format!(
            "initdb failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    // Trust, but only on the socket (in our directory) and 127.0.0.1.
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhost all all 127.0.0.1/32 trust\n",
    )
    .map_err(|e| failed("write pg_hba.conf", e))?;
    write_certificate(root, &data, user)?;

    // A port that was free a moment ago may be taken by the time the server
    // binds it: then try another.
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port().map_err(|e| failed("find a free port", e))?;
        match run_server(bindir, user, root, port) {
            Ok(running) => {
                *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) = Some(running);
                register_stop_at_exit();
                return Ok(Server {
                    port,
                    root: root.to_owned(),
                });
            }
            Err(Start::PortTaken(log)) => last_error = log,
            Err(Start::Failed(message)) => return Err(Unavailable::Failed(message)),
        }
    }
    Err(Unavailable::Failed(format!(
        "no free port after 5 tries; last log:\n{last_error}"
    )))
}

/// A self-signed certificate for 127.0.0.1 and its key, in the data
/// directory (the key readable by the server user alone, as PostgreSQL
/// insists), and the certificate again as `ca.pem` for clients.
fn write_certificate(
    root: &Path,
    data: &Path,
    user: Option<(u32, u32)>,
) -> Result<(), Unavailable> {
    use std::os::unix::fs::PermissionsExt;
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .map_err(|e| failed("generate a certificate", e))?;
    let cert = certified.cert.pem();
    let key = certified.signing_key.serialize_pem();
    for (name, pem, mode) in [("server.crt", &cert, 0o644), ("server.key", &key, 0o600)] {
        let path = data.join(name);
        std::fs::write(&path, pem).map_err(|e| failed(&format!("write {name}"), e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| failed(&format!("chmod {name}"), e))?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .map_err(|e| failed(&format!("chown {name}"), e))?;
        }
    }
    std::fs::write(root.join("ca.pem"), &cert).map_err(|e| failed("write ca.pem", e))
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

enum Start {
    PortTaken(String),
    Failed(String),
}

fn run_server(
    bindir: &Path,
    user: Option<(u32, u32)>,
    root: &Path,
    port: u16,
) -> Result<Running, Start> {
    let failed = |what: &str, e: &dyn std::fmt::Display| Start::Failed(format!("{what}: {e}"));
    let log_path = root.join("postgres.log");
    let log = File::create(&log_path).map_err(|e| failed("create postgres.log", &e))?;
    let log2 = log.try_clone().map_err(|e| failed("postgres.log", &e))?;
    let mut postgres: Vec<OsString> = vec![
        bindir.join("postgres").into(),
        "-D".into(),
        root.join("data").into(),
    ];
    for setting in [
        "listen_addresses=127.0.0.1".to_owned(),
        format!("port={port}"),
        format!("unix_socket_directories={}", root.display()),
        "max_connections=300".to_owned(),
        "fsync=off".to_owned(),
        "synchronous_commit=off".to_owned(),
        "full_page_writes=off".to_owned(),
        "ssl=on".to_owned(),
    ] {
        postgres.push("-c".into());
        postgres.push(setting.into());
    }
    let mut wrapper = command(Path::new("/bin/sh"), user, root)
        .arg("-c")
        .arg(WRAPPER)
        .arg("pg-harness")
        .arg(root)
        .args(&postgres)
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| failed("start postgres", &e))?;
    let stdin = wrapper.stdin.take();
    let mut running = Running {
        wrapper,
        stdin,
        root: root.to_owned(),
    };

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = running.wrapper.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            // Its wrapper is gone; the watcher subshell goes with the pipe.
            drop(running.stdin.take());
            return Err(
                if log.contains("could not bind") || log.contains("in use") {
                    Start::PortTaken(log)
                } else {
                    Start::Failed(format!("postgres exited ({status}) while starting:\n{log}"))
                },
            );
        }
        let ready = command(&bindir.join("pg_isready"), user, root)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--username", SUPERUSER, "--dbname", "postgres", "--quiet"])
            .status()
            .map_err(|e| failed("run pg_isready", &e))?;
        if ready.success() {
            return Ok(running);
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            stop(&mut running);
            return Err(Start::Failed(format!(
                "postgres did not accept connections within {START_TIMEOUT:?}:\n{log}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ------------------------------------------------------------ stopping

fn register_stop_at_exit() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a plain function with no arguments.
        unsafe {
            libc::atexit(stop_at_exit);
        }
    });
}

extern "C" fn stop_at_exit() {
    // A test thread panicking while holding the lock must not stop us.
    let running = match RUNNING.try_lock() {
        Ok(mut guard) => guard.take(),
        Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner().take(),
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    if let Some(mut running) = running {
        stop(&mut running);
    }
}

/// Closes the wrapper's stdin (it stops the server and removes the
/// directory), waits for it, and makes sure.
fn stop(running: &mut Running) {
    drop(running.stdin.take());
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        match running.wrapper.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) if Instant::now() > deadline => {
                let _ = std::io::stderr().write_all(
                    b"test PostgreSQL did not stop in time: killing it (immediate shutdown)\n",
                );
                kill_postmaster(&running.root);
                let _ = running.wrapper.kill();
                let _ = running.wrapper.wait();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let _ = std::fs::remove_dir_all(&running.root);
}

/// SIGQUIT (immediate shutdown) to the postmaster named in its pid file.
fn kill_postmaster(root: &Path) {
    let pid = std::fs::read_to_string(root.join("data").join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next()?.trim().parse::<libc::pid_t>().ok());
    if let Some(pid) = pid.filter(|&p| p > 0) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, libc::SIGQUIT);
        }
    }
}
