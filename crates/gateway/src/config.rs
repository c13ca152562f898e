//! The TOML configuration of `comgate serve` and `comgate agent`.
//!
//! Both are strict (`deny_unknown_fields`): a misspelt limit silently falling
//! back to its default is worse than refusing to start. Loading is two steps,
//! parse then [`validate`](ServeConfig::validate), and every error names the
//! file and the key. Every limit has its default here, next to its field.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::thread_scheduling::Scheduling;
use admin::Location;
use serde::Deserialize;

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        // toml's message already names the key and shows the line.
        message: e.to_string(),
    })
}

fn invalid(path: &Path, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        key: key.to_owned(),
        message: message.into(),
    }
}

/// A string that never prints (passwords, agent secrets).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

// ---------------------------------------------------------------- serve

/// `comgate serve --config FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// The deployment's domain: maint addresses end in `.maint.<domain>`.
    pub domain: String,
    /// Generated certificates, the CA (`ca.pem`) and, unless `[database]`
    /// names another, the SQLite database (`comgate.db`).
    pub data_dir: PathBuf,
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    pub gateway: GatewaySection,
    pub agents: AgentsSection,
    /// The admin listener: the REST API, the PAC file and downloads.
    #[serde(default)]
    pub admin: Option<AdminSection>,
    /// The central-management proxy (`https://admin.<domain>:8443/<customer>/...`).
    #[serde(default)]
    pub central: Option<CentralSection>,
    #[serde(default)]
    pub database: Option<DatabaseSection>,
    /// Threads of each of serve's two kinds; default one per CPU. Site
    /// threads each carry whole sites: a site's session and every tunnel
    /// to it run on one of them (`site_threads`). Control workers accept
    /// connections, run TLS handshakes and CONNECT admission, the database
    /// and the admin plane. Fewer leave cores to other services on the
    /// machine.
    #[serde(default)]
    pub worker_threads: Option<usize>,
    /// The threads' kernel scheduling policy: `batch` (default) or
    /// `normal` (`thread_scheduling`).
    #[serde(default)]
    pub scheduling: Scheduling,
    /// Where the config was read from, for error messages.
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSection {
    pub listen: SocketAddr,
}

/// `[admin]`: the admin listener (REST API under `/com/api/`, PAC file,
/// downloads) and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    pub listen: SocketAddr,
    /// Largest request head (HTTP/1.1) or header list (HTTP/2).
    #[serde(default = "defaults::max_head_bytes")]
    pub max_head_bytes: usize,
    /// Time for the TLS handshake, and for each request head.
    #[serde(default = "defaults::head_timeout_ms")]
    pub head_timeout_ms: u64,
    /// Largest request body of the REST API; larger gets 413.
    #[serde(default = "defaults::admin_max_body_bytes")]
    pub max_body_bytes: usize,
    /// This many failed logins of one login name within
    /// `login_window_secs` block it for `login_block_secs` (manual: 3, 10
    /// minutes, 10 minutes). 0 turns blocking off.
    #[serde(default = "defaults::login_max_failures")]
    pub login_max_failures: usize,
    #[serde(default = "defaults::login_window_secs")]
    pub login_window_secs: i64,
    #[serde(default = "defaults::login_block_secs")]
    pub login_block_secs: i64,
    /// A new password must differ from this many previous ones.
    #[serde(default = "defaults::password_history")]
    pub password_history: usize,
    /// Failed logins from one address, whatever the login name: this many
    /// at once block it until the rate below refills.
    #[serde(default = "defaults::auth_failure_burst")]
    pub login_failure_burst: u32,
    #[serde(default = "defaults::auth_failures_per_minute")]
    pub login_failures_per_minute: u32,
    /// The newest system software version on offer: systems below it show
    /// "New Version Available" in the customer list.
    #[serde(default)]
    pub available_version: Option<String>,
}

/// `[database]`: where the store is, when not `data_dir/comgate.db`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `sqlite:PATH` or `postgres://user:password@host[:port]/database`
    /// (see [`ServeConfig::database`]).
    pub url: String,
}

/// The URL may hold a password: print it without.
impl fmt::Debug for DatabaseSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSection")
            .field("url", &admin::store::redact_url(&self.url))
            .finish()
    }
}

/// The CONNECT front door and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    pub listen: SocketAddr,
    /// The `host:port` partners type as their proxy (PAC files, generated
    /// commands). Default: `maint.<domain>:<port of listen>`.
    #[serde(default)]
    pub public_address: Option<String>,
    /// Largest CONNECT request head; larger gets 431.
    #[serde(default = "defaults::max_head_bytes")]
    pub max_head_bytes: usize,
    /// Time for the TLS handshake plus a complete request head; slower
    /// clients are dropped (slowloris).
    #[serde(default = "defaults::head_timeout_ms")]
    pub head_timeout_ms: u64,
    /// Requests answered with 407 on one connection before it is closed
    /// (browsers retry with credentials on the same connection).
    #[serde(default = "defaults::max_requests_per_connection")]
    pub max_requests_per_connection: u32,
    /// Concurrent tunnels one proxy account may hold.
    #[serde(default = "defaults::max_tunnels_per_account")]
    pub max_tunnels_per_account: usize,
    /// Sustained rate of failed proxy logins allowed per source address.
    #[serde(default = "defaults::auth_failures_per_minute")]
    pub auth_failures_per_minute: u32,
    /// Failed logins a source address may make in a burst before the rate applies.
    #[serde(default = "defaults::auth_failure_burst")]
    pub auth_failure_burst: u32,
    /// Same as the two above, per proxy account (whatever the source).
    #[serde(default = "defaults::account_failures_per_minute")]
    pub account_failures_per_minute: u32,
    #[serde(default = "defaults::account_failure_burst")]
    pub account_failure_burst: u32,
    /// How long the agent may take to reach the target (504 after it).
    #[serde(default = "defaults::stream_open_timeout_ms")]
    pub stream_open_timeout_ms: u64,
    /// After one direction of a tunnel ends, how long the other may stay idle
    /// before the tunnel is closed (proxytunnel never half-closes).
    #[serde(default = "defaults::half_close_grace_ms")]
    pub half_close_grace_ms: u64,
    /// A tunnel with no bytes either way for this long is closed; 0 = never.
    #[serde(default = "defaults::tunnel_idle_timeout_secs")]
    pub tunnel_idle_timeout_secs: u64,
    /// Tunnels one HTTP/2 connection may carry at once (its
    /// SETTINGS_MAX_CONCURRENT_STREAMS); browsers share one connection to the
    /// proxy for many tunnels.
    #[serde(default = "defaults::max_streams_per_connection")]
    pub max_streams_per_connection: u32,
    /// An HTTP/2 connection without any tunnel for this long is closed with
    /// GOAWAY (browsers keep idle proxy connections around).
    #[serde(default = "defaults::idle_connection_timeout_secs")]
    pub idle_connection_timeout_secs: u64,
}

