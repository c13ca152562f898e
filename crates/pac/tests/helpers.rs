//! The helper functions a PAC can call, one test per function, against the
//! semantics of Mozilla's pac_utils (which Chromium shares). Lookups and
//! time come from a fixed resolver and a stopped clock.

use std::net::Ipv4Addr;
use std::sync::Arc;

use pac::{FixedClock, Options, Pac, PacError, StaticResolver};

/// Wednesday 2024-01-03 12:30:45 UTC.
const WED_1230_UTC: i64 = 1_704_285_045_000;

fn options(offset_seconds: i32) -> Options {
    Options {
        resolver: Arc::new(
            StaticResolver::new(Ipv4Addr::new(10, 20, 1, 5))
                .with("intranet.corp.example", Ipv4Addr::new(10, 1, 2, 3))
                .with("www.example.org", Ipv4Addr::new(93, 184, 216, 34)),
        ),
        clock: Arc::new(FixedClock {
            millis: WED_1230_UTC,
            offset_seconds,
        }),
        ..Options::default()
    }
}

/// The value of a JavaScript expression inside FindProxyForURL, as a string.
fn eval_at(expr: &str, offset_seconds: i32) -> String {
    let src = format!("function FindProxyForURL(url, host) {{ return String({expr}); }}");
    let mut pac = Pac::load(&src, options(offset_seconds)).unwrap();
    pac.find_proxy("http://x/", "x").unwrap().raw
}

fn eval(expr: &str) -> String {
    eval_at(expr, 0)
}

fn assert_all(cases: &[(&str, &str)]) {
    for (expr, want) in cases {
        assert_eq!(eval(expr), *want, "{expr}");
    }
}

#[test]
fn sh_exp_match_is_a_shell_pattern_with_regex_classes_and_case() {
    assert_all(&[
        ("shExpMatch('www.example.com', '*.example.com')", "true"),
        ("shExpMatch('example.com', '*.example.com')", "false"),
        ("shExpMatch('a.b', 'a?b')", "true"),
        ("shExpMatch('axb', 'a.b')", "false"),
        (
            "shExpMatch('12-s.maint.x.com', '[a-zA-Z0-9]*-*.maint.x.com')",
            "true",
        ),
        (
            "shExpMatch('12.maint.x.com', '[a-zA-Z0-9]*-*.maint.x.com')",
            "false",
        ),
        ("shExpMatch('WWW.EXAMPLE.COM', '*.example.com')", "false"),
        ("shExpMatch('http://h/a/b', 'http://h/*')", "true"),
    ]);
}

#[test]
fn dns_domain_is_compares_the_suffix() {
    assert_all(&[
        ("dnsDomainIs('www.netscape.com', '.netscape.com')", "true"),
        ("dnsDomainIs('www', '.netscape.com')", "false"),
        ("dnsDomainIs('www.mcom.com', '.netscape.com')", "false"),
        ("dnsDomainIs('netscape.com', 'netscape.com')", "true"),
    ]);
}

#[test]
fn is_plain_host_name_means_no_dot_and_no_colon() {
    assert_all(&[
        ("isPlainHostName('www')", "true"),
        ("isPlainHostName('www.netscape.com')", "false"),
        ("isPlainHostName('::1')", "false"),
    ]);
}

#[test]
fn local_host_or_domain_is_matches_the_name_or_its_first_label() {
    assert_all(&[
        (
            "localHostOrDomainIs('www.netscape.com', 'www.netscape.com')",
            "true",
        ),
        ("localHostOrDomainIs('www', 'www.netscape.com')", "true"),
        (
            "localHostOrDomainIs('www.mcom.com', 'www.netscape.com')",
            "false",
        ),
        (
            "localHostOrDomainIs('home.netscape.com', 'www.netscape.com')",
            "false",
        ),
    ]);
}

#[test]
fn dns_domain_levels_counts_dots() {
    assert_all(&[
        ("dnsDomainLevels('www')", "0"),
        ("dnsDomainLevels('www.netscape.com')", "2"),
        ("dnsDomainLevels('')", "0"),
    ]);
}

#[test]
fn convert_addr_is_a_signed_32_bit_number() {
    assert_all(&[
        ("convert_addr('104.16.41.2')", "1745889538"),
        ("convert_addr('192.168.1.1')", "-1062731519"),
        ("convert_addr('0.0.0.0')", "0"),
    ]);
}

#[test]
fn is_in_net_masks_literals_and_resolves_names() {
    assert_all(&[
        ("isInNet('10.1.2.3', '10.0.0.0', '255.0.0.0')", "true"),
        ("isInNet('11.1.2.3', '10.0.0.0', '255.0.0.0')", "false"),
        ("isInNet('172.20.0.1', '172.16.0.0', '255.240.0.0')", "true"),
        (
            "isInNet('intranet.corp.example', '10.1.0.0', '255.255.0.0')",
            "true",
        ),
        ("isInNet('unknown.example', '0.0.0.0', '0.0.0.0')", "false"),
        ("isInNet('10.1.2.3', '10.0.0', '255.0.0.0')", "false"),
        ("isInNet('10.1.2.3', '10.0.0.0', '255.0.0.256')", "false"),
        ("isInNet('300.1.2.3', '0.0.0.0', '0.0.0.0')", "false"),
    ]);
}

