//! Proxy auto-configuration (PAC) for comgate: generating the file browsers
//! use to reach maintenance addresses, evaluating any PAC the way browsers
//! do, and merging comgate's rule into a PAC a partner already has.
//!
//! # Which names go to comgate
//!
//! The manual's PAC matches `shExpMatch(host, "[a-zA-Z0-9]*-*.maint.<domain>")`.
//! That needs a `-`, so the primary-system form `<customer-id>.maint.<domain>`
//! (no system name) goes DIRECT and fails; and `shExpMatch` is case-sensitive
//! in engines that do not lower-case the host first (Chromium does, pacparser
//! does not). comgate's PAC instead sends every name that ends in
//! `.maint.<domain>` to the front door, after lower-casing it and dropping
//! one trailing dot:
//!
//! - all three forms work: `12345`, `12345-sec1` and `12345-sec1-10.0.0.5`
//!   before `.maint.<domain>`;
//! - the bare `maint.<domain>` (the front door itself) and `admin.<domain>`
//!   stay DIRECT: a proxy is never asked to reach itself;
//! - a name under `.maint.<domain>` that is not a valid maintenance address
//!   still goes to comgate, which refuses it (403). Everything under that
//!   suffix belongs to the deployment, so nothing leaks elsewhere;
//! - the test is written out (`substring` on the lower-cased host) rather than
//!   calling `dnsDomainIs`, so a merged PAC that redefines helpers cannot
//!   change it, and every engine gives the same answer.
//!
//! # Modules
//!
//! [`generate`](mod@generate) builds the rule and the file, [`engine`] runs a
//! PAC on boa_engine with the browsers' helper functions and bounds,
//! [`merge`](mod@merge) wraps an existing PAC, [`browser`] turns a URL into
//! the arguments a browser passes, [`resolver`] and [`clock`] are the
//! injected outside world, [`nesting`] protects the parser's stack, and
//! [`directive`] reads an answer.

pub mod browser;
pub mod chrome_extension;
pub mod clock;
pub mod directive;
pub mod engine;
pub mod error;
pub mod generate;
pub mod merge;
pub mod nesting;
pub mod resolver;

pub use browser::browser_arguments;
pub use clock::{FixedClock, PacClock, SystemClock};
pub use directive::{parse_answer, Directive};
pub use engine::{find_proxy_for_url, Answer, Limits, Options, Pac};
pub use error::{PacError, Phase};
pub use generate::{generate, MaintRule};
pub use merge::merge;
pub use resolver::{NoResolver, Resolver, StaticResolver, SystemResolver};
