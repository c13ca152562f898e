//! The agent's reports to comgate ([`tunnel_proto::report`], sent as
//! CONTROL messages): the site's alarms (manual chapter 4) and the actions
//! its system performs (an upgrade, a backup: the customer list's "in
//! progress", "action completed" and "action failed" icons), from files the
//! site appends to, and the alarms the agent raises itself.
//!
//! Alarms come from a JSON-lines file (`alarms_file` in the agent config)
//! that the site's monitoring appends to, one alarm per line:
//!
//! ```json
//! {"type": "Trunk", "severity": "major", "text": "SIP trunk 2 out of service", "active": true}
//! ```
//!
//! `type` is one of Configuration, Trunk, Link, Services, QoS, Security;
//! `severity` one of critical, major, minor, warning (both any case);
//! `text` identifies the alarm (same problem, same text); `detail` is
//! optional free text; `active` (default true) false reports the problem
//! over; `occurred_at` (unix seconds) defaults to when the agent read the
//! line.
//!
//! Actions come from another JSON-lines file (`actions_file`) that the
//! site's upgrade and backup tooling appends to, a line when a run starts
//! and a line when it ends:
//!
//! ```json
//! {"id": "upgrade-2026-12-01", "kind": "upgrade", "state": "in_progress", "detail": "to 12.1"}
//! {"id": "upgrade-2026-12-01", "kind": "upgrade", "state": "completed"}
//! ```
//!
//! `id` names the run (the same in each of its lines; at most 64 bytes);
//! `kind` says what it does (at most 64 bytes); `state` is in_progress,
//! completed or failed (any case); a run in progress may be reported again
//! with a newer `detail`; once ended it is final. `occurred_at` as above.
//!
//! Both files are polled every `alarms_poll_ms`: lines written before the
//! agent started are history and not reported; a truncated or replaced
//! file (log rotation) is read from its start; a line is taken once it
//! ends with a newline; a bad line is logged with its number and skipped.
//!
//! The agent itself raises a Services alarm while a remote-support target
//! does not answer, and a Security alarm while comgate's certificate is
//! within `cert_expiry_warning_days` of its end.
//!
//! Reports wait in one bounded queue while comgate is unreachable (the
//! oldest are dropped beyond `max_pending_alarms`, and counted in the log)
//! and go out in order when the session is up. A report handed to a
//! session that dies before it reached the wire is lost: the site's
//! monitoring repeats what is still true.

