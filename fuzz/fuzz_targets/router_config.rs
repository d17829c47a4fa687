//! libFuzzer entry for `wok::fuzz_targets::router_config`, whose module documentation says what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wok::fuzz_targets::router_config::run(data));
