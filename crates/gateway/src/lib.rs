//! comgate's gateway: the CONNECT front door through which partner engineers
//! reach their customers' sites, the hub of connected site agents, and the
//! site agent itself (`comgate agent`).
//!
//! One partner connection runs through a fixed pipeline (see
//! [`front_door`]): accept → TLS → read head → parse target → authenticate →
//! authorise → find site → open stream → relay → audit. Each step is a
//! function with a typed error; [`refusal`] maps those errors to HTTP
//! statuses in one place. The central-management reverse proxy
//! ([`central`]) serves the admin tools at `admin.<domain>:8443/<customer>/`.

#[cfg(feature = "server")]
pub mod agent;
#[cfg(feature = "server")]
pub mod agent_listener;
#[cfg(feature = "server")]
pub mod audit;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod central;
#[cfg(feature = "server")]
pub mod config;
pub mod connect_head;
#[cfg(feature = "server")]
pub mod demo;
#[cfg(feature = "server")]
pub mod front_door;
#[cfg(feature = "server")]
pub mod hub;
pub mod maint_host;
#[cfg(feature = "server")]
pub mod movable_tcp;
#[cfg(feature = "server")]
pub mod open_failure;
#[cfg(feature = "server")]
pub mod own_tls;
#[cfg(feature = "server")]
pub mod public_downloads;
#[cfg(feature = "server")]
#[cfg(feature = "server")]
pub mod refusal;
#[cfg(feature = "server")]
pub mod relay;
#[cfg(feature = "server")]
pub mod serve;
#[cfg(feature = "server")]
pub mod site_socket;
#[cfg(feature = "server")]
pub mod site_threads;
#[cfg(feature = "server")]
pub mod thread_scheduling;
#[cfg(feature = "server")]
pub mod tls;
#[cfg(feature = "server")]
pub mod utility_bundle;
