//! COM users: the people who log in to the admin plane, with the manual's
//! "COM User Settings" (chapter 13). Logging in (failed-login blocking,
//! expiry) is in `login.rs`.
//!
//! Every setting is validated here, before anything is written, and a broken
//! rule is a [`StoreError::InvalidUserSetting`] naming the field. Who may
//! add, edit or delete whom is the API's check (`permissions`); the store
//! only keeps the data consistent (a Supervisor-created user is an Operator,
//! nobody deletes itself).

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use super::{is_unique_violation, now, unstorable, Store, StoreRow};
use crate::error::UserField;
use crate::names::check_login_name;
use crate::password::{check_password_policy, hash_password_async, verify_password_async};
use crate::{PhcHash, Role, StoreError};

/// First and last name together, spaces included, at most this long.
pub const MAX_FULL_NAME_LEN: usize = 31;

/// Phone and mobile numbers: at most this many digits.
pub const MAX_PHONE_DIGITS: usize = 15;

/// Longest email address (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Longest label (a reseller or distributor name).
pub const MAX_USER_LABEL_LEN: usize = 255;

/// Session timeout choices: 5 to 30 minutes in steps of 5; 10 by default.
pub const SESSION_TIMEOUT_MINUTES: std::ops::RangeInclusive<i64> = 5..=30;
pub const SESSION_TIMEOUT_STEP: i64 = 5;
pub const DEFAULT_SESSION_TIMEOUT_MINUTES: i64 = 10;

/// A stored COM user.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    /// Login name, exact case.
    pub username: String,
    pub role: Role,
    #[serde(skip)]
    #[schema(ignore)]
    pub password_hash: PhcHash,
    #[serde(flatten)]
    pub settings: UserSettings,
    /// The Supervisor who created this Operator, if one did.
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl User {
    /// Whether the account has expired at `now` (unix seconds).
    pub fn is_expired_at(&self, now: i64) -> bool {
        self.settings.expires_at.is_some_and(|at| now >= at)
    }
}

/// The settings of a COM user besides login name, password and role, as the
/// manual lists them. Empty strings mean "not given".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserSettings {
    pub first_name: String,
    pub last_name: String,
    /// Digits, optionally after a leading `+`; at most 15 digits.
    pub phone: String,
    pub mobile: String,
    pub email: String,
    /// Reseller or distributor names: customers whose reseller or provider
    /// is one of them are assigned to the user. Sorted, without duplicates,
    /// once stored. Only for supervisor, operator and read-only users.
    pub labels: Vec<String>,
    /// 5-30, a multiple of 5.
    pub session_timeout_minutes: i64,
    /// Only for support and read-only users.
    pub wallboard: bool,
    pub disabled: bool,
    pub force_password_change: bool,
    /// Unix seconds from which the account is disabled; `None`: never.
    pub expires_at: Option<i64>,
}

impl Default for UserSettings {
    fn default() -> Self {
        UserSettings {
            first_name: String::new(),
            last_name: String::new(),
            phone: String::new(),
            mobile: String::new(),
            email: String::new(),
            labels: Vec::new(),
            session_timeout_minutes: DEFAULT_SESSION_TIMEOUT_MINUTES,
            wallboard: false,
            disabled: false,
            force_password_change: false,
            expires_at: None,
        }
    }
}

/// A user to add: login name, password, role and the rest.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub role: Role,
    pub settings: UserSettings,
}

/// What [`Store::update_user`] changes: each `Some` replaces that setting,
/// `None` keeps it. Login name and password are not changed here (see
/// [`Store::set_password`]).
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub role: Option<Role>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub labels: Option<Vec<String>>,
    pub session_timeout_minutes: Option<i64>,
    pub wallboard: Option<bool>,
    pub disabled: Option<bool>,
    pub force_password_change: Option<bool>,
    /// `Some(None)` removes the expiry.
    pub expires_at: Option<Option<i64>>,
}

fn invalid(field: UserField, reason: &'static str) -> StoreError {
    StoreError::InvalidUserSetting { field, reason }
}

/// Whether the role sees only the customers assigned to it, so that labels
/// mean something (Administrator and Support see all customers).
fn role_takes_labels(role: Role) -> bool {
    matches!(role, Role::Supervisor | Role::Operator | Role::ReadOnly)
}

