//! The REST API's one error shape: an HTTP status, a stable machine code and
//! a human message, as `{"code": ..., "message": ..., "field": ...}`.
//!
//! Codes are part of the API contract (clients branch on them; messages may
//! be reworded). 401 means "who are you?" (no usable session, wrong login);
//! 403 means "known, but not allowed" (role, visibility, CSRF, read-only,
//! wallboard lock, pending password change).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::permissions::Action;
use crate::StoreError;

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable code, e.g. `not_authenticated`, `forbidden`, `invalid_field`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error answer of the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Seconds for `Retry-After` (a blocked login).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn not_authenticated(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "not_authenticated", message)
    }

    /// The role may not do `action` at all.
    pub fn forbidden(action: Action) -> Self {
        let name = serde_json::to_value(action)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("your role does not allow {name}"),
        )
    }

    /// A thing that does not exist, or that the caller may not see (the two
    /// are not told apart, so that names cannot be probed).
    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// A request parameter or body field that cannot be used.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).with_field(field)
    }

    pub fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code.to_owned(),
            message: self.message.clone(),
            field: self.field.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        use StoreError as E;
        let message = error.to_string();
        match error {
            E::InvalidField { field, .. } => ApiError::invalid(field, message),
            E::InvalidUserSetting { field, .. } => ApiError::invalid(field.as_str(), message),
            E::InvalidCustomerField { field, .. } => ApiError::invalid(field.as_str(), message),
            E::WeakPassword(_) | E::PasswordReused => ApiError::invalid("password", message),
            E::InvalidCustomerId { .. } => ApiError::invalid("id", message),
            E::InvalidSystemName { .. } => ApiError::invalid("name", message),
            E::InvalidAlarm(_) => ApiError::invalid("alarm", message),
            E::InvalidAction(_) => ApiError::invalid("action", message),
            E::UnknownCustomer(_)
            | E::UnknownSystemId(_)
            | E::UnknownSystem { .. }
            | E::UnknownUser(_)
            | E::UnknownUserId(_) => ApiError::not_found(message),
            E::DuplicateCustomer(_)
            | E::DuplicateSystem { .. }
            | E::PrimaryExists { .. }
            | E::UsernameTaken { .. }
            | E::DuplicateUser(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            E::CannotDeleteSelf => {
                ApiError::new(StatusCode::CONFLICT, "cannot_delete_self", message)
            }
            E::InvalidLocation(_)
            | E::Open { .. }
            | E::Migrate(_)
            | E::Hashing(_)
            | E::NoSealKey
            | E::Unseal { .. }
            | E::Sealing(_)
            | E::Database(_) => {
                tracing::error!(error = %message, "admin API storage error");
                ApiError::internal()
            }
        }
    }
}
