//! The benchmark's work directory (configs, keys, databases, logs).
//!
//! A directory named after the process id collided with an earlier run's leftovers
//! once the id came round again (its database already held the bench customer), and
//! the leftovers of hundreds of runs filled `/tmp`. So the default is a fresh
//! directory removed after a successful run and kept, with its path printed, after a
//! failed one, where its logs are what one reads next. A directory named with
//! `--work-dir` must be empty (or not exist yet) and is always kept. A run stopped
//! by a signal removes its temporary directory with its processes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

enum WorkDir {
    Temporary(tempfile::TempDir),
    Named(PathBuf),
}

/// Runs `run` in a work directory (see [`WorkDir::new`]). The processes `run`
/// starts die with it (kill on drop) before the directory is removed or kept.
pub async fn within<T>(
    named: Option<&Path>,
    prefix: &str,
    run: impl AsyncFnOnce(&Path) -> Result<T>,
) -> Result<T> {
    let work = WorkDir::new(named, prefix)?;
    let outcome = run(work.path()).await;
    work.finish(&outcome);
    outcome
}

impl WorkDir {
    /// `named` from `--work-dir`, else a new directory under the system's temp dir.
    fn new(named: Option<&Path>, prefix: &str) -> Result<WorkDir> {
        match named {
            None => Ok(WorkDir::Temporary(
                tempfile::Builder::new()
                    .prefix(prefix)
                    .tempdir()
                    .context("creating the work directory")?,
            )),
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating the work directory {}", dir.display()))?;
                let mut entries = std::fs::read_dir(dir)
                    .with_context(|| format!("reading the work directory {}", dir.display()))?;
                if entries.next().is_some() {
                    bail!(
                        "--work-dir {} is not empty: an earlier run's database and keys \
                         would be reused; name an empty or new directory",
                        dir.display()
                    );
                }
                Ok(WorkDir::Named(dir.to_path_buf()))
            }
        }
    }

    fn path(&self) -> &Path {
        match self {
            WorkDir::Temporary(t) => t.path(),
            WorkDir::Named(p) => p,
        }
    }

    /// Removes a temporary directory after a run that succeeded; keeps it otherwise.
    /// Call it once every process the run started has been stopped.
    fn finish<T>(self, outcome: &Result<T>) {
        match self {
            WorkDir::Temporary(t) if outcome.is_err() => {
                let kept = t.keep();
                eprintln!("work dir kept for its logs: {}", kept.display());
            }
            WorkDir::Temporary(t) => {
                if let Err(e) = t.close() {
                    eprintln!("could not remove the work dir: {e}");
                }
            }
            WorkDir::Named(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn within_keeps_the_dir_only_when_the_run_fails() {
        let ok = within(None, "comgate-bench-test-", async |dir: &Path| {
            std::fs::write(dir.join("log"), b"x")?;
            Ok(dir.to_path_buf())
        })
        .await
        .unwrap();
        assert!(!ok.exists());
        let mut seen = None;
        let failed: Result<()> = within(None, "comgate-bench-test-", async |dir: &Path| {
            seen = Some(dir.to_path_buf());
            anyhow::bail!("bench failed")
        })
        .await;
        assert!(failed.is_err());
        let kept = seen.unwrap();
        assert!(kept.is_dir());
        std::fs::remove_dir_all(kept).unwrap();
    }

    #[test]
    fn two_temporary_dirs_differ() {
        let a = WorkDir::new(None, "comgate-bench-test-").unwrap();
        let b = WorkDir::new(None, "comgate-bench-test-").unwrap();
        assert_ne!(a.path(), b.path());
    }

    #[test]
    fn a_named_dir_must_be_empty_and_is_kept() {
        let parent = tempfile::tempdir().unwrap();
        let named = parent.path().join("work");
        let w = WorkDir::new(Some(&named), "x").unwrap();
        std::fs::write(named.join("comgate.db"), b"old").unwrap();
        w.finish(&Ok(()));
        assert!(named.join("comgate.db").exists());

        let err = WorkDir::new(Some(&named), "x").err().unwrap().to_string();
        assert!(err.contains("is not empty"), "{err}");
        assert!(err.contains(&named.display().to_string()), "{err}");
    }
}