/// The central-management reverse proxy (Web Manager, System Status,
/// SysMonitor) and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralSection {
    /// 8443 in production: the admin tools add that port themselves.
    pub listen: SocketAddr,
    /// Largest request head (request line and headers); larger gets 431.
    #[serde(default = "defaults::central_max_head_bytes")]
    pub max_head_bytes: usize,
    /// Time for the TLS handshake plus the first complete request head of a
    /// connection (slowloris).
    #[serde(default = "defaults::head_timeout_ms")]
    pub head_timeout_ms: u64,
    /// A kept-alive connection whose next request head is not complete
    /// within this long after the previous response is closed.
    #[serde(default = "defaults::central_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Client connections open at once; more wait in the kernel's backlog.
    #[serde(default = "defaults::central_max_connections")]
    pub max_connections: usize,
    /// Requests being proxied at once, an open websocket counting until it
    /// closes; beyond it a request gets 503.
    #[serde(default = "defaults::central_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Time for the agent to reach the system and for TLS with it (504 after).
    #[serde(default = "defaults::stream_open_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time for the system to answer a request with its response head (504
    /// after). Bodies then stream without a deadline.
    #[serde(default = "defaults::central_response_timeout_ms")]
    pub response_timeout_ms: u64,
}

impl CentralSection {
    pub fn head_timeout(&self) -> Duration {
        Duration::from_millis(self.head_timeout_ms)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }
}

/// The listener site agents connect to, and the multiplexer's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsSection {
    pub listen: SocketAddr,
    #[serde(default = "defaults::heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// Silence from an agent for this long ends its session.
    #[serde(default = "defaults::heartbeat_timeout_ms")]
    pub heartbeat_timeout_ms: u64,
    /// Flow-control window a stream starts with; it grows towards
    /// `stream_window` while that raises the stream's rate (distant sites).
    #[serde(default = "defaults::initial_stream_window")]
    pub initial_stream_window: u32,
    /// Largest flow-control window per stream: one stream moves at most
    /// window/RTT, and a stalled stream buffers at most this much.
    #[serde(default = "defaults::stream_window")]
    pub stream_window: u32,
    /// Bytes one site may have in flight across all its streams.
    #[serde(default = "defaults::site_window")]
    pub site_window: u32,
    /// Concurrent streams over one site's websocket.
    #[serde(default = "defaults::max_streams_per_site")]
    pub max_streams_per_site: u32,
    /// TLS + websocket handshake + hello must complete within this.
    #[serde(default = "defaults::agent_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// Every this many seconds the connected sites are marked as seen in
    /// the database, so that after a crash of serve "offline for" counts
    /// from the last mark.
    #[serde(default = "defaults::seen_interval_secs")]
    pub seen_interval_secs: u64,
    /// Sustained rate of failed agent authorisations allowed per source
    /// address; beyond it (after the burst) hellos from that address are
    /// refused unchecked until the allowance refills, so that guessing
    /// costs neither a secret verification nor a database write.
    #[serde(default = "defaults::hello_failures_per_minute")]
    pub hello_failures_per_minute: u32,
    /// Failed authorisations an address may make in a burst.
    #[serde(default = "defaults::hello_failure_burst")]
    pub hello_failure_burst: u32,
    /// Runs of actions (upgrades, backups) kept per system: the newest
    /// ones, so that a site cannot grow the table without bound.
    #[serde(default = "defaults::actions_kept_per_system")]
    pub actions_kept_per_system: usize,
    /// Offer agents a second connection for their interactive tunnels (the
    /// quick lane), so that a keystroke's echo does not queue behind a bulk
    /// transfer to the same site. An agent opens it with its first tunnel.
    #[serde(default = "defaults::quick_lane")]
    pub quick_lane: bool,
}

