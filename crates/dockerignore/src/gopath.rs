//! Go's `path/filepath` pieces that `.dockerignore` handling relies on (Unix
//! flavour): `Clean`, `Dir` and the syntax check done by `Match`.

/// Go's `filepath.Clean` on Unix.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for elem in path.split('/') {
        match elem {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            e => parts.push(e),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Dir` on Unix.
pub fn dir(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => clean(&path[..=i]),
        None => ".".to_owned(),
    }
}

/// Splits a pattern into `filepath.Match` chunks: a run of leading stars and
/// the text up to the next star that is outside `[...]`.
fn scan_chunk(pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut p = pattern;
    let mut star = false;
    while let [b'*', rest @ ..] = p {
        p = rest;
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'\\' if i + 1 < p.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &p[..i], &p[i..])
}

/// Go's `getEsc` syntax rules: a class char, optionally `\`-escaped, that
/// must be followed by more pattern.
fn get_esc(chunk: &[u8]) -> Result<&[u8], ()> {
    let mut c = chunk;
    match c.first() {
        None | Some(b'-') | Some(b']') => return Err(()),
        Some(b'\\') => {
            c = &c[1..];
            if c.is_empty() {
                return Err(());
            }
        }
        _ => {}
    }
    // Skip one UTF-8 encoded char.
    let len = utf8_len(c[0]);
    let rest = c.get(len..).ok_or(())?;
    if rest.is_empty() {
        return Err(());
    }
    Ok(rest)
}

fn utf8_len(b: u8) -> usize {
    match b {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Syntax check of one chunk, as `matchChunk` performs it while matching.
fn check_chunk(chunk: &[u8]) -> Result<(), ()> {
    let mut c = chunk;
    while let Some(&b) = c.first() {
        match b {
            b'[' => {
                c = &c[1..];
                if c.first() == Some(&b'^') {
                    c = &c[1..];
                }
                let mut nrange = 0;
                loop {
                    if c.first() == Some(&b']') && nrange > 0 {
                        c = &c[1..];
                        break;
                    }
                    c = get_esc(c)?;
                    if c[0] == b'-' {
                        c = get_esc(&c[1..])?;
                    }
                    nrange += 1;
                }
            }
            b'\\' => {
                c = &c[1..];
                if c.is_empty() {
                    return Err(());
                }
                c = &c[1..];
            }
            _ => c = &c[1..],
        }
    }
    Ok(())
}

/// Whether `filepath.Match(pattern, ".")` returns `ErrBadPattern`, which
/// patternmatcher uses as its syntax check. A Go `Match` that validates the
/// whole pattern (as `path.Match` does) checks every chunk whatever the
/// name, so this checks the chunks directly (see the crate docs for Go
/// releases whose `filepath.Match` stops earlier).
pub fn is_bad_pattern(pattern: &str) -> bool {
    let mut p = pattern.as_bytes();
    while !p.is_empty() {
        let (star, chunk, rest) = scan_chunk(p);
        if star && chunk.is_empty() {
            return false;
        }
        if check_chunk(chunk).is_err() {
            return true;
        }
        p = rest;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_like_go() {
        for (i, o) in [
            ("", "."),
            (".", "."),
            ("a/b/", "a/b"),
            ("/a/../..", "/"),
            ("a/../..", ".."),
            ("./a//b/./c", "a/b/c"),
            ("../../a", "../../a"),
            ("/", "/"),
            ("//a", "/a"),
            ("a/b/../../c", "c"),
            ("!a/../b", "b"),
        ] {
            assert_eq!(clean(i), o, "{i}");
        }
        assert_eq!(dir("a/b/c"), "a/b");
        assert_eq!(dir("a"), ".");
    }

    #[test]
    fn bad_patterns() {
        for p in [
            "[", "a[", "[]", "[]a]", "[a-]", "a\\", "[\\", "[a", "[^]", "*[", "a*b[c", "[a-\\",
        ] {
            assert!(is_bad_pattern(p), "{p} should be bad");
        }
        for p in [
            "a", "*", "**", "[a]", "[^a]", "[a-z]", "[\\]]", "a\\*", "[*]", "a]", "[[]", "\\[",
            "*.go", "[!a]",
        ] {
            assert!(!is_bad_pattern(p), "{p} should be fine");
        }
    }
}
