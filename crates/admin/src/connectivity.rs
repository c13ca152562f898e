//! A customer's connectivity as the customer list shows it (manual chapter
//! 3, "Connectivity Messages"): a colour and the manual's message, derived
//! from what comgate observed of the primary system's agent: connected now
//! and with which settings, when it was last seen, whether its last attempt
//! failed authorisation.
//!
//! Pure: the hub and the store supply the observation, this module decides.

use serde::Serialize;

/// Red, amber or green, as in the customer list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Green,
    Amber,
    Red,
}

/// What comgate knows about one system's agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// An agent session is up now.
    pub connected: bool,
    /// The settings that agent reported (only meaningful while connected).
    pub remote_access: bool,
    pub colocated_servers: bool,
    pub centralized_management: bool,
    /// The agent announced none of the capabilities of current agents: it
    /// can be monitored, nothing more.
    pub legacy: bool,
    /// Unix seconds when a session was last up (its end, or now).
    pub last_seen: Option<i64>,
    /// Unix seconds of the last attempt refused for a wrong secret.
    pub last_auth_failure: Option<i64>,
}

/// The colour, the manual's message, and the state as a stable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Connectivity {
    pub colour: Colour,
    pub state: State,
    pub message: String,
}

/// The states the messages stand for (stable names for filters and the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Connected,
    RemoteOperationsNotPermitted,
    Legacy,
    WaitingForInitialConnection,
    AuthorizationFailed,
    Offline,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Connected,
        State::RemoteOperationsNotPermitted,
        State::Legacy,
        State::WaitingForInitialConnection,
        State::AuthorizationFailed,
        State::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Connected => "connected",
            State::RemoteOperationsNotPermitted => "remote_operations_not_permitted",
            State::Legacy => "legacy",
            State::WaitingForInitialConnection => "waiting_for_initial_connection",
            State::AuthorizationFailed => "authorization_failed",
            State::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The connectivity of a system observed as `o`, at `now` (unix seconds).
pub fn connectivity(o: &Observation, now: i64) -> Connectivity {
    let (colour, state, message) = if o.connected {
        if o.legacy {
            (Colour::Amber, State::Legacy, "Legacy".to_owned())
        } else if !(o.remote_access || o.colocated_servers || o.centralized_management) {
            (
                Colour::Amber,
                State::RemoteOperationsNotPermitted,
                "Remote Operations not permitted".to_owned(),
            )
        } else {
            (
                Colour::Green,
                State::Connected,
                "Connection successful".to_owned(),
            )
        }
    } else if o
        .last_auth_failure
        .is_some_and(|failed| o.last_seen.is_none_or(|seen| failed >= seen))
    {
        // The latest attempt was refused: a wrong secret is the likeliest
        // reason the site is not connected, so it is what the list says.
        (
            Colour::Red,
            State::AuthorizationFailed,
            "Authorization failed".to_owned(),
        )
    } else if let Some(seen) = o.last_seen {
        (
            Colour::Red,
            State::Offline,
            format!(
                "System is either not reachable or offline for last {}",
                duration_words(now.saturating_sub(seen))
            ),
        )
    } else {
        (
            Colour::Amber,
            State::WaitingForInitialConnection,
            "Waiting for initial connection".to_owned(),
        )
    };
    Connectivity {
        colour,
        state,
        message,
    }
}

/// "3 days 4 hours", "2 hours 5 minutes", "7 minutes", "less than a minute":
/// the two largest units, as a person would say it.
pub fn duration_words(secs: i64) -> String {
    let secs = secs.max(0);
    let amounts = [
        (secs / 86_400, "day"),
        (secs % 86_400 / 3_600, "hour"),
        (secs % 3_600 / 60, "minute"),
    ];
    let Some(first) = amounts.iter().position(|(n, _)| *n > 0) else {
        return "less than a minute".to_owned();
    };
    amounts[first..]
        .iter()
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, name)| format!("{n} {name}{}", if *n == 1 { "" } else { "s" }))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn connected() -> Observation {
        Observation {
            connected: true,
            remote_access: true,
            last_seen: Some(NOW),
            ..Observation::default()
        }
    }

    #[test]
    fn each_state_has_its_colour_and_the_manuals_message() {
        let cases = [
            (
                connected(),
                Colour::Green,
                State::Connected,
                "Connection successful",
            ),
            (
                Observation {
                    remote_access: false,
                    ..connected()
                },
                Colour::Amber,
                State::RemoteOperationsNotPermitted,
                "Remote Operations not permitted",
            ),
            (
                Observation {
                    remote_access: false,
                    centralized_management: true,
                    ..connected()
                },
                Colour::Green,
                State::Connected,
                "Connection successful",
            ),
            (
                Observation {
                    legacy: true,
                    ..connected()
                },
                Colour::Amber,
                State::Legacy,
                "Legacy",
            ),
            (
                Observation::default(),
                Colour::Amber,
                State::WaitingForInitialConnection,
                "Waiting for initial connection",
            ),
            (
                Observation {
                    last_auth_failure: Some(NOW - 5),
                    ..Observation::default()
                },
                Colour::Red,
                State::AuthorizationFailed,
                "Authorization failed",
            ),
            (
                Observation {
                    last_seen: Some(NOW - 7_500),
                    ..Observation::default()
                },
                Colour::Red,
                State::Offline,
                "System is either not reachable or offline for last 2 hours 5 minutes",
            ),
        ];
        for (o, colour, state, message) in cases {
            let c = connectivity(&o, NOW);
            assert_eq!(
                (c.colour, c.state, c.message.as_str()),
                (colour, state, message),
                "{o:?}"
            );
        }
    }

    #[test]
    fn an_old_auth_failure_does_not_hide_a_later_session() {
        let o = Observation {
            last_seen: Some(NOW - 60),
            last_auth_failure: Some(NOW - 600),
            ..Observation::default()
        };
        assert_eq!(connectivity(&o, NOW).state, State::Offline);
        let o = Observation {
            last_auth_failure: Some(NOW - 30),
            ..o
        };
        assert_eq!(connectivity(&o, NOW).state, State::AuthorizationFailed);
        // Connected wins over any history.
        let o = Observation {
            last_auth_failure: Some(NOW),
            ..connected()
        };
        assert_eq!(connectivity(&o, NOW).state, State::Connected);
    }

    #[test]
    fn durations_read_like_speech() {
        for (secs, words) in [
            (0, "less than a minute"),
            (59, "less than a minute"),
            (60, "1 minute"),
            (125, "2 minutes"),
            (3_600, "1 hour"),
            (3_660, "1 hour 1 minute"),
            (86_400 + 7_200 + 60, "1 day 2 hours"),
            (3 * 86_400 + 59, "3 days"),
            (-5, "less than a minute"),
        ] {
            assert_eq!(duration_words(secs), words, "{secs}");
        }
    }

    #[test]
    fn state_names_round_trip() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
