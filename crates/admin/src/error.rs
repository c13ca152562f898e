//! The one error type of the storage, so that the CLI and the gateway can
//! print a message that names what is wrong (the customer, the system, the
//! username) without knowing how it is stored.
//!
//! No variant carries a password or a secret: these messages end up in
//! terminals and logs.

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL or path names no database comgate can use.
    #[error("invalid database URL or path: {0}")]
    InvalidLocation(#[from] crate::store::InvalidLocation),

    /// The SQLite file could not be opened or created, or the PostgreSQL
    /// server not reached or logged in to. `database` is the path, or the
    /// URL without its password.
    #[error("cannot open database {database}: {source}")]
    Open {
        database: String,
        #[source]
        source: sqlx::Error,
    },

    /// A schema migration failed (the database is left at the last good version).
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// A customer id is not letters and digits only.
    #[error("invalid customer id {id:?}: {reason}")]
    InvalidCustomerId { id: String, reason: &'static str },

    #[error("unknown customer {0}")]
    UnknownCustomer(String),

    /// A customer account setting breaks one of its rules; `field` names it.
    #[error("{field}: {reason}")]
    InvalidCustomerField {
        field: CustomerField,
        reason: &'static str,
    },

    /// A service password was to be stored or revealed, but the store was
    /// given no seal key ([`crate::Store::with_seal_key`]).
    #[error("service_password: no seal key is configured, so service passwords cannot be stored or revealed")]
    NoSealKey,

    /// The stored service password of this customer does not open with the
    /// store's seal key: another key sealed it, or the value was altered.
    #[error("the service password of customer {customer} cannot be decrypted: {reason}")]
    Unseal {
        customer: String,
        reason: crate::seal::UnsealError,
    },

    /// The system's random number source failed while sealing.
    #[error("sealing failed: {0}")]
    Sealing(#[from] crate::seal::SealKeyError),

    #[error("customer {0} already exists")]
    DuplicateCustomer(String),

    /// An alarm report breaks the limits of the alarm table.
    #[error("invalid alarm: {0}")]
    InvalidAlarm(String),

    /// An action report breaks the limits of the action table.
    #[error("invalid action: {0}")]
    InvalidAction(String),

    #[error("unknown system id {0}")]
    UnknownSystemId(i64),

    /// A system name has no usable DNS-label form.
    #[error("invalid system name {name:?}: {reason}")]
    InvalidSystemName { name: String, reason: &'static str },

    /// `label: None` means the customer's primary system was asked for.
    #[error("{}", describe_unknown_system(customer, label.as_deref()))]
    UnknownSystem {
        customer: String,
        label: Option<String>,
    },

    /// Two names with the same DNS-label form ("IPO Main", "ipo_main") would
    /// give the same maintenance address, so the second is refused.
    #[error("customer {customer} already has a system with address label {label}")]
    DuplicateSystem { customer: String, label: String },

    #[error("customer {customer} already has a primary system ({label})")]
    PrimaryExists { customer: String, label: String },

    /// Proxy usernames are what the front door looks an account up by, so
    /// they are unique across all resellers and distributors.
    #[error(
        "username {username} is already used by the proxy account of reseller or distributor {owner}"
    )]
    UsernameTaken { username: String, owner: String },

    #[error("user {0} already exists")]
    DuplicateUser(String),

    /// A plain field (owner, username, name) is empty or malformed.
    #[error("{field}: {reason}")]
    InvalidField {
        field: &'static str,
        reason: &'static str,
    },

    /// A COM user setting breaks one of the manual's rules ("COM User
    /// Settings"); `field` names the setting.
    #[error("{field}: {reason}")]
    InvalidUserSetting {
        field: UserField,
        reason: &'static str,
    },

    /// No COM user has this login name.
    #[error("unknown user {0}")]
    UnknownUser(String),

    /// No COM user has this id.
    #[error("unknown user id {0}")]
    UnknownUserId(i64),

    /// The manual: "You cannot select and then delete the account which you
    /// have used to login."
    #[error("a user cannot delete its own account")]
    CannotDeleteSelf,

    /// The new password is the current one or one of the last few.
    #[error("password: must not be one of the previous passwords")]
    PasswordReused,

    /// A COM user password does not meet the manual's policy.
    #[error("password: {0}")]
    WeakPassword(#[from] PasswordPolicyError),

    /// argon2 itself failed, or its worker thread did: not the caller's fault.
    #[error("password hashing failed: {0}")]
    Hashing(String),

    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// A COM user setting, as [`StoreError::InvalidUserSetting`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserField {
    /// First and last name (their length is limited together).
    Name,
    Phone,
    Mobile,
    Email,
    Labels,
    SessionTimeout,
    Wallboard,
    CreatedBy,
}

impl UserField {
    /// The name used in messages (and by the API for its fields).
    pub fn as_str(self) -> &'static str {
        match self {
            UserField::Name => "name",
            UserField::Phone => "phone",
            UserField::Mobile => "mobile",
            UserField::Email => "email",
            UserField::Labels => "labels",
            UserField::SessionTimeout => "session_timeout_minutes",
            UserField::Wallboard => "wallboard",
            UserField::CreatedBy => "created_by",
        }
    }
}

impl std::fmt::Display for UserField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A customer account setting, as [`StoreError::InvalidCustomerField`]
/// names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerField {
    Name,
    Reseller,
    Provider,
    ServiceUser,
    ServicePassword,
    Tags,
    Phone,
    Email,
    Address,
    Notes,
}

impl CustomerField {
    /// The name used in messages (and by the API for its fields).
    pub fn as_str(self) -> &'static str {
        match self {
            CustomerField::Name => "name",
            CustomerField::Reseller => "reseller",
            CustomerField::Provider => "provider",
            CustomerField::ServiceUser => "service_user",
            CustomerField::ServicePassword => "service_password",
            CustomerField::Tags => "tags",
            CustomerField::Phone => "phone",
            CustomerField::Email => "email",
            CustomerField::Address => "address",
            CustomerField::Notes => "notes",
        }
    }
}

impl std::fmt::Display for CustomerField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rule of the manual's password policy that a password breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    #[error("must be 9-31 characters")]
    Length,
    #[error(
        "must contain characters of at least 2 of these types: uppercase, lowercase, digits, special characters"
    )]
    TooFewCharacterTypes,
}

fn describe_unknown_system(customer: &str, label: Option<&str>) -> String {
    match label {
        Some(label) => format!("unknown system {label} of customer {customer}"),
        None => format!("customer {customer} has no primary system"),
    }
}
