//! Fuzzes berth-dockerignore: any `.dockerignore` text and any path must
//! parse or fail with an error, and match without panicking.
#![no_main]

use berth_dockerignore::IgnoreMatcher;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line doubles as the path to test.
    let (path, file) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(m) = IgnoreMatcher::parse(file) {
        let walk = m.matches(path, false);
        let _ = m.matches_or_parent_matches(path);
        if let Ok(k) = m.keep_build_files(Some(path)) {
            let _ = k.matches(path, false);
        }
        let _ = walk;
    }
});
