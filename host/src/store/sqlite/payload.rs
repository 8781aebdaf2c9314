//! Large payloads out of line: a text over [`INLINE_MAX`] bytes (a long file list, a big
//! activity result) is stored once, compressed, in the `payloads` table under its SHA-256,
//! and the rows that hold it keep only a short reference. An inbox message and the
//! history event it becomes are the same text, so they share one stored copy.

use super::super::{Error, Result};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// Texts up to this size stay inline in their rows.
pub const INLINE_MAX: usize = 64 << 10;

/// What a reference starts with; no JSON text starts with it.
const MARK: char = '@';

/// The text to store in a row for `text`: `text` itself, or a reference to its stored copy.
pub fn put(conn: &Connection, instance_id: &str, text: &str) -> Result<String> {
    if text.len() <= INLINE_MAX {
        return Ok(text.to_string());
    }
    let key = format!("{MARK}{:x}", Sha256::digest(text.as_bytes()));
    conn.prepare_cached(
        "INSERT OR IGNORE INTO payloads (instance_id, key, data) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![
        instance_id,
        key,
        lz4_flex::compress_prepend_size(text.as_bytes())
    ])?;
    Ok(key)
}

/// The text a row holds: `stored` itself, or the payload it refers to.
pub fn get(conn: &Connection, instance_id: &str, stored: String) -> Result<String> {
    if !stored.starts_with(MARK) {
        return Ok(stored);
    }
    let data: Option<Vec<u8>> = conn
        .prepare_cached("SELECT data FROM payloads WHERE instance_id = ?1 AND key = ?2")?
        .query_row(params![instance_id, stored], |row| row.get(0))
        .optional()?;
    let data = data.ok_or_else(|| Error::Corrupt(format!("missing payload {stored}")))?;
    let bytes = lz4_flex::decompress_size_prepended(&data)
        .map_err(|e| Error::Corrupt(format!("payload {stored} does not decompress: {e}")))?;
    String::from_utf8(bytes)
        .map_err(|e| Error::Corrupt(format!("payload {stored} is not UTF-8: {e}")))
}

/// Like [`get`], for an optional column.
pub fn get_opt(
    conn: &Connection,
    instance_id: &str,
    stored: Option<String>,
) -> Result<Option<String>> {
    stored.map(|text| get(conn, instance_id, text)).transpose()
}
