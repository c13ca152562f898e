//! Per-test scaffolding: a temporary directory that holds every file and log of one
//! test, an overall deadline, and log tails printed when the test fails.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

/// No test may run longer than this; when it does, its fixtures are dropped (which
/// kills their processes) and it fails.
const TEST_DEADLINE: Duration = Duration::from_secs(300);

/// Lines of each log printed when a test fails.
const LOG_TAIL_LINES: usize = 40;

/// One test's working area. Cheap to clone; the directory lives until the last clone
/// is dropped (after the fixtures, so their logs can still be printed).
#[derive(Clone)]
pub struct Harness {
    inner: Arc<Inner>,
}

struct Inner {
    dir: tempfile::TempDir,
}

impl Harness {
    fn new(name: &str) -> Result<Self> {
        let short: String = name
            .rsplit("::")
            .next()
            .unwrap_or(name)
            .chars()
            .take(40)
            .collect();
        let dir = tempfile::Builder::new()
            .prefix(&format!("comgate-e2e-{short}-"))
            .tempdir()
            .context("creating the test's temporary directory")?;
        Ok(Self {
            inner: Arc::new(Inner { dir }),
        })
    }

    /// The test's temporary directory.
    pub fn path(&self) -> &Path {
        self.inner.dir.path()
    }

    /// A fresh subdirectory `<test dir>/<name>` (numbered when the name is taken).
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let mut candidate = self.path().join(name);
        let mut n = 1;
        while candidate.exists() {
            n += 1;
            candidate = self.path().join(format!("{name}-{n}"));
        }
        std::fs::create_dir_all(&candidate)
            .with_context(|| format!("creating {}", candidate.display()))?;
        Ok(candidate)
    }

    fn dump_logs(&self) {
        let mut logs = Vec::new();
        collect_logs(self.path(), &mut logs);
        logs.sort();
        for log in logs {
            let text = std::fs::read(&log).unwrap_or_default();
            let text = String::from_utf8_lossy(&text);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(LOG_TAIL_LINES);
            eprintln!(
                "----- {} (last {} of {} lines) -----",
                log.display(),
                lines.len() - start,
                lines.len()
            );
            for line in &lines[start..] {
                eprintln!("{line}");
            }
        }
    }
}

fn collect_logs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_logs(&path, out);
        } else if path.extension().is_some_and(|e| e == "log") {
            out.push(path);
        }
    }
}

/// Runs one test body with a fresh [`Harness`] and a deadline. On error or timeout the
/// body's fixtures are dropped first (killing their processes), then the tails of all
/// `*.log` files under the test directory are printed and the test panics.
pub async fn run<F, Fut>(body: F)
where
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let name = std::thread::current()
        .name()
        .unwrap_or("unnamed-test")
        .to_string();
    let h = match Harness::new(&name) {
        Ok(h) => h,
        Err(e) => panic!("{name}: {e:#}"),
    };
    let outcome = tokio::time::timeout(TEST_DEADLINE, body(h.clone())).await;
    let error = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(e)) => format!("{e:#}"),
        Err(_) => format!("did not finish within {TEST_DEADLINE:?}"),
    };
    h.dump_logs();
    if std::env::var_os("E2E_KEEP").is_some() {
        let kept = h.path().to_path_buf();
        if let Ok(inner) = Arc::try_unwrap(h.inner) {
            let _ = inner.dir.keep();
            eprintln!("kept {}", kept.display());
        }
    }
    panic!("{name}: {error}");
}
