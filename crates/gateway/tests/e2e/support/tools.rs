//! Finding the real client programs, and the skip-or-fail rule when one is missing.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{bail, Result};

/// Directories searched besides `PATH` (sshd lives in /usr/sbin, which a non-root
/// `PATH` may lack).
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"];

/// Absolute path of an executable, searched in `PATH` and then the sbin directories.
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Like [`find`], but an error naming the program when it is missing.
pub fn path_of(program: &str) -> Result<PathBuf> {
    match find(program) {
        Some(p) => Ok(p),
        None => bail!("{program} not installed"),
    }
}

/// `Ok(true)` when every program is installed. Otherwise: with `CI=true` an error (the
/// test fails, CI must have every client); else a `skipped: X not installed` line and
/// `Ok(false)` (the test returns early and passes).
pub fn require(programs: &[&str]) -> Result<bool> {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| find(p).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(true);
    }
    let list = missing.join(", ");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!("CI=true and required program(s) not installed: {list}");
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    eprintln!("skipped: {list} not installed ({test})");
    Ok(false)
}
