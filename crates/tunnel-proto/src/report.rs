//! Reports a site agent sends to comgate in CONTROL messages: for now its
//! alarms (manual chapter 4). The gateway treats a report it cannot parse as
//! a report it ignores (logged), never as a reason to end the session: an
//! agent newer than the gateway may send kinds this version does not know.

use serde::{Deserialize, Serialize};

/// Longest alarm text, in bytes; longer texts are refused, not cut, so that
/// the same alarm always has the same text (it is the alarm's identity).
pub const MAX_ALARM_TEXT: usize = 512;
/// Longest alarm detail, in bytes; longer details are cut.
pub const MAX_ALARM_DETAIL: usize = 2048;

/// One report of a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum SiteReport {
    Alarm(AlarmReport),
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
        if let Some(detail) = &mut self.detail {
            if detail.len() > MAX_ALARM_DETAIL {
                let mut cut = MAX_ALARM_DETAIL;
                while !detail.is_char_boundary(cut) {
                    cut -= 1;
                }
                detail.truncate(cut);
            }
        }
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
    fn names_parse_case_insensitively() {
        assert_eq!(AlarmType::parse("qos"), Some(AlarmType::Qos));
        assert_eq!(AlarmType::parse(" Trunk "), Some(AlarmType::Trunk));
        assert_eq!(AlarmType::parse("trunks"), None);
        assert_eq!(Severity::parse("CRITICAL"), Some(Severity::Critical));
        assert_eq!(Severity::parse("fatal"), None);
    }
}
