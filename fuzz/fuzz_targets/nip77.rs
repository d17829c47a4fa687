//! libFuzzer entry for `wok::fuzz_targets::nip77`, whose module documentation says what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wok::fuzz_targets::nip77::run(data));
