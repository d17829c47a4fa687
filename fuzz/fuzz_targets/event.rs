//! libFuzzer entry for `wok::fuzz_targets::event`, whose module documentation says what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wok::fuzz_targets::event::run(data));
