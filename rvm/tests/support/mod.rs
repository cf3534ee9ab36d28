//! Fixtures shared by the rvm integration tests (each test file that uses them declares
//! `mod support;`).

use std::path::{Path, PathBuf};

/// A fresh directory for one test, `$TMPDIR/rvm-<test file>-<name>-<pid>`, removed with its
/// contents when dropped (also while a failing test unwinds).
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!(
            "rvm-{}-{name}-{}",
            env!("CARGO_CRATE_NAME"),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    /// `f` inside the directory.
    pub fn path(&self, f: impl AsRef<Path>) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
