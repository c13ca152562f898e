//! Systems: the phone systems and servers of a customer, each reached
//! through its own site agent. A system's `label` is the system part of its
//! maintenance address; the customer's primary system is the one an address
//! without a system part means.
//!
//! A customer's first system does not become primary by itself: `primary` is
//! always what the caller says (`system add --primary`), so that adding
//! systems in a different order never changes where an existing address
//! leads. Until a customer has a primary system, `<customer-id>.maint...`
//! finds nothing.

use serde::Serialize;

use super::{is_foreign_key_violation, is_unique_violation, now, Store, StoreRow};
use crate::names::{lookup_key, required, system_label};
use crate::password::{hash_secret_async, verify_no_secret_async, verify_password_async};
use crate::secret::generate_agent_secret;
use crate::{PhcHash, StoreError};

/// A stored system.
#[derive(Debug, Clone, Serialize)]
pub struct System {
    pub id: i64,
    pub customer_id: String,
    /// The name as given ("IPO Main").
    pub name: String,
    /// The DNS-label form of the name ("ipo-main"), unique per customer.
    pub label: String,
    /// Whether an address without a system part means this system.
    pub is_primary: bool,
    /// argon2 hash of the agent secret.
    #[serde(skip)]
    pub secret_hash: PhcHash,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! columns {
    () => {
        "id, customer_id, name, label, is_primary, secret_hash, created_at, updated_at"
    };
}

const OF_CUSTOMER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM systems WHERE customer_id = $1"
);
const INSERT: &str = concat!(
    "INSERT INTO systems (id, customer_id, name, label, is_primary, secret_hash, created_at, updated_at) ",
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ",
    columns!()
);
const SET_SECRET: &str = "UPDATE systems SET secret_hash = $1, updated_at = $2 WHERE id = $3";

