//! The customer list (manual chapter 3): every customer a user sees, with
//! its account settings, its systems, what comgate last observed of each
//! system's agent, alarm counts, and the connectivity the list shows.
//!
//! Three statements whatever the number of customers (customers, their
//! tags, their systems with alarm counts), each filtered by the same
//! visibility predicate, joined in Rust. They are not one snapshot: a
//! system or tag of a customer added between them is left out, one of a
//! customer deleted between them is ignored; the next list is right.
//! Searching, filtering, sorting and paging are pure Rust on these rows
//! ([`crate::customer_query`]).

use std::collections::HashMap;

use serde::Serialize;
use tunnel_proto::report::ActionState;

use super::assignments::assigned_to_user;
use super::customers::{detail_columns, details_from_row};
use super::site_actions::{
    latest_action_columns, latest_action_join, latest_from_row, LatestAction,
};
use super::site_status::{self, SiteStatus};
use super::systems::{kind_from_row, SystemKind};
use super::{Store, StoreRow, Visibility};
use crate::connectivity::{connectivity, Colour, Connectivity, Observation};
use crate::{CustomerDetails, StoreError};

/// One system in the customer list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedSystem {
    pub name: String,
    pub kind: SystemKind,
    pub profile: String,
    pub version: String,
    /// Alarms stored for the system (active or not yet cleared).
    pub alarms: i64,
    /// The action it performs, else the last one that ended.
    pub action: Option<LatestAction>,
    /// Its id, label, primary flag and what comgate last observed.
    #[serde(flatten)]
    pub status: SiteStatus,
    pub connectivity: Connectivity,
}

/// One customer in the customer list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerListRow {
    #[serde(flatten)]
    pub details: CustomerDetails,
    /// Primary first, then by label.
    pub systems: Vec<ListedSystem>,
    /// The alarms of all its systems.
    pub alarms: i64,
    /// What the list's colour bar and "Connectivity Status" show: the
    /// primary system's (the manual: "the connection between the COM server
    /// and the customer's primary server"). Without a primary system, the
    /// worst of its systems' (red, then amber; so that a problem is never
    /// hidden); without any system, "Waiting for initial connection".
    pub connectivity: Connectivity,
}

impl CustomerListRow {
    pub fn id(&self) -> &str {
        &self.details.customer.id
    }

    /// The customer's action icon: one in progress on any of its systems
    /// wins (the manual: whilst it runs, no other action may start), else
    /// how the one that ended last went; `None` when none was reported.
    pub fn action(&self) -> Option<ActionState> {
        self.systems
            .iter()
            .filter_map(|s| s.action.as_ref())
            .max_by_key(|a| (a.state == ActionState::InProgress, a.at))
            .map(|a| a.state)
    }

    /// The primary system, if the customer has one.
    pub fn primary(&self) -> Option<&ListedSystem> {
        self.systems.iter().find(|s| s.status.is_primary)
    }
}

macro_rules! system_columns {
    () => {
        concat!(
            "s.id, s.customer_id, s.name, s.label, s.is_primary, s.kind, s.profile, s.version, \
         s.last_connected_at, s.last_seen_at, s.last_auth_failure_at, s.remote_access, \
         s.colocated_servers, s.centralized_management, s.legacy_agent, s.agent_version, \
         (SELECT COUNT(*) FROM alarms al WHERE al.system_id = s.id) AS alarm_count, ",
            latest_action_columns!(),
            " FROM systems s JOIN customers c ON c.id = s.customer_id",
            latest_action_join!()
        )
    };
}

const CUSTOMERS_ALL: &str = concat!("SELECT ", detail_columns!(), " FROM customers c");
const CUSTOMERS_OF_USER: &str = concat!(
    "SELECT ",
    detail_columns!(),
    " FROM customers c WHERE ",
    assigned_to_user!()
);
const TAGS_ALL: &str = "SELECT customer_id, tag FROM customer_tags";
const TAGS_OF_USER: &str = concat!(
    "SELECT t.customer_id, t.tag FROM customer_tags t JOIN customers c ON c.id = t.customer_id \
     WHERE ",
    assigned_to_user!()
);
const SYSTEMS_ALL: &str = concat!("SELECT ", system_columns!());
const SYSTEMS_OF_USER: &str = concat!("SELECT ", system_columns!(), " WHERE ", assigned_to_user!());

