//! The audit log of the admin plane (issue 5 item 9): every state change
//! made through it and every login attempt, kept in the database and listed
//! by Administrators.
//!
//! Records are written by the API after the change they describe, with the
//! state before and after as JSON; nothing secret is ever in them (the
//! callers pass views without passwords, secrets or service passwords).

use serde::Serialize;

use super::{Store, StoreRow};
use crate::StoreError;

/// Who did something, from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// The COM user's id; `None` for an anonymous attempt (a failed login).
    pub id: Option<i64>,
    /// The user's login name at the time, or the login name tried.
    pub name: String,
    /// The client's address.
    pub source: String,
}

/// One thing to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// What was done, a stable dotted name: `login`, `user.create`,
    /// `customer.update`, `alarms.clear`, ...
    pub action: &'static str,
    /// What it was done to: `user:7`, `customer:12345`, ...
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    /// `ok`, or why it was refused (`invalid`, `blocked`, ...).
    pub outcome: String,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub at: i64,
    pub actor: Actor,
    pub action: String,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub outcome: String,
}

/// Which records to list: newest first, `offset`/`limit` applied after the
/// filters; each filter given must match exactly.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    pub offset: i64,
    pub limit: i64,
}

fn json_text(value: &Option<serde_json::Value>) -> Option<String> {
    value.as_ref().map(|v| v.to_string())
}

fn parse_json(text: Option<String>) -> Option<serde_json::Value> {
    // Written by record_audit from a Value, so it parses; a hand-edited row
    // that does not is shown as the text it is.
    text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
}

fn from_row(row: &impl StoreRow) -> Result<AuditRecord, sqlx::Error> {
    Ok(AuditRecord {
        id: row.col("id")?,
        at: row.col("at")?,
        actor: Actor {
            id: row.col("actor_id")?,
            name: row.col("actor")?,
            source: row.col("source")?,
        },
        action: row.col("action")?,
        target: row.col("target")?,
        before: parse_json(row.col("before_state")?),
        after: parse_json(row.col("after_state")?),
        outcome: row.col("outcome")?,
    })
}

const FILTER: &str = "($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) \
     AND ($3 IS NULL OR target = $3) AND ($4 IS NULL OR at >= $4) AND ($5 IS NULL OR at < $5)";

impl Store {
    /// Records `event` by `actor` at `at`; returns the record's id.
    pub async fn record_audit(
        &self,
        actor: &Actor,
        event: &AuditEvent,
        at: i64,
    ) -> Result<i64, StoreError> {
        let id = self.next_id("audit_log").await?;
        on_pool!(self, |pool| {
            sqlx::query(
            "INSERT INTO audit_log (id, at, actor_id, actor, source, action, target, before_state, after_state, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        )
        .bind(id)
        .bind(at)
        .bind(actor.id)
        .bind(&actor.name)
        .bind(&actor.source)
        .bind(event.action)
        .bind(&event.target)
        .bind(json_text(&event.before))
        .bind(json_text(&event.after))
        .bind(&event.outcome)
        .execute(pool)
        .await?;
        });
        Ok(id)
    }

    /// The records `query` selects, newest first, and how many match in all.
    pub async fn list_audit(
        &self,
        query: &AuditQuery,
    ) -> Result<(i64, Vec<AuditRecord>), StoreError> {
        let count_sql = format!("SELECT COUNT(*) FROM audit_log WHERE {FILTER}");
        let list_sql = format!(
            "SELECT * FROM audit_log WHERE {FILTER} ORDER BY at DESC, id DESC LIMIT $6 OFFSET $7"
        );
        let (total, records) = on_pool!(self, |pool| {
            let total: i64 = sqlx::query_scalar(&count_sql)
                .bind(&query.actor)
                .bind(&query.action)
                .bind(&query.target)
                .bind(query.since)
                .bind(query.until)
                .fetch_one(pool)
                .await?;
            let rows = sqlx::query(&list_sql)
                .bind(&query.actor)
                .bind(&query.action)
                .bind(&query.target)
                .bind(query.since)
                .bind(query.until)
                .bind(query.limit)
                .bind(query.offset)
                .fetch_all(pool)
                .await?;
            let records = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
            (total, records)
        });
        Ok((total, records))
    }
}
