//! Alarms (manual chapter 4): `GET /alarms` lists the alarms of the
//! customers the caller sees, filtered, searched, sorted by one column and
//! paged; `POST /alarms/clear` and `POST /alarms/clear-type` remove alarms
//! whose issue is no longer occurring ("Clear" and "Clear All By Type").
//!
//! An alarm of a customer the caller does not see is treated as one that
//! does not exist: never listed, and reported `unknown` when asked to clear.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use tunnel_proto::report::{AlarmType, Severity};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::json::{ApiJson, ApiQuery};
use super::page::{Page, PageParams};
use super::scope::Scope;
use super::session::Caller;
use super::state::ApiState;
use crate::names::lookup_key;
use crate::permissions::Action;
use crate::store::{Alarm, AuditEvent, Cleared};

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_alarms))
        .routes(routes!(clear_alarms))
        .routes(routes!(clear_alarms_of_type))
}

/// The column the list is sorted by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlarmSort {
    /// Last occurrence.
    #[default]
    LastAt,
    /// First occurrence.
    FirstAt,
    /// By rank: critical > major > minor > warning.
    Severity,
    /// Alarm type name.
    Type,
    /// Customer name (then id).
    Customer,
    /// Number of occurrences.
    Occurrences,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    Asc,
    Desc,
}

/// Filters, search, sort and page of the alarm list. Filters and search
/// combine (all must match).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlarmParams {
    /// `Configuration`, `Trunk`, `Link`, `Services`, `QoS` or `Security` (any case).
    #[serde(rename = "type")]
    pub alarm_type: Option<String>,
    /// `critical`, `major`, `minor` or `warning` (any case).
    pub severity: Option<String>,
    /// Only alarms whose issue is (`true`) or is no longer (`false`) occurring.
    pub active: Option<bool>,
    /// A customer id (any case).
    pub customer: Option<String>,
    /// Case-insensitive text found in the customer id or name, the system
    /// name, the alarm text or its detail.
    pub search: Option<String>,
    /// Sort column; default `last_at`.
    #[param(inline)]
    pub sort: Option<AlarmSort>,
    /// Default `desc` (newest, worst, most first).
    #[param(inline)]
    pub order: Option<SortOrder>,
    pub offset: Option<i64>,
    pub limit: Option<i64>,
}

/// One alarm as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmItem {
    pub id: i64,
    pub customer_id: String,
    pub customer_name: String,
    pub system_id: i64,
    pub system_name: String,
    /// `Configuration`, `Trunk`, `Link`, `Services`, `QoS` or `Security`.
    #[serde(rename = "type")]
    pub alarm_type: String,
    /// `critical`, `major`, `minor` or `warning`.
    pub severity: String,
    pub text: String,
    pub detail: Option<String>,
    /// `site` (the site's monitoring) or `agent`.
    pub source: String,
    /// The issue is still occurring: the alarm cannot be cleared.
    pub active: bool,
    /// Unix seconds.
    pub first_at: i64,
    /// Unix seconds.
    pub last_at: i64,
    pub occurrences: i64,
}

impl From<Alarm> for AlarmItem {
    fn from(a: Alarm) -> Self {
        let source = serde_json::to_value(a.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        AlarmItem {
            id: a.id,
            customer_id: a.customer_id,
            customer_name: a.customer_name,
            system_id: a.system_id,
            system_name: a.system_name,
            alarm_type: a.alarm_type.as_str().to_owned(),
            severity: a.severity.as_str().to_owned(),
            text: a.text,
            detail: a.detail,
            source,
            active: a.active,
            first_at: a.first_at,
            last_at: a.last_at,
            occurrences: a.occurrences,
        }
    }
}

/// A page of alarms.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlarmPage {
    #[serde(flatten)]
    pub page: Page,
    pub items: Vec<AlarmItem>,
}

/// Alarms to clear.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearRequest {
    /// Alarm ids; at least one.
    pub ids: Vec<i64>,
}

/// The alarm type to clear.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearTypeRequest {
    /// `Configuration`, `Trunk`, `Link`, `Services`, `QoS` or `Security` (any case).
    #[serde(rename = "type")]
    pub alarm_type: String,
}

/// What clearing did, id by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClearedBody {
    /// Removed.
    pub cleared: Vec<i64>,
    /// Left: their issue is still occurring.
    pub still_active: Vec<i64>,
    /// No such alarm (already cleared, never existed, or not the caller's to see).
    pub unknown: Vec<i64>,
}

impl From<Cleared> for ClearedBody {
    fn from(c: Cleared) -> Self {
        ClearedBody {
            cleared: c.cleared,
            still_active: c.still_active,
            unknown: c.unknown,
        }
    }
}