/// Every default in one place.
pub mod defaults {
    pub fn quick_lane() -> bool {
        true
    }
    pub fn seen_interval_secs() -> u64 {
        60
    }
    pub fn actions_kept_per_system() -> usize {
        20
    }
    pub fn hello_failures_per_minute() -> u32 {
        30
    }
    pub fn hello_failure_burst() -> u32 {
        10
    }
    pub fn admin_max_body_bytes() -> usize {
        64 * 1024
    }
    pub fn login_max_failures() -> usize {
        3
    }
    pub fn login_window_secs() -> i64 {
        600
    }
    pub fn login_block_secs() -> i64 {
        600
    }
    pub fn password_history() -> usize {
        5
    }
    pub fn max_head_bytes() -> usize {
        16 * 1024
    }
    pub fn head_timeout_ms() -> u64 {
        10_000
    }
    pub fn max_requests_per_connection() -> u32 {
        8
    }
    pub fn max_tunnels_per_account() -> usize {
        256
    }
    pub fn auth_failures_per_minute() -> u32 {
        30
    }
    pub fn auth_failure_burst() -> u32 {
        10
    }
    pub fn account_failures_per_minute() -> u32 {
        60
    }
    pub fn account_failure_burst() -> u32 {
        20
    }
    pub fn stream_open_timeout_ms() -> u64 {
        10_000
    }
    pub fn half_close_grace_ms() -> u64 {
        5_000
    }
    pub fn tunnel_idle_timeout_secs() -> u64 {
        0
    }
    pub fn max_streams_per_connection() -> u32 {
        100
    }
    pub fn idle_connection_timeout_secs() -> u64 {
        300
    }
    pub fn central_max_head_bytes() -> usize {
        64 * 1024
    }
    pub fn central_idle_timeout_secs() -> u64 {
        60
    }
    pub fn central_max_connections() -> usize {
        1024
    }
    pub fn central_max_concurrent_requests() -> usize {
        256
    }
    pub fn central_response_timeout_ms() -> u64 {
        60_000
    }
    pub fn heartbeat_interval_ms() -> u64 {
        10_000
    }
    pub fn heartbeat_timeout_ms() -> u64 {
        30_000
    }
    pub fn initial_stream_window() -> u32 {
        256 * 1024
    }
    pub fn stream_window() -> u32 {
        32 * 1024 * 1024
    }
    pub fn site_window() -> u32 {
        64 * 1024 * 1024
    }
    pub fn max_streams_per_site() -> u32 {
        1024
    }
    pub fn agent_handshake_timeout_ms() -> u64 {
        10_000
    }
    pub fn connect_timeout_ms() -> u64 {
        10_000
    }
    pub fn reconnect_initial_ms() -> u64 {
        500
    }
    pub fn reconnect_max_ms() -> u64 {
        30_000
    }
    pub fn alarms_poll_ms() -> u64 {
        1_000
    }
    pub fn max_pending_alarms() -> usize {
        1_000
    }
    pub fn cert_expiry_warning_days() -> u32 {
        30
    }
    pub fn yes() -> bool {
        true
    }
}