use std::collections::{HashSet, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use tokio::sync::Notify;
use tunnel_proto::mux::MuxHandle;
use tunnel_proto::report::{
    ActionReport, ActionState, AlarmReport, AlarmSource, AlarmType, Severity, SiteReport,
};

/// Longest line a report file may hold; a longer one is skipped.
const MAX_LINE: usize = 16 * 1024;

/// The reports of one agent, waiting for a session.
pub struct Reports {
    inner: Mutex<Inner>,
    ready: Notify,
    max_pending: usize,
}

#[derive(Default)]
struct Inner {
    pending: VecDeque<SiteReport>,
    dropped: u64,
    /// Texts of the agent's own alarms that are active now.
    own_active: HashSet<String>,
}

impl Reports {
    pub fn new(max_pending: usize) -> Arc<Reports> {
        Arc::new(Reports {
            inner: Mutex::default(),
            ready: Notify::new(),
            max_pending: max_pending.max(1),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a report for comgate.
    pub fn report(&self, report: SiteReport) {
        {
            let mut inner = self.lock();
            if inner.pending.len() >= self.max_pending {
                inner.pending.pop_front();
                inner.dropped += 1;
                if inner.dropped.is_power_of_two() {
                    tracing::warn!(
                        dropped = inner.dropped,
                        max_pending = self.max_pending,
                        "report queue full while comgate is unreachable: oldest reports dropped"
                    );
                }
            }
            inner.pending.push_back(report);
        }
        self.ready.notify_one();
    }

    /// Raises (`active`) or ends one of the agent's own alarms; only a
    /// change is reported.
    pub fn set_own(
        &self,
        alarm_type: AlarmType,
        severity: Severity,
        text: &str,
        detail: Option<String>,
        active: bool,
    ) {
        let changed = {
            let mut inner = self.lock();
            if active {
                inner.own_active.insert(text.to_owned())
            } else {
                inner.own_active.remove(text)
            }
        };
        if changed {
            tracing::info!(alarm = %text, active, "agent alarm");
            self.report(SiteReport::Alarm(AlarmReport {
                alarm_type,
                severity,
                text: text.to_owned(),
                detail,
                active,
                source: AlarmSource::Agent,
                occurred_at: unix_now(),
            }));
        }
    }

    /// Reports waiting, oldest first (for tests and logs).
    pub fn pending(&self) -> Vec<SiteReport> {
        self.lock().pending.iter().cloned().collect()
    }

    /// Sends queued reports over `mux` as they come, until the session ends.
    pub async fn forward(&self, mux: &MuxHandle) {
        loop {
            let batch: Vec<SiteReport> = self.lock().pending.drain(..).collect();
            for (i, report) in batch.iter().enumerate() {
                if mux.send_control(report.to_value()).is_err() {
                    // The session ended: what was not sent waits for the next.
                    let mut inner = self.lock();
                    for r in batch[i..].iter().rev() {
                        inner.pending.push_front(r.clone());
                    }
                    return;
                }
            }
            tokio::select! {
                _ = self.ready.notified() => {}
                _ = mux.closed() => return,
            }
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// One line of the alarm file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlarmLine {
    #[serde(rename = "type")]
    alarm_type: String,
    severity: String,
    text: String,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    occurred_at: Option<i64>,
}

fn yes() -> bool {
    true
}

/// Parses one line of the alarm file.
pub fn parse_alarm_line(line: &str) -> Result<SiteReport, String> {
    let l: AlarmLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let alarm_type = AlarmType::parse(&l.alarm_type).ok_or_else(|| {
        format!(
            "unknown type {:?} (Configuration, Trunk, Link, Services, QoS or Security)",
            l.alarm_type
        )
    })?;
    let severity = Severity::parse(&l.severity).ok_or_else(|| {
        format!(
            "unknown severity {:?} (critical, major, minor or warning)",
            l.severity
        )
    })?;
    AlarmReport {
        alarm_type,
        severity,
        text: l.text,
        detail: l.detail,
        active: l.active,
        source: AlarmSource::Site,
        occurred_at: l.occurred_at.unwrap_or_else(unix_now),
    }
    .validated()
    .map(SiteReport::Alarm)
    .map_err(|e| e.to_string())
}

/// One line of the action file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionLine {
    id: String,
    kind: String,
    state: String,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    occurred_at: Option<i64>,
}

/// Parses one line of the action file.
pub fn parse_action_line(line: &str) -> Result<SiteReport, String> {
    let l: ActionLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let state = ActionState::parse(&l.state).ok_or_else(|| {
        format!(
            "unknown state {:?} (in_progress, completed or failed)",
            l.state
        )
    })?;
    ActionReport {
        id: l.id,
        kind: l.kind,
        state,
        detail: l.detail,
        occurred_at: l.occurred_at.unwrap_or_else(unix_now),
    }
    .validated()
    .map(SiteReport::Action)
    .map_err(|e| e.to_string())
}

/// Logs a report read from a site file.
fn log_site_report(report: &SiteReport) {
    match report {
        SiteReport::Alarm(a) => tracing::info!(
            alarm_type = a.alarm_type.as_str(),
            severity = a.severity.as_str(),
            alarm = %a.text,
            active = a.active,
            "site alarm"
        ),
        SiteReport::Action(a) => tracing::info!(
            action = %a.id,
            kind = %a.kind,
            state = a.state.as_str(),
            "site action"
        ),
    }
}

/// Follows one of the site's report files (alarms or actions): where it
/// was read up to, in which file, and how its lines read.
pub struct SiteFile {
    path: PathBuf,
    parse: fn(&str) -> Result<SiteReport, String>,
    /// (device, inode) of the file the offset belongs to.
    identity: Option<(u64, u64)>,
    offset: u64,
    /// Lines taken so far (for error messages).
    line_no: u64,
}

impl SiteFile {
    /// Starts at the current end of `path` (earlier lines are history);
    /// each line is read with `parse`.
    pub fn new(path: &Path, parse: fn(&str) -> Result<SiteReport, String>) -> SiteFile {
        let meta = std::fs::metadata(path).ok();
        SiteFile {
            path: path.to_owned(),
            parse,
            identity: meta.as_ref().map(|m| (m.dev(), m.ino())),
            offset: meta.map_or(0, |m| m.len()),
            line_no: 0,
        }
    }

    /// Reads what was appended since the last call; complete lines only.
    pub fn poll(&mut self) -> Vec<Result<SiteReport, String>> {
        let mut out = Vec::new();
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            // Not there (yet): a file that appears later is read from its start.
            self.identity = None;
            self.offset = 0;
            return out;
        };
        let Ok(meta) = file.metadata() else {
            return out;
        };
        let identity = Some((meta.dev(), meta.ino()));
        if identity != self.identity || meta.len() < self.offset {
            // Replaced or truncated: a new file, read from its start.
            self.identity = identity;
            self.offset = 0;
        }
        if meta.len() == self.offset || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return out;
        }
        let mut appended = Vec::new();
        if file.read_to_end(&mut appended).is_err() {
            return out;
        }
        let mut start = 0;
        while let Some(end) = appended[start..].iter().position(|&b| b == b'\n') {
            let line = &appended[start..start + end];
            start += end + 1;
            self.line_no += 1;
            let text = String::from_utf8_lossy(line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let parsed = if line.len() > MAX_LINE {
                Err(format!("line longer than {MAX_LINE} bytes"))
            } else {
                (self.parse)(text)
            };
            out.push(parsed.map_err(|e| {
                format!(
                    "{} line {} (since start): {e}",
                    self.path.display(),
                    self.line_no
                )
            }));
        }
        self.offset += start as u64;
        out
    }

    /// Polls every `interval` forever, queueing each report.
    pub async fn watch(mut self, interval: Duration, reports: Arc<Reports>) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for parsed in self.poll() {
                match parsed {
                    Ok(report) => {
                        log_site_report(&report);
                        reports.report(report);
                    }
                    Err(e) => tracing::warn!(error = %e, "site report line skipped"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn alarm(report: Result<SiteReport, String>) -> AlarmReport {
        match report {
            Ok(SiteReport::Alarm(a)) => a,
            other => panic!("not an alarm: {other:?}"),
        }
    }

    fn text(report: &Result<SiteReport, String>) -> String {
        alarm(report.clone()).text
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn lines_parse_with_defaults_and_named_errors() {
        let a = alarm(parse_alarm_line(
            r#"{"type":"qos","severity":"MAJOR","text":" Jitter "}"#,
        ));
        assert_eq!(
            (
                a.alarm_type,
                a.severity,
                a.text.as_str(),
                a.active,
                a.source
            ),
            (
                AlarmType::Qos,
                Severity::Major,
                "Jitter",
                true,
                AlarmSource::Site
            )
        );
        assert!(a.occurred_at > 1_700_000_000);
        let b = alarm(parse_alarm_line(
            r#"{"type":"Trunk","severity":"minor","text":"t","active":false,"occurred_at":5,"detail":"d"}"#,
        ));
        assert_eq!(
            (b.active, b.occurred_at, b.detail.as_deref()),
            (false, 5, Some("d"))
        );
        for (line, expected) in [
            (
                r#"{"type":"Weather","severity":"minor","text":"t"}"#,
                "unknown type",
            ),
            (
                r#"{"type":"Link","severity":"fatal","text":"t"}"#,
                "unknown severity",
            ),
            (r#"{"type":"Link","severity":"minor","text":""}"#, "empty"),
            (
                r#"{"type":"Link","severity":"minor"}"#,
                "missing field `text`",
            ),
            (
                r#"{"type":"Link","severity":"minor","text":"t","colour":1}"#,
                "unknown field",
            ),
            ("not json", "expected"),
        ] {
            let err = parse_alarm_line(line).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
    }

    #[test]
    fn file_is_followed_from_its_end_through_partial_lines_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alarms.jsonl");
        append(
            &path,
            "{\"type\":\"Link\",\"severity\":\"minor\",\"text\":\"history\"}\n",
        );
        let mut file = SiteFile::new(&path, parse_alarm_line);
        assert!(
            file.poll().is_empty(),
            "lines from before the start are history"
        );

        append(
            &path,
            "{\"type\":\"Link\",\"severity\":\"minor\",\"text\":\"one\"}\n{\"type\":\"Trunk\",",
        );
        let got = file.poll();
        assert_eq!(got.len(), 1);
        assert_eq!(text(&got[0]), "one");
        append(
            &path,
            "\"severity\":\"major\",\"text\":\"two\"}\nbroken\n\n",
        );
        let got = file.poll();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(text(&got[0]), "two");
        let err = got[1].as_ref().unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(file.poll().is_empty());

        // Rotation: the file is replaced by a new, shorter one.
        std::fs::rename(&path, dir.path().join("alarms.jsonl.1")).unwrap();
        append(
            &path,
            "{\"type\":\"QoS\",\"severity\":\"warning\",\"text\":\"three\"}\n",
        );
        let got = file.poll();
        assert_eq!(got.len(), 1);
        assert_eq!(text(&got[0]), "three");

        // Truncation in place.
        std::fs::write(&path, "").unwrap();
        assert!(file.poll().is_empty());
        append(
            &path,
            "{\"type\":\"Security\",\"severity\":\"critical\",\"text\":\"four\"}\n",
        );
        let got = file.poll();
        assert_eq!(text(&got[0]), "four");

        // Gone, then back.
        std::fs::remove_file(&path).unwrap();
        assert!(file.poll().is_empty());
        append(
            &path,
            "{\"type\":\"Services\",\"severity\":\"major\",\"text\":\"five\"}\n",
        );
        assert_eq!(text(&file.poll()[0]), "five");
    }

    #[test]
    fn own_alarms_report_changes_only_and_the_queue_is_bounded() {
        let alarms = Reports::new(3);
        let raise =
            |active| alarms.set_own(AlarmType::Services, Severity::Major, "x down", None, active);
        raise(true);
        raise(true);
        raise(false);
        raise(false);
        let pending =
            || -> Vec<AlarmReport> { alarms.pending().into_iter().map(|r| alarm(Ok(r))).collect() };
        let states: Vec<bool> = pending().iter().map(|r| r.active).collect();
        assert_eq!(states, [true, false]);
        for text in ["a", "b", "c"] {
            alarms.set_own(AlarmType::Link, Severity::Minor, text, None, true);
        }
        let texts: Vec<String> = pending().into_iter().map(|r| r.text).collect();
        assert_eq!(texts, ["a", "b", "c"], "the oldest were dropped");
    }

    #[test]
    fn action_lines_parse_with_defaults_and_named_errors() {
        let Ok(SiteReport::Action(a)) = parse_action_line(
            r#"{"id":" up-1 ","kind":"upgrade","state":"In_Progress","detail":"to 12.1"}"#,
        ) else {
            panic!("not an action");
        };
        assert_eq!(
            (a.id.as_str(), a.kind.as_str(), a.state, a.detail.as_deref()),
            ("up-1", "upgrade", ActionState::InProgress, Some("to 12.1"))
        );
        assert!(a.occurred_at > 1_700_000_000);
        let Ok(SiteReport::Action(b)) =
            parse_action_line(r#"{"id":"up-1","kind":"upgrade","state":"failed","occurred_at":9}"#)
        else {
            panic!("not an action");
        };
        assert_eq!((b.state, b.occurred_at), (ActionState::Failed, 9));
        for (line, expected) in [
            (
                r#"{"id":"a","kind":"upgrade","state":"paused"}"#,
                "unknown state \"paused\"",
            ),
            (
                r#"{"id":"","kind":"upgrade","state":"failed"}"#,
                "action id is empty",
            ),
            (r#"{"id":"a","state":"failed"}"#, "missing field `kind`"),
            (
                r#"{"id":"a","kind":"upgrade","state":"failed","type":"Trunk"}"#,
                "unknown field",
            ),
        ] {
            let err = parse_action_line(line).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
        // An alarm line is not an action line, nor the other way round.
        assert!(parse_action_line(r#"{"type":"Link","severity":"minor","text":"t"}"#).is_err());
        assert!(parse_alarm_line(r#"{"id":"a","kind":"k","state":"failed"}"#).is_err());
    }

    #[test]
    fn the_queue_keeps_alarms_and_actions_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("actions.jsonl");
        let mut file = SiteFile::new(&path, parse_action_line);
        append(
            &path,
            "{\"id\":\"b1\",\"kind\":\"backup\",\"state\":\"in_progress\"}\n",
        );
        let reports = Reports::new(10);
        reports.set_own(AlarmType::Services, Severity::Major, "x down", None, true);
        for r in file.poll() {
            reports.report(r.unwrap());
        }
        let kinds: Vec<&str> = reports
            .pending()
            .iter()
            .map(|r| match r {
                SiteReport::Alarm(_) => "alarm",
                SiteReport::Action(_) => "action",
            })
            .collect();
        assert_eq!(kinds, ["alarm", "action"]);
    }
}
