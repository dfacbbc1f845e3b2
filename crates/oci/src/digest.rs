//! Content digests (`algorithm:hex`) and streaming hashers.
//!
//! Only `sha256` and `sha512` are accepted, as the OCI image spec registers.
//! Hex must be lower case and of the algorithm's exact length.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::Digest as _;

/// A registered digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// The name used in digest strings and in `blobs/<alg>/` paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded digest.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// Starts a streaming hash with this algorithm.
    pub fn digester(self) -> Digester {
        Digester::new(self)
    }

    /// Digests a byte slice in one call.
    pub fn digest(self, bytes: &[u8]) -> Digest {
        let mut d = self.digester();
        d.update(bytes);
        d.finish()
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a digest string was rejected, or why content did not match one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("invalid digest {0:?}: expected ALGORITHM:HEX")]
    Malformed(String),
    #[error("unsupported digest algorithm {0:?} (supported: sha256, sha512)")]
    UnsupportedAlgorithm(String),
    #[error("invalid digest {input:?}: {algorithm} needs {expected} lower-case hex characters")]
    BadHex {
        input: String,
        algorithm: Algorithm,
        expected: usize,
    },
}

/// A validated content digest such as `sha256:e3b0…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Builds a digest from an algorithm and its hex encoding, validating the hex.
    pub fn new(algorithm: Algorithm, hex: &str) -> Result<Digest, DigestError> {
        if hex.len() != algorithm.hex_len()
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::BadHex {
                input: format!("{algorithm}:{hex}"),
                algorithm,
                expected: algorithm.hex_len(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Algorithm::Sha256.digest(bytes)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex-encoded part after the colon.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The short form Docker prints for image ids (12 hex characters).
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Malformed(s.to_owned()))?;
        let valid_alg = !alg.is_empty()
            && alg
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
        if !valid_alg || hex.is_empty() {
            return Err(DigestError::Malformed(s.to_owned()));
        }
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => return Err(DigestError::UnsupportedAlgorithm(other.to_owned())),
        };
        Digest::new(algorithm, hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A streaming hasher for one algorithm.
#[derive(Clone)]
pub struct Digester {
    state: State,
    len: u64,
}

#[derive(Clone)]
enum State {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digester")
            .field("algorithm", &self.algorithm())
            .field("len", &self.len)
            .finish()
    }
}

impl Digester {
    pub fn new(algorithm: Algorithm) -> Digester {
        let state = match algorithm {
            Algorithm::Sha256 => State::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => State::Sha512(sha2::Sha512::new()),
        };
        Digester { state, len: 0 }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self.state {
            State::Sha256(_) => Algorithm::Sha256,
            State::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        match &mut self.state {
            State::Sha256(h) => h.update(bytes),
            State::Sha512(h) => h.update(bytes),
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self.state {
            State::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            State::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

impl Write for Digester {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that hashes what passes through it and, at end of stream, fails
/// with `InvalidData` unless the content has the expected digest and size.
///
/// Consumers therefore never see a clean EOF for content that does not match:
/// the last `read` returns the error instead of `Ok(0)`.
#[derive(Debug)]
pub struct VerifyingReader<R> {
    inner: R,
    digester: Digester,
    expected: Digest,
    expected_size: Option<u64>,
    verified: bool,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: Digest, expected_size: Option<u64>) -> Self {
        VerifyingReader {
            inner,
            digester: expected.algorithm().digester(),
            expected,
            expected_size,
            verified: false,
        }
    }

    fn check(&mut self) -> io::Result<()> {
        if self.verified {
            return Ok(());
        }
        if let Some(size) = self.expected_size
            && size != self.digester.len()
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "size mismatch for {}: expected {} bytes, got {}",
                    self.expected,
                    size,
                    self.digester.len()
                ),
            ));
        }
        let actual = self.digester.clone().finish();
        if actual != self.expected {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("digest mismatch: expected {}, got {actual}", self.expected),
            ));
        }
        self.verified = true;
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.check()?;
            return Ok(0);
        }
        self.digester.update(&buf[..n]);
        if let Some(size) = self.expected_size
            && self.digester.len() > size
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "size mismatch for {}: more than the expected {size} bytes",
                    self.expected
                ),
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn known_vectors() {
        assert_eq!(Digest::sha256_of(b"").to_string(), EMPTY256);
        assert_eq!(
            Algorithm::Sha512.digest(b"abc").to_string(),
            "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }

    #[test]
    fn parse_accepts_and_rejects() {
        assert!(EMPTY256.parse::<Digest>().is_ok());
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0",
            "sha256:../../etc/passwd",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} should be rejected");
        }
        assert!(matches!(
            "md5:abc".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn verifying_reader_detects_mismatch_and_size() {
        let good = Digest::sha256_of(b"hello");
        let mut out = Vec::new();
        VerifyingReader::new(&b"hello"[..], good.clone(), Some(5))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"hello");
        let err = VerifyingReader::new(&b"hellO"[..], good.clone(), None)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("digest mismatch"));
        let err = VerifyingReader::new(&b"hello!"[..], good.clone(), Some(5))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("size mismatch"));
        let err = VerifyingReader::new(&b"hell"[..], good, Some(5))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("size mismatch"));
    }

    proptest::proptest! {
        #[test]
        fn streaming_equals_oneshot(data: Vec<u8>, split in 0usize..64) {
            let split = split.min(data.len());
            let mut d = Algorithm::Sha512.digester();
            d.update(&data[..split]);
            d.update(&data[split..]);
            proptest::prop_assert_eq!(d.finish(), Algorithm::Sha512.digest(&data));
        }

        #[test]
        fn display_parse_roundtrip(data: Vec<u8>) {
            let d = Digest::sha256_of(&data);
            proptest::prop_assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        }
    }
}
