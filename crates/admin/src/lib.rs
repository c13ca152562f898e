//! comgate's admin plane.
//!
//! For now this crate is the storage that the gateway and the `comgate admin`
//! commands share: maintenance proxy accounts, customers, their systems (with
//! the agent secrets) and COM users. Both processes open the same database
//! (a SQLite file or a PostgreSQL database, see [`store`]); the gateway reads
//! it on every CONNECT, so a change made by the CLI takes effect on the next
//! connection without a restart.
//!
//! The admin plane proper (sessions, permissions, alarms, the REST API) will
//! grow on top of [`Store`] and its migrations.

pub mod api;
pub mod connectivity;
pub mod customer_query;
pub mod error;
pub mod failure_limit;
pub mod http;
pub mod names;
pub mod password;
pub mod permissions;
pub mod remote_support;
pub mod role;
pub mod seal;
pub mod secret;
pub mod store;

pub use error::{CustomerField, PasswordPolicyError, StoreError, UserField};
pub use password::{verify_password, PhcHash};
pub use role::{ParseRoleError, Role};
pub use seal::SealKey;
pub use store::{
    Customer, CustomerChanges, CustomerDetails, CustomerListRow, CustomerSettings, ListedSystem,
    Location, LoginOutcome, LoginPolicy, NewCustomer, NewSystem, NewUser, ProxyAccount,
    ServicePassword, Store, System, SystemChanges, SystemKind, User, UserChanges, UserSettings,
    Visibility,
};