#[test]
fn dns_resolve_and_is_resolvable_ask_only_the_injected_resolver() {
    assert_all(&[
        ("dnsResolve('intranet.corp.example')", "10.1.2.3"),
        ("dnsResolve('INTRANET.corp.example')", "10.1.2.3"),
        ("dnsResolve('192.0.2.1')", "192.0.2.1"),
        ("dnsResolve('unknown.example')", "null"),
        ("dnsResolve('')", "null"),
        ("isResolvable('www.example.org')", "true"),
        ("isResolvable('localhost')", "false"),
        ("isResolvable('127.0.0.1')", "true"),
    ]);
}

#[test]
fn my_ip_address_comes_from_the_resolver() {
    assert_all(&[("myIpAddress()", "10.20.1.5")]);
}

#[test]
fn weekday_range_reads_local_or_gmt_days_and_wraps() {
    // UTC: Wednesday 12:30.
    assert_all(&[
        ("weekdayRange('MON', 'FRI')", "true"),
        ("weekdayRange('WED')", "true"),
        ("weekdayRange('THU')", "false"),
        ("weekdayRange('SAT', 'SUN')", "false"),
        ("weekdayRange('FRI', 'MON')", "false"),
        ("weekdayRange('TUE', 'MON')", "true"),
        ("weekdayRange('XYZ')", "false"),
        ("weekdayRange()", "false"),
    ]);
    // Thirteen hours east it is already Thursday 01:30 locally.
    assert_eq!(eval_at("weekdayRange('THU')", 13 * 3600), "true");
    assert_eq!(eval_at("weekdayRange('WED', 'GMT')", 13 * 3600), "true");
    assert_eq!(eval_at("weekdayRange('WED')", 13 * 3600), "false");
}

#[test]
fn date_range_takes_days_months_years_and_ranges() {
    assert_all(&[
        ("dateRange(3)", "true"),
        ("dateRange(4)", "false"),
        ("dateRange('JAN')", "true"),
        ("dateRange('FEB')", "false"),
        ("dateRange(2024)", "true"),
        ("dateRange(1, 5)", "true"),
        ("dateRange(4, 20)", "false"),
        ("dateRange('JAN', 'FEB')", "true"),
        ("dateRange('MAR', 'NOV')", "false"),
        ("dateRange('DEC', 'FEB')", "true"),
        ("dateRange(2023, 2025)", "true"),
        ("dateRange(1, 'JAN', 2024, 2, 'JAN', 2024)", "false"),
        ("dateRange(1, 'JAN', 2024, 31, 'DEC', 2024)", "true"),
        ("dateRange()", "false"),
    ]);
    assert_eq!(eval_at("dateRange(4)", 13 * 3600), "true");
    assert_eq!(eval_at("dateRange(3, 'GMT')", 13 * 3600), "true");
}

#[test]
fn time_range_takes_hours_minutes_seconds_and_gmt() {
    assert_all(&[
        ("timeRange(12)", "true"),
        ("timeRange(13)", "false"),
        ("timeRange(12, 13)", "true"),
        ("timeRange(13, 14)", "false"),
        ("timeRange(12, 30, 12, 31)", "true"),
        ("timeRange(12, 0, 0, 12, 30, 0)", "false"),
        ("timeRange(12, 30, 0, 12, 31, 0)", "true"),
        ("timeRange(23, 0, 1, 0)", "false"),
        ("timeRange(12, 0, 13, 0, 'GMT')", "true"),
        ("timeRange()", "false"),
    ]);
    // Local 01:30 (thirteen hours east): a range across midnight wraps.
    assert_eq!(eval_at("timeRange(23, 0, 2, 0)", 13 * 3600), "true");
    assert_eq!(eval_at("timeRange(12, 'GMT')", 13 * 3600), "true");
    assert_eq!(eval_at("timeRange(1)", 13 * 3600), "true");
}

#[test]
fn time_range_with_three_numbers_throws_like_the_browsers() {
    let src = "function FindProxyForURL(url, host) { return String(timeRange(1, 2, 3)); }";
    let err = Pac::load(src, options(0))
        .unwrap()
        .find_proxy("http://x/", "x")
        .unwrap_err();
    assert!(matches!(err, PacError::Script { .. }), "{err}");
    assert!(err.to_string().contains("timeRange"), "{err}");
}

#[test]
fn alert_messages_are_collected_not_shown() {
    let src = "alert('loading');\nfunction FindProxyForURL(url, host) { alert('for ' + host); return 'DIRECT'; }";
    let mut pac = Pac::load(src, options(0)).unwrap();
    assert_eq!(pac.load_alerts(), ["loading"]);
    let answer = pac.find_proxy("http://a/", "a").unwrap();
    assert_eq!(answer.alerts, ["for a"]);
}
