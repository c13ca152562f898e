//! Reading comgate's human-readable log: ANSI colours stripped, `key=value` fields of
//! the per-tunnel audit event (`tunnel closed account=.. customer=.. ...`).

use std::collections::HashMap;

/// Removes ANSI escape sequences (tracing colours fields when it thinks it may).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters and intermediates up to a final byte in @..~
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// One `tunnel closed` log line and its fields.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub line: String,
    pub fields: HashMap<String, String>,
}

impl AuditEvent {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// A numeric field (`bytes_up`, `bytes_down`).
    pub fn number(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| v.parse().ok())
    }
}

/// Splits a log line into whitespace-separated tokens, keeping `"..."` together.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in line.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `key=value` fields of a line (quotes removed; span prefixes like `conn{..}:` are
/// tolerated: only plain identifiers count as keys).
pub fn fields(line: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for token in tokens(line) {
        let Some((key, value)) = token.split_once('=') else {
            continue;
        };
        let key = key.rsplit(['{', ':', ',']).next().unwrap_or(key);
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let value = value.trim_end_matches(['}', ',', ':']);
        map.insert(key.to_string(), value.to_string());
    }
    map
}

/// Every `tunnel closed` event in a log text.
pub fn tunnel_closed_events(log: &str) -> Vec<AuditEvent> {
    strip_ansi(log)
        .lines()
        .filter(|l| l.contains("tunnel closed"))
        .map(|l| AuditEvent {
            line: l.to_string(),
            fields: fields(l),
        })
        .collect()
}

/// Whether a log line says an agent session is up (`connected`, not `disconnected`).
pub fn is_connected_line(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    l.contains("connected")
        && !l.contains("disconnected")
        && !l.contains("not connected")
        && !l.contains("unconnected")
}

/// How many "session is up" lines a log text holds.
pub fn connected_lines(log: &str) -> usize {
    strip_ansi(log)
        .lines()
        .filter(|l| is_connected_line(l))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tracing_fields() {
        let line = "\u{1b}[2m2025-01-01T00:00:00Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m conn{peer=127.0.0.1:5}: gateway::audit: tunnel closed \u{1b}[3maccount\u{1b}[0m\u{1b}[2m=\u{1b}[0macc-a customer=\"12345\" system=ipo1 target=\"12345-ipo1.maint.example.test:22\" bytes_up=10 bytes_down=20 outcome=\"closed by client\"";
        let ev = &tunnel_closed_events(line)[0];
        assert_eq!(ev.get("account"), Some("acc-a"));
        assert_eq!(ev.get("customer"), Some("12345"));
        assert_eq!(ev.get("peer"), Some("127.0.0.1:5"));
        assert_eq!(ev.number("bytes_down"), Some(20));
        assert_eq!(ev.get("outcome"), Some("closed by client"));
    }

    #[test]
    fn connected_is_not_disconnected() {
        assert!(is_connected_line("INFO agent: connected gateway=wss://x"));
        assert!(!is_connected_line("WARN agent: disconnected, retrying"));
    }
}