impl ServeConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut cfg: ServeConfig = parse(path, &read(path)?)?;
        cfg.path = path.to_owned();
        // A relative data_dir is relative to the config file, so that a
        // config works wherever it is started from.
        if cfg.data_dir.is_relative() {
            if let Some(dir) = path.parent() {
                cfg.data_dir = dir.join(&cfg.data_dir);
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.path;
        if self.worker_threads == Some(0) {
            return Err(invalid(p, "worker_threads", "must be at least 1"));
        }
        let d = &self.domain;
        if d.is_empty()
            || d.len() > 200
            || d.starts_with('.')
            || d.ends_with('.')
            || !d.contains('.')
            || !d
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(invalid(
                p,
                "domain",
                format!("`{d}` is not a DNS domain such as example.com"),
            ));
        }
        if let Some(a) = &self.admin {
            if a.max_head_bytes < 1024 {
                return Err(invalid(p, "admin.max_head_bytes", "must be at least 1024"));
            }
            if a.max_body_bytes < 1024 {
                return Err(invalid(p, "admin.max_body_bytes", "must be at least 1024"));
            }
            for (key, v) in [
                ("admin.head_timeout_ms", a.head_timeout_ms),
                (
                    "admin.login_failures_per_minute",
                    u64::from(a.login_failures_per_minute),
                ),
                (
                    "admin.login_failure_burst",
                    u64::from(a.login_failure_burst),
                ),
            ] {
                if v == 0 {
                    return Err(invalid(p, key, "must be greater than 0"));
                }
            }
            for (key, v) in [
                ("admin.login_window_secs", a.login_window_secs),
                ("admin.login_block_secs", a.login_block_secs),
            ] {
                if v <= 0 {
                    return Err(invalid(p, key, "must be greater than 0"));
                }
            }
        }
        let g = &self.gateway;
        if g.max_head_bytes < 512 {
            return Err(invalid(p, "gateway.max_head_bytes", "must be at least 512"));
        }
        for (key, v) in [
            ("gateway.head_timeout_ms", g.head_timeout_ms),
            ("gateway.stream_open_timeout_ms", g.stream_open_timeout_ms),
            (
                "gateway.max_streams_per_connection",
                u64::from(g.max_streams_per_connection),
            ),
            (
                "gateway.idle_connection_timeout_secs",
                g.idle_connection_timeout_secs,
            ),
            (
                "agents.heartbeat_interval_ms",
                self.agents.heartbeat_interval_ms,
            ),
            (
                "agents.handshake_timeout_ms",
                self.agents.handshake_timeout_ms,
            ),
            ("agents.seen_interval_secs", self.agents.seen_interval_secs),
            (
                "agents.actions_kept_per_system",
                self.agents.actions_kept_per_system as u64,
            ),
            (
                "agents.hello_failures_per_minute",
                u64::from(self.agents.hello_failures_per_minute),
            ),
            (
                "agents.hello_failure_burst",
                u64::from(self.agents.hello_failure_burst),
            ),
        ] {
            if v == 0 {
                return Err(invalid(p, key, "must be greater than 0"));
            }
        }
        if g.max_tunnels_per_account == 0 {
            return Err(invalid(
                p,
                "gateway.max_tunnels_per_account",
                "must be at least 1",
            ));
        }
        for (key, v) in [
            (
                "gateway.auth_failures_per_minute",
                g.auth_failures_per_minute,
            ),
            ("gateway.auth_failure_burst", g.auth_failure_burst),
            (
                "gateway.account_failures_per_minute",
                g.account_failures_per_minute,
            ),
            ("gateway.account_failure_burst", g.account_failure_burst),
        ] {
            if v == 0 {
                return Err(invalid(p, key, "must be at least 1"));
            }
        }
        let a = &self.agents;
        if a.heartbeat_timeout_ms <= a.heartbeat_interval_ms {
            return Err(invalid(
                p,
                "agents.heartbeat_timeout_ms",
                "must be longer than agents.heartbeat_interval_ms",
            ));
        }
        if a.initial_stream_window < 16 * 1024 {
            return Err(invalid(
                p,
                "agents.initial_stream_window",
                "must be at least 16384",
            ));
        }
        if a.stream_window < 64 * 1024 || a.stream_window < a.initial_stream_window {
            return Err(invalid(
                p,
                "agents.stream_window",
                "must be at least 65536 and at least agents.initial_stream_window",
            ));
        }
        if a.site_window < a.stream_window {
            return Err(invalid(
                p,
                "agents.site_window",
                "must be at least agents.stream_window",
            ));
        }
        if a.max_streams_per_site == 0 {
            return Err(invalid(
                p,
                "agents.max_streams_per_site",
                "must be at least 1",
            ));
        }
        if let Some(c) = &self.central {
            // hyper's read buffer must hold a whole head, and is at least 8 KiB.
            if !(8 * 1024..=256 * 1024).contains(&c.max_head_bytes) {
                return Err(invalid(
                    p,
                    "central.max_head_bytes",
                    "must be between 8192 and 262144",
                ));
            }
            for (key, v) in [
                ("central.head_timeout_ms", c.head_timeout_ms),
                ("central.idle_timeout_secs", c.idle_timeout_secs),
                ("central.max_connections", c.max_connections as u64),
                (
                    "central.max_concurrent_requests",
                    c.max_concurrent_requests as u64,
                ),
                ("central.connect_timeout_ms", c.connect_timeout_ms),
                ("central.response_timeout_ms", c.response_timeout_ms),
            ] {
                if v == 0 {
                    return Err(invalid(p, key, "must be greater than 0"));
                }
            }
        }
        self.database()?;
        Ok(())
    }

    /// What partners type as their proxy: `maint.<domain>:<port>`.
    pub fn public_address(&self) -> String {
        self.gateway
            .public_address
            .clone()
            .unwrap_or_else(|| format!("maint.{}:{}", self.domain, self.gateway.listen.port()))
    }

    /// What this deployment fills into every system's remote-support
    /// addresses (admin::remote_support).
    /// The REST API's settings from `[admin]` (defaults without it).
    pub fn api_config(&self) -> admin::api::ApiConfig {
        let mut config = admin::api::ApiConfig::new(self.remote_support_deployment());
        if let Some(a) = &self.admin {
            config.max_body_bytes = a.max_body_bytes;
            config.password_history = a.password_history;
            config.available_version = a.available_version.clone();
            config.address_quota = admin::failure_limit::FailureQuota {
                per_minute: a.login_failures_per_minute,
                burst: a.login_failure_burst,
            };
            config.login_policy = admin::LoginPolicy {
                max_failures: a.login_max_failures,
                window_secs: a.login_window_secs,
                block_secs: a.login_block_secs,
            };
        }
        config
    }

    pub fn remote_support_deployment(&self) -> admin::remote_support::Deployment {
        admin::remote_support::Deployment {
            domain: self.domain.clone(),
            proxy: self.public_address(),
            ca_file: crate::utility_bundle::CA_FILE.to_string(),
            central_management: self.central.is_some(),
        }
    }

    /// `worker_threads`, or one per CPU.
    pub fn worker_threads(&self) -> usize {
        self.worker_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    /// The database `[database] url` names: `sqlite:PATH` (a relative
    /// path is relative to the config file, like `data_dir`),
    /// `postgres://...` or `postgresql://...`. Without `[database]`, the
    /// SQLite file `data_dir/comgate.db`.
    pub fn database(&self) -> Result<Location, ConfigError> {
        let Some(db) = &self.database else {
            return Ok(Location::Sqlite(self.data_dir.join("comgate.db")));
        };
        match Location::from_url(&db.url) {
            Ok(Location::Sqlite(path)) if path.is_relative() => {
                let dir = self.path.parent().unwrap_or(Path::new(""));
                Ok(Location::Sqlite(dir.join(path)))
            }
            Ok(location) => Ok(location),
            Err(e) => Err(invalid(&self.path, "database.url", e.to_string())),
        }
    }
}

impl GatewaySection {
    pub fn head_timeout(&self) -> Duration {
        Duration::from_millis(self.head_timeout_ms)
    }
    pub fn stream_open_timeout(&self) -> Duration {
        Duration::from_millis(self.stream_open_timeout_ms)
    }
    pub fn half_close_grace(&self) -> Duration {
        Duration::from_millis(self.half_close_grace_ms)
    }
    pub fn tunnel_idle_timeout(&self) -> Option<Duration> {
        (self.tunnel_idle_timeout_secs > 0)
            .then(|| Duration::from_secs(self.tunnel_idle_timeout_secs))
    }
    pub fn idle_connection_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_connection_timeout_secs.max(1))
    }
}

// ---------------------------------------------------------------- agent

