//! `comgate pac test`, `pac generate` and `pac merge` as a user runs them:
//! the built binary, files in a temp dir, a PAC served over HTTPS on
//! loopback.

use std::path::Path;
use std::process::{Command, Output};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CORPORATE_PAC: &str = r#"function FindProxyForURL(url, host) {
    if (isPlainHostName(host) || dnsDomainIs(host, ".corp.example")) {
        return "DIRECT";
    }
    if (shExpMatch(host, "*.partner.example")) {
        return "PROXY legacy.corp.example:8080";
    }
    return "PROXY proxy1.corp.example:3128; DIRECT";
}
"#;

fn comgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_comgate"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run comgate")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_config(dir: &Path, extra_gateway: &str) -> String {
    let path = dir.join("comgate.toml");
    std::fs::write(
        &path,
        format!(
            "domain = \"example.test\"\ndata_dir = \"data\"\n[gateway]\nlisten = \"127.0.0.1:16443\"\n{extra_gateway}\
             [agents]\nlisten = \"127.0.0.1:16444\"\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn pac_test_prints_one_answer_per_url() {
    let dir = tempfile::tempdir().unwrap();
    let pac = dir.path().join("corp.pac");
    std::fs::write(&pac, CORPORATE_PAC).unwrap();
    let out = comgate(&[
        "pac",
        "test",
        "--pac",
        pac.to_str().unwrap(),
        "http://intranet/",
        "https://WWW.Partner.Example/a?b",
        "https://www.example.org/",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "http://intranet/ -> DIRECT\n\
         https://WWW.Partner.Example/a?b -> PROXY legacy.corp.example:8080\n\
         https://www.example.org/ -> PROXY proxy1.corp.example:3128; DIRECT\n"
    );
}

#[test]
fn pac_test_names_the_file_and_line_of_a_syntax_error() {
    let dir = tempfile::tempdir().unwrap();
    let pac = dir.path().join("broken.pac");
    std::fs::write(
        &pac,
        "function FindProxyForURL(url, host) {\n  return 'DIRECT' +;\n}\n",
    )
    .unwrap();
    let out = comgate(&["pac", "test", "--pac", pac.to_str().unwrap(), "http://a/"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("broken.pac"), "{err}");
    assert!(err.contains("line 2"), "{err}");
    let out = comgate(&["pac", "test", "--pac", "/nonexistent/x.pac", "http://a/"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/x.pac"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pac_test_reports_a_looping_pac_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let pac = dir.path().join("loop.pac");
    std::fs::write(
        &pac,
        "function FindProxyForURL(url, host) { while (true) {} }\n",
    )
    .unwrap();
    let start = std::time::Instant::now();
    let out = comgate(&["pac", "test", "--pac", pac.to_str().unwrap(), "http://a/"]);
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    assert!(!out.status.success());
    assert!(
        stdout(&out).starts_with("http://a/ -> error: "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn pac_generate_and_merge_read_domain_and_address_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let out = comgate(&["pac", "generate", "--config", &config]);
    assert!(out.status.success(), "{}", stderr(&out));
    let generated = dir.path().join("comgate.pac");
    std::fs::write(&generated, stdout(&out)).unwrap();

    let existing = dir.path().join("corp.pac");
    std::fs::write(&existing, CORPORATE_PAC).unwrap();
    let out = comgate(&[
        "pac",
        "merge",
        "--config",
        &config,
        "--existing",
        existing.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let merged = dir.path().join("merged.pac");
    std::fs::write(&merged, stdout(&out)).unwrap();

    let urls = [
        "https://12345.maint.example.test/",
        "https://12345-sys1-127.0.0.5.maint.example.test:7071/login",
        "https://maint.example.test:16443/",
        "http://intranet/",
        "https://www.partner.example/",
        "https://www.example.org/",
    ];
    let answers = |pac: &Path| {
        let mut args = vec!["pac", "test", "--pac", pac.to_str().unwrap()];
        args.extend(urls);
        let out = comgate(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .map(|l| l.split_once(" -> ").unwrap().1.to_owned())
            .collect::<Vec<_>>()
    };
    let ours = "HTTPS maint.example.test:16443";
    assert_eq!(
        answers(&generated),
        [ours, ours, "DIRECT", "DIRECT", "DIRECT", "DIRECT"]
    );
    let corp = answers(&existing);
    assert_eq!(
        answers(&merged),
        [ours, ours, &corp[2], &corp[3], &corp[4], &corp[5]],
        "merged keeps the corporate answers for everything else"
    );

    // A public address in the config wins over the listen port.
    let config = write_config(dir.path(), "public_address = \"maint.example.test:443\"\n");
    let out = comgate(&["pac", "generate", "--config", &config]);
    assert!(
        stdout(&out).contains("\"HTTPS maint.example.test:443\""),
        "{}",
        stdout(&out)
    );
}

#[test]
fn pac_merge_refuses_a_broken_existing_pac_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let existing = dir.path().join("none.pac");
    std::fs::write(&existing, "var x = 1;\n").unwrap();
    let out = comgate(&[
        "pac",
        "merge",
        "--config",
        &config,
        "--existing",
        existing.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("none.pac") && err.contains("FindProxyForURL"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
}

/// `--pac https://...` with `--ca`: the PAC is fetched over TLS from a
/// loopback server whose certificate a generated CA signs.
#[tokio::test(flavor = "multi_thread")]
async fn pac_test_fetches_an_https_pac_trusting_the_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    let identity = gateway::tls::ensure_generated(dir.path(), "example.test").unwrap();
    let tls = gateway::tls::server_config(&identity, &[b"http/1.1"]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        // One connection per fetch: the first without a trusted CA fails its
        // handshake, the second gets the PAC in two chunks.
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(mut stream) = tokio_rustls::TlsAcceptor::from(tls.clone())
                .accept(tcp)
                .await
            else {
                continue;
            };
            let mut buf = vec![0u8; 4096];
            let n = stream.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            assert!(
                request.starts_with("GET /com/remoteproxy/proxy.pac HTTP/1.1\r\n"),
                "{request}"
            );
            let (a, b) = CORPORATE_PAC.split_at(40);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-ns-proxy-autoconfig\r\n\
                 Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            );
            stream.write_all(response.as_bytes()).await.unwrap();
            stream.shutdown().await.ok();
        }
    });
    let url = format!("https://127.0.0.1:{port}/com/remoteproxy/proxy.pac");
    let ca = dir.path().join("ca.pem");
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            comgate(&args)
        })
    };

    let out = run(vec![
        "pac".into(),
        "test".into(),
        "--pac".into(),
        url.clone(),
        "http://a.b/".into(),
    ])
    .await
    .unwrap();
    assert!(!out.status.success(), "an untrusted certificate must fail");
    assert!(stderr(&out).contains(&url), "{}", stderr(&out));

    let out = run(vec![
        "pac".into(),
        "test".into(),
        "--pac".into(),
        url.clone(),
        "--ca".into(),
        ca.to_str().unwrap().into(),
        "https://x.partner.example/".into(),
    ])
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "https://x.partner.example/ -> PROXY legacy.corp.example:8080\n"
    );
    server.await.unwrap();
}

#[test]
fn help_documents_the_pac_commands() {
    let out = comgate(&["pac", "--help"]);
    let help = stdout(&out);
    for word in ["test", "generate", "merge"] {
        assert!(help.contains(word), "{help}");
    }
    let out = comgate(&["pac", "test", "--help"]);
    assert!(
        stdout(&out).contains("--pac <FILE_OR_URL>"),
        "{}",
        stdout(&out)
    );
}
