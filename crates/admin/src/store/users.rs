//! COM users: the people who log in to the admin plane. Only what
//! `comgate admin user add` needs exists yet (name, password, role); the
//! admin plane adds the rest of the manual's user settings.

use serde::Serialize;

use super::{is_unique_violation, now, unstorable, Store, StoreRow};
use crate::names::check_login_name;
use crate::password::{check_password_policy, hash_password_async};
use crate::{PhcHash, Role, StoreError};

/// A stored COM user.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    /// Login name, exact case.
    pub username: String,
    pub role: Role,
    #[serde(skip)]
    pub password_hash: PhcHash,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! columns {
    () => {
        "id, username, password_hash, role, created_at, updated_at"
    };
}

const BY_USERNAME: &str = concat!("SELECT ", columns!(), " FROM users WHERE username = $1");
const ALL: &str = concat!("SELECT ", columns!(), " FROM users");
const INSERT: &str = concat!(
    "INSERT INTO users (id, username, password_hash, role, created_at, updated_at) ",
    "VALUES ($1, $2, $3, $4, $5, $5) RETURNING ",
    columns!()
);

fn from_row(row: &impl StoreRow) -> Result<User, sqlx::Error> {
    let role: String = row.col("role")?;
    Ok(User {
        id: row.col("id")?,
        username: row.col("username")?,
        role: role.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        password_hash: PhcHash::from_phc(row.col("password_hash")?),
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

impl Store {
    /// Adds a COM user. The password must meet the manual's policy (9-31
    /// characters, at least 2 of 4 character types); the login name is at
    /// most 15 characters without spaces.
    pub async fn add_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<User, StoreError> {
        check_login_name(username)?;
        check_password_policy(password)?;
        if self.user(username).await?.is_some() {
            return Err(StoreError::DuplicateUser(username.to_owned()));
        }
        let hash = hash_password_async(password.to_owned()).await?;
        let id = self.next_id("users").await?;
        let result = on_pool!(self, |pool| sqlx::query(INSERT)
            .bind(id)
            .bind(username)
            .bind(hash.expose())
            .bind(role.as_str())
            .bind(now())
            .fetch_one(pool)
            .await
            .and_then(|row| from_row(&row)));
        match result {
            Ok(user) => {
                tracing::info!(username = %user.username, role = %user.role, "user added");
                Ok(user)
            }
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::DuplicateUser(username.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The user with this login name (exact match), if any.
    pub async fn user(&self, username: &str) -> Result<Option<User>, StoreError> {
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
        Ok(user)
    }

    /// All users, by login name.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let mut users: Vec<User> = on_pool!(self, |pool| {
            let rows = sqlx::query(ALL).fetch_all(pool).await?;
            rows.iter().map(from_row).collect::<Result<_, _>>()?
        });
        users.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(users)
    }
}
