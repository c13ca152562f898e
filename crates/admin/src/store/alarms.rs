//! Site alarms (manual chapter 4): one row per distinct alarm of a system,
//! kept up to date by the agents' reports, listed and cleared by users.
//!
//! An alarm's identity is (system, type, text). Each report with `active`
//! set is an occurrence: it counts, moves the last occurrence and sets the
//! severity and detail; a report that the problem is over only marks the row
//! inactive (the row keeps how bad the last occurrence was). Only inactive rows
//! can be cleared (the manual greys out the checkbox of an alarm whose issue
//! is still occurring); clearing deletes them, and a later occurrence starts
//! a new row.

use serde::Serialize;
use tunnel_proto::report::{AlarmReport, AlarmSource, AlarmType, Severity};

use super::{Store, StoreRow};
use crate::StoreError;

/// A stored alarm, with the names of its customer and system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alarm {
    pub id: i64,
    pub customer_id: String,
    pub customer_name: String,
    pub system_id: i64,
    pub system_name: String,
    #[serde(rename = "type")]
    pub alarm_type: AlarmType,
    pub severity: Severity,
    pub text: String,
    pub detail: Option<String>,
    pub source: AlarmSource,
    pub active: bool,
    pub first_at: i64,
    pub last_at: i64,
    pub occurrences: i64,
}

/// What clearing a set of alarms did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cleared {
    /// Ids deleted.
    pub cleared: Vec<i64>,
    /// Ids left because their issue is still occurring.
    pub still_active: Vec<i64>,
    /// Ids that name no alarm (already cleared, or never existed).
    pub unknown: Vec<i64>,
}

const UPSERT: &str = "INSERT INTO alarms \
     (id, system_id, alarm_type, text, severity, detail, source, active, first_at, last_at, occurrences) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1) \
     ON CONFLICT (system_id, alarm_type, text) DO UPDATE SET \
     severity = CASE WHEN excluded.active THEN excluded.severity ELSE alarms.severity END, \
     detail = CASE WHEN excluded.active THEN excluded.detail ELSE alarms.detail END, \
     source = CASE WHEN excluded.active THEN excluded.source ELSE alarms.source END, \
     active = excluded.active, \
     last_at = CASE WHEN excluded.active THEN excluded.last_at ELSE alarms.last_at END, \
     occurrences = alarms.occurrences + CASE WHEN excluded.active THEN 1 ELSE 0 END \
     RETURNING id";

const ALL: &str = "SELECT a.id, a.system_id, a.alarm_type, a.text, a.severity, a.detail, \
     a.source, a.active, a.first_at, a.last_at, a.occurrences, \
     s.name AS system_name, c.id AS customer_id, c.name AS customer_name \
     FROM alarms a JOIN systems s ON s.id = a.system_id JOIN customers c ON c.id = s.customer_id";

const STATE: &str = "SELECT active FROM alarms WHERE id = $1";
const DELETE_INACTIVE: &str = "DELETE FROM alarms WHERE id = $1 AND NOT active";
const INACTIVE_OF_TYPE: &str = "SELECT id FROM alarms WHERE alarm_type = $1 AND NOT active";

fn parse<T>(
    value: &str,
    what: &'static str,
    f: impl Fn(&str) -> Option<T>,
) -> Result<T, sqlx::Error> {
    f(value).ok_or_else(|| sqlx::Error::Decode(format!("unknown {what} {value:?}").into()))
}

fn source_str(source: AlarmSource) -> &'static str {
    match source {
        AlarmSource::Site => "site",
        AlarmSource::Agent => "agent",
    }
}

fn from_row(row: &impl StoreRow) -> Result<Alarm, sqlx::Error> {
    let alarm_type: String = row.col("alarm_type")?;
    let severity: String = row.col("severity")?;
    let source: String = row.col("source")?;
    Ok(Alarm {
        id: row.col("id")?,
        customer_id: row.col("customer_id")?,
        customer_name: row.col("customer_name")?,
        system_id: row.col("system_id")?,
        system_name: row.col("system_name")?,
        alarm_type: parse(&alarm_type, "alarm type", AlarmType::parse)?,
        severity: parse(&severity, "severity", Severity::parse)?,
        text: row.col("text")?,
        detail: row.col("detail")?,
        source: parse(&source, "alarm source", |s| match s {
            "site" => Some(AlarmSource::Site),
            "agent" => Some(AlarmSource::Agent),
            _ => None,
        })?,
        active: row.col("active")?,
        first_at: row.col("first_at")?,
        last_at: row.col("last_at")?,
        occurrences: row.col("occurrences")?,
    })
}

impl Store {
    /// Records a report of the system `system_id`; returns the alarm's id.
    /// The first report of an alarm sets its first occurrence to the
    /// report's time; repeats update the row (see the module doc).
    pub async fn record_alarm(
        &self,
        system_id: i64,
        report: &AlarmReport,
    ) -> Result<i64, StoreError> {
        let report = report
            .clone()
            .validated()
            .map_err(|e| StoreError::InvalidAlarm(e.to_string()))?;
        // The id is spent even when the row exists (ids are never reused,
        // gaps are fine).
        let id = self.next_id("alarms").await?;
        let stored: i64 = on_pool!(self, |pool| sqlx::query_scalar(UPSERT)
            .bind(id)
            .bind(system_id)
            .bind(report.alarm_type.as_str())
            .bind(&report.text)
            .bind(report.severity.as_str())
            .bind(&report.detail)
            .bind(source_str(report.source))
            .bind(report.active)
            .bind(report.occurred_at)
            .fetch_one(pool)
            .await
            .map_err(super::system_row_error(system_id))?);
        Ok(stored)
    }

    /// Every alarm, newest occurrence first (then by id).
    pub async fn list_alarms(&self) -> Result<Vec<Alarm>, StoreError> {
        let mut alarms: Vec<Alarm> = on_pool!(self, |pool| {
            let rows = sqlx::query(ALL).fetch_all(pool).await?;
            rows.iter().map(from_row).collect::<Result<_, _>>()?
        });
        alarms.sort_by(|a, b| b.last_at.cmp(&a.last_at).then(a.id.cmp(&b.id)));
        Ok(alarms)
    }

    /// Clears the given alarms that are no longer active.
    pub async fn clear_alarms(&self, ids: &[i64]) -> Result<Cleared, StoreError> {
        let mut out = Cleared::default();
        for &id in ids {
            let state: Option<bool> = on_pool!(self, |pool| sqlx::query_scalar(STATE)
                .bind(id)
                .fetch_optional(pool)
                .await?);
            match state {
                None => out.unknown.push(id),
                Some(true) => out.still_active.push(id),
                Some(false) => {
                    // Deleted only if still inactive: a report may have
                    // raised it again in between.
                    let deleted = on_pool!(self, |pool| sqlx::query(DELETE_INACTIVE)
                        .bind(id)
                        .execute(pool)
                        .await?
                        .rows_affected());
                    if deleted == 1 {
                        out.cleared.push(id);
                    } else {
                        out.still_active.push(id);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The ids of the inactive alarms of one type (what "Clear All By Type"
    /// may remove; the caller narrows them to the customers the user sees
    /// and passes them to [`Store::clear_alarms`]).
    pub async fn inactive_alarm_ids_of_type(
        &self,
        alarm_type: AlarmType,
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids: Vec<i64> = on_pool!(self, |pool| sqlx::query_scalar(INACTIVE_OF_TYPE)
            .bind(alarm_type.as_str())
            .fetch_all(pool)
            .await?);
        ids.sort_unstable();
        Ok(ids)
    }
}
