//! The handshake that precedes the multiplexer, and the site policy the agent
//! reports in it.
//!
//! This module exists because authentication and version negotiation must be
//! settled before any stream exists, in a form that is easy to log and to
//! evolve: two websocket TEXT messages of JSON.
//!
//! 1. agent → gateway: [`Hello`] (credentials, the site's remote-operations
//!    settings, versions);
//! 2. gateway → agent: [`GatewayReply::Welcome`] and the mux starts on binary
//!    messages, or [`GatewayReply::Reject`] and the gateway closes.
//!
//! Unknown JSON fields are ignored, so a minor addition does not need a new
//! protocol version. The async helpers here take no timeout; wrap them in
//! `tokio::time::timeout`. Every websocket message is capped at
//! [`crate::ws::MAX_MESSAGE`].

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::ws::{WsConn, WsError, WsMessage};

use crate::codes;
pub use crate::frame::{Access, Target, CENTRAL_PORT};

/// The protocol version this crate speaks. It is a major version: the gateway
/// rejects a Hello whose version it does not support, and anything that an
/// older peer would misread needs a new one.
pub const PROTOCOL_VERSION: u16 = 1;

/// Codes the gateway uses in [`Reject::code`].
pub mod reject_code {
    pub const UNSUPPORTED_VERSION: &str = "unsupported_version";
    /// Unknown customer or system, or a wrong secret (one code for all, so
    /// names cannot be probed).
    pub const AUTHENTICATION_FAILED: &str = "authentication_failed";
    pub const MALFORMED_HELLO: &str = "malformed_hello";
    /// Too many failed authorisations from the agent's address: refused
    /// without a check until the allowance refills (the reason says when).
    pub const TOO_MANY_FAILURES: &str = "too_many_failures";
}

/// Names an agent lists in [`Hello::features`]: protocol additions it
/// understands beyond version 1's base (see the crate docs, Versioning).
pub mod feature {
    /// OPEN with [`Access::Central`] (target kinds 2 and 3), checked by the
    /// agent against its Centralized Management setting.
    pub const CENTRAL_STREAMS: &str = "central_streams";
    /// DATA frames up to [`crate::frame::MAX_DATA_LEN`] are accepted. The
    /// agent lists it in its hello and the gateway in its welcome; each side
    /// sends frames above [`crate::frame::BASE_DATA_LEN`] only to a peer that
    /// listed it.
    pub const LARGE_DATA: &str = "large_data";
    /// The agent can carry its session over a second connection, the quick
    /// lane (`session::lanes`): the gateway that offers it answers with
    /// [`super::Welcome::quick_lane`], and the agent joins it with a Hello
    /// carrying that token in [`super::Hello::quick_lane`].
    pub const QUICK_LANE: &str = "quick_lane";
}

/// The agent's first message.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u16,
    pub customer: String,
    pub system: String,
    /// The agent secret issued by `comgate admin system add`. Never printed.
    pub secret: String,
    pub settings: SiteSettings,
    pub agent_version: String,
    /// Protocol additions this agent understands ([`feature`]); absent from
    /// older agents' Hellos.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// Set on a second connection: it is the quick lane of the session
    /// whose Welcome carried this token, not a session of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quick_lane: Option<String>,
}

impl Hello {
    /// Whether the agent announced `feature` (one of [`feature`]).
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}

impl fmt::Debug for Hello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hello")
            .field("version", &self.version)
            .field("customer", &self.customer)
            .field("system", &self.system)
            .field("secret", &"********")
            .field("settings", &self.settings)
            .field("agent_version", &self.agent_version)
            .field("features", &self.features)
            .field("quick_lane", &self.quick_lane.as_ref().map(|_| "********"))
            .finish()
    }
}

