//! The reopen measurement of the store comparison on a tiny store: `rvm-report` as the child
//! fills each engine's store, is killed with SIGKILL after its last durable commit, and a
//! fresh child reopens the store and finds the last key's value (no timing is asserted).

use std::path::Path;

use rvm_benches::scratch::Scratch;
use rvm_benches::store_peers::{self, Engine};

#[test]
fn every_engine_finds_its_last_durable_insert_after_kill_9() {
    let report = Path::new(env!("CARGO_BIN_EXE_rvm-report"));
    for engine in Engine::ALL {
        let dir = Scratch::new("test-reopen").unwrap();
        // 2,500 entries: three durable commits, the last one partial.
        store_peers::reopen_after_kill(report, engine, dir.path(), 2500)
            .unwrap_or_else(|e| panic!("{engine:?}: {e:#}"));
        // The store was recovered, not re-created: reopening again still finds the value.
        store_peers::time_reopen(engine, dir.path(), 2500)
            .unwrap_or_else(|e| panic!("{engine:?} again: {e:#}"));
    }
}

#[test]
fn a_child_with_bad_arguments_fails_and_says_why() {
    let report = env!("CARGO_BIN_EXE_rvm-report");
    let out = std::process::Command::new(report)
        .args([
            store_peers::CHILD_ARG,
            "fill",
            "sqlite",
            "/nonexistent",
            "10",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no engine \"sqlite\""), "{err}");
}
