//! A broken or hostile PAC ends with a clear error, quickly: time, loops,
//! recursion, nesting, size, syntax.

use std::time::{Duration, Instant};

use pac::{Limits, Options, Pac, PacError, Phase};

fn with_limits(limits: Limits) -> Options {
    Options {
        limits,
        ..Options::default()
    }
}

#[test]
fn endless_loop_while_loading_stops_within_the_time_limit() {
    let start = Instant::now();
    let err = Pac::load(
        "while (true) {}\nfunction FindProxyForURL(u, h) { return 'DIRECT'; }",
        Options::default(),
    )
    .err()
    .expect("must not load");
    let limit = Limits::default().time_limit;
    assert!(
        start.elapsed() < limit + Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(
            err,
            PacError::TimedOut {
                during: Phase::Loading,
                ..
            } | PacError::Limit {
                during: Phase::Loading,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn endless_loop_in_find_proxy_stops_at_the_deadline_and_the_pac_is_abandoned() {
    let limits = Limits {
        time_limit: Duration::from_millis(300),
        loop_iteration_limit: u64::MAX,
        ..Limits::default()
    };
    let src = "function FindProxyForURL(url, host) { while (true) {} }";
    let mut pac = Pac::load(src, with_limits(limits)).unwrap();
    let start = Instant::now();
    let err = pac.find_proxy("http://a/", "a").unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(
            err,
            PacError::TimedOut {
                during: Phase::FindProxy,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("time limit"), "{err}");
    assert!(matches!(
        pac.find_proxy("http://a/", "a"),
        Err(PacError::Stopped)
    ));
}

#[test]
fn endless_loop_inside_a_native_callback_hits_the_loop_limit() {
    let limits = Limits {
        loop_iteration_limit: 100_000,
        ..Limits::default()
    };
    let src = "function FindProxyForURL(url, host) { [1].forEach(function () { for (;;) {} }); return 'DIRECT'; }";
    let err = Pac::load(src, with_limits(limits))
        .unwrap()
        .find_proxy("http://a/", "a")
        .unwrap_err();
    assert!(matches!(err, PacError::Limit { .. }), "{err}");
}

#[test]
fn a_limit_error_cannot_be_caught_by_the_pac() {
    let limits = Limits {
        loop_iteration_limit: 1000,
        ..Limits::default()
    };
    let src =
        "function FindProxyForURL(u, h) { try { while (true) {} } catch (e) { return 'DIRECT'; } }";
    let err = Pac::load(src, with_limits(limits))
        .unwrap()
        .find_proxy("http://a/", "a")
        .unwrap_err();
    assert!(matches!(err, PacError::Limit { .. }), "{err}");
}

#[test]
fn endless_recursion_hits_the_recursion_limit() {
    let src =
        "function f(n) { return f(n + 1) + 1; }\nfunction FindProxyForURL(u, h) { return f(0); }";
    let err = Pac::load(src, Options::default())
        .unwrap()
        .find_proxy("http://a/", "a")
        .unwrap_err();
    assert!(matches!(err, PacError::Limit { .. }), "{err}");
}

#[test]
fn syntax_error_names_its_line_and_column() {
    let src = "// corporate proxy\nfunction FindProxyForURL(url, host) {\n  if (isPlainHostName(host) {\n    return \"DIRECT\";\n  }\n}\n";
    let err = Pac::load(src, Options::default())
        .err()
        .expect("must not load");
    let PacError::Syntax { line, column, .. } = &err else {
        panic!("not a syntax error: {err}");
    };
    assert_eq!(*line, Some(3), "{err}");
    assert!(column.is_some(), "{err}");
    assert!(err.to_string().contains("line 3, column"), "{err}");
}

#[test]
fn source_larger_than_the_cap_is_refused_before_parsing() {
    let limits = Limits {
        max_source_bytes: 1000,
        ..Limits::default()
    };
    let src = format!(
        "function FindProxyForURL(u, h) {{ return 'DIRECT'; }}\n//{}",
        "x".repeat(2000)
    );
    let err = Pac::load(&src, with_limits(limits))
        .err()
        .expect("must not load");
    assert!(
        matches!(err, PacError::TooLarge { limit: 1000, .. }),
        "{err}"
    );
    // The default cap is 1 MiB.
    let big = format!("//{}\n", "x".repeat(1024 * 1024));
    assert!(matches!(
        Pac::load(&big, Options::default()),
        Err(PacError::TooLarge { .. })
    ));
}

#[test]
fn deeply_nested_source_is_refused_instead_of_overflowing_the_stack() {
    for src in [
        format!("var x =\n{}1{};", "(".repeat(100_000), ")".repeat(100_000)),
        format!("var x;\nx = {}1;", "!".repeat(500_000)),
        format!("var x;\n{}x;", "if (1) ".repeat(100_000)),
    ] {
        let err = Pac::load(&src, Options::default())
            .err()
            .expect("must not load");
        assert!(matches!(err, PacError::TooDeep { line: 2, .. }), "{err}");
    }
}

#[test]
fn nesting_just_under_the_limit_still_loads() {
    // 900 bracket levels (score 7200 of 8000) parse on the evaluator's stack.
    let src = format!(
        "var x = {}1{};\nfunction FindProxyForURL(u, h) {{ return 'DIRECT'; }}",
        "(".repeat(900),
        ")".repeat(900)
    );
    assert!(Pac::load(&src, Options::default()).is_ok());
    let mut chain = String::from("function FindProxyForURL(u, h) {\n  if (h == 'a') return 'A';\n");
    for i in 0..5000 {
        chain += &format!("  else if (h == 'h{i}') return 'PROXY p{i}:1';\n");
    }
    chain += "  return 'DIRECT';\n}\n";
    let mut pac = Pac::load(&chain, Options::default()).unwrap();
    assert_eq!(
        pac.find_proxy("http://h4999/", "h4999").unwrap().raw,
        "PROXY p4999:1"
    );
}

#[test]
fn a_pac_without_find_proxy_or_with_a_bad_answer_is_an_error() {
    let err = Pac::load("var FindProxyForURL = 5;", Options::default())
        .err()
        .expect("must not load");
    assert!(matches!(err, PacError::NoFindProxyForURL), "{err}");
    let err = Pac::load(
        "function FindProxyForURL(u, h) { return 5; }",
        Options::default(),
    )
    .unwrap()
    .find_proxy("http://a/", "a")
    .unwrap_err();
    assert!(
        matches!(err, PacError::NotAString(ref t) if t == "number"),
        "{err}"
    );
    let err = Pac::load(
        "function FindProxyForURL(u, h) { throw new Error('boom ' + h); }",
        Options::default(),
    )
    .unwrap()
    .find_proxy("http://a/", "a")
    .unwrap_err();
    assert!(
        matches!(
            err,
            PacError::Script {
                during: Phase::FindProxy,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("boom a"), "{err}");
}

#[test]
fn globals_persist_between_calls_like_in_a_browser() {
    let src = "var n = 0;\nfunction FindProxyForURL(u, h) { n++; return 'PROXY p' + n + ':1'; }";
    let mut pac = Pac::load(src, Options::default()).unwrap();
    assert_eq!(pac.find_proxy("http://a/", "a").unwrap().raw, "PROXY p1:1");
    assert_eq!(pac.find_proxy("http://a/", "a").unwrap().raw, "PROXY p2:1");
}

#[test]
fn arguments_with_quotes_and_line_breaks_reach_the_pac_unchanged() {
    let src = "function FindProxyForURL(u, h) { return u + '|' + h; }";
    let mut pac = Pac::load(src, Options::default()).unwrap();
    let url = "http://a/\"'\\\n\u{2028}x";
    assert_eq!(pac.find_proxy(url, "a").unwrap().raw, format!("{url}|a"));
}
