//! comgate's own PAC: names under `.maint.<domain>` go to the front door,
//! everything else DIRECT.
//!
//! The rule is one piece of JavaScript shared by the standalone PAC and the
//! merged one, so that both route exactly the same names.

use crate::error::PacError;

/// What the generated PAC routes, and where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintRule {
    /// `.maint.<domain>`, lower case: the suffix every maintenance name ends in.
    suffix: String,
    /// `host:port` of the front door, as the PAC names it.
    proxy: String,
}

impl MaintRule {
    /// The rule for `domain` (e.g. `example.com`) and the front door's public
    /// `host:port` (e.g. `maint.example.com:6443`).
    pub fn new(domain: &str, proxy_address: &str) -> Result<MaintRule, PacError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if !is_dns_name(&domain) || !domain.contains('.') {
            return Err(PacError::InvalidDomain(domain));
        }
        if !is_proxy_address(proxy_address) {
            return Err(PacError::InvalidProxyAddress(proxy_address.to_owned()));
        }
        Ok(MaintRule {
            suffix: format!(".maint.{domain}"),
            proxy: proxy_address.to_owned(),
        })
    }

    /// `.maint.<domain>`.
    pub fn suffix(&self) -> &str {
        &self.suffix
    }

    /// The answer for a maintenance name: `HTTPS host:port`.
    pub fn answer(&self) -> String {
        format!("HTTPS {}", self.proxy)
    }

    /// Whether `host` (as a browser passes it) is a maintenance name: the
    /// Rust twin of the JavaScript rule, for tests and callers.
    pub fn matches(&self, host: &str) -> bool {
        let h = host.to_ascii_lowercase();
        let h = h.strip_suffix('.').unwrap_or(&h);
        h.len() > self.suffix.len() && h.ends_with(&self.suffix)
    }

    /// The JavaScript statements that return our answer for a maintenance
    /// name; `host` is in scope. Self-contained (no helper function), so that
    /// a merged PAC that redefines `dnsDomainIs` cannot change our decision.
    pub(crate) fn js_statements(&self, indent: &str) -> String {
        let suffix = &self.suffix;
        let answer = self.answer();
        [
            "// Maintenance names: <customer-id>[-<system>][-<ipv4>].maint.<domain>.".to_owned(),
            "// Lower-cased here because not every PAC engine does it for us.".to_owned(),
            "var comgateHost = String(host).toLowerCase();".to_owned(),
            "if (comgateHost.charAt(comgateHost.length - 1) == \".\") {".to_owned(),
            "  comgateHost = comgateHost.substring(0, comgateHost.length - 1);".to_owned(),
            "}".to_owned(),
            format!("var comgateSuffix = \"{suffix}\";"),
            "if (comgateHost.length > comgateSuffix.length &&".to_owned(),
            "    comgateHost.substring(comgateHost.length - comgateSuffix.length) == comgateSuffix) {"
                .to_owned(),
            format!("  return \"{answer}\";"),
            "}".to_owned(),
        ]
        .iter()
        .map(|line| format!("{indent}{line}\n"))
        .collect()
    }
}

/// The complete PAC file comgate serves.
pub fn generate(rule: &MaintRule) -> String {
    format!(
        "// proxy.pac from comgate: maintenance names under {suffix} go to comgate's\n\
         // front door at {proxy}; everything else connects directly.\n\
         function FindProxyForURL(url, host) {{\n\
         {rule}  return \"DIRECT\";\n\
         }}\n",
        suffix = rule.suffix,
        proxy = rule.proxy,
        rule = rule.js_statements("  "),
    )
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn is_proxy_address(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => is_dns_name(host),
    };
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> MaintRule {
        MaintRule::new("Example.COM", "maint.example.com:6443").unwrap()
    }

    #[test]
    fn every_maintenance_form_matches_and_nothing_else() {
        let r = rule();
        for host in [
            "12345.maint.example.com",
            "12345-sec1.maint.example.com",
            "12345-sec1-192.168.0.20.maint.example.com",
            "12345-IPO-main-10.0.0.5.MAINT.example.com",
            "12345.maint.example.com.",
        ] {
            assert!(r.matches(host), "{host}");
        }
        for host in [
            "maint.example.com",
            "admin.example.com",
            "example.com",
            "12345.maint.example.com.evil.test",
            "12345maint.example.com",
            "12345.maint.example.org",
            ".maint.example.com",
        ] {
            assert!(!r.matches(host), "{host}");
        }
    }

    #[test]
    fn generated_pac_names_the_suffix_and_the_front_door() {
        let pac = generate(&rule());
        assert!(
            pac.contains("var comgateSuffix = \".maint.example.com\";"),
            "{pac}"
        );
        assert!(
            pac.contains("return \"HTTPS maint.example.com:6443\";"),
            "{pac}"
        );
        assert!(pac.trim_end().ends_with("return \"DIRECT\";\n}"), "{pac}");
    }

    #[test]
    fn bad_domain_or_address_is_refused() {
        assert!(matches!(
            MaintRule::new("not a domain", "maint.x.com:1"),
            Err(PacError::InvalidDomain(_))
        ));
        assert!(matches!(
            MaintRule::new("com", "maint.x.com:1"),
            Err(PacError::InvalidDomain(_))
        ));
        for addr in [
            "maint.example.com",
            "maint.example.com:0",
            "a b:1",
            "\"x\":1",
            "[::1:1",
        ] {
            assert!(
                matches!(
                    MaintRule::new("example.com", addr),
                    Err(PacError::InvalidProxyAddress(_))
                ),
                "{addr}"
            );
        }
        assert!(MaintRule::new("example.com", "[::1]:6443").is_ok());
        assert!(MaintRule::new("example.com", "127.0.0.1:6443").is_ok());
    }
}
