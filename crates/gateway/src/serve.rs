//! `comgate serve`: opens the store, loads or generates TLS material, binds
//! the listeners and runs the front door, the agent listener, (with
//! `[admin]`) the admin listener and (with `[central]`) the
//! central-management proxy until a shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use admin::store::Store;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::agent_listener::AgentListener;
use crate::auth::{Authenticator, FailureLimits};
use crate::central::CentralProxy;
use crate::config::ServeConfig;
use crate::front_door::FrontDoor;
use crate::hub::{Hub, HubStatus};
use crate::site_threads::SiteThreads;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create data_dir {0}: {1}")]
    DataDir(std::path::PathBuf, std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("database: {0}")]
    Store(#[from] admin::store::StoreError),
    #[error("{0}")]
    SealKey(#[from] admin::seal::SealKeyError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot start the site threads: {0}")]
    SiteThreads(std::io::Error),
    #[error("admin listener downloads: {0}")]
    Downloads(#[from] crate::public_downloads::DownloadsError),
    #[error("cannot listen on {addr} (key `{key}`): {source}")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running gateway: its bound addresses, and the handles to stop it.
pub struct Running {
    pub gateway_addr: SocketAddr,
    pub agents_addr: SocketAddr,
    /// The central-management proxy, when `[central]` is configured.
    pub central_addr: Option<SocketAddr>,
    /// The admin listener, when `[admin]` is configured.
    pub admin_addr: Option<SocketAddr>,
    pub hub: Arc<Hub>,
    /// Where connected sites and their tunnels run.
    pub site_threads: Arc<SiteThreads>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting and ends every site session and tunnel.
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
        self.site_threads.stop();
    }
}

async fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { key, addr, source })
}

/// The key customers' service passwords are sealed with, in `data_dir`
/// (created on first use, mode 0600): `comgate serve` and `comgate admin`
/// read the same file, so either can reveal what the other stored. With a
/// PostgreSQL database shared by several hosts, copy the file to each.
pub const SEAL_KEY_FILE: &str = "seal.key";

/// Opens the store the config names, SQLite or PostgreSQL (creating
/// `data_dir`, which holds the certificates and the seal key either way).
pub async fn open_store(cfg: &ServeConfig) -> Result<Store, ServeError> {
    let location = cfg.database()?;
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| ServeError::DataDir(cfg.data_dir.clone(), e))?;
    let key = admin::SealKey::load_or_create(&cfg.data_dir.join(SEAL_KEY_FILE))?;
    let store = Store::open_at(&location).await?.with_seal_key(key);
    tracing::info!(kind = location.kind(), database = %location, "database open");
    Ok(store)
}

