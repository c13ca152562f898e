//! The admin REST API through a running `comgate serve`, with curl as the
//! client: an Administrator made with `comgate admin user add` logs in over
//! HTTPS, the session cookie comes back Secure and HttpOnly into curl's
//! cookie jar, a state change without the CSRF token is refused, logout
//! ends the session, and the audit log in the database names the client's
//! address.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use crate::support::comgate::{Agent, Gateway};
use crate::support::process::run as run_cmd;
use crate::support::site::{Tenant, CUSTOMER};
use crate::support::{run, secs, tools, Harness, DOMAIN};

const PASSWORD: &str = "Admin-pass-1";

/// curl against the admin listener with one cookie jar.
struct ApiCurl {
    jar: PathBuf,
    dir: PathBuf,
    ca: PathBuf,
    port: u16,
}

impl ApiCurl {
    fn new(h: &Harness, gw: &Gateway) -> Result<ApiCurl> {
        let dir = h.subdir("api-curl")?;
        Ok(ApiCurl {
            jar: dir.join("cookies.txt"),
            dir,
            ca: gw.ca().to_path_buf(),
            port: gw.admin_port,
        })
    }

    /// Sends `method path` with the jar, `headers` and a JSON body;
    /// returns the status and the JSON answer (Null when empty).
    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[String],
        body: Option<&str>,
    ) -> Result<(u16, Value)> {
        let out = self.dir.join("body.json");
        let _ = std::fs::remove_file(&out);
        let mut cmd = std::process::Command::new(tools::path_of("curl")?);
        cmd.args(["-sS", "--max-time", "20", "-X", method, "-o"])
            .arg(&out)
            .args(["-w", "%{http_code}", "--cacert"])
            .arg(&self.ca)
            .arg("-c")
            .arg(&self.jar)
            .arg("-b")
            .arg(&self.jar)
            .args([
                "--resolve",
                &format!("admin.{DOMAIN}:{}:127.0.0.1", self.port),
            ]);
        for header in headers {
            cmd.args(["-H", header]);
        }
        if let Some(body) = body {
            cmd.args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
            ]);
        }
        cmd.arg(format!("https://admin.{DOMAIN}:{}{path}", self.port));
        let ran = run_cmd(cmd, secs(30)).await?;
        let status: u16 = ran.stdout_text().trim().parse().unwrap_or(0);
        ensure!(status != 0, "curl failed: {}", ran.describe());
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?
        };
        Ok((status, json))
    }

    /// The jar's line for the session cookie, split into its fields.
    fn session_cookie(&self) -> Option<Vec<String>> {
        let jar = std::fs::read_to_string(&self.jar).ok()?;
        jar.lines()
            .find(|l| l.contains("\tcomgate_session\t"))
            .map(|l| l.split('\t').map(str::to_owned).collect())
    }
}

