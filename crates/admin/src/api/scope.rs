//! Which customers a caller sees (the visibility rule every endpoint
//! shares): Administrators and Support see all of them; Supervisors,
//! Operators and Read-Only users see the customers assigned to them,
//! manually or through one of their labels (`user.settings.labels`) equal to
//! the customer's reseller or provider.
//!
//! Something of a customer the caller does not see answers 404, exactly as
//! something that does not exist, so that names cannot be probed.

use std::collections::{BTreeSet, HashSet};

use super::error::ApiError;
use super::session::Caller;
use crate::permissions;
use crate::store::{Customer, Visibility};
use crate::Store;

/// The customers a caller sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every customer (Administrator, Support).
    All,
    /// Only customers assigned to the caller.
    Only {
        /// Reseller or distributor names: their customers are assigned.
        labels: HashSet<String>,
        /// Customers assigned by hand (stored, lowercase ids).
        assigned: HashSet<String>,
        /// Every customer the caller sees (stored ids), as the store's
        /// visibility rule selects them.
        visible: HashSet<String>,
    },
}

impl Scope {
    /// The scope of `caller`.
    pub async fn of(store: &Store, caller: &Caller) -> Result<Scope, ApiError> {
        if permissions::sees_all_customers(caller.role()) {
            return Ok(Scope::All);
        }
        let visible = store
            .visible_customer_ids(&Visibility::of(&caller.user))
            .await?
            .into_iter()
            .collect();
        Ok(Scope::Only {
            labels: caller.user.settings.labels.iter().cloned().collect(),
            assigned: assigned_customer_ids(store, caller.user.id).await?,
            visible,
        })
    }

    /// Whether the customer `customer_id` (stored form) is visible.
    pub fn sees_id(&self, customer_id: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only { visible, .. } => visible.contains(customer_id),
        }
    }

    /// [`Scope::sees_id`] for a stored customer.
    pub fn sees_customer(&self, customer: &Customer) -> bool {
        self.sees_id(&customer.id)
    }

    /// The resellers and distributors (proxy-account owners) the caller
    /// works for: its labels, and the reseller and provider of each customer
    /// assigned to it by hand. A customer seen through a label does not add
    /// its other owner: a label names one owner, not its partners. `None`
    /// for [`Scope::All`] (every owner).
    pub fn owners(&self, customers: &[Customer]) -> Option<BTreeSet<String>> {
        match self {
            Scope::All => None,
            Scope::Only {
                labels, assigned, ..
            } => {
                let mut owners: BTreeSet<String> = labels.iter().cloned().collect();
                for customer in customers.iter().filter(|c| assigned.contains(&c.id)) {
                    owners.insert(customer.reseller.clone());
                    owners.extend(customer.provider.clone());
                }
                owners.retain(|o| !o.is_empty());
                Some(owners)
            }
        }
    }
}

/// The ids of the customers assigned to user `user_id` by hand.
pub async fn assigned_customer_ids(
    store: &Store,
    user_id: i64,
) -> Result<HashSet<String>, ApiError> {
    Ok(store
        .assigned_customer_ids(user_id)
        .await?
        .into_iter()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(id: &str, reseller: &str, provider: Option<&str>) -> Customer {
        Customer {
            id: id.into(),
            name: id.into(),
            reseller: reseller.into(),
            provider: provider.map(Into::into),
            created_at: 0,
            updated_at: 0,
        }
    }

    /// A scope seeing `visible`, assigned `assigned` by hand.
    fn only(labels: &[&str], assigned: &[&str], visible: &[&str]) -> Scope {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Scope::Only {
            labels: set(labels),
            assigned: set(assigned),
            visible: set(visible),
        }
    }

    #[test]
    fn a_scope_sees_the_ids_the_store_let_through() {
        let scope = only(&["Reseller A"], &[], &["c1"]);
        assert!(scope.sees_customer(&customer("c1", "Reseller A", None)));
        assert!(!scope.sees_customer(&customer("c2", "Reseller A", None)));
        assert!(Scope::All.sees_id("c3"));
    }

    #[test]
    fn assigned_customers_are_seen_and_bring_their_owners() {
        let scope = only(&["Reseller A"], &["c2"], &["c1", "c2"]);
        assert!(scope.sees_id("c2"));
        let customers = [
            customer("c1", "Reseller A", Some("Dist X")),
            customer("c2", "Reseller B", Some("Dist Y")),
            customer("c3", "Reseller C", None),
        ];
        let owners: Vec<String> = scope.owners(&customers).unwrap().into_iter().collect();
        assert_eq!(owners, ["Dist Y", "Reseller A", "Reseller B"]);
        assert_eq!(Scope::All.owners(&customers), None);
    }
}