fn check_text(field: UserField, value: &str) -> Result<(), StoreError> {
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_phone(field: UserField, value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Ok(());
    }
    let digits = value.strip_prefix('+').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            field,
            "must be digits (optionally after a leading +)",
        ));
    }
    if digits.len() > MAX_PHONE_DIGITS {
        return Err(invalid(field, "must be at most 15 digits"));
    }
    Ok(())
}

fn check_email(value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Ok(());
    }
    if value.chars().count() > MAX_EMAIL_LEN {
        return Err(invalid(UserField::Email, "must be at most 254 characters"));
    }
    let well_formed = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    }) && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if !well_formed {
        return Err(invalid(
            UserField::Email,
            "must be an address like name@example.com",
        ));
    }
    Ok(())
}

/// Checks `settings` for a user of `role` and returns them as stored:
/// names and labels trimmed, labels sorted without duplicates.
fn validated(role: Role, mut settings: UserSettings) -> Result<UserSettings, StoreError> {
    settings.first_name = settings.first_name.trim().to_owned();
    settings.last_name = settings.last_name.trim().to_owned();
    check_text(UserField::Name, &settings.first_name)?;
    check_text(UserField::Name, &settings.last_name)?;
    let full_name = [settings.first_name.as_str(), settings.last_name.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    if full_name.chars().count() > MAX_FULL_NAME_LEN {
        return Err(invalid(
            UserField::Name,
            "first and last name together must be at most 31 characters",
        ));
    }
    check_phone(UserField::Phone, &settings.phone)?;
    check_phone(UserField::Mobile, &settings.mobile)?;
    settings.email = settings.email.trim().to_owned();
    check_email(&settings.email)?;

    let mut labels = BTreeSet::new();
    for label in &settings.labels {
        let label = label.trim();
        if label.is_empty() {
            return Err(invalid(UserField::Labels, "a label must not be empty"));
        }
        if label.chars().count() > MAX_USER_LABEL_LEN {
            return Err(invalid(
                UserField::Labels,
                "a label must be at most 255 characters",
            ));
        }
        check_text(UserField::Labels, label)?;
        labels.insert(label.to_owned());
    }
    if !labels.is_empty() && !role_takes_labels(role) {
        return Err(invalid(
            UserField::Labels,
            "only supervisor, operator and read-only users have labels",
        ));
    }
    settings.labels = labels.into_iter().collect();

    let minutes = settings.session_timeout_minutes;
    if !SESSION_TIMEOUT_MINUTES.contains(&minutes) || minutes % SESSION_TIMEOUT_STEP != 0 {
        return Err(invalid(
            UserField::SessionTimeout,
            "must be 5 to 30 minutes in steps of 5",
        ));
    }
    if settings.wallboard && !matches!(role, Role::Support | Role::ReadOnly) {
        return Err(invalid(
            UserField::Wallboard,
            "only support and read-only users have wallboard mode",
        ));
    }
    Ok(settings)
}

macro_rules! columns {
    () => {
        "id, username, password_hash, role, first_name, last_name, phone, mobile, email, \
         session_timeout_minutes, wallboard, disabled, force_password_change, expires_at, \
         created_by, created_at, updated_at"
    };
}

pub(super) const BY_USERNAME: &str =
    concat!("SELECT ", columns!(), " FROM users WHERE username = $1");
const BY_ID: &str = concat!("SELECT ", columns!(), " FROM users WHERE id = $1");
const ALL: &str = concat!("SELECT ", columns!(), " FROM users");
const INSERT: &str = concat!(
    "INSERT INTO users (id, username, password_hash, role, first_name, last_name, phone, ",
    "mobile, email, session_timeout_minutes, wallboard, disabled, force_password_change, ",
    "expires_at, created_by, created_at, updated_at) ",
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)"
);
const UPDATE: &str = "UPDATE users SET role = $2, first_name = $3, last_name = $4, \
     phone = $5, mobile = $6, email = $7, session_timeout_minutes = $8, wallboard = $9, \
     disabled = $10, force_password_change = $11, expires_at = $12, created_by = $13, \
     updated_at = $14 WHERE id = $1";
