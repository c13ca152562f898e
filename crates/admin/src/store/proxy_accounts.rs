//! Maintenance proxy accounts: the username and password a partner engineer
//! puts in `Proxy-Authorization` (manual chapter 23, "Proxy Account
//! Management"). Each reseller or distributor (the *owner*) has one; it opens
//! every customer whose reseller or provider is that owner.

use serde::Serialize;

use super::{is_unique_violation, now, unstorable, Store, StoreRow};
use crate::names::{check_proxy_username, required};
use crate::password::{hash_password_async, verify_nothing_async, verify_password_async};
use crate::{PhcHash, StoreError};

/// One reseller's or distributor's maintenance proxy account.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyAccount {
    pub id: i64,
    /// The reseller or distributor name, as in [`crate::Customer::reseller`]
    /// and [`crate::Customer::provider`].
    pub owner: String,
    pub username: String,
    #[serde(skip)]
    pub password_hash: PhcHash,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The columns [`from_row`] reads, as a literal so that `concat!` can build
/// whole queries at compile time.
macro_rules! columns {
    () => {
        "id, owner, username, password_hash, created_at, updated_at"
    };
}

pub(super) const BY_USERNAME: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM proxy_accounts WHERE username = $1"
);
const BY_OWNER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM proxy_accounts WHERE owner = $1"
);
const ALL: &str = concat!("SELECT ", columns!(), " FROM proxy_accounts");
const UPSERT: &str = concat!(
    "INSERT INTO proxy_accounts (id, owner, username, password_hash, created_at, updated_at) ",
    "VALUES ($1, $2, $3, $4, $5, $5) ",
    "ON CONFLICT (owner) DO UPDATE SET ",
    "username = excluded.username, ",
    "password_hash = excluded.password_hash, ",
    "updated_at = excluded.updated_at ",
    "RETURNING ",
    columns!()
);

fn from_row(row: &impl StoreRow) -> Result<ProxyAccount, sqlx::Error> {
    Ok(ProxyAccount {
        id: row.col("id")?,
        owner: row.col("owner")?,
        username: row.col("username")?,
        password_hash: PhcHash::from_phc(row.col("password_hash")?),
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

impl Store {
    /// Sets the proxy account of `owner`: creates it, or replaces its
    /// username and password. Usernames are unique across owners, because
    /// the front door finds the account by username alone.
    ///
    /// Owner names are kept as given (trimmed) and compared exactly with a
    /// customer's reseller and provider.
    pub async fn set_proxy_account(
        &self,
        owner: &str,
        username: &str,
        password: &str,
    ) -> Result<ProxyAccount, StoreError> {
        let owner = required("owner", owner)?;
        check_proxy_username(username)?;
        if password.is_empty() {
            return Err(StoreError::InvalidField {
                field: "password",
                reason: "must not be empty",
            });
        }
        // Before paying for argon2: the common mistake gets a quick answer.
        self.check_username_free(&owner, username).await?;

        let hash = hash_password_async(password.to_owned()).await?;
        let id = self.next_id("proxy_accounts").await?;
        let now = now();
        let result = on_pool!(self, |pool| sqlx::query(UPSERT)
            .bind(id)
            .bind(&owner)
            .bind(username)
            .bind(hash.expose())
            .bind(now)
            .fetch_one(pool)
            .await
            .and_then(|row| from_row(&row)));
        match result {
            Ok(account) => {
                tracing::info!(owner = %account.owner, username = %account.username, "proxy account set");
                Ok(account)
            }
            Err(e) if is_unique_violation(&e) => {
                // Owner conflicts are the upsert; this is the username.
                self.check_username_free(&owner, username).await?;
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn check_username_free(&self, owner: &str, username: &str) -> Result<(), StoreError> {
        match self.find_proxy_account_by_username(username).await? {
            Some(holder) if holder.owner != owner => Err(StoreError::UsernameTaken {
                username: username.to_owned(),
                owner: holder.owner,
            }),
            _ => Ok(()),
        }
    }

    /// The account with this username (exact match), if any. Indexed: the
    /// front door calls this on every CONNECT.
    pub async fn find_proxy_account_by_username(
        &self,
        username: &str,
    ) -> Result<Option<ProxyAccount>, StoreError> {
        if unstorable(username) {
            return Ok(None);
        }
        let account = on_pool!(self, |pool| {
            let row = sqlx::query(BY_USERNAME)
                .bind(username)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(from_row).transpose()?
        });
        Ok(account)
    }

    /// The account of this reseller or distributor, if it has one.
    pub async fn proxy_account_of(&self, owner: &str) -> Result<Option<ProxyAccount>, StoreError> {
        if unstorable(owner) {
            return Ok(None);
        }
        let account = on_pool!(self, |pool| {
            let row = sqlx::query(BY_OWNER)
                .bind(owner.trim())
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(from_row).transpose()?
        });
        Ok(account)
    }

    /// All proxy accounts, by owner.
    pub async fn list_proxy_accounts(&self) -> Result<Vec<ProxyAccount>, StoreError> {
        let mut accounts: Vec<ProxyAccount> = on_pool!(self, |pool| {
            let rows = sqlx::query(ALL).fetch_all(pool).await?;
            rows.iter().map(from_row).collect::<Result<_, _>>()?
        });
        accounts.sort_by(|a, b| a.owner.cmp(&b.owner));
        Ok(accounts)
    }

    /// The account these Basic credentials belong to, or `None` if the
    /// username is unknown or the password wrong. Takes about the same time
    /// either way (argon2 runs on the blocking pool), so response times do
    /// not reveal which usernames exist.
    pub async fn authenticate_proxy_account(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<ProxyAccount>, StoreError> {
        let Some(account) = self.find_proxy_account_by_username(username).await? else {
            verify_nothing_async(password.to_owned()).await;
            return Ok(None);
        };
        let ok = verify_password_async(account.password_hash.clone(), password.to_owned()).await;
        Ok(ok.then_some(account))
    }
}