/// Starts everything and returns once the listeners are bound.
pub async fn start(cfg: &ServeConfig) -> Result<Running, ServeError> {
    let store = open_store(cfg).await?;
    let identity = match &cfg.tls {
        Some(files) => crate::tls::load_identity(&files.cert, &files.key)?,
        None => crate::tls::ensure_generated(&cfg.data_dir, &cfg.domain)?,
    };
    let front_tls = crate::tls::front_server_config(&identity)?;
    let agent_tls = crate::tls::site_server_config(&identity)?;

    let gateway_listener = bind("gateway.listen", cfg.gateway.listen).await?;
    let agents_listener = bind("agents.listen", cfg.agents.listen).await?;
    let gateway_addr = gateway_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            key: "gateway.listen",
            addr: cfg.gateway.listen,
            source,
        })?;
    let agents_addr = agents_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            key: "agents.listen",
            addr: cfg.agents.listen,
            source,
        })?;
    let admin = match &cfg.admin {
        Some(s) => {
            let listener = bind("admin.listen", s.listen).await?;
            let addr = listener.local_addr().map_err(|source| ServeError::Bind {
                key: "admin.listen",
                addr: s.listen,
                source,
            })?;
            Some((listener, addr))
        }
        None => None,
    };
    let central = match &cfg.central {
        Some(c) => {
            let listener = bind("central.listen", c.listen).await?;
            let addr = listener.local_addr().map_err(|source| ServeError::Bind {
                key: "central.listen",
                addr: c.listen,
                source,
            })?;
            Some((listener, addr, c.clone()))
        }
        None => None,
    };

    let hub = Hub::new();
    let site_threads = SiteThreads::start(cfg.worker_threads()).map_err(ServeError::SiteThreads)?;
    let g = &cfg.gateway;
    let auth = Authenticator::new(
        store.clone(),
        FailureLimits {
            per_address_per_minute: g.auth_failures_per_minute,
            per_address_burst: g.auth_failure_burst,
            per_account_per_minute: g.account_failures_per_minute,
            per_account_burst: g.account_failure_burst,
        },
    );
    let front = FrontDoor::new(
        &cfg.domain,
        cfg.gateway.clone(),
        store.clone(),
        hub.clone(),
        auth.clone(),
    );
    let agents = AgentListener::new(
        cfg.agents.clone(),
        store.clone(),
        hub.clone(),
        site_threads.clone(),
    );
    let housekeeping = {
        let (auth, agents) = (auth.clone(), agents.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Authenticator::HOUSEKEEPING_EVERY);
            loop {
                tick.tick().await;
                auth.housekeeping();
                agents.housekeeping();
            }
        })
    };
    let mark_seen = {
        let (hub, store) = (hub.clone(), store.clone());
        let every = Duration::from_secs(cfg.agents.seen_interval_secs);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let ids = hub.connected_system_ids();
                if ids.is_empty() {
                    continue;
                }
                let now = crate::agent_listener::unix_now();
                if let Err(error) = store.record_sites_seen(&ids, now).await {
                    tracing::warn!(%error, sites = ids.len(), "could not mark the connected sites as seen");
                }
            }
        })
    };
    let mut tasks = vec![
        tokio::spawn(front.run(gateway_listener, front_tls)),
        tokio::spawn(agents.run(agents_listener, agent_tls)),
        housekeeping,
        mark_seen,
    ];
    let central_addr = match central {
        Some((listener, addr, section)) => {
            // The serve identity names admin.<domain>, which the admin tools use.
            let tls =
                TlsAcceptor::from(crate::tls::server_config(&identity, crate::central::ALPN)?);
            let proxy = CentralProxy::new(&cfg.domain, section, store.clone(), hub.clone())
                .map_err(crate::tls::TlsError::Rustls)?;
            tasks.push(tokio::spawn(proxy.run(listener, tls)));
            Some(addr)
        }
        None => None,
    };
    let admin_addr = match admin {
        Some((listener, addr)) => {
            let section = cfg.admin.as_ref().expect("admin listener configured");
            let downloads = Arc::new(crate::public_downloads::build(cfg, &identity)?);
            let tls =
                TlsAcceptor::from(crate::tls::server_config(&identity, &[b"h2", b"http/1.1"])?);
            let api = admin::api::ApiState::new(
                store.clone(),
                Arc::new(HubStatus(hub.clone())),
                cfg.api_config(),
            );
            tasks.push(tokio::spawn(
                admin::api::session::purge_idle_sessions_forever(
                    api.clone(),
                    Duration::from_secs(300),
                ),
            ));
            let app = admin::http::downloads::routes(downloads).merge(admin::api::router(api));
            let limits = admin::http::HttpLimits {
                head_timeout: Duration::from_millis(section.head_timeout_ms),
                max_head_bytes: section.max_head_bytes,
            };
            tasks.push(tokio::spawn(admin::http::serve(listener, tls, app, limits)));
            Some(addr)
        }
        None => None,
    };
    tracing::info!(
        front_door = %gateway_addr,
        agents = %agents_addr,
        domain = %cfg.domain,
        proxy = %cfg.public_address(),
        central = ?central_addr,
        admin = ?admin_addr,
        site_threads = site_threads.len(),
        "comgate serving"
    );
    Ok(Running {
        gateway_addr,
        agents_addr,
        central_addr,
        admin_addr,
        hub,
        site_threads,
        tasks,
    })
}

/// Runs until SIGINT or SIGTERM.
pub async fn run(cfg: ServeConfig) -> Result<(), ServeError> {
    let running = start(&cfg).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop();
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, database: Option<&str>) -> ServeConfig {
        let mut text = "domain = \"example.test\"\ndata_dir = \"data\"\n\
                        [gateway]\nlisten = \"127.0.0.1:0\"\n[agents]\nlisten = \"127.0.0.1:0\"\n"
            .to_owned();
        if let Some(url) = database {
            text.push_str(&format!("[database]\nurl = \"{url}\"\n"));
        }
        let path = dir.join("comgate.toml");
        std::fs::write(&path, text).unwrap();
        ServeConfig::load(&path).unwrap()
    }

    /// What serve and `comgate admin` both call: the database the config
    /// names, the data of one run seen by the next.
    async fn check_open_store(cfg: &ServeConfig, kind: &str) {
        let store = open_store(cfg).await.unwrap();
        assert_eq!(store.kind(), kind);
        store
            .add_customer(admin::NewCustomer {
                id: "12345".into(),
                name: "Example".into(),
                reseller: "R".into(),
                provider: None,
                service_password: Some("service-pw".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        store.close().await;
        let again = open_store(cfg).await.unwrap();
        assert!(again.customer("12345").await.unwrap().is_some());
        assert!(cfg.data_dir.is_dir(), "data_dir is made either way");
        // The next run (or `comgate admin`) reads the same seal key.
        assert!(cfg.data_dir.join(SEAL_KEY_FILE).is_file());
        let revealed = again.reveal_service_password("12345").await.unwrap();
        assert_eq!(revealed.unwrap().expose(), "service-pw");
    }

    #[tokio::test]
    async fn open_store_opens_the_sqlite_file_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), None);
        check_open_store(&cfg, "sqlite").await;
        assert!(dir.path().join("data/comgate.db").exists());
    }

    #[tokio::test]
    async fn open_store_opens_the_sqlite_file_the_url_names() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), Some("sqlite:db/other.db"));
        check_open_store(&cfg, "sqlite").await;
        assert!(dir.path().join("db/other.db").exists());
        assert!(!dir.path().join("data/comgate.db").exists());
    }

    #[tokio::test]
    async fn open_store_opens_the_postgres_database_the_url_names() {
        if !pg_harness::available() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let url = pg_harness::fresh_database().await;
        let cfg = config(dir.path(), Some(&url));
        check_open_store(&cfg, "postgres").await;
        assert!(!dir.path().join("data/comgate.db").exists());
    }
}
