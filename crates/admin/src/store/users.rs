//! COM users: the people who log in to the admin plane. Only what
//! `comgate admin user add` needs exists yet (name, password, role); the
//! admin plane adds the rest of the manual's user settings.

use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{is_unique_violation, now, Store};
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
const ALL: &str = concat!("SELECT ", columns!(), " FROM users ORDER BY username");
const INSERT: &str = concat!(
    "INSERT INTO users (id, username, password_hash, role, created_at, updated_at) ",
    "VALUES ($1, $2, $3, $4, $5, $5) RETURNING ",
    columns!()
);

fn from_row(row: &SqliteRow) -> Result<User, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        role: role.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        password_hash: PhcHash::from_phc(row.try_get("password_hash")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
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
        let result = sqlx::query(INSERT)
            .bind(id)
            .bind(username)
            .bind(hash.expose())
            .bind(role.as_str())
            .bind(now())
            .fetch_one(&self.pool)
            .await;
        match result {
            Ok(row) => {
                let user = from_row(&row)?;
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
        let row = sqlx::query(BY_USERNAME)
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// All users, by login name.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(ALL).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }
}
