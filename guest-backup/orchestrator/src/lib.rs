//! `E2_BackupSiteContent`: the cloud-backup orchestrator. It lists every file under a
//! directory, copies them all to blob storage in parallel, and returns the total bytes.
//!
//! It is the Durable Functions fan-out/fan-in sample, line for line: the orchestrator
//! does no I/O itself; it only schedules activities and waits for them.

use serde::Deserialize;
use std::time::Duration;
use weft_sdk::{Context, Error, RetryOptions, Task};

weft_sdk::orchestrators! {
    "E2_BackupSiteContent" => backup_site_content,
}

/// Blob stores have bad moments: each copy gets three attempts, 0.5 s and 1 s apart.
const COPY_RETRY: RetryOptions =
    RetryOptions::new(Duration::from_millis(500), 3).with_backoff_coefficient(2.0);

/// How many skipped files the custom status names (it counts them all).
const SKIPPED_SHOWN: usize = 100;

/// The part of `E2_CopyFileToBlob`'s output the total needs; the history keeps the rest
/// (the blob's name and SHA-256).
#[derive(Deserialize)]
struct Copied {
    bytes: u64,
    /// Set when the file vanished between the listing and the copy.
    #[serde(default)]
    skipped: Option<String>,
}

fn backup_site_content(ctx: &Context) -> Result<u64, Error> {
    let root_directory: Option<String> = ctx
        .input()
        .map_err(|e| e.context("the input must be a directory path as a JSON string"))?;
    let root_directory = root_directory.as_deref().map(str::trim).unwrap_or_default();
    if root_directory.is_empty() {
        return Err(Error::bad_input(
            "the input must name the directory to back up, e.g. \"/var/www\"",
        ));
    }

    let files: Vec<String> = ctx.call_activity("E2_GetFileList", &root_directory).get()?;

    let tasks: Vec<Task<Copied>> = files
        .iter()
        .map(|file| ctx.call_activity_with_retry("E2_CopyFileToBlob", file, COPY_RETRY))
        .collect();

    let mut total_bytes = 0;
    let mut skipped = Vec::new();
    for (file, copied) in files.iter().zip(ctx.when_all(&tasks)) {
        let copied =
            copied.map_err(|e| Error::failed(format!("copying '{file}' failed: {}", e.message)))?;
        total_bytes += copied.bytes;
        if copied.skipped.is_some() {
            skipped.push(file.as_str());
        }
    }
    // Files that vanished after the listing (rotated logs) are reported, not fatal.
    if !skipped.is_empty() {
        ctx.set_custom_status(&serde_json::json!({
            "skippedCount": skipped.len(),
            "skipped": &skipped[..skipped.len().min(SKIPPED_SHOWN)],
        }))?;
    }
    Ok(total_bytes)
}
