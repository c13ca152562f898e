//! `GET /dashboard`: the main dashboard's aggregates over the customers the
//! caller sees. Each count carries the `link` that lists exactly what it
//! counts (the manual: "click alarm information on the dashboard to display
//! the alarm list pre-filtered with only matching alarms").
//!
//! Sections sit side by side in [`Dashboard`]; the alarm section is here,
//! the customer section is added beside it.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use tunnel_proto::report::{AlarmType, Severity};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::alarms::visible_alarms;
use super::error::{ApiError, ErrorBody};
use super::scope::Scope;
use super::session::Caller;
use super::state::ApiState;
use super::BASE;
use crate::permissions::Action;
use crate::store::Alarm;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(dashboard))
}

/// The dashboard, one section per kind of thing.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dashboard {
    pub alarms: AlarmSummary,
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
    Ok(Json(Dashboard {
        alarms: alarm_summary(&alarms),
    }))
}
