//! Reports a site agent sends to comgate in CONTROL messages: its alarms
//! (manual chapter 4) and the actions its systems perform (an upgrade, a
//! backup: the customer list's "in progress", "action completed" and
//! "action failed" icons, manual chapter 3). The gateway treats a report it cannot parse as
//! a report it ignores (logged), never as a reason to end the session: an
//! agent newer than the gateway may send kinds this version does not know.

use serde::{Deserialize, Serialize};

/// Longest alarm text, in bytes; longer texts are refused, not cut, so that
/// the same alarm always has the same text (it is the alarm's identity).
pub const MAX_ALARM_TEXT: usize = 512;
/// Longest alarm or action detail, in bytes; longer details are cut.
pub const MAX_ALARM_DETAIL: usize = 2048;
/// Longest action id and action kind, in bytes; longer ones are refused.
pub const MAX_ACTION_NAME: usize = 64;

/// One report of a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum SiteReport {
    Alarm(AlarmReport),
    Action(ActionReport),
}

/// An action a system performs (an upgrade, a backup, a restore), as the
/// site reports it: once when it starts (`in_progress`) and once when it
/// ends (`completed` or `failed`). `id` is the site's name for this one
/// run of the action, the same in every report of it; an action is over
/// once it ended, and later reports of the same id change nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionReport {
    pub id: String,
    /// What the action does, e.g. `upgrade` or `backup`.
    pub kind: String,
    pub state: ActionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When it started or ended, unix seconds (the site's clock).
    pub occurred_at: i64,
}

/// Where an action stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    InProgress,
    Completed,
    Failed,
}

impl ActionState {
    pub const ALL: [ActionState; 3] = [
        ActionState::InProgress,
        ActionState::Completed,
        ActionState::Failed,
    ];

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::InProgress => "in_progress",
            ActionState::Completed => "completed",
            ActionState::Failed => "failed",
        }
    }

    /// Case-insensitive.
    pub fn parse(s: &str) -> Option<ActionState> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
    }

    pub fn ended(self) -> bool {
        self != ActionState::InProgress
    }
}

/// An alarm as the site saw it: raised (active) or over (not active).
///
/// A system's alarm is identified by its type and text; comgate keeps one
/// row per alarm with its first and last occurrence and a count, so a site
/// reports the same text each time the same problem occurs and puts what
/// varies into `detail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmReport {
    #[serde(rename = "type")]
    pub alarm_type: AlarmType,
    pub severity: Severity,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Whether the problem is still occurring.
    pub active: bool,
    /// Who raised it: the site's monitoring (through the agent's alarm
    /// source) or the agent itself.
    pub source: AlarmSource,
    /// When it occurred, unix seconds (the site's clock).
    pub occurred_at: i64,
}

/// The manual's six alarm types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlarmType {
    Configuration,
    Trunk,
    Link,
    Services,
    #[serde(rename = "QoS")]
    Qos,
    Security,
}

impl AlarmType {
    pub const ALL: [AlarmType; 6] = [
        AlarmType::Configuration,
        AlarmType::Trunk,
        AlarmType::Link,
        AlarmType::Services,
        AlarmType::Qos,
        AlarmType::Security,
    ];

    /// The manual's spelling, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmType::Configuration => "Configuration",
            AlarmType::Trunk => "Trunk",
            AlarmType::Link => "Link",
            AlarmType::Services => "Services",
            AlarmType::Qos => "QoS",
            AlarmType::Security => "Security",
        }
    }

    /// Case-insensitive.
    pub fn parse(s: &str) -> Option<AlarmType> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// How bad it is, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Major,
    Minor,
    Warning,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::Major,
        Severity::Minor,
        Severity::Warning,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Major => "major",
            Severity::Minor => "minor",
            Severity::Warning => "warning",
        }
    }

    /// Case-insensitive.
    pub fn parse(s: &str) -> Option<Severity> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmSource {
    Site,
    Agent,
}

/// Why a report was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("not a site report: {0}")]
    Shape(String),
    #[error("alarm text is empty")]
    EmptyText,
    #[error("alarm text is {0} bytes, at most {MAX_ALARM_TEXT} are allowed")]
    TextTooLong(usize),
    #[error("action {0} is empty")]
    EmptyActionName(&'static str),
    #[error("action {0} is {1} bytes, at most {MAX_ACTION_NAME} are allowed")]
    ActionNameTooLong(&'static str, usize),
}

/// Cuts `detail` to [`MAX_ALARM_DETAIL`] bytes at a character boundary.
fn cut_detail(detail: &mut Option<String>) {
    if let Some(detail) = detail {
        if detail.len() > MAX_ALARM_DETAIL {
            let mut cut = MAX_ALARM_DETAIL;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
        }
    }
}

/// Trims an action's id or kind and checks its length.
fn action_name(value: &str, what: &'static str) -> Result<String, ReportError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ReportError::EmptyActionName(what));
    }
    if value.len() > MAX_ACTION_NAME {
        return Err(ReportError::ActionNameTooLong(what, value.len()));
    }
    Ok(value.to_owned())
}

impl ActionReport {
    /// Checks the limits; cuts an over-long detail at a character boundary.
    pub fn validated(mut self) -> Result<ActionReport, ReportError> {
        self.id = action_name(&self.id, "id")?;
        self.kind = action_name(&self.kind, "kind")?;
        cut_detail(&mut self.detail);
        Ok(self)
    }
}

