//! `E2_BackupSiteContent`: the cloud-backup orchestrator. It lists every file under a
//! directory, copies them all to blob storage in parallel, and returns the total bytes.
//!
//! It is the Durable Functions fan-out/fan-in sample, line for line: the orchestrator
//! does no I/O itself; it only schedules activities and waits for them.

wit_bindgen::generate!({ world: "orchestration", path: "../../wit" });

use exports::weft::orchestration::orchestrator::{Guest, RunError};
use weft::orchestration::context;
use weft::orchestration::types::RetryPolicy;

const BACKUP_SITE_CONTENT: &str = "E2_BackupSiteContent";

/// Blob stores have bad moments: each copy gets three attempts, 0.5 s and 1 s apart.
const COPY_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    first_retry_interval_ms: 500,
    backoff_coefficient: 2.0,
    max_retry_interval_ms: None,
    retry_timeout_ms: None,
    timeout_ms: None,
};

struct Backup;

impl Guest for Backup {
    fn names() -> Vec<String> {
        vec![BACKUP_SITE_CONTENT.to_string()]
    }

    fn run(name: String) -> Result<String, RunError> {
        match name.as_str() {
            BACKUP_SITE_CONTENT => backup_site_content(),
            _ => Err(RunError::UnknownName(Self::names())),
        }
    }
}

fn backup_site_content() -> Result<String, RunError> {
    let input: Option<String> = serde_json::from_str(&context::input()).map_err(|e| {
        RunError::BadInput(format!(
            "the input must be a directory path as a JSON string: {e}"
        ))
    })?;
    let root_directory = input.as_deref().map(str::trim).unwrap_or_default();
    if root_directory.is_empty() {
        return Err(RunError::BadInput(
            "the input must name the directory to back up, e.g. \"/var/www\"".to_string(),
        ));
    }

    let files: Vec<String> = call("E2_GetFileList", &root_directory)?;

    let tasks: Vec<_> = files
        .iter()
        .map(|file| context::call_activity("E2_CopyFileToBlob", &json(file), Some(COPY_RETRY)))
        .collect();

    let mut total_bytes: u64 = 0;
    let mut skipped = Vec::new();
    for (file, result) in files.iter().zip(context::when_all(&tasks)) {
        let copied = result
            .map_err(|e| RunError::Failed(format!("copying '{file}' failed: {}", e.message)))?;
        let copied = parse::<Copied>(&copied)?;
        total_bytes += copied.bytes;
        if copied.skipped.is_some() {
            skipped.push(file.as_str());
        }
    }
    // Files that vanished after the listing (rotated logs) are reported, not fatal.
    if !skipped.is_empty() {
        let shown: Vec<&str> = skipped.iter().copied().take(SKIPPED_SHOWN).collect();
        context::set_custom_status(&json(&serde_json::json!({
            "skippedCount": skipped.len(),
            "skipped": shown,
        })));
    }
    Ok(json(&total_bytes))
}

/// How many skipped files the custom status names (it counts them all).
const SKIPPED_SHOWN: usize = 100;

/// The part of `E2_CopyFileToBlob`'s output the total needs; the history keeps the rest
/// (the blob's name and SHA-256).
#[derive(serde::Deserialize)]
struct Copied {
    bytes: u64,
    #[serde(default)]
    skipped: Option<String>,
}

/// Calls one activity and waits for its result.
fn call<T: serde::de::DeserializeOwned>(
    name: &str,
    input: &impl serde::Serialize,
) -> Result<T, RunError> {
    let task = context::call_activity(name, &json(input), None);
    let result = context::when_all(&[task])
        .pop()
        .ok_or_else(|| RunError::Failed(format!("{name} returned nothing")))?;
    let output = result.map_err(|e| RunError::Failed(format!("{name} failed: {}", e.message)))?;
    parse(&output)
}

fn json(value: &impl serde::Serialize) -> String {
    // Serializing a string, a number or a list of them cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, RunError> {
    serde_json::from_str(text)
        .map_err(|e| RunError::Failed(format!("unexpected activity output {text}: {e}")))
}

export!(Backup);
