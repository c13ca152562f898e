//! End-to-end acceptance tests of `comgate` with real clients on loopback.
//!
//! Every test starts its own `comgate serve`, site agent(s), targets and clients on
//! ports it picks at run time, in a temporary directory of its own, and kills every
//! process it started when it ends (see `support::process::Proc`). On failure the
//! tails of all logs of the test are printed; `E2E_KEEP=1` keeps the directory.
//!
//! Real programs used: proxytunnel, ssh/scp/sftp/ssh-keygen, sshd, plink/puttygen,
//! curl, tinyproxy, python3. A test whose program is missing prints
//! `skipped: X not installed` and passes, unless `CI=true`, where it fails.
//!
//! `comgate` is driven only through its command-line contract (DESIGN.md): the
//! serve/agent TOML files, `comgate admin ...`, its log lines (`connected`,
//! `tunnel closed ...`) and the CONNECT front door.

/// Return early from a test (as skipped) when one of the named programs is missing.
macro_rules! require_tools {
    ($($tool:expr),+ $(,)?) => {
        if !$crate::support::tools::require(&[$($tool),+])? {
            return Ok(());
        }
    };
}

mod support;

mod admin_api;
mod admin_cli;
mod agent_policy;
mod agent_proxy;
mod alarms;
mod audit_log;
mod browser;
mod central;
mod concurrency;
mod connectivity;
mod curl;
mod demo;
mod downloads;
mod early_data;
mod http2;
mod isolation;
mod limits;
mod plink;
mod policy;
mod quick_lane;
mod remote_support;
mod resilience;
mod scheduling;
mod server_first;
mod ssh;
mod standalone;
mod tls12;
