//! Replay every committed seed (and any saved crash) through the target bodies without
//! libFuzzer: `cargo test` in fuzz/.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.expect("corpus entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("seed-") {
            run(&std::fs::read(&path).expect("read seed"));
            count += 1;
        }
    }
    assert!(count > 0, "no seeds in {}", dir.display());
}

#[test]
fn heap_check_seeds() {
    replay("heap_check", rvm_fuzz::heap_check::run);
}

#[test]
fn heap_walk_file_seeds() {
    replay("heap_walk_file", rvm_fuzz::heap_walk_file::run);
}

#[test]
fn log_recovery_seeds() {
    replay("log_recovery", rvm_fuzz::log_recovery::run);
}

#[test]
fn merge_seeds() {
    replay("merge", rvm_fuzz::merge::run);
}

#[test]
fn rvmutl_parse_seeds() {
    replay("rvmutl_parse", rvm_fuzz::rvmutl_parse::run);
}

#[test]
fn segment_header_seeds() {
    replay("segment_header", rvm_fuzz::segment_header::run);
}

#[test]
fn tx_model_seeds() {
    replay("tx_model", rvm_fuzz::tx_model::run);
}

#[test]
fn units_seeds() {
    replay("units", rvm_fuzz::units::run);
}

#[test]
fn the_fixture_seed_is_the_fixture_header() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/segment_header/seed-fixture");
    let bytes = std::fs::read(dir).expect("seed");
    let header = rvm::format::segment::SegmentHeader::decode(&bytes).expect("decodes");
    assert_eq!(header, rvm_fuzz::fixture::segment_header());
}
