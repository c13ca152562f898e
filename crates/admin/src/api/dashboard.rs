//! `GET /dashboard`: the main dashboard's aggregates over the customers the
//! caller sees. Each count carries the `link` that lists exactly what it
//! counts (the manual: "click alarm information on the dashboard to display
//! the alarm list pre-filtered with only matching alarms").
//!
//! Sections sit side by side in [`Dashboard`]: the customers by
//! connectivity state, by action (in progress, completed, failed), by
//! system version and by tag, and the alarms by severity and by type.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use tunnel_proto::report::{ActionState, AlarmType, Severity};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use std::collections::BTreeMap;

use super::alarms::visible_alarms;
use super::customers::visible_rows;
use super::error::{ApiError, ErrorBody};
use super::scope::Scope;
use super::session::Caller;
use super::state::ApiState;
use super::BASE;
use crate::connectivity::State as ConnectivityState;
use crate::permissions::Action;
use crate::store::{Alarm, CustomerListRow};

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(dashboard))
}

/// The dashboard, one section per kind of thing.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dashboard {
    pub customers: CustomerSummary,
    pub alarms: AlarmSummary,
}

/// The visible customers, counted four ways.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerSummary {
    pub total: i64,
    /// Every connectivity state (zero counts included).
    pub by_state: Vec<Count>,
    /// Every action icon: `in_progress`, `completed`, `failed` (zero
    /// counts included; customers without a reported action are in none).
    pub by_action: Vec<Count>,
    /// Each system version in use: customers with a system of it.
    pub by_version: Vec<Count>,
    /// Each tag in use: customers with it.
    pub by_tag: Vec<Count>,
}

/// One count of the customer section.
#[derive(Debug, Serialize, ToSchema)]
pub struct Count {
    /// The state, version or tag counted.
    pub value: String,
    pub count: i64,
    /// The customer list of exactly these customers.
    #[schema(example = "/com/api/customers?state=offline")]
    pub link: String,
}

fn customers_link(parameter: &str, value: &str) -> String {
    let query = serde_urlencoded::to_string([(parameter, value)]).unwrap_or_default();
    format!("{BASE}/customers?{query}")
}

/// Counts per value, with links, for values `of` each customer gives.
fn counts_by<'a>(
    rows: &'a [CustomerListRow],
    parameter: &str,
    of: impl Fn(&'a CustomerListRow) -> Vec<&'a str>,
) -> Vec<Count> {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for row in rows {
        let mut values = of(row);
        values.sort_unstable();
        values.dedup();
        for value in values.into_iter().filter(|v| !v.is_empty()) {
            *counts.entry(value).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(value, count)| Count {
            value: value.to_owned(),
            count,
            link: customers_link(parameter, value),
        })
        .collect()
}

/// A count for each of `values` (zero counts included), in their order,
/// of the customers `has` says have it; `name` is the value as the customer
/// list's `parameter` takes it.
fn counts_of_each<T: Copy>(
    rows: &[CustomerListRow],
    parameter: &str,
    values: impl IntoIterator<Item = T>,
    name: fn(T) -> &'static str,
    has: impl Fn(&CustomerListRow, T) -> bool,
) -> Vec<Count> {
    values
        .into_iter()
        .map(|value| Count {
            value: name(value).to_owned(),
            count: i64::try_from(rows.iter().filter(|r| has(r, value)).count()).unwrap_or(i64::MAX),
            link: customers_link(parameter, name(value)),
        })
        .collect()
}

/// The customer section over `rows` (the visible customers).
pub fn customer_summary(rows: &[CustomerListRow]) -> CustomerSummary {
    CustomerSummary {
        total: i64::try_from(rows.len()).unwrap_or(i64::MAX),
        by_state: counts_of_each(
            rows,
            "state",
            ConnectivityState::ALL,
            ConnectivityState::as_str,
            |r, state| r.connectivity.state == state,
        ),
        by_action: counts_of_each(
            rows,
            "action",
            ActionState::ALL,
            ActionState::as_str,
            |r, action| r.action() == Some(action),
        ),
        by_version: counts_by(rows, "version", |r| {
            r.systems.iter().map(|s| s.version.as_str()).collect()
        }),
        by_tag: counts_by(rows, "tag", |r| {
            r.details.settings.tags.iter().map(String::as_str).collect()
        }),
    }
}

/// The alarms of the visible customers, counted two ways.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmSummary {
    /// Every severity, worst first (zero counts included).
    pub by_severity: Vec<SeverityCount>,
    /// Every alarm type, in the manual's order (zero counts included).
    pub by_type: Vec<TypeCount>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeverityCount {
    /// `critical`, `major`, `minor` or `warning`.
    pub severity: String,
    pub count: i64,
    /// The alarm list of exactly these alarms.
    #[schema(example = "/com/api/alarms?severity=critical")]
    pub link: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TypeCount {
    /// `Configuration`, `Trunk`, `Link`, `Services`, `QoS` or `Security`.
    #[serde(rename = "type")]
    pub alarm_type: String,
    pub count: i64,
    /// The alarm list of exactly these alarms.
    #[schema(example = "/com/api/alarms?type=Trunk")]
    pub link: String,
}

fn count(alarms: &[Alarm], f: impl Fn(&Alarm) -> bool) -> i64 {
    i64::try_from(alarms.iter().filter(|a| f(a)).count()).unwrap_or(i64::MAX)
}

/// The alarm section over `alarms` (already narrowed to the visible ones).
pub fn alarm_summary(alarms: &[Alarm]) -> AlarmSummary {
    AlarmSummary {
        by_severity: Severity::ALL
            .into_iter()
            .map(|s| SeverityCount {
                severity: s.as_str().to_owned(),
                count: count(alarms, |a| a.severity == s),
                link: format!("{BASE}/alarms?severity={}", s.as_str()),
            })
            .collect(),
        by_type: AlarmType::ALL
            .into_iter()
            .map(|t| TypeCount {
                alarm_type: t.as_str().to_owned(),
                count: count(alarms, |a| a.alarm_type == t),
                link: format!("{BASE}/alarms?type={}", t.as_str()),
            })
            .collect(),
    }
}

/// The dashboard's aggregates over the customers the caller sees.
#[utoipa::path(get, path = "/dashboard", tag = "dashboard",
    responses(
        (status = 200, body = Dashboard),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The role may not view the dashboard", body = ErrorBody),
    ))]
async fn dashboard(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Dashboard>, ApiError> {
    caller.require(Action::ViewDashboard)?;
    caller.require(Action::ViewAlarms)?;
    let scope = Scope::of(&state.store, &caller).await?;
    let alarms = visible_alarms(&state, &scope).await?;
    let rows = visible_rows(&state, &caller).await?;
    Ok(Json(Dashboard {
        customers: customer_summary(&rows),
        alarms: alarm_summary(&alarms),
    }))
}