/// `comgate agent --config FILE`: one site agent for one system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// `wss://HOST:PORT[/path]` of comgate's agent listener.
    pub gateway: String,
    /// PEM file of the CA to trust for the gateway; default: the public web PKI.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    pub customer: String,
    pub system: String,
    pub secret: Secret,
    /// `http://user:pass@host:port`: reach comgate through the site's HTTP
    /// proxy. Default: the `HTTPS_PROXY` environment variable, if set and
    /// `NO_PROXY` does not list the gateway's host.
    #[serde(default)]
    pub proxy: Option<Secret>,
    #[serde(default)]
    pub remote_access: bool,
    #[serde(default)]
    pub colocated_servers: bool,
    #[serde(default)]
    pub centralized_management: bool,
    /// A port of the system's own services → the local address serving it
    /// (default `127.0.0.1:<same port>`).
    #[serde(default)]
    pub ports: BTreeMap<String, SocketAddr>,
    #[serde(default)]
    pub tunnels: Vec<TunnelEntry>,
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    #[serde(default = "defaults::reconnect_initial_ms")]
    pub reconnect_initial_ms: u64,
    #[serde(default = "defaults::reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// Receive window a stream starts with for data coming from comgate
    /// (uploads by the partner); it grows towards `stream_window` while that
    /// raises the stream's rate.
    #[serde(default = "defaults::initial_stream_window")]
    pub initial_stream_window: u32,
    /// Largest receive window per stream: one stream moves at most
    /// window/RTT, and a stalled stream buffers at most this much.
    #[serde(default = "defaults::stream_window")]
    pub stream_window: u32,
    /// What the agent may buffer for all its streams together.
    #[serde(default = "defaults::site_window")]
    pub site_window: u32,
    /// Streams (tunnels) the agent serves at once over its connection to
    /// comgate; a partner's tunnel beyond them is answered 503 "Site at its
    /// stream limit". Serve has its own limit per site
    /// (`agents.max_streams_per_site`); the lower of the two applies.
    #[serde(default = "defaults::max_streams_per_site")]
    pub max_streams: u32,
    /// JSON-lines file the site's monitoring appends alarms to (see
    /// `agent::alarms`); relative to this file's directory.
    #[serde(default)]
    pub alarms_file: Option<PathBuf>,
    /// JSON-lines file the site's upgrade and backup tooling appends the
    /// actions its system performs to (see `agent::reports`); relative to
    /// this file's directory.
    #[serde(default)]
    pub actions_file: Option<PathBuf>,
    /// How often the alarm and action files are checked for new lines.
    #[serde(default = "defaults::alarms_poll_ms")]
    pub alarms_poll_ms: u64,
    /// Reports (alarms and actions) kept while comgate is unreachable;
    /// beyond, the oldest go.
    #[serde(default = "defaults::max_pending_alarms")]
    pub max_pending_alarms: usize,
    /// Raise a Security alarm when comgate's certificate ends within this
    /// many days.
    #[serde(default = "defaults::cert_expiry_warning_days")]
    pub cert_expiry_warning_days: u32,
    /// The threads' kernel scheduling policy: `batch` (default) or
    /// `normal` (`thread_scheduling`).
    #[serde(default)]
    pub scheduling: Scheduling,
    #[serde(skip)]
    pub path: PathBuf,
    /// `ports` with its keys checked, filled in by `validate`.
    #[serde(skip)]
    pub port_map: BTreeMap<u16, SocketAddr>,
}

/// A TCP tunnel the site allows to a co-located server (manual: Creating
/// Tunnels for Remote Servers and Services).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelEntry {
    pub application: String,
    pub server_ip: Ipv4Addr,
    pub server_port: u16,
}

/// The system's own services that Remote Access opens: SSH, RDP and the
/// HTTPS services of the manual (Web Control Panel 7071, one-X Portal 9443,
/// WebLM 52233, Web Manager 8443, 443).
pub const DEFAULT_OWN_PORTS: [u16; 7] = [22, 443, 3389, 7071, 8443, 9443, 52233];

