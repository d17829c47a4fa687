//! libFuzzer entry for `wok::fuzz_targets::ws_frames`, whose module documentation says what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wok::fuzz_targets::ws_frames::run(data));
