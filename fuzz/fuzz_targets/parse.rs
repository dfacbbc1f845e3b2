//! Fuzzes the Dockerfile parser: any input must parse (the parser is total)
//! without panicking, with consistent spans and line numbers, and every
//! diagnostic must render. Run: `cargo +nightly fuzz run parse` in `fuzz/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src = String::from_utf8_lossy(data);
    berth_dockerfile::check_invariants(&src);
});