/// The site's remote-operations settings, as the agent reports them. The
/// agent enforces them on every OPEN; the gateway checks them too, from this
/// report, so that it can answer the partner without a round trip.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteSettings {
    pub remote_access: bool,
    pub colocated_servers: bool,
    pub centralized_management: bool,
    /// Ports of the system's own services that may be reached.
    #[serde(default)]
    pub own_ports: Vec<u16>,
    /// Co-located servers that may be reached.
    #[serde(default)]
    pub tunnels: Vec<TunnelSpec>,
}

/// One co-located server the site lets partners reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelSpec {
    pub application: String,
    pub server_ip: Ipv4Addr,
    pub server_port: u16,
}

/// Why a target may not be opened; the reason reaches the partner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// The REFUSE code ([`codes::REFUSE_POLICY`] for policy refusals).
    pub code: u8,
    pub reason: String,
}

impl Refusal {
    pub fn policy(reason: impl Into<String>) -> Self {
        Refusal {
            code: codes::REFUSE_POLICY,
            reason: reason.into(),
        }
    }
}

impl SiteSettings {
    /// The site policy for a stream target under a level of access: the one
    /// check both the gateway (from the reported settings) and the agent
    /// (from its own) make before a stream is opened.
    pub fn permits(&self, access: Access, target: &Target) -> Result<(), Refusal> {
        match access {
            Access::Remote => self.allows(target),
            Access::Central => self.allows_central(target),
        }
    }

    /// The Centralized Management policy (the admin tools through the
    /// central-management proxy):
    /// - Centralized Management must be on; Remote Access is not needed
    ///   (the manual lists them as separate levels of access);
    /// - only port [`CENTRAL_PORT`];
    /// - the system itself, or a co-located address that a tunnel lists
    ///   with that port (the manual's `admin.<domain>/<customer>/<ip>`
    ///   form). Co-located Servers is not needed: that setting extends
    ///   Remote Access to non-IP Office servers, while this reaches IP Office
    ///   systems the site chose to list.
    pub fn allows_central(&self, target: &Target) -> Result<(), Refusal> {
        if !self.centralized_management {
            return Err(Refusal::policy(
                "Centralized Management is disabled on this site",
            ));
        }
        match *target {
            Target::System { port } if port == CENTRAL_PORT => Ok(()),
            Target::Colocated { ip, port } if port == CENTRAL_PORT => {
                if self
                    .tunnels
                    .iter()
                    .any(|t| t.server_ip == ip && t.server_port == port)
                {
                    Ok(())
                } else {
                    Err(Refusal::policy(format!(
                        "no tunnel for {ip}:{port} is configured on this site"
                    )))
                }
            }
            Target::System { port } | Target::Colocated { port, .. } => Err(Refusal::policy(
                format!("Centralized Management reaches port {CENTRAL_PORT} only, not {port}"),
            )),
        }
    }

    /// The Remote Access policy for a stream target:
    /// - the system's own service needs Remote Access and a port in
    ///   `own_ports`;
    /// - a co-located server needs Remote Access, Co-located Servers, and a
    ///   tunnel listing exactly that (ip, port).
    pub fn allows(&self, target: &Target) -> Result<(), Refusal> {
        if !self.remote_access {
            return Err(Refusal::policy("Remote Access is disabled on this site"));
        }
        match *target {
            Target::System { port } => {
                if self.own_ports.contains(&port) {
                    Ok(())
                } else {
                    Err(Refusal::policy(format!(
                        "port {port} of the system is not offered on this site"
                    )))
                }
            }
            Target::Colocated { ip, port } => {
                if !self.colocated_servers {
                    return Err(Refusal::policy(
                        "Co-located Servers is disabled on this site",
                    ));
                }
                if self
                    .tunnels
                    .iter()
                    .any(|t| t.server_ip == ip && t.server_port == port)
                {
                    Ok(())
                } else {
                    Err(Refusal::policy(format!(
                        "no tunnel for {ip}:{port} is configured on this site"
                    )))
                }
            }
        }
    }
}

