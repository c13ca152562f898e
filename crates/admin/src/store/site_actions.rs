//! The actions customer systems perform (an upgrade, a backup), as their
//! sites report them ([`tunnel_proto::report::ActionReport`]): what the
//! customer list's "in progress", "action completed" and "action failed"
//! icons show (manual chapter 3, "Status Icons").
//!
//! One row per run of an action, named by the site. A report of a run not
//! yet stored adds it; a report of a run in progress moves it on (a newer
//! detail, its end); a run that ended is final, and later reports of it are
//! ignored, so that a late or repeated report cannot bring back an action
//! that is over. Each report trims the system's history to the newest
//! `keep` runs, so a site cannot grow the table without bound.

use serde::Serialize;
use tunnel_proto::report::{ActionReport, ActionState};

use super::{Store, StoreRow};
use crate::StoreError;

/// A stored run of an action, with the name of its system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteAction {
    pub id: i64,
    pub system_id: i64,
    pub system_name: String,
    /// The site's name for this run.
    pub site_action_id: String,
    pub kind: String,
    pub state: ActionState,
    pub detail: Option<String>,
    pub started_at: i64,
    pub updated_at: i64,
    pub ended_at: Option<i64>,
}

/// What a system's list entry shows of its actions: the one in progress,
/// else the last one that ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LatestAction {
    pub kind: String,
    pub state: ActionState,
    /// When it was last reported (started, moved on or ended).
    pub at: i64,
}

const UPSERT: &str = "INSERT INTO site_actions \
     (id, system_id, site_action_id, kind, state, detail, started_at, updated_at, ended_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) \
     ON CONFLICT (system_id, site_action_id) DO UPDATE SET \
     kind = excluded.kind, state = excluded.state, \
     detail = COALESCE(excluded.detail, site_actions.detail), \
     updated_at = excluded.updated_at, ended_at = excluded.ended_at \
     WHERE site_actions.state = 'in_progress' \
     RETURNING id";

/// Keeps the newest `$2` runs of system `$1`.
const TRIM: &str = "DELETE FROM site_actions WHERE system_id = $1 AND id NOT IN \
     (SELECT id FROM site_actions WHERE system_id = $1 \
      ORDER BY updated_at DESC, id DESC LIMIT $2)";

const OF_CUSTOMER: &str = "SELECT a.id, a.system_id, a.site_action_id, a.kind, a.state, \
     a.detail, a.started_at, a.updated_at, a.ended_at, s.name AS system_name \
     FROM site_actions a JOIN systems s ON s.id = a.system_id WHERE s.customer_id = $1 \
     ORDER BY a.updated_at DESC, a.id DESC";

/// The columns [`latest_from_row`] reads, from the row
/// [`latest_action_join`] adds.
macro_rules! latest_action_columns {
    () => {
        "la.kind AS action_kind, la.state AS action_state, la.updated_at AS action_updated_at"
    };
}
pub(crate) use latest_action_columns;

/// Joins each system `s` to its latest action `la`, if it has one: a run in
/// progress first, then the one reported last. One look-up per system,
/// through the `(system_id, ...)` unique index.
macro_rules! latest_action_join {
    () => {
        " LEFT JOIN site_actions la ON la.id = (SELECT a.id FROM site_actions a \
         WHERE a.system_id = s.id \
         ORDER BY CASE WHEN a.state = 'in_progress' THEN 0 ELSE 1 END, \
         a.updated_at DESC, a.id DESC LIMIT 1)"
    };
}
pub(crate) use latest_action_join;

fn state_from(value: &str) -> Result<ActionState, sqlx::Error> {
    ActionState::parse(value)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown action state {value:?}").into()))
}

/// The latest action of a row holding [`latest_action_columns`].
pub(crate) fn latest_from_row(row: &impl StoreRow) -> Result<Option<LatestAction>, sqlx::Error> {
    let kind: Option<String> = row.col("action_kind")?;
    let state: Option<String> = row.col("action_state")?;
    let at: Option<i64> = row.col("action_updated_at")?;
    Ok(match (kind, state, at) {
        (Some(kind), Some(state), Some(at)) => Some(LatestAction {
            kind,
            state: state_from(&state)?,
            at,
        }),
        _ => None,
    })
}

fn from_row(row: &impl StoreRow) -> Result<SiteAction, sqlx::Error> {
    let state: String = row.col("state")?;
    Ok(SiteAction {
        id: row.col("id")?,
        system_id: row.col("system_id")?,
        system_name: row.col("system_name")?,
        site_action_id: row.col("site_action_id")?,
        kind: row.col("kind")?,
        state: state_from(&state)?,
        detail: row.col("detail")?,
        started_at: row.col("started_at")?,
        updated_at: row.col("updated_at")?,
        ended_at: row.col("ended_at")?,
    })
}

impl Store {
    /// Records a report of the system `system_id` and keeps its newest
    /// `keep` runs (at least one). Returns the run's id, or `None` when the
    /// run had already ended (the report changes nothing).
    pub async fn record_action(
        &self,
        system_id: i64,
        report: &ActionReport,
        keep: usize,
    ) -> Result<Option<i64>, StoreError> {
        let report = report
            .clone()
            .validated()
            .map_err(|e| StoreError::InvalidAction(e.to_string()))?;
        let ended_at = report.state.ended().then_some(report.occurred_at);
        let id = self.next_id("site_actions").await?;
        let keep = i64::try_from(keep.max(1)).unwrap_or(i64::MAX);
        let stored: Option<i64> = on_pool!(self, |pool| {
            let stored: Option<i64> = sqlx::query_scalar(UPSERT)
                .bind(id)
                .bind(system_id)
                .bind(&report.id)
                .bind(&report.kind)
                .bind(report.state.as_str())
                .bind(&report.detail)
                .bind(report.occurred_at)
                .bind(ended_at)
                .fetch_optional(pool)
                .await
                .map_err(super::system_row_error(system_id))?;
            if stored.is_some() {
                sqlx::query(TRIM)
                    .bind(system_id)
                    .bind(keep)
                    .execute(pool)
                    .await?;
            }
            stored
        });
        Ok(stored)
    }

    /// The stored runs of a customer's systems, last reported first.
    pub async fn actions_of_customer(
        &self,
        customer_id: &str,
    ) -> Result<Vec<SiteAction>, StoreError> {
        Ok(on_pool!(self, |pool| {
            let rows = sqlx::query(OF_CUSTOMER)
                .bind(customer_id)
                .fetch_all(pool)
                .await?;
            rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?
        }))
    }
}
