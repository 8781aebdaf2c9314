//! `E2_GetFileList` and `E2_CopyFileToBlob`: the cloud-backup sample's activities. They
//! do their I/O through the host's `fs` and `blob` imports, never directly.

use weft_sdk::Error;
use weft_sdk::activity::{self, IoError, blob, fs};

weft_sdk::activities! {
    "E2_GetFileList" => get_file_list,
    "E2_CopyFileToBlob" => copy_file_to_blob,
}

fn get_file_list(root_directory: String) -> Result<Vec<String>, Error> {
    activity::info(&format!("Searching for files under '{root_directory}'..."));
    let files: Vec<String> = fs::list_files(&root_directory)?
        .into_iter()
        .map(|entry| entry.path)
        .collect();
    activity::info(&format!(
        "Found {} file(s) under {root_directory}.",
        files.len()
    ));
    Ok(files)
}

/// What `E2_CopyFileToBlob` returns: the history records the size and SHA-256 of every
/// file backed up, or why a file was skipped.
#[derive(serde::Serialize)]
struct CopyOutput {
    blob: String,
    bytes: u64,
    sha256: String,
    /// False when the blob already held these bytes (`--skip-unchanged`).
    uploaded: bool,
    /// Set when the file vanished between the listing and the copy (a rotated log), or
    /// its name is not UTF-8: nothing was copied, and the backup reports it instead of
    /// failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
}

fn copy_file_to_blob(file_path: String) -> Result<CopyOutput, Error> {
    let output_location = format!("backups/{}", blob_path(&file_path));
    activity::info(&format!("Copying '{file_path}' to '{output_location}'."));
    let copied = match blob::copy_file(&file_path, &output_location) {
        Ok(copied) => copied,
        Err(IoError::NotFound(reason)) => {
            activity::warn(&format!(
                "Skipped '{file_path}': it cannot be read by the name listed ({reason})."
            ));
            return Ok(CopyOutput {
                blob: output_location,
                bytes: 0,
                sha256: String::new(),
                uploaded: false,
                skipped: Some(reason),
            });
        }
        Err(other) => return Err(other.into()),
    };
    activity::info(&format!(
        "Copied '{file_path}'. Total bytes = {}, SHA-256 = {}{}.",
        copied.bytes,
        copied.sha256,
        if copied.uploaded {
            ""
        } else {
            " (unchanged, not uploaded)"
        }
    ));
    Ok(CopyOutput {
        blob: output_location,
        bytes: copied.bytes,
        sha256: copied.sha256,
        uploaded: copied.uploaded,
        skipped: None,
    })
}

/// Strips a drive letter prefix such as `C:` and drops empty and `.` segments. In a
/// Windows path (one with a drive letter) `\` separates segments and becomes `/`; in any
/// other path it is an ordinary character, so that `/a/x\y` and `/a/x/y` stay two
/// different blobs. `C:\a\b`, `/a/b` and `./a//b` all become `a/b`.
fn blob_path(file_path: &str) -> String {
    let bytes = file_path.as_bytes();
    let windows = bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic();
    let without_drive = if windows { &file_path[2..] } else { file_path };
    let separators = if windows {
        without_drive.replace('\\', "/")
    } else {
        without_drive.to_string()
    };
    separators
        .split('/')
        .filter(|segment| !segment.is_empty() && *segment != ".")
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::blob_path;

    #[test]
    fn blob_paths_drop_drive_letters_and_use_forward_slashes() {
        for (file, expected) in [
            (r"D:\home\LogFiles\a.txt", "home/LogFiles/a.txt"),
            ("c:/x/y", "x/y"),
            ("/var/www/index.html", "var/www/index.html"),
            ("./site//a b/é.txt", "site/a b/é.txt"),
            ("relative/file", "relative/file"),
            ("/srv/x\\y.txt", "srv/x\\y.txt"),
        ] {
            assert_eq!(blob_path(file), expected, "for {file}");
        }
    }
}
