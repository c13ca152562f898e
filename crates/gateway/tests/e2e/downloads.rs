//! The admin listener's public downloads, fetched with curl as a partner would: the PAC
//! file (content type, and what pacparser makes of it), the Chrome extension bundle and
//! the proxytunnel utility bundle; nothing else on the admin listener is public.

use anyhow::{ensure, Result};

use crate::support::comgate::Gateway;
use crate::support::process::{run as run_cmd, Ran};
use crate::support::site::Tenant;
use crate::support::{run, secs, tools, Harness, DOMAIN};

/// `curl` GET of `path` on the admin listener; returns the run, the status and the
/// response headers (lower-cased names). The body goes to `out`.
async fn fetch(
    gw: &Gateway,
    h: &Harness,
    path: &str,
    out: &std::path::Path,
) -> Result<(Ran, u16, String)> {
    let headers = h.subdir("curl-headers")?.join("h.txt");
    let mut cmd = std::process::Command::new(tools::path_of("curl")?);
    cmd.args(["-sS", "--max-time", "20", "-o"])
        .arg(out)
        .args(["-D"])
        .arg(&headers)
        .args(["-w", "%{http_code}", "--cacert"])
        .arg(gw.ca())
        .args([
            "--resolve",
            &format!("admin.{DOMAIN}:{}:127.0.0.1", gw.admin_port),
        ])
        .arg(format!("https://admin.{DOMAIN}:{}{path}", gw.admin_port));
    let ran = run_cmd(cmd, secs(30)).await?;
    let status: u16 = ran.stdout_text().trim().parse().unwrap_or(0);
    let headers = std::fs::read_to_string(&headers)
        .unwrap_or_default()
        .to_ascii_lowercase();
    Ok((ran, status, headers))
}

/// Runs a Python snippet with the system interpreter (pacparser and zipfile).
async fn python(code: &str, args: &[&str]) -> Result<String> {
    let mut cmd = std::process::Command::new("/usr/bin/python3");
    cmd.arg("-c").arg(code).args(args);
    Ok(run_cmd(cmd, secs(30)).await?.ok()?.stdout_text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partners_download_pac_extension_and_utility_from_the_admin_listener() {
    run(|h: Harness| async move {
        require_tools!("curl", "python3");
        let tenant = Tenant::start(&h).await?;
        let gw = &tenant.gw;
        let dir = h.subdir("downloads")?;
        let proxy = format!("maint.{DOMAIN}:{}", gw.port);

        // The PAC: served as a PAC, and pacparser sends every maint form to us.
        let pac = dir.join("proxy.pac");
        let (ran, status, headers) = fetch(gw, &h, "/com/remoteproxy/proxy.pac", &pac).await?;
        ensure!(status == 200, "PAC: {status}\n{}", ran.describe());
        ensure!(
            headers.contains("content-type: application/x-ns-proxy-autoconfig"),
            "PAC content type: {headers}"
        );
        let answers = python(
            "import sys, pacparser\n\
             pacparser.init()\n\
             pacparser.parse_pac_file(sys.argv[1])\n\
             for u in sys.argv[2:]:\n\
             \x20   host = u.split('/')[2].split(':')[0]\n\
             \x20   print(pacparser.find_proxy(u, host))\n",
            &[
                &pac.to_string_lossy(),
                &format!("https://12345.maint.{DOMAIN}:22/"),
                &format!("https://12345-ipo1.maint.{DOMAIN}/login"),
                &format!("https://12345-ipo1-10.0.0.5.maint.{DOMAIN}:3389/"),
                &format!("https://admin.{DOMAIN}/"),
                "https://www.example.org/",
            ],
        )
        .await?;
        let lines: Vec<&str> = answers.lines().map(str::trim).collect();
        let want_proxy = format!("HTTPS {proxy}");
        ensure!(
            lines
                == [
                    want_proxy.as_str(),
                    want_proxy.as_str(),
                    want_proxy.as_str(),
                    "DIRECT",
                    "DIRECT"
                ],
            "pacparser answers: {lines:?}"
        );

        // The Chrome extension: a Manifest V3 extension carrying the same PAC.
        let ext = dir.join("ext.zip");
        let (ran, status, headers) = fetch(
            gw,
            &h,
            "/com/remoteproxy/comgate-chrome-extension.zip",
            &ext,
        )
        .await?;
        ensure!(status == 200, "extension: {status}\n{}", ran.describe());
        ensure!(headers.contains("content-type: application/zip"), "{headers}");
        let out = python(
            "import sys, zipfile, json\n\
             z = zipfile.ZipFile(sys.argv[1])\n\
             m = json.loads(z.read('comgate-extension/manifest.json'))\n\
             print(m['manifest_version'], ','.join(m['permissions']), m['background']['service_worker'])\n\
             print(z.read('comgate-extension/proxy.pac') == open(sys.argv[2], 'rb').read())\n",
            &[&ext.to_string_lossy(), &pac.to_string_lossy()],
        )
        .await?;
        ensure!(
            out.lines().collect::<Vec<_>>() == ["3 proxy background.js", "True"],
            "extension bundle: {out}"
        );

        // The proxytunnel utility: our CA byte for byte, and commands for this proxy.
        let util = dir.join("util.zip");
        let (ran, status, _) =
            fetch(gw, &h, "/com/remoteproxy/proxytunnel-utility.zip", &util).await?;
        ensure!(status == 200, "utility: {status}\n{}", ran.describe());
        let out = python(
            "import sys, zipfile\n\
             z = zipfile.ZipFile(sys.argv[1])\n\
             print(z.read('comgate-proxytunnel/comgate-ca.pem') == open(sys.argv[2], 'rb').read())\n\
             print(z.read('comgate-proxytunnel/README.txt').decode())\n",
            &[&util.to_string_lossy(), &gw.ca().to_string_lossy()],
        )
        .await?;
        ensure!(out.starts_with("True"), "CA in the bundle differs: {out}");
        ensure!(
            out.contains(&format!("--proxy={proxy}")) && out.contains("--standalone="),
            "utility README: {out}"
        );

        // Nothing else is public: the REST API wants a login, the rest is not there.
        for (path, expected) in [
            ("/com/api/customers", 401),
            ("/", 404),
            ("/com/remoteproxy/", 404),
        ] {
            let (ran, status, _) = fetch(gw, &h, path, &dir.join("other")).await?;
            ensure!(status == expected, "{path}: {status}\n{}", ran.describe());
        }
        Ok(())
    })
    .await
}
