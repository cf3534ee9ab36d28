//! Locating the workspace's binaries (rdsinit) from a benchmark or the report.
//!
//! Cargo gives `CARGO_BIN_EXE_*` only to the package that owns a binary, so the benches look
//! for it next to their own executable, and build it if it is not there.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The workspace root (this crate lives in `benches/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The target directories to look in, most likely first.
fn candidates(name: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/release/rvm-report, or target/release/deps/open-<hash> for a bench.
        if let Some(dir) = exe.parent() {
            dirs.push(dir.to_path_buf());
            if let Some(up) = dir.parent() {
                dirs.push(up.to_path_buf());
            }
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    dirs.push(target.join("release"));
    dirs.into_iter().map(|d| d.join(name)).collect()
}

/// The path of workspace binary `name` if it has been built in release mode.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    candidates(name).into_iter().find(|p| p.is_file())
}

/// The path of workspace binary `name`, building it (release) first if it is not found.
pub fn binary(package: &str, name: &str) -> Result<PathBuf> {
    if let Some(p) = find_binary(name) {
        return Ok(p);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            package,
            "--bin",
            name,
        ])
        .status()
        .with_context(|| format!("run cargo build for {name}"))?;
    if !status.success() {
        bail!("cargo build -p {package} --bin {name} failed ({status})");
    }
    find_binary(name).with_context(|| format!("{name} was built but not found"))
}
