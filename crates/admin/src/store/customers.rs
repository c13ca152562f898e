//! Customers: one per customer site (solution), named by the id that starts
//! its maintenance addresses, and owned by a reseller and optionally a
//! distributor (provider) whose proxy accounts may reach it.

use serde::Serialize;

use super::{is_unique_violation, now, unstorable, Store, StoreRow};
use crate::names::{lookup_key, normalize_customer_id, required};
use crate::StoreError;

/// A stored customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Customer {
    /// Letters and digits, lowercase.
    pub id: String,
    pub name: String,
    /// Owner name of the reseller's proxy account.
    pub reseller: String,
    /// Owner name of the distributor's proxy account, if there is one.
    pub provider: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Customer {
    /// Whether the proxy account of `owner` may reach this customer's
    /// systems: it must be the account of its reseller or of its provider
    /// (DESIGN.md, "Who may go where", rule 2).
    pub fn is_served_by(&self, owner: &str) -> bool {
        self.reseller == owner || self.provider.as_deref() == Some(owner)
    }
}

/// What `comgate admin customer add` supplies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCustomer {
    /// Letters and digits; any case (stored lowercase).
    pub id: String,
    pub name: String,
    pub reseller: String,
    /// `None` or blank: no distributor.
    pub provider: Option<String>,
}

macro_rules! columns {
    () => {
        "id, name, reseller, provider, created_at, updated_at"
    };
}

pub(super) const BY_ID: &str = concat!("SELECT ", columns!(), " FROM customers WHERE id = $1");
const ALL: &str = concat!("SELECT ", columns!(), " FROM customers");
const INSERT: &str = concat!(
    "INSERT INTO customers (id, name, reseller, provider, created_at, updated_at) ",
    "VALUES ($1, $2, $3, $4, $5, $5) RETURNING ",
    columns!()
);
const EXISTS: &str = "SELECT 1 FROM customers WHERE id = $1";

fn from_row(row: &impl StoreRow) -> Result<Customer, sqlx::Error> {
    Ok(Customer {
        id: row.col("id")?,
        name: row.col("name")?,
        reseller: row.col("reseller")?,
        provider: row.col("provider")?,
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
    })
}

impl Store {
    /// Adds a customer. The id must be new (case-insensitively).
    pub async fn add_customer(&self, new: NewCustomer) -> Result<Customer, StoreError> {
        let id = normalize_customer_id(&new.id)?;
        let name = required("name", &new.name)?;
        let reseller = required("reseller", &new.reseller)?;
        let provider = match new.provider.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p) => Some(p.to_owned()),
        };
        let result = on_pool!(self, |pool| sqlx::query(INSERT)
            .bind(&id)
            .bind(&name)
            .bind(&reseller)
            .bind(&provider)
            .bind(now())
            .fetch_one(pool)
            .await
            .and_then(|row| from_row(&row)));
        match result {
            Ok(customer) => {
                tracing::info!(customer = %customer.id, reseller = %customer.reseller, "customer added");
                Ok(customer)
            }
            Err(e) if is_unique_violation(&e) => Err(StoreError::DuplicateCustomer(id)),
            Err(e) => Err(e.into()),
        }
    }

    /// The customer with this id (any case), if any. Indexed: the router
    /// calls this on every CONNECT.
    pub async fn customer(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        if unstorable(id) {
            return Ok(None);
        }
        let customer = on_pool!(self, |pool| {
            let row = sqlx::query(BY_ID)
                .bind(lookup_key(id))
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(from_row).transpose()?
        });
        Ok(customer)
    }

    /// All customers, by id.
    pub async fn list_customers(&self) -> Result<Vec<Customer>, StoreError> {
        let mut customers: Vec<Customer> = on_pool!(self, |pool| {
            let rows = sqlx::query(ALL).fetch_all(pool).await?;
            rows.iter().map(from_row).collect::<Result<_, _>>()?
        });
        customers.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(customers)
    }

    /// Whether the customer with this stored (lowercase) id exists.
    pub(super) async fn customer_exists(&self, id: &str) -> Result<bool, StoreError> {
        if unstorable(id) {
            return Ok(false);
        }
        let row = on_pool!(self, |pool| sqlx::query(EXISTS)
            .bind(id)
            .fetch_optional(pool)
            .await?
            .is_some());
        Ok(row)
    }
}
