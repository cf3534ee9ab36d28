#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvm_fuzz::heap_walk_file::run(data));
