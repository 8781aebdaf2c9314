//! The API key: given by the operator, or generated on first start and kept in the data
//! dir, readable by its owner only.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why the key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read or write the API key file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("the API key file {0} is empty; delete it to generate a new key")]
    Empty(String),
}

/// The key in `<data_dir>/api-key`, created with a new random key if missing.
pub fn load_or_create(data_dir: &Path) -> Result<String, Error> {
    let path = data_dir.join("api-key");
    let failed = |source| Error::File {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().is_empty() => Err(Error::Empty(path.display().to_string())),
        Ok(text) => Ok(text.trim().to_string()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            // Two v4 UUIDs: 244 random bits from the operating system's generator.
            let key = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(failed)?;
            writeln!(file, "{key}").map_err(failed)?;
            Ok(key)
        }
        Err(error) => Err(failed(error)),
    }
}

/// Compares keys in time independent of where they differ and of their lengths: it
/// compares their SHA-256 digests, so that timing tells nothing of the key.
pub fn matches(expected: &str, given: &str) -> bool {
    let (expected, given) = (Sha256::digest(expected), Sha256::digest(given));
    expected
        .iter()
        .zip(given.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn only_the_same_key_matches() {
        let key = "0123456789abcdef0123456789abcdef";
        assert!(matches(key, key));
        for other in [
            "",
            "0123456789abcdef",
            &format!("{key}0"),
            "1123456789abcdef0123456789abcdef",
        ] {
            assert!(!matches(key, other), "{other}");
        }
    }
}
