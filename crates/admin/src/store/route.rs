//! The one lookup the front door makes per CONNECT once it knows the
//! account: the customer and the system a maintenance address names, in
//! one query (a join through indexes), instead of a customer lookup and a
//! system lookup one after the other (two hand-offs to the database).

use super::{unstorable, Store, StoreRow};
use crate::names::lookup_key;
use crate::{Customer, PhcHash, StoreError, System};

macro_rules! columns {
    () => {
        "s.id, s.customer_id, s.name, s.label, s.is_primary, s.secret_hash, s.created_at, \
         s.updated_at, s.kind, s.profile, s.version, c.name AS customer_name, c.reseller, c.provider, \
         c.created_at AS customer_created_at, c.updated_at AS customer_updated_at \
         FROM systems s JOIN customers c ON c.id = s.customer_id"
    };
}

pub(super) const BY_LABEL: &str = concat!(
    "SELECT ",
    columns!(),
    " WHERE s.customer_id = $1 AND s.label = $2"
);
pub(super) const PRIMARY: &str = concat!(
    "SELECT ",
    columns!(),
    " WHERE s.customer_id = $1 AND s.is_primary"
);

fn from_row(row: &impl StoreRow) -> Result<(Customer, System), sqlx::Error> {
    let is_primary = row.col("is_primary")?;
    let system = System {
        id: row.col("id")?,
        customer_id: row.col("customer_id")?,
        name: row.col("name")?,
        label: row.col("label")?,
        is_primary,
        kind: super::systems::kind_from_row(row.col("kind")?, is_primary)?,
        profile: row.col("profile")?,
        version: row.col("version")?,
        secret_hash: PhcHash::from_phc(row.col("secret_hash")?),
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    };
    let customer = Customer {
        id: system.customer_id.clone(),
        name: row.col("customer_name")?,
        reseller: row.col("reseller")?,
        provider: row.col("provider")?,
        created_at: row.col("customer_created_at")?,
        updated_at: row.col("customer_updated_at")?,
    };
    Ok((customer, system))
}

impl Store {
    /// The customer `customer_id` (any case) and its system `label` (the
    /// primary system for `None`), if both exist.
    pub async fn route(
        &self,
        customer_id: &str,
        label: Option<&str>,
    ) -> Result<Option<(Customer, System)>, StoreError> {
        if unstorable(customer_id) || label.is_some_and(unstorable) {
            return Ok(None);
        }
        let customer = lookup_key(customer_id);
        let found = on_pool!(self, |pool| {
            let query = match label {
                Some(label) => sqlx::query(BY_LABEL).bind(customer).bind(lookup_key(label)),
                None => sqlx::query(PRIMARY).bind(customer),
            };
            let row = query.fetch_optional(pool).await?;
            row.as_ref().map(from_row).transpose()?
        });
        Ok(found)
    }
}
