//! Fuzzes berth-shell: any input, either escape token, every option
//! combination, must expand or fail with an error, never panic or hang.
#![no_main]

use berth_shell::{EnvMap, LexOptions, Lexer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(input) = std::str::from_utf8(rest) else {
        return;
    };
    let escape = if flags & 1 == 0 { '\\' } else { '`' };
    let opts = LexOptions {
        raw_quotes: flags & 2 != 0,
        raw_escapes: flags & 4 != 0,
        skip_process_quotes: flags & 8 != 0,
        skip_unset_env: flags & 16 != 0,
    };
    let env = EnvMap::from_kv_strings(["A=a b*c", "B=", "X=/x/y/z", "0=zero"]);
    let lexer = Lexer::new(escape).with_options(opts);
    if let Ok(e) = lexer.expand(input, &env) {
        assert!(e.matched.is_disjoint(&e.unmatched));
    }
});