impl AgentConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut cfg: AgentConfig = parse(path, &read(path)?)?;
        cfg.path = path.to_owned();
        for file in [&mut cfg.ca, &mut cfg.alarms_file, &mut cfg.actions_file]
            .into_iter()
            .flatten()
        {
            if file.is_relative() {
                if let Some(dir) = path.parent() {
                    *file = dir.join(&*file);
                }
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&mut self) -> Result<(), ConfigError> {
        let p = self.path.clone();
        crate::agent::gateway_url::GatewayUrl::parse(&self.gateway)
            .map_err(|e| invalid(&p, "gateway", e.to_string()))?;
        if self.customer.is_empty() || !self.customer.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid(&p, "customer", "must be letters and digits"));
        }
        if self.system.is_empty() {
            return Err(invalid(&p, "system", "must not be empty"));
        }
        if self.secret.expose().is_empty() {
            return Err(invalid(&p, "secret", "must not be empty"));
        }
        if let Some(proxy) = &self.proxy {
            crate::agent::http_proxy::ProxyUrl::parse(proxy.expose())
                .map_err(|e| invalid(&p, "proxy", e.to_string()))?;
        }
        self.port_map.clear();
        for (k, v) in &self.ports {
            let port: u16 = k.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
                invalid(&p, &format!("ports.{k}"), "must be a port number 1-65535")
            })?;
            self.port_map.insert(port, *v);
        }
        for (i, t) in self.tunnels.iter().enumerate() {
            if t.server_port == 0 {
                return Err(invalid(
                    &p,
                    &format!("tunnels[{i}].server_port"),
                    "must be 1-65535",
                ));
            }
        }
        if self.connect_timeout_ms == 0 {
            return Err(invalid(&p, "connect_timeout_ms", "must be greater than 0"));
        }
        if self.initial_stream_window < 16 * 1024 {
            return Err(invalid(
                &p,
                "initial_stream_window",
                "must be at least 16384",
            ));
        }
        if self.stream_window < 64 * 1024 || self.stream_window < self.initial_stream_window {
            return Err(invalid(
                &p,
                "stream_window",
                "must be at least 65536 and at least initial_stream_window",
            ));
        }
        if self.site_window < self.stream_window {
            return Err(invalid(&p, "site_window", "must be at least stream_window"));
        }
        if self.max_streams == 0 {
            return Err(invalid(&p, "max_streams", "must be at least 1"));
        }
        if self.alarms_poll_ms == 0 {
            return Err(invalid(&p, "alarms_poll_ms", "must be greater than 0"));
        }
        if self.max_pending_alarms == 0 {
            return Err(invalid(&p, "max_pending_alarms", "must be greater than 0"));
        }
        if self.reconnect_initial_ms == 0 || self.reconnect_max_ms < self.reconnect_initial_ms {
            return Err(invalid(
                &p,
                "reconnect_max_ms",
                "reconnect_initial_ms must be > 0 and reconnect_max_ms >= reconnect_initial_ms",
            ));
        }
        Ok(())
    }

    /// The system's own ports this agent serves.
    pub fn own_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = DEFAULT_OWN_PORTS.to_vec();
        ports.extend(self.port_map.keys().copied());
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// Local address of one of the system's own services.
    pub fn own_service_addr(&self, port: u16) -> SocketAddr {
        self.port_map
            .get(&port)
            .copied()
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    /// The proxy to use for the gateway at `gateway_host`: the `proxy` key,
    /// else `HTTPS_PROXY`/`https_proxy` unless `NO_PROXY`/`no_proxy` lists
    /// the host (curl's rules). The key is the site's explicit choice, so
    /// `NO_PROXY` applies to the environment's proxy only.
    pub fn effective_proxy(&self, gateway_host: &str) -> Option<Secret> {
        if let Some(proxy) = &self.proxy {
            return Some(proxy.clone());
        }
        let env = |keys: [&str; 2]| {
            keys.iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        };
        let proxy = env(["HTTPS_PROXY", "https_proxy"])?;
        match env(["NO_PROXY", "no_proxy"]) {
            Some(list) if crate::agent::no_proxy::bypasses(&list, gateway_host) => None,
            _ => Some(Secret::new(proxy)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("comgate.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    /// The error loading `text` as serve's config gives.
    fn serve_error(text: &str) -> String {
        let (_d, path) = write(text);
        ServeConfig::load(&path).unwrap_err().to_string()
    }

    /// An agent config with only the required keys.
    const MINIMAL_AGENT: &str = r#"
gateway = "wss://127.0.0.1:6444"
customer = "12345"
system = "ipo1"
secret = "s3cret"
"#;

    /// The error loading `text` as the agent's config gives.
    fn agent_error(text: &str) -> String {
        let (_d, path) = write(text);
        AgentConfig::load(&path).unwrap_err().to_string()
    }

    const MINIMAL: &str = r#"
domain = "example.test"
data_dir = "data"
[gateway]
listen = "127.0.0.1:6443"
[agents]
listen = "127.0.0.1:6444"
"#;

    #[test]
    fn minimal_serve_config_gets_defaults_and_relative_data_dir() {
        let (dir, path) = write(MINIMAL);
        let cfg = ServeConfig::load(&path).unwrap();
        assert_eq!(cfg.data_dir, dir.path().join("data"));
        assert_eq!(cfg.gateway.max_head_bytes, 16 * 1024);
        assert_eq!(cfg.public_address(), "maint.example.test:6443");
    }

    fn with_database(url: &str) -> String {
        format!("{MINIMAL}[database]\nurl = \"{url}\"\n")
    }

    #[test]
    fn database_defaults_to_sqlite_in_data_dir() {
        let (dir, path) = write(MINIMAL);
        let cfg = ServeConfig::load(&path).unwrap();
        assert_eq!(
            cfg.database().unwrap(),
            Location::Sqlite(dir.path().join("data").join("comgate.db"))
        );
    }

    #[test]
    fn database_url_may_name_a_sqlite_file() {
        let (_d, path) = write(&with_database("sqlite:///var/lib/comgate/x.db"));
        let cfg = ServeConfig::load(&path).unwrap();
        assert_eq!(
            cfg.database().unwrap(),
            Location::Sqlite(PathBuf::from("/var/lib/comgate/x.db"))
        );
        // Relative, like data_dir, to the config file.
        for url in ["sqlite:db/x.db", "sqlite://db/x.db"] {
            let (dir, path) = write(&with_database(url));
            let cfg = ServeConfig::load(&path).unwrap();
            assert_eq!(
                cfg.database().unwrap(),
                Location::Sqlite(dir.path().join("db/x.db")),
                "{url}"
            );
        }
    }

    #[test]
    fn database_url_may_name_a_postgres_database() {
        for url in [
            "postgres://comgate:s3cret@db.example.test:5432/comgate",
            "postgresql://comgate@localhost/comgate?sslmode=require",
        ] {
            let (_d, path) = write(&with_database(url));
            let cfg = ServeConfig::load(&path).unwrap();
            assert_eq!(cfg.database().unwrap(), Location::Postgres(url.into()));
            let debug = format!("{cfg:?}");
            assert!(!debug.contains("s3cret"), "{debug}");
        }
    }

    #[test]
    fn other_database_urls_are_refused_naming_the_key_and_file() {
        for url in [
            "mysql://db/comgate",
            "/var/lib/comgate/comgate.db",
            "sqlite:",
            "",
        ] {
            let err = serve_error(&with_database(url));
            assert!(err.contains("`database.url`"), "{url}: {err}");
            assert!(err.contains("comgate.toml"), "{url}: {err}");
            assert!(err.contains("sqlite:"), "{url}: {err}");
        }
        let err = serve_error(&with_database("postgres://comgate:s3cret@db:notaport/x"));
        assert!(err.contains("`database.url`"), "{err}");
        assert!(err.contains("invalid PostgreSQL URL"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn unknown_key_is_named_with_the_file() {
        let err = serve_error(&MINIMAL.replace("[agents]", "max_head_byte = 3\n[agents]"));
        assert!(err.contains("max_head_byte"), "{err}");
        assert!(err.contains("comgate.toml"), "{err}");
    }

    #[test]
    fn invalid_limit_names_the_key() {
        let err = serve_error(&MINIMAL.replace("[agents]", "max_head_bytes = 3\n[agents]"));
        assert!(err.contains("gateway.max_head_bytes"), "{err}");
        let err = serve_error(&format!("{MINIMAL}actions_kept_per_system = 0\n"));
        assert!(
            err.contains("agents.actions_kept_per_system") && err.contains("greater than 0"),
            "{err}"
        );
        let (_d, path) = write(MINIMAL);
        let cfg = ServeConfig::load(&path).unwrap();
        assert_eq!(cfg.agents.actions_kept_per_system, 20);
        assert_eq!(
            (
                cfg.agents.hello_failures_per_minute,
                cfg.agents.hello_failure_burst
            ),
            (30, 10)
        );
        for key in ["hello_failures_per_minute", "hello_failure_burst"] {
            let err = serve_error(&format!("{MINIMAL}{key} = 0\n"));
            assert!(err.contains(&format!("agents.{key}")), "{err}");
        }
    }

    #[test]
    fn the_quick_lane_is_offered_unless_turned_off() {
        let (_d, path) = write(MINIMAL);
        assert!(ServeConfig::load(&path).unwrap().agents.quick_lane);
        let (_d, path) = write(&format!("{MINIMAL}quick_lane = false\n"));
        assert!(!ServeConfig::load(&path).unwrap().agents.quick_lane);
        let err = serve_error(&format!("{MINIMAL}quick_lane = \"yes\"\n"));
        assert!(err.contains("quick_lane"), "{err}");
    }

    #[test]
    fn admin_section_gets_the_manuals_login_rule_and_checks_its_limits() {
        let (_d, path) = write(&format!("{MINIMAL}[admin]\nlisten = \"127.0.0.1:7080\"\n"));
        let cfg = ServeConfig::load(&path).unwrap();
        let api = cfg.api_config();
        assert_eq!(api.login_policy, admin::LoginPolicy::default());
        assert_eq!(api.max_body_bytes, 64 * 1024);
        assert_eq!(api.password_history, 5);

        let (_d, path) = write(&format!(
            "{MINIMAL}[admin]\nlisten = \"127.0.0.1:7080\"\nlogin_max_failures = 5\n\
             login_window_secs = 60\nlogin_block_secs = 120\nmax_body_bytes = 4096\n"
        ));
        let api = ServeConfig::load(&path).unwrap().api_config();
        assert_eq!(
            api.login_policy,
            admin::LoginPolicy {
                max_failures: 5,
                window_secs: 60,
                block_secs: 120
            }
        );
        assert_eq!(api.max_body_bytes, 4096);

        for (line, key) in [
            ("max_body_bytes = 10", "admin.max_body_bytes"),
            ("max_head_bytes = 10", "admin.max_head_bytes"),
            ("login_block_secs = 0", "admin.login_block_secs"),
            ("head_timeout_ms = 0", "admin.head_timeout_ms"),
            ("login_failure_burst = 0", "admin.login_failure_burst"),
        ] {
            let err = serve_error(&format!(
                "{MINIMAL}[admin]\nlisten = \"127.0.0.1:7080\"\n{line}\n"
            ));
            assert!(err.contains(key), "{line}: {err}");
            assert!(err.contains("comgate.toml"), "{err}");
        }
    }

    #[test]
    fn central_section_gets_defaults_and_checks_its_limits() {
        let (_d, path) = write(&format!(
            "{MINIMAL}[central]\nlisten = \"127.0.0.1:8443\"\n"
        ));
        let cfg = ServeConfig::load(&path).unwrap();
        let c = cfg.central.unwrap();
        assert_eq!(c.max_head_bytes, 64 * 1024);
        assert_eq!(c.idle_timeout_secs, 60);
        assert_eq!(c.max_concurrent_requests, 256);
        let err = serve_error(&format!(
            "{MINIMAL}[central]\nlisten = \"127.0.0.1:8443\"\nmax_head_bytes = 100\n"
        ));
        assert!(err.contains("central.max_head_bytes"), "{err}");
        let err = serve_error(&format!(
            "{MINIMAL}[central]\nlisten = \"127.0.0.1:8443\"\nmax_concurrent_requests = 0\n"
        ));
        assert!(err.contains("central.max_concurrent_requests"), "{err}");
        let err = serve_error(&format!(
            "{MINIMAL}[central]\nlisten = \"127.0.0.1:8443\"\nmax_body = 1\n"
        ));
        assert!(err.contains("max_body"), "{err}");
    }

    #[test]
    fn scheduling_defaults_to_batch_and_names_the_key_when_wrong() {
        let normal = "scheduling = \"normal\"\n";
        for (text, expected) in [
            (MINIMAL.to_owned(), Scheduling::Batch),
            (format!("{normal}{MINIMAL}"), Scheduling::Normal),
        ] {
            let (_d, path) = write(&text);
            assert_eq!(ServeConfig::load(&path).unwrap().scheduling, expected);
        }
        for (text, expected) in [
            (MINIMAL_AGENT.to_owned(), Scheduling::Batch),
            (format!("{MINIMAL_AGENT}{normal}"), Scheduling::Normal),
        ] {
            let (_d, path) = write(&text);
            assert_eq!(AgentConfig::load(&path).unwrap().scheduling, expected);
        }
        for err in [
            serve_error(&format!("scheduling = \"fifo\"\n{MINIMAL}")),
            agent_error(&format!("{MINIMAL_AGENT}scheduling = \"fifo\"\n")),
        ] {
            assert!(
                err.contains("scheduling") && err.contains("fifo") && err.contains("batch"),
                "{err}"
            );
            assert!(err.contains(".toml"), "names the file: {err}");
        }
    }

    #[test]
    fn worker_threads_default_to_one_per_cpu_and_are_checked() {
        let (_d, path) = write(MINIMAL);
        assert_eq!(ServeConfig::load(&path).unwrap().worker_threads, None);
        let (_d, path) = write(&format!("worker_threads = 1\n{MINIMAL}"));
        assert_eq!(ServeConfig::load(&path).unwrap().worker_threads, Some(1));
        let err = serve_error(&format!("worker_threads = 0\n{MINIMAL}"));
        assert!(
            err.contains("worker_threads") && err.contains("at least 1"),
            "{err}"
        );
    }

    #[test]
    fn bad_domain_is_refused() {
        let err = serve_error(&MINIMAL.replace("example.test", "not a domain"));
        assert!(err.contains("`domain`"), "{err}");
    }

    #[test]
    fn agent_ports_keys_must_be_numbers() {
        let text = &format!("{MINIMAL_AGENT}[ports]\nssh = \"127.0.0.1:2222\"\n");
        let err = agent_error(text);
        assert!(err.contains("ports.ssh"), "{err}");
        let (_d, path) = write(&text.replace("ssh =", "22 ="));
        let cfg = AgentConfig::load(&path).unwrap();
        assert_eq!(cfg.own_service_addr(22), "127.0.0.1:2222".parse().unwrap());
        assert_eq!(cfg.own_service_addr(443), "127.0.0.1:443".parse().unwrap());
        assert!(format!("{cfg:?}").contains("********"));
        assert!(!format!("{cfg:?}").contains("s3cret"));
    }

    #[test]
    fn agent_alarm_keys_default_resolve_and_are_checked() {
        let text = MINIMAL_AGENT;
        let (dir, path) = write(text);
        let cfg = AgentConfig::load(&path).unwrap();
        assert_eq!(
            (
                cfg.alarms_file.clone(),
                cfg.alarms_poll_ms,
                cfg.max_pending_alarms,
                cfg.cert_expiry_warning_days
            ),
            (None, 1000, 1000, 30)
        );
        assert_eq!(cfg.actions_file, None);
        std::fs::write(
            &path,
            format!(
                "{text}alarms_file = \"alarms.jsonl\"\nactions_file = \"site/actions.jsonl\"\n"
            ),
        )
        .unwrap();
        let cfg = AgentConfig::load(&path).unwrap();
        assert_eq!(cfg.alarms_file, Some(dir.path().join("alarms.jsonl")));
        assert_eq!(
            cfg.actions_file,
            Some(dir.path().join("site/actions.jsonl"))
        );
        for key in ["alarms_poll_ms", "max_pending_alarms"] {
            let err = agent_error(&format!("{text}{key} = 0\n"));
            assert!(err.contains(key) && err.contains("greater than 0"), "{err}");
        }
    }

    #[test]
    fn agent_windows_default_and_are_checked() {
        let text = MINIMAL_AGENT;
        let (_d, path) = write(text);
        let cfg = AgentConfig::load(&path).unwrap();
        assert_eq!(
            (
                cfg.initial_stream_window,
                cfg.stream_window,
                cfg.site_window
            ),
            (256 << 10, 32 << 20, 64 << 20)
        );
        let (_d, path) = write(&format!(
            "{text}stream_window = 16777216\nsite_window = 67108864\n"
        ));
        let cfg = AgentConfig::load(&path).unwrap();
        assert_eq!((cfg.stream_window, cfg.site_window), (16 << 20, 64 << 20));
        let err = agent_error(&format!("{text}stream_window = 1000\n"));
        assert!(err.contains("stream_window"), "{err}");
        let err = agent_error(&format!(
            "{text}stream_window = 8388608\nsite_window = 4194304\n"
        ));
        assert!(err.contains("site_window"), "{err}");
        let err = agent_error(&format!(
            "{text}initial_stream_window = 1048576\nstream_window = 524288\n"
        ));
        assert!(err.contains("at least initial_stream_window"), "{err}");
        let err = agent_error(&format!("{text}initial_stream_window = 100\n"));
        assert!(err.contains("initial_stream_window"), "{err}");
    }

    #[test]
    fn agent_stream_limit_defaults_to_serve_s_and_is_checked() {
        let (_d, path) = write(MINIMAL_AGENT);
        assert_eq!(AgentConfig::load(&path).unwrap().max_streams, 1024);
        let (_d, path) = write(&format!("{MINIMAL_AGENT}max_streams = 8\n"));
        assert_eq!(AgentConfig::load(&path).unwrap().max_streams, 8);
        let err = agent_error(&format!("{MINIMAL_AGENT}max_streams = 0\n"));
        assert!(
            err.contains("max_streams") && err.contains("at least 1"),
            "{err}"
        );
    }
}