const LABELS_OF: &str = "SELECT label FROM user_labels WHERE user_id = $1";
const ALL_LABELS: &str = "SELECT user_id, label FROM user_labels";
const DELETE_LABELS: &str = "DELETE FROM user_labels WHERE user_id = $1";
const INSERT_LABEL: &str = "INSERT INTO user_labels (user_id, label) VALUES ($1, $2)";
const INSERT_HISTORY: &str =
    "INSERT INTO password_history (id, user_id, password_hash, set_at) VALUES ($1, $2, $3, $4)";
/// The newest `$2` passwords of a user, newest first.
const HISTORY: &str = "SELECT password_hash FROM password_history WHERE user_id = $1 \
     ORDER BY id DESC LIMIT $2";
/// Drops all but the newest `$2` passwords of a user: the history is only
/// ever read that far, and without this it grew by a row per change.
const TRIM_HISTORY: &str = "DELETE FROM password_history WHERE user_id = $1 AND id NOT IN \
     (SELECT id FROM password_history WHERE user_id = $1 ORDER BY id DESC LIMIT $2)";
const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2, force_password_change = $4, \
     updated_at = $3 WHERE id = $1";
const DELETE: &str = "DELETE FROM users WHERE id = $1";

/// Binds the settings columns, the creator and the time, in the order
/// INSERT and UPDATE both list them after their leading columns.
macro_rules! bind_settings {
    ($query:expr, $settings:expr, $created_by:expr, $at:expr) => {
        $query
            .bind(&$settings.first_name)
            .bind(&$settings.last_name)
            .bind(&$settings.phone)
            .bind(&$settings.mobile)
            .bind(&$settings.email)
            .bind($settings.session_timeout_minutes)
            .bind($settings.wallboard)
            .bind($settings.disabled)
            .bind($settings.force_password_change)
            .bind($settings.expires_at)
            .bind($created_by)
            .bind($at)
    };
}

/// Stores the labels of user `id` (inside the caller's transaction).
macro_rules! insert_labels {
    ($conn:expr, $id:expr, $labels:expr) => {
        for label in $labels {
            sqlx::query(INSERT_LABEL)
                .bind($id)
                .bind(label)
                .execute($conn)
                .await?;
        }
    };
}

