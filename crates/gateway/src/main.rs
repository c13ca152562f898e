//! The `comgate` command: the gateway (`serve`), the site agent (`agent`),
//! the administration commands (`admin`), the PAC tools (`pac`) and a
//! self-contained demo (`demo`).
//! This is the binary's edge, the one place errors become `anyhow` and an
//! exit status.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway::config::{AgentConfig, ServeConfig};
use gateway::thread_scheduling::{self, Scheduling};

mod pac_cli;

#[derive(Parser)]
#[command(
    name = "comgate",
    version,
    about = "Remote-access gateway for partner support engineers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: CONNECT front door and agent listener.
    Serve {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run a site agent: one outbound websocket to comgate for one system.
    Agent {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Manage proxy accounts, customers, systems and users in the database
    /// of a serve config (works while `serve` runs; changes apply at once).
    Admin {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Proxy auto-configuration: try a PAC file on URLs, print comgate's PAC,
    /// or merge comgate's rule into a PAC you already use.
    Pac {
        #[command(subcommand)]
        command: PacCommand,
    },
    /// Run comgate with embedded defaults plus a local demo site, and print
    /// the commands to try.
    Demo {
        /// Where the demo keeps its data (database, certificates, configs).
        #[arg(long, default_value = "comgate-demo")]
        dir: PathBuf,
        /// Port of the CONNECT front door on 127.0.0.1.
        #[arg(long, default_value_t = 6443)]
        port: u16,
    },
}

#[derive(Subcommand)]
enum PacCommand {
    /// Print what a PAC file answers for each URL, one `URL -> answer` line
    /// each, evaluated as a browser does (https URLs reduced to their
    /// origin, host lower-cased). Name lookups use this machine's resolver
    /// with a 1 s limit each; a PAC gets 3 s per URL.
    #[command(
        after_help = "Example:\n  comgate pac test --pac https://admin.example.com/com/remoteproxy/proxy.pac \\\n    https://12345-sys1.maint.example.com:7071/login https://www.example.org/"
    )]
    Test {
        /// The PAC: a file, or an http:// or https:// URL.
        #[arg(long, value_name = "FILE_OR_URL")]
        pac: String,
        /// Also trust this CA (PEM) when fetching an https:// PAC.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// What myIpAddress() returns (default: this machine's address).
        #[arg(long, value_name = "IPV4")]
        my_ip: Option<Ipv4Addr>,
        /// URLs to look up.
        #[arg(required = true, value_name = "URL")]
        urls: Vec<String>,
    },
    /// Print comgate's own PAC for a serve config: names under
    /// .maint.<domain> go to the front door, everything else DIRECT.
    Generate {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print a PAC that keeps every decision of an existing PAC and sends
    /// maintenance names (.maint.<domain>) to comgate. Domain and front-door
    /// address come from the serve config.
    Merge {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The PAC in use today: a file, or an http:// or https:// URL.
        #[arg(long, value_name = "PAC")]
        existing: String,
        /// Also trust this CA (PEM) when fetching an https:// PAC.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Maintenance proxy accounts (one per reseller or distributor).
    ProxyAccount {
        #[command(subcommand)]
        command: ProxyAccountCommand,
    },
    /// Customers.
    Customer {
        #[command(subcommand)]
        command: CustomerCommand,
    },
    /// Systems of a customer.
    System {
        #[command(subcommand)]
        command: SystemCommand,
    },
    /// COM users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum ProxyAccountCommand {
    /// Set (create or change) the proxy account of a reseller or distributor.
    Set {
        #[arg(long)]
        owner: String,
        #[arg(long)]
        username: String,
        #[arg(long)]
        password: String,
    },
    /// List proxy accounts.
    List,
}

#[derive(Subcommand)]
enum CustomerCommand {
    /// Add a customer.
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        reseller: String,
        #[arg(long)]
        provider: Option<String>,
    },
    /// List customers.
    List,
}

#[derive(Subcommand)]
enum SystemCommand {
    /// Add a system; prints its agent secret alone on the last line.
    Add {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        primary: bool,
    },
    /// Issue a new agent secret for a system (the old one stops working).
    RotateSecret {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        name: String,
    },
    /// List the systems of a customer.
    List {
        #[arg(long)]
        customer: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a COM user.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        password: String,
        #[arg(long)]
        role: String,
    },
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// jemalloc rather than glibc's malloc: every site's TLS handshake leaves
/// short-lived buffers behind, and glibc kept the holes between the
/// survivors resident (at 5,000 idle sites serve held 30-37 KiB per site;
/// `malloc_trim` gave back more than a quarter of it). jemalloc's background
/// thread returns unused pages within seconds (BENCHMARKS.md, idle memory).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The local time zone can only be read while the process has one thread.
    let clock = pac::SystemClock::detect();
    init_tracing();
    // The agent serves one site: its work is a few sockets' I/O and TLS,
    // which one thread carries at far more than a site link's rate. On one
    // thread a frame goes from the websocket to the target socket without
    // waking another worker (a futex or eventfd hand-off per direction on
    // the multi-thread runtime, measured as tens of microseconds per round
    // trip: BENCHMARKS.md). serve needs every core.
    let mut builder = match cli.command {
        Command::Agent { .. } => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    // serve's config says how many workers its runtime has, and either
    // config the threads' scheduling policy, so both are read before the
    // runtime starts.
    let config = match &cli.command {
        Command::Serve { config } => ServeConfig::load(config).map(|c| Loaded::Serve(Box::new(c))),
        Command::Agent { config } => AgentConfig::load(config).map(|c| Loaded::Agent(Box::new(c))),
        _ => Ok(Loaded::Neither),
    };
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            eprintln!("comgate: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Loaded::Serve(cfg) = &config {
        if let Some(n) = cfg.worker_threads {
            builder.worker_threads(n);
        }
    }
    let scheduling = match &config {
        Loaded::Serve(cfg) => Some(cfg.scheduling),
        Loaded::Agent(cfg) => Some(cfg.scheduling),
        // The demo runs serve and an agent with their defaults.
        Loaded::Neither if matches!(cli.command, Command::Demo { .. }) => {
            Some(Scheduling::default())
        }
        Loaded::Neither => None,
    };
    if let Some(policy) = scheduling {
        // Before the runtime: every thread it starts inherits the policy.
        // A policy the kernel refuses costs latency, not correctness.
        if let Err(e) = thread_scheduling::apply(policy) {
            tracing::warn!(error = %e, "threads keep the default scheduling policy");
        }
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("comgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, config, clock)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("comgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The config `serve` or `agent` runs with, read before the runtime starts.
enum Loaded {
    Serve(Box<ServeConfig>),
    Agent(Box<AgentConfig>),
    Neither,
}

/// Runs the command with its config, already read.
async fn run(cli: Cli, config: Loaded, clock: pac::SystemClock) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { .. } => {
            let Loaded::Serve(cfg) = config else {
                anyhow::bail!("serve's config is read before its runtime starts");
            };
            gateway::serve::run(*cfg).await?;
        }
        Command::Agent { .. } => {
            let Loaded::Agent(cfg) = config else {
                anyhow::bail!("the agent's config is read before its runtime starts");
            };
            let agent = gateway::agent::Agent::new(*cfg)?;
            tokio::select! {
                _ = agent.run() => {}
                _ = gateway::serve::shutdown_signal() => {}
            }
        }
        Command::Admin { config, command } => {
            let cfg = ServeConfig::load(&config)?;
            let store = gateway::serve::open_store(&cfg).await?;
            admin_command(&store, command).await?;
        }
        Command::Pac { command } => match command {
            PacCommand::Test {
                pac,
                ca,
                my_ip,
                urls,
            } => pac_cli::test(&pac, ca.as_deref(), my_ip, urls, clock).await?,
            PacCommand::Generate { config } => pac_cli::generate(&config)?,
            PacCommand::Merge {
                config,
                existing,
                ca,
            } => pac_cli::merge(&config, &existing, ca.as_deref()).await?,
        },
        Command::Demo { dir, port } => gateway::demo::run(&dir, port)
            .await
            .map_err(|e| anyhow::anyhow!("demo: {e}"))?,
    }
    Ok(())
}

/// Records a change made with `comgate admin` in the admin plane's audit
/// log, as the REST API records its own: the actor is the command line and
/// the local account that ran it. A failure to record is reported, not
/// fatal: the change is made.
async fn audit_cli(
    store: &admin::store::Store,
    action: &'static str,
    target: String,
    after: serde_json::Value,
) {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let actor = admin::store::Actor {
        id: None,
        name: format!("comgate admin ({user})"),
        source: "local".into(),
    };
    let event = admin::store::AuditEvent {
        action,
        target,
        before: None,
        after: Some(after),
        outcome: "ok".into(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if let Err(e) = store.record_audit(&actor, &event, now).await {
        eprintln!("warning: the change is made but not in the audit log: {e}");
    }
}

async fn admin_command(store: &admin::store::Store, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::ProxyAccount { command } => match command {
            ProxyAccountCommand::Set {
                owner,
                username,
                password,
            } => {
                store
                    .set_proxy_account(&owner, &username, &password)
                    .await?;
                audit_cli(
                    store,
                    "proxy_account.set",
                    format!("proxy_account:{owner}"),
                    serde_json::json!({"owner": owner, "username": username}),
                )
                .await;
                println!("proxy account of {owner} set: username {username}");
            }
            ProxyAccountCommand::List => {
                for a in store.list_proxy_accounts().await? {
                    println!("{}\t{}", a.owner, a.username);
                }
            }
        },
        AdminCommand::Customer { command } => match command {
            CustomerCommand::Add {
                id,
                name,
                reseller,
                provider,
            } => {
                let c = store
                    .add_customer(admin::store::NewCustomer {
                        id,
                        name,
                        reseller,
                        provider,
                        ..Default::default()
                    })
                    .await?;
                audit_cli(
                    store,
                    "customer.create",
                    format!("customer:{}", c.id),
                    serde_json::to_value(&c).unwrap_or_default(),
                )
                .await;
                println!("customer {} added ({})", c.id, c.name);
            }
            CustomerCommand::List => {
                for c in store.list_customers().await? {
                    println!(
                        "{}\t{}\treseller={}\tprovider={}",
                        c.id,
                        c.name,
                        c.reseller,
                        c.provider.as_deref().unwrap_or("-")
                    );
                }
            }
        },
        AdminCommand::System { command } => match command {
            SystemCommand::Add {
                customer,
                name,
                primary,
            } => {
                let (system, secret) = store.add_system(&customer, &name, primary).await?;
                audit_cli(
                    store,
                    "system.create",
                    format!("system:{}", system.id),
                    serde_json::to_value(&system).unwrap_or_default(),
                )
                .await;
                println!(
                    "system {} added to customer {} (address label `{}`{})",
                    system.name,
                    system.customer_id,
                    system.label,
                    if system.is_primary { ", primary" } else { "" }
                );
                println!("agent secret (shown once; put it in the agent's config as `secret`):");
                println!("{secret}");
            }
            SystemCommand::RotateSecret { customer, name } => {
                let label = admin::store::system_label(&name)
                    .with_context(|| format!("`{name}` is not a usable system name"))?;
                let secret = store.rotate_system_secret(&customer, &label).await?;
                audit_cli(
                    store,
                    "system.secret",
                    format!("system:{customer}/{label}"),
                    serde_json::json!({"customer": customer, "label": label}),
                )
                .await;
                println!("new agent secret for system {label} of customer {customer}:");
                println!("{secret}");
            }
            SystemCommand::List { customer } => {
                for s in store.list_systems(&customer).await? {
                    println!(
                        "{}\t{}\t{}",
                        s.label,
                        s.name,
                        if s.is_primary { "primary" } else { "" }
                    );
                }
            }
        },
        AdminCommand::User { command } => match command {
            UserCommand::Add {
                username,
                password,
                role,
            } => {
                let role: admin::store::Role = role.parse()?;
                let user = store.add_user(&username, &password, role).await?;
                audit_cli(
                    store,
                    "user.create",
                    format!("user:{}", user.id),
                    serde_json::to_value(&user).unwrap_or_default(),
                )
                .await;
                println!("user {username} added");
            }
        },
    }
    Ok(())
}