impl AlarmReport {
    /// Checks the limits; cuts an over-long detail at a character boundary.
    pub fn validated(mut self) -> Result<AlarmReport, ReportError> {
        let text = self.text.trim();
        if text.is_empty() {
            return Err(ReportError::EmptyText);
        }
        if text.len() > MAX_ALARM_TEXT {
            return Err(ReportError::TextTooLong(text.len()));
        }
        self.text = text.to_owned();
        cut_detail(&mut self.detail);
        Ok(self)
    }
}

impl SiteReport {
    pub fn to_value(&self) -> serde_json::Value {
        // Serializing these plain structs cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Parses and validates a CONTROL message from a site.
    pub fn from_value(value: serde_json::Value) -> Result<SiteReport, ReportError> {
        match serde_json::from_value(value).map_err(|e| ReportError::Shape(e.to_string()))? {
            SiteReport::Alarm(alarm) => Ok(SiteReport::Alarm(alarm.validated()?)),
            SiteReport::Action(action) => Ok(SiteReport::Action(action.validated()?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alarm() -> AlarmReport {
        AlarmReport {
            alarm_type: AlarmType::Qos,
            severity: Severity::Major,
            text: "Jitter above 30 ms on trunk 2".into(),
            detail: Some("peak 41 ms".into()),
            active: true,
            source: AlarmSource::Site,
            occurred_at: 1_764_547_200,
        }
    }

    #[test]
    fn alarm_round_trips_in_the_documented_shape() {
        let report = SiteReport::Alarm(alarm());
        let value = report.to_value();
        assert_eq!(
            value,
            json!({
                "report": "alarm", "type": "QoS", "severity": "major",
                "text": "Jitter above 30 ms on trunk 2", "detail": "peak 41 ms",
                "active": true, "source": "site", "occurred_at": 1_764_547_200
            })
        );
        assert_eq!(SiteReport::from_value(value), Ok(report));
    }

    #[test]
    fn bad_reports_are_named() {
        let mut v = SiteReport::Alarm(alarm()).to_value();
        v["type"] = json!("Weather");
        assert!(matches!(
            SiteReport::from_value(v),
            Err(ReportError::Shape(_))
        ));
        let mut v = SiteReport::Alarm(alarm()).to_value();
        v["text"] = json!("   ");
        assert_eq!(SiteReport::from_value(v), Err(ReportError::EmptyText));
        let mut v = SiteReport::Alarm(alarm()).to_value();
        v["text"] = json!("x".repeat(MAX_ALARM_TEXT + 1));
        assert_eq!(
            SiteReport::from_value(v),
            Err(ReportError::TextTooLong(MAX_ALARM_TEXT + 1))
        );
        assert!(matches!(
            SiteReport::from_value(json!({"report": "weather"})),
            Err(ReportError::Shape(_))
        ));
    }

    #[test]
    fn long_detail_is_cut_at_a_character_boundary() {
        let mut a = alarm();
        a.detail = Some("é".repeat(MAX_ALARM_DETAIL));
        let a = a.validated().unwrap();
        let detail = a.detail.unwrap();
        assert!(detail.len() <= MAX_ALARM_DETAIL && detail.chars().all(|c| c == 'é'));
    }

    #[test]
    fn action_round_trips_in_the_documented_shape_and_is_checked() {
        let report = SiteReport::Action(ActionReport {
            id: "upgrade-42".into(),
            kind: "upgrade".into(),
            state: ActionState::InProgress,
            detail: Some("to 12.1.0".into()),
            occurred_at: 1_764_547_200,
        });
        let value = report.to_value();
        assert_eq!(
            value,
            json!({
                "report": "action", "id": "upgrade-42", "kind": "upgrade",
                "state": "in_progress", "detail": "to 12.1.0",
                "occurred_at": 1_764_547_200
            })
        );
        assert_eq!(SiteReport::from_value(value.clone()), Ok(report));

        let mut v = value.clone();
        v["id"] = json!("  ");
        assert_eq!(
            SiteReport::from_value(v),
            Err(ReportError::EmptyActionName("id"))
        );
        let mut v = value.clone();
        v["kind"] = json!("k".repeat(MAX_ACTION_NAME + 1));
        assert_eq!(
            SiteReport::from_value(v),
            Err(ReportError::ActionNameTooLong("kind", MAX_ACTION_NAME + 1))
        );
        let mut v = value.clone();
        v["state"] = json!("paused");
        assert!(matches!(
            SiteReport::from_value(v),
            Err(ReportError::Shape(_))
        ));
        let mut v = value;
        v["id"] = json!(" upgrade-42 ");
        v["detail"] = json!("d".repeat(MAX_ALARM_DETAIL + 10));
        match SiteReport::from_value(v) {
            Ok(SiteReport::Action(a)) => {
                assert_eq!(a.id, "upgrade-42");
                assert_eq!(a.detail.map(|d| d.len()), Some(MAX_ALARM_DETAIL));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ActionState::parse(" Failed"), Some(ActionState::Failed));
        assert_eq!(ActionState::parse("done"), None);
        assert!(ActionState::Completed.ended() && !ActionState::InProgress.ended());
    }

    #[test]
    fn names_parse_case_insensitively() {
        assert_eq!(AlarmType::parse("qos"), Some(AlarmType::Qos));
        assert_eq!(AlarmType::parse(" Trunk "), Some(AlarmType::Trunk));
        assert_eq!(AlarmType::parse("trunks"), None);
        assert_eq!(Severity::parse("CRITICAL"), Some(Severity::Critical));
        assert_eq!(Severity::parse("fatal"), None);
    }
}
