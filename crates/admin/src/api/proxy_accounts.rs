//! Maintenance proxy accounts (manual chapter 23, "Proxy Account
//! Management"): the username and password a partner engineer gives the
//! gateway's front door. Each reseller and distributor (the *owner*) has
//! one account; a user sees and sets those of the owners it works for
//! ([`Scope::owners`]): owners are listed even before their account is set.
//!
//! The password is only ever written: it is stored as an argon2 hash and
//! never returned nor audited.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::scope::Scope;
use super::session::Caller;
use super::state::ApiState;
use crate::password::check_password_policy;
use crate::permissions::Action;
use crate::store::{AuditEvent, ProxyAccount};
use crate::StoreError;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_proxy_accounts))
        .routes(routes!(set_proxy_account))
}

/// One owner and its account.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProxyAccountItem {
    /// The reseller or distributor, as customers name it.
    pub owner: String,
    /// `null` until the account is set.
    pub username: Option<String>,
    /// Unix seconds; `null` until set.
    pub created_at: Option<i64>,
    /// Unix seconds; `null` until set.
    pub updated_at: Option<i64>,
}

impl ProxyAccountItem {
    fn new(owner: String, account: Option<&ProxyAccount>) -> Self {
        ProxyAccountItem {
            owner,
            username: account.map(|a| a.username.clone()),
            created_at: account.map(|a| a.created_at),
            updated_at: account.map(|a| a.updated_at),
        }
    }
}

/// The proxy accounts the caller manages, by owner.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProxyAccountList {
    pub items: Vec<ProxyAccountItem>,
}

/// A new username and password for an owner's account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetProxyAccount {
    /// No spaces, control characters or `:`; not another owner's.
    pub username: String,
    /// 9-31 characters of at least two kinds (upper, lower, digits, others).
    pub password: String,
}

/// The owners the caller works for (every owner for a scope of all).
async fn owners_of(state: &ApiState, caller: &Caller) -> Result<BTreeSet<String>, ApiError> {
    let scope = Scope::of(&state.store, caller).await?;
    let customers = state.store.list_customers().await?;
    Ok(match scope.owners(&customers) {
        Some(owners) => owners,
        None => {
            let mut all: BTreeSet<String> = customers
                .into_iter()
                .flat_map(|c| std::iter::once(c.reseller).chain(c.provider))
                .collect();
            all.extend(
                state
                    .store
                    .list_proxy_accounts()
                    .await?
                    .into_iter()
                    .map(|a| a.owner),
            );
            all
        }
    })
}

/// The proxy accounts of the resellers and distributors the caller works
/// for (never a password or its hash).
#[utoipa::path(get, path = "/proxy-accounts", tag = "proxy accounts",
    responses(
        (status = 200, body = ProxyAccountList),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The role does not manage proxy accounts (Administrator, Support)", body = ErrorBody),
    ))]
async fn list_proxy_accounts(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<ProxyAccountList>, ApiError> {
    caller.require(Action::ViewProxyAccounts)?;
    let owners = owners_of(&state, &caller).await?;
    let accounts = state.store.list_proxy_accounts().await?;
    let items = owners
        .into_iter()
        .map(|owner| {
            let account = accounts.iter().find(|a| a.owner == owner);
            ProxyAccountItem::new(owner, account)
        })
        .collect();
    Ok(Json(ProxyAccountList { items }))
}

/// Sets the username and password of an owner's proxy account; the old
/// password stops working at once.
#[utoipa::path(put, path = "/proxy-accounts/{owner}", tag = "proxy accounts",
    params(("owner" = String, Path, description = "Reseller or distributor name (URL-encoded)")),
    request_body = SetProxyAccount,
    responses(
        (status = 200, body = ProxyAccountItem),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The role may not set proxy accounts, or no CSRF token", body = ErrorBody),
        (status = 404, description = "No such owner among those the caller works for", body = ErrorBody),
        (status = 409, description = "Another owner's account has that username", body = ErrorBody),
        (status = 422, description = "A bad username or a password outside the policy", body = ErrorBody),
    ))]
async fn set_proxy_account(
    State(state): State<ApiState>,
    caller: Caller,
    Path(owner): Path<String>,
    ApiJson(request): ApiJson<SetProxyAccount>,
) -> Result<Json<ProxyAccountItem>, ApiError> {
    caller.require(Action::SetProxyAccounts)?;
    if !owners_of(&state, &caller).await?.contains(&owner) {
        return Err(ApiError::not_found(format!(
            "no proxy account owner {owner:?}"
        )));
    }
    check_password_policy(&request.password).map_err(StoreError::from)?;
    let before = state.store.proxy_account_of(&owner).await?;
    let account = state
        .store
        .set_proxy_account(&owner, &request.username, &request.password)
        .await
        .map_err(|e| match e {
            // The store's message names the other owner, which the caller
            // may not see.
            StoreError::UsernameTaken { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "that username belongs to another proxy account; choose another",
            )
            .with_field("username"),
            e => e.into(),
        })?;
    let view = |a: &ProxyAccount| serde_json::json!({"owner": a.owner, "username": a.username});
    state
        .audit(
            &caller.actor(),
            AuditEvent {
                action: "proxy_account.set",
                target: format!("proxy_account:{owner}"),
                before: before.as_ref().map(view),
                after: Some(view(&account)),
                outcome: "ok".into(),
            },
        )
        .await;
    Ok(Json(ProxyAccountItem::new(
        account.owner.clone(),
        Some(&account),
    )))
}