/// The gateway's answer to a Hello: the JSON of a [`Welcome`] or of a
/// [`Reject`], told apart by their fields (`version` vs `code`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GatewayReply {
    Welcome(Welcome),
    Reject(Reject),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The version both sides now speak.
    pub version: u16,
    /// How often each side should PING; the agent uses it for its mux.
    pub heartbeat_ms: u64,
    /// Protocol additions the gateway supports ([`feature`]); an older
    /// gateway sends none, and an older agent ignores the field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// Offered to an agent that announced [`feature::QUICK_LANE`]: the
    /// token its quick lane's Hello carries (single use, valid while this
    /// session lasts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quick_lane: Option<String>,
}

impl Welcome {
    pub fn has_feature(&self, name: &str) -> bool {
        self.features.iter().any(|f| f == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// One of [`reject_code`] (stable, for programs).
    pub code: String,
    /// For people.
    pub reason: String,
}

/// What went wrong during the handshake.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("websocket error during the handshake: {0}")]
    WebSocket(#[from] WsError),
    #[error("the connection closed during the handshake")]
    Closed,
    #[error("unexpected {0} message during the handshake")]
    Unexpected(&'static str),
    #[error("malformed handshake message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("rejected by the gateway ({code}): {reason}")]
    Rejected { code: String, reason: String },
    #[error("protocol version {0} is not supported")]
    UnsupportedVersion(u16),
}

/// Checks the Hello's version; the Reject is what the gateway should send.
pub fn check_version(hello: &Hello) -> Result<(), Reject> {
    if hello.version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(Reject {
            code: reject_code::UNSUPPORTED_VERSION.into(),
            reason: format!(
                "protocol version {} is not supported; this gateway speaks version {PROTOCOL_VERSION}",
                hello.version
            ),
        })
    }
}

async fn read_text<S>(ws: &mut WsConn<S>) -> Result<String, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match ws.next_data().await? {
        Some(WsMessage::Text(text)) => Ok(text),
        Some(_) => Err(HandshakeError::Unexpected("binary")),
        None => Err(HandshakeError::Closed),
    }
}

async fn send_json<S, T>(ws: &mut WsConn<S>, value: &T) -> Result<(), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Serialize,
{
    let text = serde_json::to_string(value)?;
    ws.send_text(text).await?;
    Ok(())
}

/// Agent side: sends `hello` and waits for the gateway's answer.
pub async fn agent_handshake<S>(
    ws: &mut WsConn<S>,
    hello: &Hello,
) -> Result<Welcome, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    send_json(ws, hello).await?;
    let text = read_text(ws).await?;
    match serde_json::from_str::<GatewayReply>(&text)? {
        GatewayReply::Welcome(w) if w.version == PROTOCOL_VERSION => Ok(w),
        GatewayReply::Welcome(w) => Err(HandshakeError::UnsupportedVersion(w.version)),
        GatewayReply::Reject(r) => Err(HandshakeError::Rejected {
            code: r.code,
            reason: r.reason,
        }),
    }
}

/// Gateway side: reads the agent's Hello. Authenticating it (secret compared
/// in constant time against the stored hash) is the caller's job.
pub async fn read_hello<S>(ws: &mut WsConn<S>) -> Result<Hello, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let text = read_text(ws).await?;
    Ok(serde_json::from_str(&text)?)
}

/// Gateway side: accepts the agent; start the mux next.
pub async fn send_welcome<S>(ws: &mut WsConn<S>, welcome: &Welcome) -> Result<(), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    send_json(ws, &GatewayReply::Welcome(welcome.clone())).await
}