/// The alarm type named by `value` (any case), or a 422 naming `field`.
pub(super) fn parse_type(field: &str, value: &str) -> Result<AlarmType, ApiError> {
    AlarmType::parse(value).ok_or_else(|| {
        ApiError::invalid(
            field,
            format!("{field}: must be one of Configuration, Trunk, Link, Services, QoS, Security"),
        )
    })
}

fn parse_severity(value: &str) -> Result<Severity, ApiError> {
    Severity::parse(value).ok_or_else(|| {
        ApiError::invalid(
            "severity",
            "severity: must be one of critical, major, minor, warning",
        )
    })
}

/// Critical highest.
fn severity_rank(severity: Severity) -> usize {
    Severity::ALL.len()
        - Severity::ALL
            .iter()
            .position(|s| *s == severity)
            .unwrap_or(0)
}

/// Every alarm of the customers `scope` sees, newest first.
pub(super) async fn visible_alarms(
    state: &ApiState,
    scope: &Scope,
) -> Result<Vec<Alarm>, ApiError> {
    let alarms = state.store.list_alarms().await?;
    if matches!(scope, Scope::All) {
        return Ok(alarms);
    }
    let customers: HashMap<String, bool> = state
        .store
        .list_customers()
        .await?
        .into_iter()
        .map(|c| {
            let seen = scope.sees_customer(&c);
            (c.id, seen)
        })
        .collect();
    Ok(alarms
        .into_iter()
        .filter(|a| customers.get(&a.customer_id).copied().unwrap_or(false))
        .collect())
}

/// The filters of a list request, checked.
struct Filter {
    alarm_type: Option<AlarmType>,
    severity: Option<Severity>,
    active: Option<bool>,
    customer: Option<String>,
    search: Option<String>,
}

impl Filter {
    fn from_params(params: &AlarmParams) -> Result<Filter, ApiError> {
        Ok(Filter {
            alarm_type: params
                .alarm_type
                .as_deref()
                .map(|t| parse_type("type", t))
                .transpose()?,
            severity: params.severity.as_deref().map(parse_severity).transpose()?,
            active: params.active,
            customer: params.customer.as_deref().map(lookup_key),
            search: params
                .search
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_lowercase),
        })
    }

    fn matches(&self, a: &Alarm) -> bool {
        self.alarm_type.is_none_or(|t| a.alarm_type == t)
            && self.severity.is_none_or(|s| a.severity == s)
            && self.active.is_none_or(|v| a.active == v)
            && self.customer.as_ref().is_none_or(|c| a.customer_id == *c)
            && self.search.as_ref().is_none_or(|needle| {
                [
                    Some(a.customer_id.as_str()),
                    Some(a.customer_name.as_str()),
                    Some(a.system_name.as_str()),
                    Some(a.text.as_str()),
                    a.detail.as_deref(),
                ]
                .into_iter()
                .flatten()
                .any(|field| field.to_lowercase().contains(needle.as_str()))
            })
    }
}

/// Sorts by one column; ties by id, ascending, whatever the direction, so
/// that pages never overlap.
fn sort(alarms: &mut [Alarm], column: AlarmSort, order: SortOrder) {
    let by = |a: &Alarm, b: &Alarm| -> Ordering {
        match column {
            AlarmSort::LastAt => a.last_at.cmp(&b.last_at),
            AlarmSort::FirstAt => a.first_at.cmp(&b.first_at),
            AlarmSort::Severity => severity_rank(a.severity).cmp(&severity_rank(b.severity)),
            AlarmSort::Type => a
                .alarm_type
                .as_str()
                .to_lowercase()
                .cmp(&b.alarm_type.as_str().to_lowercase()),
            AlarmSort::Customer => a
                .customer_name
                .to_lowercase()
                .cmp(&b.customer_name.to_lowercase())
                .then_with(|| a.customer_id.cmp(&b.customer_id)),
            AlarmSort::Occurrences => a.occurrences.cmp(&b.occurrences),
        }
    };
    alarms.sort_by(|a, b| {
        let primary = match order {
            SortOrder::Asc => by(a, b),
            SortOrder::Desc => by(b, a),
        };
        primary.then(a.id.cmp(&b.id))
    });
}

/// The alarms of the customers the caller sees.
#[utoipa::path(get, path = "/alarms", tag = "alarms", params(AlarmParams),
    responses(
        (status = 200, body = AlarmPage),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The role may not view alarms", body = ErrorBody),
        (status = 422, description = "A bad parameter", body = ErrorBody),
    ))]
