//! `comgate demo`, the README's first command: it must start with embedded
//! defaults and the curl command it prints must reach its demo site.

use std::time::Instant;

use anyhow::{bail, Context};

use crate::support::comgate::comgate_command;
use crate::support::ports::free_port;
use crate::support::process::Proc;
use crate::support::{millis, secs, Harness};

/// Two consecutive free ports: the demo puts its agent listener on port + 1.
fn free_port_pair() -> u16 {
    loop {
        let p = free_port();
        if std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demo_prints_a_curl_command_that_reaches_its_demo_site() {
    crate::support::run(|h: Harness| async move {
        require_tools!("curl");
        let dir = h.subdir("demo")?;
        let port = free_port_pair();
        let mut cmd = comgate_command();
        cmd.arg("demo")
            .arg("--dir")
            .arg(dir.join("data"))
            .arg("--port")
            .arg(port.to_string());
        let log = dir.join("demo.log");
        let _demo = Proc::spawn("comgate demo", cmd, &log)?;

        // The printed command spans three lines joined by backslashes.
        let deadline = Instant::now() + secs(30);
        let command = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(start) = text.find("curl --proxytunnel") {
                let lines: Vec<&str> = text[start..].lines().take(3).collect();
                if lines.len() == 3 {
                    break lines
                        .iter()
                        .map(|l| l.trim().trim_end_matches('\\').trim())
                        .collect::<Vec<_>>()
                        .join(" ");
                }
            }
            if Instant::now() > deadline {
                bail!("the demo printed no curl command:\n{text}");
            }
            tokio::time::sleep(millis(100)).await;
        };
        // Its agent connects in the same process right after printing.
        let mut last = String::new();
        let deadline = Instant::now() + secs(20);
        while Instant::now() < deadline {
            let out = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{command} -sS --max-time 10"))
                .output()
                .await
                .context("running the demo's curl command")?;
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() && last.contains("Hello from the comgate demo site") {
                return Ok(());
            }
            tokio::time::sleep(millis(300)).await;
        }
        bail!("the demo's curl command did not reach the demo site: {last}")
    })
    .await;
}