/// Gateway side: rejects the agent and closes the websocket.
pub async fn send_reject<S>(ws: &mut WsConn<S>, reject: &Reject) -> Result<(), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    send_json(ws, &GatewayReply::Reject(reject.clone())).await?;
    ws.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SiteSettings {
        SiteSettings {
            remote_access: true,
            colocated_servers: true,
            centralized_management: false,
            own_ports: vec![22, 443],
            tunnels: vec![TunnelSpec {
                application: "rdp".into(),
                server_ip: Ipv4Addr::new(10, 0, 0, 5),
                server_port: 3389,
            }],
        }
    }

    fn hello() -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            customer: "12345".into(),
            system: "ipo1".into(),
            secret: "s3cret-value".into(),
            settings: settings(),
            agent_version: "0.1.0".into(),
            features: vec![feature::CENTRAL_STREAMS.into()],
            quick_lane: None,
        }
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let text = format!("{:?}", hello());
        assert!(!text.contains("s3cret-value"));
        assert!(text.contains("********"));
        // Nor a quick lane's token, which stands in for the secret.
        let join = Hello {
            quick_lane: Some("0123456789abcdef0123456789abcdef".into()),
            ..hello()
        };
        let text = format!("{join:?}");
        assert!(!text.contains("0123456789abcdef"), "{text}");
        let json = serde_json::to_value(&join).unwrap();
        assert_eq!(json["quick_lane"], "0123456789abcdef0123456789abcdef");
        let back: Hello = serde_json::from_value(json).unwrap();
        assert_eq!(back, join);
        assert!(!serde_json::to_string(&hello())
            .unwrap()
            .contains("quick_lane"));
    }

    #[test]
    fn policy_allows_listed_targets_only() {
        let s = settings();
        let rdp = Target::Colocated {
            ip: Ipv4Addr::new(10, 0, 0, 5),
            port: 3389,
        };
        assert_eq!(s.allows(&Target::System { port: 22 }), Ok(()));
        assert_eq!(s.allows(&rdp), Ok(()));
        let err = s
            .allows(&Target::Colocated {
                ip: Ipv4Addr::new(10, 0, 0, 5),
                port: 22,
            })
            .unwrap_err();
        assert_eq!(
            err.reason,
            "no tunnel for 10.0.0.5:22 is configured on this site"
        );
        assert_eq!(err.code, codes::REFUSE_POLICY);
        assert!(s.allows(&Target::System { port: 8080 }).is_err());

        let no_colo = SiteSettings {
            colocated_servers: false,
            ..settings()
        };
        assert_eq!(
            no_colo.allows(&rdp).unwrap_err().reason,
            "Co-located Servers is disabled on this site"
        );
        assert_eq!(no_colo.allows(&Target::System { port: 22 }), Ok(()));

        let off = SiteSettings {
            remote_access: false,
            ..settings()
        };
        for target in [Target::System { port: 22 }, rdp] {
            assert_eq!(
                off.allows(&target).unwrap_err().to_string(),
                "Remote Access is disabled on this site"
            );
        }
    }

    #[test]
    fn central_policy_needs_centralized_management_not_remote_access() {
        let ipo2 = Ipv4Addr::new(10, 0, 0, 6);
        let central_only = SiteSettings {
            remote_access: false,
            colocated_servers: false,
            centralized_management: true,
            tunnels: vec![TunnelSpec {
                application: "ipo2".into(),
                server_ip: ipo2,
                server_port: CENTRAL_PORT,
            }],
            ..settings()
        };
        let system = Target::System { port: CENTRAL_PORT };
        let listed = Target::Colocated {
            ip: ipo2,
            port: CENTRAL_PORT,
        };
        assert_eq!(central_only.permits(Access::Central, &system), Ok(()));
        assert_eq!(central_only.permits(Access::Central, &listed), Ok(()));
        // The same targets under Remote Access are refused: it is off.
        assert!(central_only.permits(Access::Remote, &system).is_err());
        assert!(central_only.permits(Access::Remote, &listed).is_err());
        // Only 8443, and only listed addresses.
        let err = central_only
            .permits(Access::Central, &Target::System { port: 22 })
            .unwrap_err();
        assert_eq!(
            err.reason,
            "Centralized Management reaches port 8443 only, not 22"
        );
        let unlisted = Target::Colocated {
            ip: Ipv4Addr::new(10, 0, 0, 7),
            port: CENTRAL_PORT,
        };
        assert!(central_only.permits(Access::Central, &unlisted).is_err());
        // The RDP tunnel of settings() lists 10.0.0.5:3389, not :8443.
        let rdp_host = Target::Colocated {
            ip: Ipv4Addr::new(10, 0, 0, 5),
            port: CENTRAL_PORT,
        };
        assert!(central_only.permits(Access::Central, &rdp_host).is_err());

        // Centralized Management off: nothing, whatever else is on.
        let all_but_central = settings();
        for target in [system, listed] {
            let err = all_but_central
                .permits(Access::Central, &target)
                .unwrap_err();
            assert_eq!(err.code, codes::REFUSE_POLICY);
            assert_eq!(
                err.reason,
                "Centralized Management is disabled on this site"
            );
        }
    }

    #[test]
    fn features_are_optional_in_json() {
        let mut json = serde_json::to_value(hello()).unwrap();
        assert_eq!(json["features"][0], "central_streams");
        json.as_object_mut().unwrap().remove("features");
        let old: Hello = serde_json::from_value(json).unwrap();
        assert!(old.features.is_empty());
        assert!(!old.has_feature(feature::CENTRAL_STREAMS));
        assert!(hello().has_feature(feature::CENTRAL_STREAMS));
        let none = Hello {
            features: Vec::new(),
            ..hello()
        };
        let text = serde_json::to_string(&none).unwrap();
        assert!(!text.contains("features"), "{text}");
    }

    #[test]
    fn json_shapes_are_stable() {
        let json = serde_json::to_value(hello()).unwrap();
        assert_eq!(json["settings"]["tunnels"][0]["server_ip"], "10.0.0.5");
        let back: Hello = serde_json::from_value(json).unwrap();
        assert_eq!(back, hello());

        let welcome = GatewayReply::Welcome(Welcome {
            version: 1,
            heartbeat_ms: 15_000,
            features: Vec::new(),
            quick_lane: None,
        });
        assert_eq!(
            serde_json::to_string(&welcome).unwrap(),
            r#"{"version":1,"heartbeat_ms":15000}"#
        );
        // A welcome with features reads as a welcome, and one from an older
        // gateway (no features) still does; an older agent's Welcome (the
        // same struct without the field) ignores it, as serde does.
        let large = GatewayReply::Welcome(Welcome {
            version: 1,
            heartbeat_ms: 15_000,
            features: vec![feature::LARGE_DATA.into()],
            quick_lane: None,
        });
        let text = serde_json::to_string(&large).unwrap();
        assert_eq!(
            text,
            r#"{"version":1,"heartbeat_ms":15000,"features":["large_data"]}"#
        );
        match serde_json::from_str::<GatewayReply>(&text).unwrap() {
            GatewayReply::Welcome(w) => assert!(w.has_feature(feature::LARGE_DATA)),
            other => panic!("{other:?}"),
        }
        #[derive(serde::Deserialize)]
        struct OlderWelcome {
            version: u16,
            heartbeat_ms: u64,
        }
        let older: OlderWelcome = serde_json::from_str(&text).unwrap();
        assert_eq!((older.version, older.heartbeat_ms), (1, 15_000));
        let reject: GatewayReply =
            serde_json::from_str(r#"{"code":"authentication_failed","reason":"no","extra":1}"#)
                .unwrap();
        assert!(
            matches!(reject, GatewayReply::Reject(r) if r.code == reject_code::AUTHENTICATION_FAILED)
        );
    }

    #[test]
    fn unknown_versions_are_rejected() {
        assert!(check_version(&hello()).is_ok());
        let err = check_version(&Hello {
            version: 2,
            ..hello()
        })
        .unwrap_err();
        assert_eq!(err.code, reject_code::UNSUPPORTED_VERSION);
    }
}
