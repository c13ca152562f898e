//! Which customers a COM user sees (manual chapter 3 and "Assigning Users to
//! a Customer"): Administrator and Support users see all customers; the
//! others (Supervisor, Operator, Read-Only) see the customers assigned to
//! them, manually (`customer_assignments`, the customer's "Assigned
//! Operators") or automatically, when one of the user's labels is the
//! customer's reseller or provider (exact match, as the proxy accounts'
//! owners are matched).
//!
//! Who may assign whom (a Supervisor assigns only users it created, only to
//! customers it is itself manually assigned to) is the API's check, as for
//! users; the store keeps the assignments.

use super::{is_foreign_key_violation, unstorable, Store};
use crate::names::lookup_key;
use crate::{Role, StoreError, User};

/// The customers a user sees, as the customer list applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Administrator and Support users.
    All,
    /// The customers assigned to this user, manually or by label. Read from
    /// the database at each query, so a new assignment or label counts at
    /// once.
    Assigned { user_id: i64 },
}

impl Visibility {
    /// What `user`'s role sees.
    pub fn of(user: &User) -> Visibility {
        Visibility::for_role(user.id, user.role)
    }

    pub fn for_role(user_id: i64, role: Role) -> Visibility {
        match role {
            Role::Administrator | Role::Support => Visibility::All,
            Role::Supervisor | Role::Operator | Role::ReadOnly => Visibility::Assigned { user_id },
        }
    }
}

/// Whether customer `c` is assigned to user `$1`: manually, or through a
/// label equal to its reseller or provider. Every query that applies a
/// visibility uses this one predicate.
macro_rules! assigned_to_user {
    () => {
        "(EXISTS (SELECT 1 FROM customer_assignments a \
                  WHERE a.customer_id = c.id AND a.user_id = $1) \
          OR EXISTS (SELECT 1 FROM user_labels l \
                     WHERE l.user_id = $1 AND (l.label = c.reseller OR l.label = c.provider)))"
    };
}
pub(super) use assigned_to_user;

const ASSIGN: &str = "INSERT INTO customer_assignments (user_id, customer_id) VALUES ($1, $2) \
     ON CONFLICT (user_id, customer_id) DO NOTHING";
const UNASSIGN: &str = "DELETE FROM customer_assignments WHERE user_id = $1 AND customer_id = $2";
const USERS_OF: &str = "SELECT user_id FROM customer_assignments WHERE customer_id = $1";
const CUSTOMERS_OF: &str = "SELECT customer_id FROM customer_assignments WHERE user_id = $1";
const VISIBLE_ONE: &str = concat!(
    "SELECT 1 FROM customers c WHERE c.id = $2 AND ",
    assigned_to_user!()
);
const VISIBLE_IDS: &str = concat!("SELECT c.id FROM customers c WHERE ", assigned_to_user!());
const ALL_IDS: &str = "SELECT id FROM customers";

impl Store {
    /// Assigns user `user_id` to customer `customer_id` by hand (the
    /// customer's "Assigned Operators"). Assigning twice is no error.
    pub async fn assign_customer(&self, user_id: i64, customer_id: &str) -> Result<(), StoreError> {
        let customer = lookup_key(customer_id);
        if !self.customer_exists(&customer).await? {
            return Err(StoreError::UnknownCustomer(customer_id.to_owned()));
        }
        if self.user_by_id(user_id).await?.is_none() {
            return Err(StoreError::UnknownUserId(user_id));
        }
        let result = on_pool!(self, |pool| sqlx::query(ASSIGN)
            .bind(user_id)
            .bind(&customer)
            .execute(pool)
            .await
            .map(drop));
        match result {
            Ok(()) => {
                tracing::info!(user_id, %customer, "user assigned to customer");
                Ok(())
            }
            // One of them was deleted since it was checked.
            Err(e) if is_foreign_key_violation(&e) => {
                if self.customer_exists(&customer).await? {
                    Err(StoreError::UnknownUserId(user_id))
                } else {
                    Err(StoreError::UnknownCustomer(customer_id.to_owned()))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a manual assignment; returns whether there was one. (A label
    /// assignment stays: it follows the user's labels.)
    pub async fn unassign_customer(
        &self,
        user_id: i64,
        customer_id: &str,
    ) -> Result<bool, StoreError> {
        if unstorable(customer_id) {
            return Ok(false);
        }
        let removed = on_pool!(self, |pool| sqlx::query(UNASSIGN)
            .bind(user_id)
            .bind(lookup_key(customer_id))
            .execute(pool)
            .await?
            .rows_affected());
        if removed > 0 {
            tracing::info!(user_id, customer = %lookup_key(customer_id), "user unassigned from customer");
        }
        Ok(removed > 0)
    }

    /// The users assigned to a customer by hand, by id.
    pub async fn assigned_user_ids(&self, customer_id: &str) -> Result<Vec<i64>, StoreError> {
        let customer = lookup_key(customer_id);
        if !self.customer_exists(&customer).await? {
            return Err(StoreError::UnknownCustomer(customer_id.to_owned()));
        }
        let mut ids: Vec<i64> = on_pool!(self, |pool| sqlx::query_scalar(USERS_OF)
            .bind(&customer)
            .fetch_all(pool)
            .await?);
        ids.sort_unstable();
        Ok(ids)
    }

    /// The customers a user is assigned to by hand, by id (not those its
    /// labels bring: see [`Store::visible_customer_ids`]).
    pub async fn assigned_customer_ids(&self, user_id: i64) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<String> = on_pool!(self, |pool| sqlx::query_scalar(CUSTOMERS_OF)
            .bind(user_id)
            .fetch_all(pool)
            .await?);
        ids.sort();
        Ok(ids)
    }

    /// The ids of the customers `visibility` lets one see, sorted.
    pub async fn visible_customer_ids(
        &self,
        visibility: &Visibility,
    ) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<String> = match *visibility {
            Visibility::All => on_pool!(self, |pool| sqlx::query_scalar(ALL_IDS)
                .fetch_all(pool)
                .await?),
            Visibility::Assigned { user_id } => {
                on_pool!(self, |pool| sqlx::query_scalar(VISIBLE_IDS)
                    .bind(user_id)
                    .fetch_all(pool)
                    .await?)
            }
        };
        ids.sort();
        Ok(ids)
    }

    /// Whether `user` sees customer `customer_id` (false for an unknown one).
    pub async fn customer_visible_to(
        &self,
        user: &User,
        customer_id: &str,
    ) -> Result<bool, StoreError> {
        self.customer_visible(&Visibility::of(user), customer_id)
            .await
    }

    /// Whether `visibility` lets one see customer `customer_id` (false for
    /// an unknown one).
    pub async fn customer_visible(
        &self,
        visibility: &Visibility,
        customer_id: &str,
    ) -> Result<bool, StoreError> {
        if unstorable(customer_id) {
            return Ok(false);
        }
        let customer = lookup_key(customer_id);
        match *visibility {
            Visibility::All => self.customer_exists(&customer).await,
            Visibility::Assigned { user_id } => {
                let found = on_pool!(self, |pool| sqlx::query(VISIBLE_ONE)
                    .bind(user_id)
                    .bind(&customer)
                    .fetch_optional(pool)
                    .await?
                    .is_some());
                Ok(found)
            }
        }
    }
}