/// A system row, its connectivity still to be judged.
fn system_from_row(row: &impl StoreRow) -> Result<ListedSystem, sqlx::Error> {
    let status = site_status::from_row(row)?;
    let listed = ListedSystem {
        name: row.col("name")?,
        kind: kind_from_row(row.col("kind")?, status.is_primary)?,
        profile: row.col("profile")?,
        version: row.col("version")?,
        alarms: row.col("alarm_count")?,
        action: latest_from_row(row)?,
        status,
        connectivity: connectivity(&Observation::default(), 0),
    };
    Ok(listed)
}

fn colour_rank(colour: Colour) -> u8 {
    match colour {
        Colour::Green => 0,
        Colour::Amber => 1,
        Colour::Red => 2,
    }
}

/// The customer's connectivity from its systems' (see
/// [`CustomerListRow::connectivity`]); `systems` are primary first.
fn customer_connectivity(systems: &[ListedSystem], now: i64) -> Connectivity {
    if let Some(primary) = systems.iter().find(|s| s.status.is_primary) {
        return primary.connectivity.clone();
    }
    systems
        .iter()
        .enumerate()
        .max_by_key(|(i, s)| (colour_rank(s.connectivity.colour), std::cmp::Reverse(*i)))
        .map(|(_, s)| s.connectivity.clone())
        .unwrap_or_else(|| connectivity(&Observation::default(), now))
}

impl Store {
    /// Every customer `visibility` lets one see, by id, with its systems
    /// and their connectivity at `now` (unix seconds). `connected_now`
    /// tells whether a system's agent is connected right now (the
    /// gateway's hub knows; the database does not).
    pub async fn customer_list(
        &self,
        visibility: &Visibility,
        connected_now: &(dyn Fn(&SiteStatus) -> bool + Sync),
        now: i64,
    ) -> Result<Vec<CustomerListRow>, StoreError> {
        type Rows = (
            Vec<CustomerDetails>,
            Vec<(String, String)>,
            Vec<ListedSystem>,
        );
        let (customers, tags, systems): Rows = on_pool!(self, |pool| {
            let (customers, tags, systems) = match *visibility {
                Visibility::All => (
                    sqlx::query(CUSTOMERS_ALL).fetch_all(pool).await?,
                    sqlx::query(TAGS_ALL).fetch_all(pool).await?,
                    sqlx::query(SYSTEMS_ALL).fetch_all(pool).await?,
                ),
                Visibility::Assigned { user_id } => (
                    sqlx::query(CUSTOMERS_OF_USER)
                        .bind(user_id)
                        .fetch_all(pool)
                        .await?,
                    sqlx::query(TAGS_OF_USER)
                        .bind(user_id)
                        .fetch_all(pool)
                        .await?,
                    sqlx::query(SYSTEMS_OF_USER)
                        .bind(user_id)
                        .fetch_all(pool)
                        .await?,
                ),
            };
            (
                customers
                    .iter()
                    .map(details_from_row)
                    .collect::<Result<_, _>>()?,
                tags.iter()
                    .map(|row| Ok::<_, sqlx::Error>((row.col("customer_id")?, row.col("tag")?)))
                    .collect::<Result<_, _>>()?,
                systems
                    .iter()
                    .map(system_from_row)
                    .collect::<Result<_, _>>()?,
            )
        });

        let mut tags_of: HashMap<String, Vec<String>> = HashMap::new();
        for (customer, tag) in tags {
            tags_of.entry(customer).or_default().push(tag);
        }
        let mut systems_of: HashMap<String, Vec<ListedSystem>> = HashMap::new();
        for mut system in systems {
            let observation = system.status.observation(connected_now(&system.status));
            system.connectivity = connectivity(&observation, now);
            systems_of
                .entry(system.status.customer_id.clone())
                .or_default()
                .push(system);
        }

        let mut rows: Vec<CustomerListRow> = customers
            .into_iter()
            .map(|mut details| {
                let id = &details.customer.id;
                let mut tags = tags_of.remove(id).unwrap_or_default();
                tags.sort();
                details.settings.tags = tags;
                let mut systems = systems_of.remove(id).unwrap_or_default();
                systems.sort_by(|a, b| {
                    (!a.status.is_primary, &a.status.label)
                        .cmp(&(!b.status.is_primary, &b.status.label))
                });
                let alarms = systems.iter().map(|s| s.alarms).sum();
                let connectivity = customer_connectivity(&systems, now);
                CustomerListRow {
                    details,
                    systems,
                    alarms,
                    connectivity,
                }
            })
            .collect();
        rows.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(rows)
    }
}
