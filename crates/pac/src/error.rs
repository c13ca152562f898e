//! Why a PAC could not be generated, loaded, evaluated or merged.
//!
//! One enum for the crate boundary, so that the CLI (and any server that
//! evaluates a PAC) can tell a broken PAC (syntax, script error, no
//! `FindProxyForURL`) from one that hit a limit (size, nesting, time).

use std::time::Duration;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum PacError {
    /// The source is larger than [`Limits::max_source_bytes`](crate::Limits).
    #[error("the PAC is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The source nests deeper than the evaluator's parser can take safely.
    #[error("the PAC nests too deeply at line {line} (limit {limit}); refusing to parse it")]
    TooDeep { line: u32, limit: u32 },
    /// The source is not valid JavaScript.
    #[error("{}", syntax_message(*line, *column, message))]
    Syntax {
        line: Option<u32>,
        column: Option<u32>,
        message: String,
    },
    /// Loading the PAC or one `FindProxyForURL` call ran past the time limit.
    #[error("the PAC ran longer than its time limit of {limit:?} {during}")]
    TimedOut { limit: Duration, during: Phase },
    /// A loop, recursion or stack limit of the engine stopped the PAC.
    #[error("the PAC hit an evaluation limit {during}: {message}")]
    Limit { during: Phase, message: String },
    /// The PAC threw an exception.
    #[error("the PAC threw an error {during}: {message}")]
    Script { during: Phase, message: String },
    /// The PAC loaded but defines no `FindProxyForURL` function.
    #[error("the PAC does not define a FindProxyForURL function")]
    NoFindProxyForURL,
    /// `FindProxyForURL` returned something other than a string.
    #[error("FindProxyForURL returned {0}, not a string")]
    NotAString(String),
    /// An earlier call timed out and the engine was abandoned.
    #[error("this PAC evaluator stopped after an earlier time-out; load the PAC again")]
    Stopped,
    /// The engine could not be set up (thread, context).
    #[error("cannot start the PAC evaluator: {0}")]
    Engine(String),
    /// Not a usable domain for the generated PAC.
    #[error("`{0}` is not a DNS domain such as example.com")]
    InvalidDomain(String),
    /// Not a usable `host:port` for the proxy in the generated PAC.
    #[error("`{0}` is not a proxy address of the form host:port")]
    InvalidProxyAddress(String),
    /// The URL to look up could not be parsed.
    #[error("`{url}` is not a URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The merged PAC did not behave as a merge must.
    #[error("cannot merge: {0}")]
    Merge(String),
}

/// Which part of the PAC's life an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Running the file's top level (its global definitions).
    Loading,
    /// One `FindProxyForURL(url, host)` call.
    FindProxy,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Loading => "while loading",
            Phase::FindProxy => "in FindProxyForURL",
        })
    }
}

fn syntax_message(line: Option<u32>, column: Option<u32>, message: &str) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("PAC syntax error at line {l}, column {c}: {message}"),
        (Some(l), None) => format!("PAC syntax error at line {l}: {message}"),
        _ => format!("PAC syntax error: {message}"),
    }
}
