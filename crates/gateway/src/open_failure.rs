//! Why a stream to a site did not open, in the terms a client is answered
//! in. The front door ([`crate::refusal::Refusal`]) and the central proxy
//! (`central::error::CentralError`) each turn these into their own answers;
//! the reading of the multiplexer's error and the agent's refusal codes
//! lives here once.

use tunnel_proto::codes;
use tunnel_proto::mux::OpenError;

/// A failed [`tunnel_proto::mux::MuxHandle::open`], classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenFailure {
    /// The agent's copy of the site's settings forbids the target.
    Forbidden { reason: String },
    /// The site's connection carries as many streams as one of its ends
    /// takes (serve's `agents.max_streams_per_site` or the agent's `max_streams`),
    /// or the agent takes no more for now.
    SiteFull { reason: String },
    /// The agent could not reach the target.
    Unreachable { reason: String },
    /// The site's session ended meanwhile.
    SessionGone,
}

impl From<OpenError> for OpenFailure {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Refused { code, reason } if code == codes::REFUSE_POLICY => {
                OpenFailure::Forbidden { reason }
            }
            OpenError::Refused { code, reason }
                if code == codes::REFUSE_TOO_MANY_STREAMS || code == codes::REFUSE_BUSY =>
            {
                OpenFailure::SiteFull { reason }
            }
            OpenError::Refused { reason, .. } => OpenFailure::Unreachable { reason },
            OpenError::TooManyStreams { limit } => OpenFailure::SiteFull {
                reason: format!(
                    "the gateway takes at most {limit} streams per site, agents.max_streams_per_site"
                ),
            },
            OpenError::Closed(_) => OpenFailure::SessionGone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_codes_and_local_limits_are_classified() {
        let refused = |code, reason: &str| OpenError::Refused {
            code,
            reason: reason.into(),
        };
        assert_eq!(
            OpenFailure::from(refused(codes::REFUSE_POLICY, "no tunnel")),
            OpenFailure::Forbidden {
                reason: "no tunnel".into()
            }
        );
        assert_eq!(
            OpenFailure::from(refused(codes::REFUSE_TOO_MANY_STREAMS, "full")),
            OpenFailure::SiteFull {
                reason: "full".into()
            }
        );
        assert_eq!(
            OpenFailure::from(refused(codes::REFUSE_BUSY, "busy")),
            OpenFailure::SiteFull {
                reason: "busy".into()
            }
        );
        assert_eq!(
            OpenFailure::from(OpenError::TooManyStreams { limit: 1024 }),
            OpenFailure::SiteFull {
                reason:
                    "the gateway takes at most 1024 streams per site, agents.max_streams_per_site"
                        .into()
            }
        );
        assert!(matches!(
            OpenFailure::from(refused(codes::REFUSE_UNREACHABLE, "refused")),
            OpenFailure::Unreachable { .. }
        ));
    }
}