/// A user row without its labels (read separately).
fn from_row(row: &impl StoreRow) -> Result<User, sqlx::Error> {
    let role: String = row.col("role")?;
    Ok(User {
        id: row.col("id")?,
        username: row.col("username")?,
        role: role.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        password_hash: PhcHash::from_phc(row.col("password_hash")?),
        settings: UserSettings {
            first_name: row.col("first_name")?,
            last_name: row.col("last_name")?,
            phone: row.col("phone")?,
            mobile: row.col("mobile")?,
            email: row.col("email")?,
            labels: Vec::new(),
            session_timeout_minutes: row.col("session_timeout_minutes")?,
            wallboard: row.col("wallboard")?,
            disabled: row.col("disabled")?,
            force_password_change: row.col("force_password_change")?,
            expires_at: row.col("expires_at")?,
        },
        created_by: row.col("created_by")?,
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

impl Store {
    /// Adds a COM user with default settings. The password must meet the
    /// manual's policy (9-31 characters, at least 2 of 4 character types);
    /// the login name is at most 15 characters without spaces.
    pub async fn add_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<User, StoreError> {
        self.add_user_with(
            NewUser {
                username: username.to_owned(),
                password: password.to_owned(),
                role,
                settings: UserSettings::default(),
            },
            None,
        )
        .await
    }

    /// Adds a COM user with its settings. `created_by` is the Supervisor
    /// adding an Operator (it must be a Supervisor, and the new user an
    /// Operator); `None` when an Administrator (or the CLI) adds the user.
    /// The password is the first entry of the user's password history.
    pub async fn add_user_with(
        &self,
        new: NewUser,
        created_by: Option<i64>,
    ) -> Result<User, StoreError> {
        let NewUser {
            username,
            password,
            role,
            settings,
        } = new;
        check_login_name(&username)?;
        check_password_policy(&password)?;
        let settings = validated(role, settings)?;
        if let Some(creator) = created_by {
            let creator = self.user_by_id(creator).await?;
            if !creator.is_some_and(|c| c.role == Role::Supervisor) || role != Role::Operator {
                return Err(invalid(
                    UserField::CreatedBy,
                    "must be a supervisor, and the new user an operator",
                ));
            }
        }
        if self.user_by_username(&username).await?.is_some() {
            return Err(StoreError::DuplicateUser(username));
        }
        let hash = hash_password_async(password).await?;
        let id = self.next_id("users").await?;
        let history_id = self.next_id("password_history").await?;
        let at = now();
        let result: Result<(), sqlx::Error> = on_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                bind_settings!(
                    sqlx::query(INSERT)
                        .bind(id)
                        .bind(&username)
                        .bind(hash.expose())
                        .bind(role.as_str()),
                    settings,
                    created_by,
                    at
                )
                .execute(&mut *tx)
                .await?;
                insert_labels!(&mut *tx, id, &settings.labels);
                sqlx::query(INSERT_HISTORY)
                    .bind(history_id)
                    .bind(id)
                    .bind(hash.expose())
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
            .await
        });
        match result {
            Ok(()) => {
                tracing::info!(%username, %role, "user added");
                Ok(User {
                    id,
                    username,
                    role,
                    password_hash: hash,
                    settings,
                    created_by,
                    created_at: at,
                    updated_at: at,
                })
            }
            Err(e) if is_unique_violation(&e) => Err(StoreError::DuplicateUser(username)),
            Err(e) => Err(e.into()),
        }
    }

    /// Changes the settings `changes` names (and the role), checking the
    /// result as [`Store::add_user_with`] does. A user a Supervisor created
    /// stops being that Supervisor's when its role is no longer Operator.
    pub async fn update_user(&self, id: i64, changes: UserChanges) -> Result<User, StoreError> {
        let user = self
            .user_by_id(id)
            .await?
            .ok_or(StoreError::UnknownUserId(id))?;
        let mut settings = user.settings.clone();
        let role = changes.role.unwrap_or(user.role);
        let UserChanges {
            role: _,
            first_name,
            last_name,
            phone,
            mobile,
            email,
            labels,
            session_timeout_minutes,
            wallboard,
            disabled,
            force_password_change,
            expires_at,
        } = changes;
        macro_rules! apply {
            ($($field:ident),*) => {$(
                if let Some(value) = $field {
                    settings.$field = value;
                }
            )*};
        }
        apply!(
            first_name,
            last_name,
            phone,
            mobile,
            email,
            labels,
            session_timeout_minutes,
            wallboard,
            disabled,
            force_password_change,
            expires_at
        );
        let settings = validated(role, settings)?;
        let created_by = user.created_by.filter(|_| role == Role::Operator);
        let at = now();
        let updated: u64 = on_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let done = bind_settings!(
                    sqlx::query(UPDATE).bind(id).bind(role.as_str()),
                    settings,
                    created_by,
                    at
                )
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query(DELETE_LABELS)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                insert_labels!(&mut *tx, id, &settings.labels);
                tx.commit().await?;
                Ok::<_, sqlx::Error>(done)
            }
            .await?
        });
        if updated == 0 {
            // Deleted by another process since it was read.
            return Err(StoreError::UnknownUserId(id));
        }
        tracing::info!(username = %user.username, %role, "user updated");
        Ok(User {
            role,
            settings,
            created_by,
            updated_at: at,
            ..user
        })
    }

    /// Deletes user `id` on behalf of user `actor_id`, which may not be the
    /// same user (the manual: one cannot delete the account one is logged in
    /// with). Its labels and password history go with it.
    pub async fn delete_user(&self, actor_id: i64, id: i64) -> Result<(), StoreError> {
        if actor_id == id {
            return Err(StoreError::CannotDeleteSelf);
        }
        let deleted = on_pool!(self, |pool| sqlx::query(DELETE)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        if deleted == 0 {
            return Err(StoreError::UnknownUserId(id));
        }
        tracing::info!(id, "user deleted");
        Ok(())
    }

    /// Sets user `id`'s password: it must meet the policy and be neither the
    /// current password nor any of the last `history_len` ones. Clears
    /// "Force New Password". Each check verifies an argon2 hash, so keep
    /// `history_len` small.
    pub async fn set_password(
        &self,
        id: i64,
        new_password: &str,
        history_len: usize,
    ) -> Result<(), StoreError> {
        self.store_password(id, new_password, history_len, false)
            .await
    }

    /// An administrator's reset of user `id`'s password: as
    /// [`Store::set_password`], but sets "Force New Password" in the same
    /// write, so that the password given is only good for the next login.
    pub async fn reset_password(
        &self,
        id: i64,
        new_password: &str,
        history_len: usize,
    ) -> Result<(), StoreError> {
        self.store_password(id, new_password, history_len, true)
            .await
    }

    async fn store_password(
        &self,
        id: i64,
        new_password: &str,
        history_len: usize,
        force_change: bool,
    ) -> Result<(), StoreError> {
        check_password_policy(new_password)?;
        let user = self
            .user_by_id(id)
            .await?
            .ok_or(StoreError::UnknownUserId(id))?;
        // The newest row is the current password (stored with it), so the
        // last `history_len` rows are the current one and those before it.
        let keep = i64::try_from(history_len.max(1)).unwrap_or(i64::MAX);
        let history: Vec<String> = on_pool!(self, |pool| {
            let rows = sqlx::query(HISTORY)
                .bind(id)
                .bind(i64::try_from(history_len).unwrap_or(i64::MAX))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| row.col("password_hash"))
                .collect::<Result<_, _>>()?
        });
        let mut previous: Vec<String> = vec![user.password_hash.expose().to_owned()];
        previous.extend(history);
        for hash in previous {
            if verify_password_async(hash, new_password).await {
                return Err(StoreError::PasswordReused);
            }
        }
        let hash = hash_password_async(new_password.to_owned()).await?;
        let history_id = self.next_id("password_history").await?;
        let at = now();
        let updated: u64 = on_pool!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let done = sqlx::query(SET_PASSWORD)
                    .bind(id)
                    .bind(hash.expose())
                    .bind(at)
                    .bind(force_change)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query(INSERT_HISTORY)
                    .bind(history_id)
                    .bind(id)
                    .bind(hash.expose())
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(TRIM_HISTORY)
                    .bind(id)
                    .bind(keep)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(done)
            }
            .await?
        });
        if updated == 0 {
            return Err(StoreError::UnknownUserId(id));
        }
        tracing::info!(username = %user.username, "user password changed");
        Ok(())
    }

    /// The user with this login name (exact match), if any.
    pub async fn user(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.user_by_username(username).await
    }

    /// The user with this login name (exact match), if any.
    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        if unstorable(username) {
            return Ok(None);
        }
        let user = on_pool!(self, |pool| {
            let row = sqlx::query(BY_USERNAME)
                .bind(username)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(from_row).transpose()?
        });
        self.with_labels(user).await
    }

    /// The user with this id, if any.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let user = on_pool!(self, |pool| {
            let row = sqlx::query(BY_ID).bind(id).fetch_optional(pool).await?;
            row.as_ref().map(from_row).transpose()?
        });
        self.with_labels(user).await
    }

    async fn with_labels(&self, user: Option<User>) -> Result<Option<User>, StoreError> {
        let Some(mut user) = user else {
            return Ok(None);
        };
        let mut labels: Vec<String> = on_pool!(self, |pool| sqlx::query_scalar(LABELS_OF)
            .bind(user.id)
            .fetch_all(pool)
            .await?);
        labels.sort();
        user.settings.labels = labels;
        Ok(Some(user))
    }

    /// All users with their labels, by login name.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let (mut users, labels): (Vec<User>, Vec<(i64, String)>) = on_pool!(self, |pool| {
            let rows = sqlx::query(ALL).fetch_all(pool).await?;
            let users = rows.iter().map(from_row).collect::<Result<_, _>>()?;
            let rows = sqlx::query(ALL_LABELS).fetch_all(pool).await?;
            let labels = rows
                .iter()
                .map(|row| Ok::<_, sqlx::Error>((row.col("user_id")?, row.col("label")?)))
                .collect::<Result<_, _>>()?;
            (users, labels)
        });
        let mut by_user: HashMap<i64, Vec<String>> = HashMap::new();
        for (user_id, label) in labels {
            by_user.entry(user_id).or_default().push(label);
        }
        for user in &mut users {
            if let Some(mut labels) = by_user.remove(&user.id) {
                labels.sort();
                user.settings.labels = labels;
            }
        }
        users.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(users)
    }

    /// Sets `disabled` (used when an expired account is noticed).
    pub(super) async fn mark_disabled(&self, id: i64, at: i64) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "UPDATE users SET disabled = TRUE, updated_at = $2 WHERE id = $1"
        )
        .bind(id)
        .bind(at)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }
}