async fn list_alarms(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<AlarmParams>,
) -> Result<Json<AlarmPage>, ApiError> {
    caller.require(Action::ViewAlarms)?;
    let paging = PageParams {
        offset: params.offset,
        limit: params.limit,
    }
    .resolve()?;
    let filter = Filter::from_params(&params)?;
    let scope = Scope::of(&state.store, &caller).await?;
    let mut alarms: Vec<Alarm> = visible_alarms(&state, &scope)
        .await?
        .into_iter()
        .filter(|a| filter.matches(a))
        .collect();
    sort(
        &mut alarms,
        params.sort.unwrap_or_default(),
        params.order.unwrap_or(SortOrder::Desc),
    );
    let total = i64::try_from(alarms.len()).unwrap_or(i64::MAX);
    let items = alarms
        .into_iter()
        .skip(usize::try_from(paging.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(paging.limit).unwrap_or(0))
        .map(AlarmItem::from)
        .collect();
    Ok(Json(AlarmPage {
        page: Page {
            total,
            offset: paging.offset,
            limit: paging.limit,
        },
        items,
    }))
}

/// Clears `ids` among `visible` (the rest are unknown), audits it and
/// answers what happened.
async fn clear_visible(
    state: &ApiState,
    caller: &Caller,
    target: String,
    requested: serde_json::Value,
    ids: &[i64],
    visible: &[Alarm],
) -> Result<ClearedBody, ApiError> {
    let mut asked = HashSet::new();
    let unique: Vec<i64> = ids.iter().copied().filter(|id| asked.insert(*id)).collect();
    let seen: HashSet<i64> = visible.iter().map(|a| a.id).collect();
    let (mine, invisible): (Vec<i64>, Vec<i64>) =
        unique.into_iter().partition(|id| seen.contains(id));
    let mut cleared = if mine.is_empty() {
        Cleared::default()
    } else {
        state.store.clear_alarms(&mine).await?
    };
    cleared.unknown.extend(invisible);
    for list in [
        &mut cleared.cleared,
        &mut cleared.still_active,
        &mut cleared.unknown,
    ] {
        list.sort_unstable();
    }
    let before: Vec<&Alarm> = visible
        .iter()
        .filter(|a| cleared.cleared.contains(&a.id))
        .collect();
    state
        .audit(
            &caller.actor(),
            AuditEvent {
                action: "alarms.clear",
                target,
                before: Some(serde_json::json!({
                    "requested": requested,
                    "alarms": before,
                })),
                after: serde_json::to_value(&cleared).ok(),
                outcome: "ok".into(),
            },
        )
        .await;
    Ok(cleared.into())
}

/// Clear: removes the given alarms whose issue is no longer occurring.
/// Active alarms stay (`still_active`); ids of no alarm the caller sees are
/// `unknown`.
#[utoipa::path(post, path = "/alarms/clear", tag = "alarms", request_body = ClearRequest,
    responses(
        (status = 200, body = ClearedBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The role may not clear alarms, or no CSRF token", body = ErrorBody),
        (status = 422, description = "A bad body (no ids)", body = ErrorBody),
    ))]
async fn clear_alarms(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(request): ApiJson<ClearRequest>,
) -> Result<Json<ClearedBody>, ApiError> {
    caller.require(Action::ClearAlarms)?;
    if request.ids.is_empty() {
        return Err(ApiError::invalid("ids", "ids: name at least one alarm"));
    }
    let scope = Scope::of(&state.store, &caller).await?;
    let visible = visible_alarms(&state, &scope).await?;
    let body = clear_visible(
        &state,
        &caller,
        "alarms".into(),
        serde_json::json!({ "ids": request.ids }),
        &request.ids,
        &visible,
    )
    .await?;
    Ok(Json(body))
}

/// Clear All By Type: removes every alarm of this type, among the customers
/// the caller sees, whose issue is no longer occurring.
#[utoipa::path(post, path = "/alarms/clear-type", tag = "alarms", request_body = ClearTypeRequest,
    responses(
        (status = 200, body = ClearedBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The role may not clear alarms, or no CSRF token", body = ErrorBody),
        (status = 422, description = "An unknown alarm type", body = ErrorBody),
    ))]
async fn clear_alarms_of_type(
    State(state): State<ApiState>,
    caller: Caller,
    ApiJson(request): ApiJson<ClearTypeRequest>,
) -> Result<Json<ClearedBody>, ApiError> {
    caller.require(Action::ClearAlarms)?;
    let alarm_type = parse_type("type", &request.alarm_type)?;
    let scope = Scope::of(&state.store, &caller).await?;
    let visible = visible_alarms(&state, &scope).await?;
    let ids: Vec<i64> = visible
        .iter()
        .filter(|a| a.alarm_type == alarm_type && !a.active)
        .map(|a| a.id)
        .collect();
    let body = clear_visible(
        &state,
        &caller,
        format!("alarms:type:{}", alarm_type.as_str()),
        serde_json::json!({ "type": alarm_type.as_str(), "ids": ids }),
        &ids,
        &visible,
    )
    .await?;
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_ranks_highest() {
        assert!(severity_rank(Severity::Critical) > severity_rank(Severity::Major));
        assert!(severity_rank(Severity::Major) > severity_rank(Severity::Minor));
        assert!(severity_rank(Severity::Minor) > severity_rank(Severity::Warning));
    }
}