fn jar_path(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_administrator_logs_in_with_curl_and_csrf_guards_changes() {
    run(|h: Harness| async move {
        require_tools!("curl");
        let tenant = Tenant::start(&h).await?;
        let gw = &tenant.gw;
        add_root(gw).await?;
        let curl = ApiCurl::new(&h, gw)?;

        let (status, body) = curl.call("GET", "/com/api/session", &[], None).await?;
        ensure!(
            status == 401 && body["code"] == "not_authenticated",
            "{status} {body}"
        );

        let (status, body) = curl
            .call(
                "POST",
                "/com/api/login",
                &[],
                Some(r#"{"username": "root", "password": "wrong-pass-1"}"#),
            )
            .await?;
        ensure!(
            status == 401 && body["code"] == "invalid_credentials",
            "{status} {body}"
        );

        let login = format!(r#"{{"username": "root", "password": "{PASSWORD}"}}"#);
        let (status, body) = curl
            .call("POST", "/com/api/login", &[], Some(&login))
            .await?;
        ensure!(status == 200, "login: {status} {body}");
        ensure!(body["user"]["role"] == "administrator", "{body}");
        let csrf = body["csrf_token"]
            .as_str()
            .context("csrf token")?
            .to_owned();
        // curl's jar: "#HttpOnly_" before the domain marks HttpOnly; the
        // fourth field is the Secure flag; the path is /com.
        let cookie = curl
            .session_cookie()
            .with_context(|| format!("no session cookie in {}", jar_path(&curl.jar)))?;
        ensure!(cookie[0].starts_with("#HttpOnly_admin."), "{cookie:?}");
        ensure!(cookie[2] == "/com" && cookie[3] == "TRUE", "{cookie:?}");

        let (status, body) = curl.call("GET", "/com/api/session", &[], None).await?;
        ensure!(
            status == 200 && body["user"]["username"] == "root",
            "{status} {body}"
        );

        let (status, body) = curl
            .call("POST", "/com/api/logout", &[], Some("{}"))
            .await?;
        ensure!(
            status == 403 && body["code"] == "csrf_token_invalid",
            "{status} {body}"
        );

        let header = format!("X-CSRF-Token: {csrf}");
        let (status, _) = curl
            .call("POST", "/com/api/logout", &[header], Some("{}"))
            .await?;
        ensure!(status == 204, "logout: {status}");
        let (status, _) = curl.call("GET", "/com/api/session", &[], None).await?;
        ensure!(status == 401, "after logout: {status}");

        let (status, body) = curl.call("GET", "/com/api/openapi.json", &[], None).await?;
        ensure!(
            status == 200 && body["paths"]["/login"].is_object(),
            "{status}"
        );

        let store = gw.store().await?;
        let (_, records) = store
            .list_audit(&admin::store::AuditQuery {
                action: Some("login".into()),
                limit: 10,
                ..Default::default()
            })
            .await?;
        let seen: Vec<(String, String)> = records
            .iter()
            .map(|r| (r.outcome.clone(), r.actor.source.clone()))
            .collect();
        ensure!(
            seen == [
                ("ok".to_owned(), "127.0.0.1".to_owned()),
                ("invalid".to_owned(), "127.0.0.1".to_owned())
            ],
            "{seen:?}"
        );
        // The command line's changes are in the same log.
        let (_, cli) = store
            .list_audit(&admin::store::AuditQuery {
                limit: 50,
                ..Default::default()
            })
            .await?;
        let cli: Vec<(String, String)> = cli
            .iter()
            .filter(|r| r.actor.source == "local")
            .map(|r| (r.action.clone(), r.target.clone()))
            .rev()
            .collect();
        ensure!(
            cli.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>()
                == [
                    "proxy_account.set",
                    "customer.create",
                    "system.create",
                    "user.create"
                ],
            "{cli:?}"
        );
        ensure!(cli[1].1 == format!("customer:{CUSTOMER}"), "{cli:?}");
        Ok(())
    })
    .await
}

impl ApiCurl {
    /// Logs in as the Administrator `root`.
    async fn login(&self) -> Result<()> {
        let login = format!(r#"{{"username": "root", "password": "{PASSWORD}"}}"#);
        let (status, body) = self
            .call("POST", "/com/api/login", &[], Some(&login))
            .await?;
        ensure!(status == 200, "login: {status} {body}");
        Ok(())
    }

    /// Polls `path` until `done` holds for its answer (10 s at most).
    async fn wait_for(&self, path: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + secs(10);
        loop {
            let (status, body) = self.call("GET", path, &[], None).await?;
            ensure!(status == 200, "{path}: {status} {body}");
            if done(&body) {
                return Ok(body);
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "{path}: still {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

async fn add_root(gw: &Gateway) -> Result<()> {
    gw.admin(&[
        "user",
        "add",
        "--username",
        "root",
        "--password",
        PASSWORD,
        "--role",
        "administrator",
    ])
    .await?;
    Ok(())
}

/// A tenant's comgate with the Administrator `root`, and curl logged in as it.
async fn logged_in_tenant(h: &Harness) -> Result<(Tenant, ApiCurl)> {
    let tenant = Tenant::start(h).await?;
    add_root(&tenant.gw).await?;
    let curl = ApiCurl::new(h, &tenant.gw)?;
    curl.login().await?;
    Ok((tenant, curl))
}

/// The customer list's connectivity comes from serve's hub: a real agent
/// connecting turns the customer green ("connected"), its end turns it
/// offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_customer_list_follows_a_real_agent() {
    run(|h: Harness| async move {
        require_tools!("curl");
        let (tenant, curl) = logged_in_tenant(&h).await?;
        let gw = &tenant.gw;

        let waiting = curl
            .wait_for("/com/api/customers", |b| b["total"] == 1)
            .await?;
        let item = &waiting["items"][0];
        ensure!(item["id"] == CUSTOMER, "{item}");
        ensure!(
            item["connectivity"]["state"] == "waiting_for_initial_connection",
            "{item}"
        );

        let mut agent = Agent::start(gw, &tenant.agent_config()).await?;
        let connected = curl
            .wait_for("/com/api/customers?state=connected", |b| b["total"] == 1)
            .await?;
        ensure!(
            connected["items"][0]["connectivity"]["colour"] == "green",
            "{connected}"
        );
        let board = curl.wait_for("/com/api/dashboard", |_| true).await?;
        let by_state = board["customers"]["by_state"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        ensure!(
            by_state
                .iter()
                .any(|c| c["value"] == "connected" && c["count"] == 1),
            "{board}"
        );

        agent.kill();
        curl.wait_for("/com/api/customers?state=offline", |b| b["total"] == 1)
            .await?;
        Ok(())
    })
    .await
}

/// A site's upgrade, as its tooling writes it to the agent's actions file,
/// reaches the customer list's action icon through a real agent and serve:
/// in progress while it runs, then how it ended; a late line for the ended
/// run changes nothing, and a bad line is named in the agent's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn actions_a_site_reports_show_in_the_customer_list() {
    run(|h: Harness| async move {
        require_tools!("curl");
        let (tenant, curl) = logged_in_tenant(&h).await?;
        let gw = &tenant.gw;
        let file = h.path().join("site-actions.jsonl");
        let cfg = tenant
            .agent_config()
            .line("actions_file", format!("\"{}\"", file.display()))
            .line("alarms_poll_ms", 100);
        let agent = Agent::start(gw, &cfg).await?;
        curl.wait_for("/com/api/customers?state=connected", |b| b["total"] == 1)
            .await?;

        let append = |text: &str| -> Result<()> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)?;
            f.write_all(text.as_bytes())?;
            Ok(())
        };
        append(
            "{\"id\":\"up-1\",\"kind\":\"upgrade\",\"state\":\"in_progress\",\"detail\":\"to 12.1\"}\n\
             {\"id\":\"up-1\",\"kind\":\"upgrade\",\"state\":\"paused\"}\n",
        )?;
        let running = curl
            .wait_for("/com/api/customers?action=in_progress", |b| b["total"] == 1)
            .await?;
        let item = &running["items"][0];
        ensure!(item["status"]["action"] == "in_progress", "{item}");
        ensure!(item["systems"][0]["action"]["kind"] == "upgrade", "{item}");

        append("{\"id\":\"up-1\",\"kind\":\"upgrade\",\"state\":\"failed\",\"detail\":\"image corrupt\"}\n")?;
        curl.wait_for("/com/api/customers?action=failed", |b| b["total"] == 1)
            .await?;
        // Over is over: a late line for the same run is ignored.
        append("{\"id\":\"up-1\",\"kind\":\"upgrade\",\"state\":\"completed\"}\n")?;
        let deadline = tokio::time::Instant::now() + secs(10);
        while !gw
            .log_text()
            .lines()
            .any(|l| l.contains("site action") && l.contains("ignored=true"))
        {
            ensure!(
                tokio::time::Instant::now() < deadline,
                "serve did not log the late line as ignored"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let details = curl
            .wait_for(&format!("/com/api/customers/{CUSTOMER}"), |_| true)
            .await?;
        let actions = details["actions"].as_array().cloned().unwrap_or_default();
        ensure!(actions.len() == 1, "{details}");
        ensure!(
            actions[0]["state"] == "failed"
                && actions[0]["detail"] == "image corrupt"
                && actions[0]["site_action_id"] == "up-1",
            "{details}"
        );
        let log = agent.log_text();
        ensure!(
            log.contains("site report line skipped") && log.contains("unknown state \"paused\""),
            "the agent did not name the bad line:\n{log}"
        );
        Ok(())
    })
    .await
}
