//! Every way a central-management request can fail, and the one function
//! that turns each into an HTTP answer.
//!
//! The listener has no login of its own (the system's own login protects
//! the web apps, as in the manual), so anyone can ask it about any customer
//! id. What it answers must not tell which ids exist: an unknown customer, a
//! customer whose system is not connected, and one whose system has
//! Centralized Management off all get the **same** 403 and body
//! ([`CentralError::NotReachable`]). Only a customer whose connected system
//! has Centralized Management on — whose Web Manager login page anyone can
//! already load — gets more specific answers: the system went offline
//! (502), a co-located address that no tunnel lists (403 with the reason),
//! the system could not be reached from the site (504).

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::route::RouteError;
use super::ResponseBody;

/// Why a central-management request was not proxied.
#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    /// Dot segments, encoded separators, a foreign absolute-form host.
    #[error("bad request target: {0}")]
    BadTarget(RouteError),
    /// CONNECT and the like: this is a reverse proxy.
    #[error("method {0} is not proxied")]
    Method(String),
    /// Unknown customer, system offline (never seen with Centralized
    /// Management on), or Centralized Management off: one answer for all.
    #[error("no system reachable for centralized management ({why})")]
    NotReachable { why: &'static str },
    /// The site (Centralized Management on) refuses this target, e.g. a
    /// co-located address that no tunnel lists.
    #[error("refused by the site: {reason}")]
    SiteRefused { reason: String },
    /// A system seen with Centralized Management on is not connected now.
    #[error("the system of customer {customer} is offline")]
    Offline { customer: String },
    /// The site's agent lost its connection during the request.
    #[error("the connection to the system of customer {customer} was lost")]
    AgentLost { customer: String },
    /// The agent predates central streams (no `central_streams` feature).
    #[error("the agent of customer {customer} is too old for centralized management")]
    AgentTooOld { customer: String },
    /// The agent could not reach the service, or the system did not answer
    /// in time.
    #[error("the system did not answer: {reason}")]
    Unreachable { reason: String },
    /// The site's connection carries as many streams as it takes.
    #[error("the site's connection carries as many streams as it takes ({reason})")]
    SiteFull { reason: String },
    /// TLS or HTTP with the system failed.
    #[error("the system's HTTPS service failed: {reason}")]
    BadUpstream { reason: String },
    /// `max_concurrent_requests` reached.
    #[error("too many requests in progress")]
    Busy,
    /// The store failed.
    #[error("internal error")]
    Internal,
}

/// The same body for every answer that must not tell customers apart.
pub const NOT_REACHABLE_BODY: &str =
    "403 Forbidden: no system is reachable for centralized management at this address.\n\
The address is https://admin.<domain>:8443/<customer-id>/..., and the customer's system must be \
connected to comgate with Centralized Management on in its Remote Operations settings.\n";

impl CentralError {
    /// Status, and the text for the body.
    pub fn status_and_text(&self) -> (StatusCode, String) {
        match self {
            CentralError::BadTarget(e) => {
                (StatusCode::BAD_REQUEST, format!("400 Bad Request: {e}.\n"))
            }
            CentralError::Method(m) => (
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "405 Method Not Allowed: {m} is not proxied; this is not a forward proxy.\n"
                ),
            ),
            CentralError::NotReachable { .. } => {
                (StatusCode::FORBIDDEN, NOT_REACHABLE_BODY.to_owned())
            }
            CentralError::SiteRefused { reason } => (
                StatusCode::FORBIDDEN,
                format!("403 Forbidden: refused by the site: {reason}.\n"),
            ),
            CentralError::Offline { .. } | CentralError::AgentLost { .. } => (
                StatusCode::BAD_GATEWAY,
                format!("502 Bad Gateway: {self}.\n"),
            ),
            CentralError::AgentTooOld { .. } | CentralError::BadUpstream { .. } => (
                StatusCode::BAD_GATEWAY,
                format!("502 Bad Gateway: {self}.\n"),
            ),
            CentralError::Unreachable { .. } => (
                StatusCode::GATEWAY_TIMEOUT,
                format!("504 Gateway Timeout: {self}.\n"),
            ),
            CentralError::SiteFull { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("503 Service Unavailable: {self}; retry when one closes.\n"),
            ),
            CentralError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable: too many requests in progress; retry shortly.\n".into(),
            ),
            CentralError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error\n".into(),
            ),
        }
    }

    /// The HTTP answer to the client.
    pub fn into_response(self) -> Response<ResponseBody> {
        let (status, text) = self.status_and_text();
        let mut resp = Response::new(text_body(text));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// A small body made by comgate itself.
pub fn text_body(text: impl Into<Bytes>) -> ResponseBody {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_undisclosed_case_gets_the_same_answer() {
        let answers: Vec<_> = ["unknown customer", "offline", "centralized management off"]
            .into_iter()
            .map(|why| CentralError::NotReachable { why }.status_and_text())
            .collect();
        assert!(answers.iter().all(|a| a == &answers[0]));
        assert_eq!(answers[0].0, StatusCode::FORBIDDEN);
    }

    #[test]
    fn statuses_follow_design() {
        let cases = [
            (
                CentralError::BadTarget(RouteError::Uncanonical("dot segment")),
                400,
            ),
            (
                CentralError::Offline {
                    customer: "1".into(),
                },
                502,
            ),
            (CentralError::Unreachable { reason: "x".into() }, 504),
            (
                CentralError::SiteRefused {
                    reason: "no tunnel".into(),
                },
                403,
            ),
            (CentralError::Busy, 503),
            (CentralError::SiteFull { reason: "x".into() }, 503),
        ];
        for (e, code) in cases {
            assert_eq!(e.status_and_text().0.as_u16(), code, "{e}");
        }
    }
}
