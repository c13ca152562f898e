//! Every way the front door can turn a partner away, and the one place where
//! each becomes an HTTP status, a reason phrase and a body.
//!
//! The reason phrase is specific because it is what reaches the person:
//! proxytunnel prints the status line (`HTTP return code: 403 Remote Access is
//! disabled on this site`), curl prints it with `-v`. Unknown customers and
//! other partners' customers share one variant, so both produce the same
//! bytes and names cannot be enumerated.

use std::time::Duration;

/// A request the front door answers with something other than 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request head is not valid HTTP/1.1.
    BadRequest(String),
    /// The head grew past `gateway.max_head_bytes`.
    HeadTooLarge,
    /// Anything but CONNECT: comgate is not a forward proxy.
    MethodNotAllowed(String),
    /// A target outside `.maint.<domain>`: comgate never dials anything itself.
    NotMaintAddress,
    /// A maint address that does not follow the grammar (bad port, bad IP ...).
    BadMaintAddress(String),
    /// No `Proxy-Authorization: Basic`.
    AuthRequired,
    /// Wrong username or password, or a scheme other than Basic.
    BadCredentials,
    /// Too many failed logins from this address or for this account.
    TooManyFailures { retry_after: Duration },
    /// Unknown customer or system, or one this account does not serve:
    /// deliberately indistinguishable.
    NoSuchAddress,
    /// `gateway.max_tunnels_per_account` reached.
    TooManyTunnels { limit: usize },
    /// The site's agent is not connected.
    Offline { customer: String, system: String },
    /// The site's remote-operations settings forbid this target.
    SiteRefused { reason: String },
    /// The site's connection carries as many streams as it takes (serve's
    /// `agents.max_streams_per_site`, or the agent's `max_streams`).
    SiteFull { reason: String },
    /// The agent could not reach the target (in time).
    TargetUnreachable { reason: String },
    /// The agent's session ended while the stream was being opened.
    AgentLost { customer: String, system: String },
    /// A fault of ours (database unreachable ...); details are in the log.
    Internal,
}

impl Refusal {
    /// Status code and reason phrase.
    pub fn status(&self) -> (u16, String) {
        match self {
            Refusal::BadRequest(_) => (400, "Bad Request".into()),
            Refusal::HeadTooLarge => (431, "Request Header Fields Too Large".into()),
            Refusal::MethodNotAllowed(_) => (405, "Method Not Allowed".into()),
            Refusal::NotMaintAddress => (403, "Not a maintenance address".into()),
            Refusal::BadMaintAddress(_) => (400, "Bad maintenance address".into()),
            Refusal::AuthRequired | Refusal::BadCredentials => {
                (407, "Proxy Authentication Required".into())
            }
            Refusal::TooManyFailures { .. } => (429, "Too many failed proxy logins".into()),
            Refusal::NoSuchAddress => (403, "No such maintenance address for this account".into()),
            Refusal::TooManyTunnels { .. } => {
                (429, "Too many open tunnels for this account".into())
            }
            Refusal::Offline { .. } => (502, "System offline".into()),
            Refusal::SiteRefused { reason } => (403, phrase(reason)),
            Refusal::SiteFull { .. } => (503, "Site at its stream limit".into()),
            Refusal::TargetUnreachable { .. } => (504, "Target not reachable from the site".into()),
            Refusal::AgentLost { .. } => (502, "Site connection lost".into()),
            Refusal::Internal => (500, "Internal error".into()),
        }
    }

    /// A sentence a person can act on.
    pub fn body(&self) -> String {
        match self {
            Refusal::BadRequest(why) => format!("The request is not valid HTTP/1.1: {why}.\n"),
            Refusal::HeadTooLarge => "The request head is too large.\n".into(),
            Refusal::MethodNotAllowed(m) => format!(
                "This is comgate's CONNECT proxy; {m} is not supported. Use CONNECT <customer>-<system>.maint.<domain>:<port>.\n"
            ),
            Refusal::NotMaintAddress => {
                "comgate only connects to maintenance addresses: <customer-id>[-<system>][-<ip>].maint.<domain>.\n".into()
            }
            Refusal::BadMaintAddress(why) => format!("Bad maintenance address: {why}.\n"),
            Refusal::AuthRequired => {
                "Proxy authentication required: use your reseller's or distributor's maintenance proxy account.\n".into()
            }
            Refusal::BadCredentials => "Wrong proxy username or password.\n".into(),
            Refusal::TooManyFailures { retry_after } => format!(
                "Too many failed proxy logins; try again in {} seconds.\n",
                retry_after.as_secs().max(1)
            ),
            Refusal::NoSuchAddress => {
                "No such customer or system for this proxy account.\n".into()
            }
            Refusal::TooManyTunnels { limit } => format!(
                "This proxy account already has {limit} open tunnels (the limit); close one and retry.\n"
            ),
            Refusal::Offline { customer, system } => format!(
                "System {system} of customer {customer} is offline: its site agent is not connected to comgate.\n"
            ),
            Refusal::SiteRefused { reason } => format!("Refused by the site's settings: {reason}.\n"),
            Refusal::SiteFull { reason } => format!(
                "The site's connection carries as many streams as it takes ({reason}); retry when one closes.\n"
            ),
            Refusal::TargetUnreachable { reason } => {
                format!("The site could not reach the target: {reason}.\n")
            }
            Refusal::AgentLost { customer, system } => format!(
                "The connection to system {system} of customer {customer} was lost; retry in a few seconds.\n"
            ),
            Refusal::Internal => "comgate could not process the request; the operator has the details in its log.\n".into(),
        }
    }

