//! What comgate last observed of each system's agent: when it connected and
//! was last seen, when an agent last failed to authenticate as it, and the
//! settings it reported. With the running gateway's knowledge of who is
//! connected now, this is what the customer list's connectivity is derived
//! from ([`crate::connectivity`]).

use serde::Serialize;

use super::{Store, StoreRow};
use crate::connectivity::Observation;
use crate::StoreError;

/// The settings and capabilities an agent reported when it connected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reported {
    pub remote_access: bool,
    pub colocated_servers: bool,
    pub centralized_management: bool,
    /// The agent announced none of the capabilities of current agents.
    pub legacy: bool,
    pub agent_version: String,
}

/// One system's stored observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteStatus {
    pub system_id: i64,
    pub customer_id: String,
    pub label: String,
    pub is_primary: bool,
    pub last_connected_at: Option<i64>,
    pub last_seen_at: Option<i64>,
    pub last_auth_failure_at: Option<i64>,
    pub remote_access: bool,
    pub colocated_servers: bool,
    pub centralized_management: bool,
    pub legacy_agent: bool,
    pub agent_version: Option<String>,
}

impl SiteStatus {
    /// The observation [`crate::connectivity::connectivity`] judges, given
    /// whether the system's agent is connected now.
    pub fn observation(&self, connected_now: bool) -> Observation {
        Observation {
            connected: connected_now,
            remote_access: self.remote_access,
            colocated_servers: self.colocated_servers,
            centralized_management: self.centralized_management,
            legacy: self.legacy_agent,
            last_seen: self.last_seen_at,
            last_auth_failure: self.last_auth_failure_at,
        }
    }
}

const CONNECTED: &str = "UPDATE systems SET last_connected_at = $2, last_seen_at = $2, \
     remote_access = $3, colocated_servers = $4, centralized_management = $5, \
     legacy_agent = $6, agent_version = $7 WHERE id = $1";
const SEEN: &str = "UPDATE systems SET last_seen_at = $2 WHERE id = $1";
const AUTH_FAILED: &str =
    "UPDATE systems SET last_auth_failure_at = $3 WHERE customer_id = $1 AND label = $2";
const ALL: &str = "SELECT id, customer_id, label, is_primary, last_connected_at, last_seen_at, \
     last_auth_failure_at, remote_access, colocated_servers, centralized_management, \
     legacy_agent, agent_version FROM systems";
const ONE: &str = "SELECT id, customer_id, label, is_primary, last_connected_at, last_seen_at, \
     last_auth_failure_at, remote_access, colocated_servers, centralized_management, \
     legacy_agent, agent_version FROM systems WHERE id = $1";

pub(super) fn from_row(row: &impl StoreRow) -> Result<SiteStatus, sqlx::Error> {
    Ok(SiteStatus {
        system_id: row.col("id")?,
        customer_id: row.col("customer_id")?,
        label: row.col("label")?,
        is_primary: row.col("is_primary")?,
        last_connected_at: row.col("last_connected_at")?,
        last_seen_at: row.col("last_seen_at")?,
        last_auth_failure_at: row.col("last_auth_failure_at")?,
        remote_access: row.col("remote_access")?,
        colocated_servers: row.col("colocated_servers")?,
        centralized_management: row.col("centralized_management")?,
        legacy_agent: row.col("legacy_agent")?,
        agent_version: row.col("agent_version")?,
    })
}

impl Store {
    /// An agent session for `system_id` started at `at` with `reported`.
    pub async fn record_site_connected(
        &self,
        system_id: i64,
        reported: &Reported,
        at: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(CONNECTED)
            .bind(system_id)
            .bind(at)
            .bind(reported.remote_access)
            .bind(reported.colocated_servers)
            .bind(reported.centralized_management)
            .bind(reported.legacy)
            .bind(&reported.agent_version)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// The agent session of `system_id` was last alive at `at` (its end).
    pub async fn record_site_seen(&self, system_id: i64, at: i64) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(SEEN)
            .bind(system_id)
            .bind(at)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// The agent sessions of `system_ids` were alive at `at` (a periodic
    /// mark, so that after a gateway crash "offline for" counts from the
    /// last mark, not from the connection). One statement per 500 ids.
    pub async fn record_sites_seen(&self, system_ids: &[i64], at: i64) -> Result<(), StoreError> {
        for chunk in system_ids.chunks(500) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "UPDATE systems SET last_seen_at = $1 WHERE id IN ({})",
                placeholders.join(", ")
            );
            on_pool!(self, |pool| {
                let mut query = sqlx::query(&sql).bind(at);
                for id in chunk {
                    query = query.bind(*id);
                }
                query.execute(pool).await?;
            });
        }
        Ok(())
    }

    /// An agent failed to authenticate as system `label` of `customer_id`
    /// at `at`. Returns whether such a system exists (an unknown one is not
    /// recorded anywhere).
    pub async fn record_auth_failure(
        &self,
        customer_id: &str,
        label: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        if super::unstorable(customer_id) || super::unstorable(label) {
            return Ok(false);
        }
        let updated = on_pool!(self, |pool| sqlx::query(AUTH_FAILED)
            .bind(customer_id)
            .bind(label)
            .bind(at)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(updated > 0)
    }

    /// The stored observation of every system, by system id.
    pub async fn site_statuses(&self) -> Result<Vec<SiteStatus>, StoreError> {
        let mut all: Vec<SiteStatus> = on_pool!(self, |pool| {
            let rows = sqlx::query(ALL).fetch_all(pool).await?;
            rows.iter().map(from_row).collect::<Result<_, _>>()?
        });
        all.sort_by_key(|s| s.system_id);
        Ok(all)
    }

    /// The stored observation of one system, if it exists.
    pub async fn site_status(&self, system_id: i64) -> Result<Option<SiteStatus>, StoreError> {
        let status = on_pool!(self, |pool| {
            let row = sqlx::query(ONE)
                .bind(system_id)
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(from_row).transpose()?
        });
        Ok(status)
    }
}
