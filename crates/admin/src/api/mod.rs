//! The REST API under `/com/api/` on the admin listener (issue 5 item 10):
//! JSON in and out, the session cookie for who is calling, the permission
//! matrix and visibility on every endpoint, errors in one shape
//! ([`error::ApiError`]), and an OpenAPI document at
//! `/com/api/openapi.json` generated from the handlers themselves (utoipa),
//! so that it cannot drift from what is served.
//!
//! Each group of endpoints is its own module with a `routes()` that the
//! router below merges; handlers take a [`session::Caller`] (authenticated,
//! idle time and CSRF checked) and ask it `require(action)` before acting.

pub mod alarms;
pub mod audit;
pub mod auth;
pub mod customers;
pub mod dashboard;
pub mod error;
pub mod json;
pub mod page;
pub mod proxy_accounts;
pub mod remote_support;
pub mod scope;
pub mod session;
pub mod state;
pub mod systems;
pub mod users;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ErrorBody};
pub use state::{ApiConfig, ApiState, Clock, LiveStatus, ManualClock, NothingConnected};

/// Where the API is mounted on the admin listener.
pub const BASE: &str = "/com/api";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "comgate admin API",
        description = "The admin plane of comgate: COM users, customers and systems, live status, alarms, proxy accounts, remote-support addresses, dashboard and audit log. Log in with POST /login; send the session's CSRF token in X-CSRF-Token with every state-changing request."
    ),
    servers((url = "/com/api")),
    modifiers(&SessionCookie),
    security(("session" = [])),
)]
struct ApiDoc;

/// Declares the session cookie as the API's authentication.
struct SessionCookie;

impl Modify for SessionCookie {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                session::COOKIE,
                "Set by POST /login. State-changing requests also need the X-CSRF-Token header.",
            ))),
        );
    }
}

/// All endpoint groups with their OpenAPI descriptions.
fn documented() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::routes())
        .merge(audit::routes())
        .merge(users::routes())
        .merge(customers::routes())
        .merge(systems::routes())
        .merge(alarms::routes())
        .merge(proxy_accounts::routes())
        .merge(remote_support::routes())
        .merge(dashboard::routes())
}

/// Answers any operation may give besides its own, so that the document
/// lists every status a client can see: a body the API cannot take, and a
/// failure of the server itself.
fn add_common_responses(doc: &mut OpenApiDoc) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    let with_body = [
        ("400", "The body is not well-formed JSON (invalid_json)"),
        (
            "413",
            "The body is larger than [admin] max_body_bytes (body_too_large)",
        ),
        (
            "415",
            "The body is not application/json (unsupported_media_type)",
        ),
        (
            "422",
            "The body or a field of it cannot be used (invalid_body, invalid_field)",
        ),
    ];
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            let responses = &mut op.responses.responses;
            if op.request_body.is_some() {
                for (status, description) in with_body {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description).into());
                }
            }
            responses.entry("500".to_owned()).or_insert_with(|| {
                error("The server failed; its log has the details (internal)").into()
            });
        }
    }
}

/// The OpenAPI document of the API.
pub fn openapi() -> OpenApiDoc {
    let (_, mut doc) = documented().split_for_parts();
    add_common_responses(&mut doc);
    // Login is how a session starts, so it needs none.
    if let Some(item) = doc.paths.paths.get_mut("/login") {
        if let Some(op) = item.post.as_mut() {
            op.security = Some(Vec::new());
        }
    }
    doc
}

/// The API, mounted at [`BASE`], ready to merge into the admin listener's app.
pub fn router(state: ApiState) -> Router {
    let max_body = state.config.max_body_bytes;
    let (api, _) = documented().split_for_parts();
    let doc = openapi();
    let api = api
        .route("/openapi.json", get(move || async move { Json(doc) }))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_endpoint",
                "no such endpoint under /com/api",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            max_body,
            json::read_whole_body,
        ))
        .with_state(state);
    Router::new().nest(BASE, api)
}
