//! `COPY --chmod` modes: octal (`755`) or symbolic as in chmod(1)
//! (`u+x,g=r`, `go=rX`, `g=u-w`, `+t`).
//!
//! Semantics follow BuildKit: an octal mode replaces only the permission
//! bits (set-id and sticky bits of the source are kept); a symbolic mode is
//! applied to each copied entry's own mode, so `X` depends on whether the
//! entry is a directory or already executable. A clause without `ugoa` acts
//! on all classes minus the builder's umask (022), as chmod(1) does.

use std::fmt;

/// The umask BuildKit's file operations run with.
const UMASK: u32 = 0o022;

const SETUID: u32 = 0o4000;
const SETGID: u32 = 0o2000;
const STICKY: u32 = 0o1000;

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    Octal(u32),
    Symbolic(Vec<Clause>),
}

/// `who op perms [op perms...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// Bits of the classes named (0 when none were: "all, minus the umask").
    who: u32,
    actions: Vec<(u8, Perm)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Perm {
    /// Permission letters: bits for all classes, `X` kept apart.
    Bits {
        bits: u32,
        cond_x: bool,
        sticky: bool,
    },
    /// Copy another class's bits: `u`, `g` or `o`.
    Copy(u8),
}

/// Why a `--chmod` value is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChmodError(pub String);

impl fmt::Display for ChmodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ChmodError {}

impl Chmod {
    pub fn parse(s: &str) -> Result<Chmod, ChmodError> {
        let bad = || {
            ChmodError(format!(
                "invalid chmod parameter: {s:?}: expected an octal mode (0 to 7777) or a symbolic mode like u+x,g=r"
            ))
        };
        if s.is_empty() {
            return Err(bad());
        }
        if s.as_bytes()[0].is_ascii_digit() {
            let v = u32::from_str_radix(s, 8).map_err(|_| bad())?;
            if v > 0o7777 {
                return Err(bad());
            }
            return Ok(Chmod::Octal(v));
        }
        let mut clauses = Vec::new();
        for part in s.split(',') {
            let b = part.as_bytes();
            let mut i = 0;
            let mut who = 0;
            while i < b.len() && matches!(b[i], b'u' | b'g' | b'o' | b'a') {
                who |= match b[i] {
                    b'u' => SETUID | 0o700,
                    b'g' => SETGID | 0o070,
                    b'o' => 0o007,
                    _ => SETUID | SETGID | 0o777,
                };
                i += 1;
            }
            let mut actions = Vec::new();
            while i < b.len() {
                let op = b[i];
                if !matches!(op, b'+' | b'-' | b'=') {
                    return Err(bad());
                }
                i += 1;
                if i < b.len() && matches!(b[i], b'u' | b'g' | b'o') {
                    actions.push((op, Perm::Copy(b[i])));
                    i += 1;
                    continue;
                }
                let (mut bits, mut cond_x, mut sticky) = (0, false, false);
                while i < b.len() && !matches!(b[i], b'+' | b'-' | b'=') {
                    match b[i] {
                        b'r' => bits |= 0o444,
                        b'w' => bits |= 0o222,
                        b'x' => bits |= 0o111,
                        b'X' => cond_x = true,
                        b's' => bits |= SETUID | SETGID,
                        b't' => sticky = true,
                        _ => return Err(bad()),
                    }
                    i += 1;
                }
                actions.push((
                    op,
                    Perm::Bits {
                        bits,
                        cond_x,
                        sticky,
                    },
                ));
            }
            if actions.is_empty() {
                return Err(bad());
            }
            clauses.push(Clause { who, actions });
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The new permission bits (0o7777) of an entry whose mode is `mode`.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let orig = mode & 0o7777;
        match self {
            Chmod::Octal(m) => (orig & !0o777) | (m & 0o777),
            Chmod::Symbolic(clauses) => {
                let mut m = orig;
                for c in clauses {
                    let (who, mask) = if c.who == 0 {
                        (SETUID | SETGID | 0o777, !UMASK)
                    } else {
                        (c.who, !0)
                    };
                    for (op, perm) in &c.actions {
                        let (value, extra) = match perm {
                            Perm::Bits {
                                bits,
                                cond_x,
                                sticky,
                            } => {
                                let mut v = *bits;
                                // X: for directories and entries already
                                // executable by someone (with any operator,
                                // as chmod(1) and the Dockerfile reference's
                                // `u=rwX,go=rX` example have it).
                                if *cond_x && (is_dir || orig & 0o111 != 0) {
                                    v |= 0o111;
                                }
                                // t: only if the clause is not for "o" alone.
                                let st = if *sticky && (c.who == 0 || c.who & !0o007 != 0) {
                                    STICKY
                                } else {
                                    0
                                };
                                (v, st)
                            }
                            Perm::Copy(from) => {
                                let class = match from {
                                    b'u' => (m >> 6) & 7,
                                    b'g' => (m >> 3) & 7,
                                    _ => m & 7,
                                };
                                (class * 0o111, 0)
                            }
                        };
                        let target = (who & value & mask) | extra;
                        match op {
                            b'+' => m |= target,
                            b'-' => m &= !target,
                            _ => {
                                // '=': clear the classes named (all of
                                // them when none were), then set.
                                let clear = who | if extra != 0 { STICKY } else { 0 };
                                m = (m & !clear) | target;
                            }
                        }
                    }
                }
                m
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_and_symbolic() {
        // (mode string, original mode, is_dir, expected)
        for (s, orig, dir, want) in [
            ("755", 0o644, false, 0o755),
            ("644", 0o4755, false, 0o4644),
            ("0", 0o777, true, 0o000),
            ("u+x", 0o644, false, 0o744),
            ("u+x,g=r", 0o664, false, 0o744),
            ("go=rX", 0o700, true, 0o755),
            ("go=rX", 0o600, false, 0o644),
            ("go=rX", 0o700, false, 0o755),
            ("u=rwX,go=rX", 0o600, false, 0o644),
            ("u=rwX,go=rX", 0o700, true, 0o755),
            ("+x", 0o644, false, 0o755),
            ("+w", 0o444, false, 0o644),
            ("-w", 0o666, false, 0o466),
            ("a-w", 0o666, false, 0o444),
            ("=r", 0o777, false, 0o444),
            ("g=u", 0o640, false, 0o660),
            ("g=u-w", 0o750, false, 0o770 & !0o020),
            ("u=rwx,go=", 0o644, false, 0o700),
            ("+t", 0o755, true, 0o1755),
            ("o+t", 0o755, true, 0o755),
            ("u+s", 0o755, false, 0o4755),
            ("g+s", 0o755, true, 0o2755),
            ("o=u", 0o700, false, 0o707),
        ] {
            let c = Chmod::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(
                c.apply(orig, dir),
                want,
                "{s} on {orig:o} (dir {dir}): got {:o}",
                c.apply(orig, dir)
            );
        }
        for bad in ["", "8", "77777", "u", "u+q", "z+x", "u+x,", "+x,,g+w"] {
            assert!(Chmod::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
