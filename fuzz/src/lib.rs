//! The bodies of the fuzz targets, in a library so that `cargo test` in this directory can
//! replay the seed corpus without libFuzzer.
//!
//! Every target must never panic and never hang on any input; a panic is a bug in `rvm` (or in
//! the model a target compares with) and libFuzzer saves the input under `fuzz/artifacts/`.

pub mod fixture;
pub mod heap_check;
pub mod heap_walk_file;
pub mod input;
pub mod log_recovery;
pub mod merge;
pub mod rvmutl_parse;
pub mod segment_header;
pub mod tx_model;
pub mod units;
