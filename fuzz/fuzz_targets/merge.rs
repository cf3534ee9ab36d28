#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvm_fuzz::merge::run(data));