    /// Whether the client may send another request on the same connection:
    /// browsers retry a 407 with credentials on the connection they have.
    pub fn keeps_connection(&self) -> bool {
        matches!(self, Refusal::AuthRequired | Refusal::BadCredentials)
    }

    /// A short label for logs and the audit event.
    pub fn outcome(&self) -> &'static str {
        match self {
            Refusal::BadRequest(_) => "bad_request",
            Refusal::HeadTooLarge => "head_too_large",
            Refusal::MethodNotAllowed(_) => "method_not_allowed",
            Refusal::NotMaintAddress => "not_maint_address",
            Refusal::BadMaintAddress(_) => "bad_maint_address",
            Refusal::AuthRequired => "auth_required",
            Refusal::BadCredentials => "bad_credentials",
            Refusal::TooManyFailures { .. } => "rate_limited",
            Refusal::NoSuchAddress => "no_such_address",
            Refusal::TooManyTunnels { .. } => "too_many_tunnels",
            Refusal::Offline { .. } => "offline",
            Refusal::SiteRefused { .. } => "site_refused",
            Refusal::SiteFull { .. } => "site_full",
            Refusal::TargetUnreachable { .. } => "target_unreachable",
            Refusal::AgentLost { .. } => "agent_lost",
            Refusal::Internal => "internal_error",
        }
    }

    /// The headers that go with the status, whatever the HTTP version
    /// (name, value): the challenge for 407, `Allow` for 405, `Retry-After`
    /// for a rate limit.
    pub fn headers(&self, realm: &str) -> Vec<(&'static str, String)> {
        match self {
            Refusal::AuthRequired | Refusal::BadCredentials => vec![(
                "Proxy-Authenticate",
                format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
            )],
            Refusal::MethodNotAllowed(_) => vec![("Allow", "CONNECT".into())],
            Refusal::TooManyFailures { retry_after } => {
                vec![("Retry-After", retry_after.as_secs().max(1).to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// The `Proxy-Status` value (RFC 9209) that carries the reason where
    /// HTTP/2 has no reason phrase: `comgate; error=<type>; details="..."`.
    pub fn proxy_status(&self, reason: &str) -> String {
        let error = match self {
            Refusal::BadRequest(_) | Refusal::BadMaintAddress(_) | Refusal::HeadTooLarge => {
                "http_request_error"
            }
            Refusal::Offline { .. }
            | Refusal::AgentLost { .. }
            | Refusal::TargetUnreachable { .. } => "destination_unavailable",
            Refusal::Internal => "proxy_internal_error",
            _ => "http_request_denied",
        };
        // An sf-string holds printable ASCII only, with \ and " escaped.
        let details: String = reason
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .flat_map(|c| match c {
                '\\' | '"' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        format!("comgate; error={error}; details=\"{details}\"")
    }

    /// The complete HTTP/1.1 response.
    pub fn render(&self, realm: &str, close: bool) -> Vec<u8> {
        let (code, reason) = self.status();
        let body = self.body();
        let mut out = format!(
            "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in self.headers(realm) {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str(if close {
            "Connection: close\r\n"
        } else {
            "Connection: keep-alive\r\n"
        });
        out.push_str("\r\n");
        out.push_str(&body);
        out.into_bytes()
    }
}

/// A reason phrase may not contain CR/LF; keep it to one short printable line.
fn phrase(reason: &str) -> String {
    let mut s: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect();
    if s.is_empty() {
        s.push_str("Forbidden");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_reseller_and_unknown_customer_render_identically() {
        // Both cases are the one variant; this guards the rendering against
        // ever mixing in request details.
        let a = Refusal::NoSuchAddress.render("comgate", true);
        let b = Refusal::NoSuchAddress.render("comgate", true);
        assert_eq!(a, b);
        assert!(String::from_utf8(a).unwrap().starts_with("HTTP/1.1 403 "));
    }

    #[test]
    fn auth_required_has_challenge_and_length() {
        let r =
            String::from_utf8(Refusal::AuthRequired.render("comgate example.test", false)).unwrap();
        assert!(r.starts_with("HTTP/1.1 407 Proxy Authentication Required\r\n"));
        assert!(r.contains("Proxy-Authenticate: Basic realm=\"comgate example.test\""));
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        assert!(r.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert!(r.contains("Connection: keep-alive"));
    }

    #[test]
    fn site_reason_is_sanitised_into_the_status_line() {
        let r = Refusal::SiteRefused {
            reason: "Remote Access is disabled\r\nX-Evil: 1".into(),
        };
        let (code, phrase) = r.status();
        assert_eq!(code, 403);
        assert!(!phrase.contains('\r') && !phrase.contains('\n'));
    }
}
