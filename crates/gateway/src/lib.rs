//! comgate's gateway: the CONNECT front door through which partner engineers
//! reach their customers' sites, the hub of connected site agents, and the
//! site agent itself (`comgate agent`).
//!
//! One partner connection runs through a fixed pipeline (see
//! [`front_door`]): accept → TLS → read head → parse target → authenticate →
//! authorise → find site → open stream → relay → audit. Each step is a
//! function with a typed error; [`refusal`] maps those errors to HTTP
//! statuses in one place.

pub mod agent;
pub mod agent_listener;
pub mod audit;
pub mod auth;
pub mod config;
pub mod connect_head;
pub mod demo;
pub mod front_door;
pub mod hub;
pub mod maint_host;
pub mod refusal;
pub mod relay;
pub mod serve;
pub mod tls;