fn from_row(row: &impl StoreRow) -> Result<System, sqlx::Error> {
    Ok(System {
        id: row.col("id")?,
        customer_id: row.col("customer_id")?,
        name: row.col("name")?,
        label: row.col("label")?,
        is_primary: row.col("is_primary")?,
        secret_hash: PhcHash::from_phc(row.col("secret_hash")?),
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

impl Store {
    /// Adds a system to a customer and returns it with its new agent secret.
    /// The secret is stored only as a hash: this is the one time it is seen.
    ///
    /// Errors: `UnknownCustomer`, `InvalidSystemName` (no letter or digit),
    /// `DuplicateSystem` (the label is taken), `PrimaryExists`.
    pub async fn add_system(
        &self,
        customer_id: &str,
        name: &str,
        primary: bool,
    ) -> Result<(System, String), StoreError> {
        let customer = lookup_key(customer_id);
        let name = required("name", name)?;
        let label = system_label(&name).ok_or_else(|| StoreError::InvalidSystemName {
            name: name.clone(),
            reason: "needs at least one letter or digit",
        })?;
        if !self.customer_exists(&customer).await? {
            return Err(StoreError::UnknownCustomer(customer_id.to_owned()));
        }
        // Before paying for argon2; repeated after a constraint violation.
        self.check_new_system(&customer, &label, primary).await?;

        let secret = generate_agent_secret();
        let hash = hash_secret_async(secret.clone()).await?;
        let id = self.next_id("systems").await?;
        let result = on_pool!(self, |pool| sqlx::query(INSERT)
            .bind(id)
            .bind(&customer)
            .bind(&name)
            .bind(&label)
            .bind(primary)
            .bind(hash.expose())
            .bind(now())
            .fetch_one(pool)
            .await
            .and_then(|row| from_row(&row)));
        match result {
            Ok(system) => {
                tracing::info!(
                    customer = %system.customer_id,
                    system = %system.label,
                    primary = system.is_primary,
                    "system added"
                );
                Ok((system, secret))
            }
            Err(e) if is_unique_violation(&e) => {
                self.check_new_system(&customer, &label, primary).await?;
                Err(e.into())
            }
            Err(e) if is_foreign_key_violation(&e) => {
                Err(StoreError::UnknownCustomer(customer_id.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The error a new system `label` (primary or not) would meet, if any.
    async fn check_new_system(
        &self,
        customer: &str,
        label: &str,
        primary: bool,
    ) -> Result<(), StoreError> {
        if self.system(customer, Some(label)).await?.is_some() {
            return Err(StoreError::DuplicateSystem {
                customer: customer.to_owned(),
                label: label.to_owned(),
            });
        }
        if primary {
            if let Some(existing) = self.system(customer, None).await? {
                return Err(StoreError::PrimaryExists {
                    customer: customer.to_owned(),
                    label: existing.label,
                });
            }
        }
        Ok(())
    }

    /// The system `label` of a customer, or its primary system for `None`.
    /// Ids and labels match case-insensitively; the same indexed look-up as
    /// [`Store::route`], without the customer.
    pub async fn system(
        &self,
        customer_id: &str,
        label: Option<&str>,
    ) -> Result<Option<System>, StoreError> {
        Ok(self
            .route(customer_id, label)
            .await?
            .map(|(_, system)| system))
    }

    /// The systems of a customer, primary first, then by label.
    pub async fn list_systems(&self, customer_id: &str) -> Result<Vec<System>, StoreError> {
        let customer = lookup_key(customer_id);
        if !self.customer_exists(&customer).await? {
            return Err(StoreError::UnknownCustomer(customer_id.to_owned()));
        }
        let mut systems: Vec<System> = on_pool!(self, |pool| {
            let rows = sqlx::query(OF_CUSTOMER)
                .bind(&customer)
                .fetch_all(pool)
                .await?;
            rows.iter().map(from_row).collect::<Result<_, _>>()?
        });
        systems.sort_by(|a, b| (!a.is_primary, &a.label).cmp(&(!b.is_primary, &b.label)));
        Ok(systems)
    }

    /// Replaces the agent secret of a system and returns the new one; the
    /// old one stops working for the next handshake.
    pub async fn rotate_system_secret(
        &self,
        customer_id: &str,
        label: &str,
    ) -> Result<String, StoreError> {
        let system = self.existing_system(customer_id, Some(label)).await?;
        let secret = generate_agent_secret();
        let hash = hash_secret_async(secret.clone()).await?;
        let updated = on_pool!(self, |pool| sqlx::query(SET_SECRET)
            .bind(hash.expose())
            .bind(now())
            .bind(system.id)
            .execute(pool)
            .await?
            .rows_affected());
        if updated == 0 {
            // Deleted between the lookup and the update.
            return Err(unknown_system(customer_id, Some(label)));
        }
        tracing::info!(customer = %system.customer_id, system = %system.label, "agent secret rotated");
        Ok(secret)
    }

    /// The system an agent claims to be, if `secret` is its agent secret.
    /// Takes about the same time whether or not the system exists.
    pub async fn authenticate_system(
        &self,
        customer_id: &str,
        label: Option<&str>,
        secret: &str,
    ) -> Result<Option<System>, StoreError> {
        let Some(system) = self.system(customer_id, label).await? else {
            verify_no_secret_async(secret.to_owned()).await;
            return Ok(None);
        };
        let ok = verify_password_async(system.secret_hash.clone(), secret.to_owned()).await;
        Ok(ok.then_some(system))
    }

    /// Like [`Store::system`], but a missing customer or system is an error
    /// naming it.
    pub async fn existing_system(
        &self,
        customer_id: &str,
        label: Option<&str>,
    ) -> Result<System, StoreError> {
        if let Some(system) = self.system(customer_id, label).await? {
            return Ok(system);
        }
        if !self.customer_exists(&lookup_key(customer_id)).await? {
            return Err(StoreError::UnknownCustomer(customer_id.to_owned()));
        }
        Err(unknown_system(customer_id, label))
    }
}

fn unknown_system(customer_id: &str, label: Option<&str>) -> StoreError {
    StoreError::UnknownSystem {
        customer: customer_id.to_owned(),
        label: label.map(str::to_owned),
    }
}
