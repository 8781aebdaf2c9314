//! Activities reach files only under the allowed directories: absolute paths elsewhere,
//! `..` escapes and symlinks that point out are refused, and no blob is written.

use crate::support::*;

fn copy(scratch: &Scratch, path: &str) -> serde_json::Value {
    let input = serde_json::json!({ "name": "E2_CopyFileToBlob", "input": path }).to_string();
    let output = scratch.run_ok(&[
        "run",
        "CallActivity",
        "--input",
        &input,
        "--components",
        TESTING_ORCHESTRATOR,
        BACKUP_ACTIVITIES,
    ]);
    serde_json::from_str(&output).expect("CallActivity returns JSON")
}

#[test]
fn copies_outside_the_allowed_directories_are_denied_and_write_nothing() {
    let scratch = Scratch::new();
    let outside = tempfile::tempdir().expect("a directory outside");
    let secret = write(outside.path(), "secret.txt", b"top secret");
    write(scratch.path(), "site/ok.txt", b"fine");
    std::os::unix::fs::symlink(&secret, scratch.path().join("site/link")).expect("symlink");
    let escape = format!(
        "site/../../{}/secret.txt",
        outside
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    );
    assert!(
        scratch.path().join(&escape).exists(),
        "the escape path names a real file"
    );

    for path in [
        "/etc/passwd",
        escape.as_str(),
        "site/link",
        secret.to_str().unwrap_or_default(),
    ] {
        let result = copy(&scratch, path);
        let error = result["error"].as_str().unwrap_or_default();
        assert_eq!(
            error,
            format!("access denied: {path} is outside the allowed directories"),
            "{result}"
        );
    }
    let blobs = scratch.data_dir().join("blobs");
    assert!(
        files_under(&blobs).is_empty(),
        "no blob was written: {:?}",
        files_under(&blobs)
    );

    // The same activity inside the allowed directory works.
    let result = copy(&scratch, "site/ok.txt");
    assert_eq!(result["bytes"], 4, "{result}");
}

#[test]
fn allow_dir_replaces_the_current_directory() {
    let scratch = Scratch::new();
    let elsewhere = tempfile::tempdir().expect("another directory");
    write(elsewhere.path(), "a/b.txt", b"12345");
    let root = serde_json::to_string(elsewhere.path().to_str().unwrap_or_default()).expect("JSON");
    let denied = scratch.run(&["run", "E2_BackupSiteContent", "--input", &root]);
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("outside the allowed directories"),
        "{}",
        describe(&denied)
    );
    let allowed = scratch.run_ok(&[
        "run",
        "E2_BackupSiteContent",
        "--input",
        &root,
        "--allow-dir",
        elsewhere.path().to_str().unwrap_or_default(),
    ]);
    assert_eq!(allowed, "5");
    // Once a directory is given, the current one is no longer allowed.
    write(scratch.path(), "here/c.txt", b"123");
    let here = scratch.run(&[
        "run",
        "E2_BackupSiteContent",
        "--input",
        "\"here\"",
        "--allow-dir",
        elsewhere.path().to_str().unwrap_or_default(),
    ]);
    assert!(
        String::from_utf8_lossy(&here.stderr).contains("outside the allowed directories"),
        "{}",
        describe(&here)
    );
}

#[test]
fn weft_s_own_files_stay_closed_even_inside_an_allowed_directory() {
    let scratch = Scratch::new();
    write(scratch.path(), "site/index.html", b"<html>");
    // A first run creates the data dir (database, blobs) inside the current directory.
    assert_eq!(
        scratch.run_ok(&["run", "E2_BackupSiteContent", "--input", "\"site\""]),
        "6"
    );
    write(&scratch.data_dir(), "api-key", b"a-secret-key-of-weft");
    let blob = blob_of(&scratch.data_dir(), &scratch.path().join("site/index.html"));
    assert!(blob.exists(), "the first backup wrote {}", blob.display());
    let blob = blob.to_string_lossy().to_string();
    for path in [".weft/weft.db", ".weft/api-key", blob.as_str()] {
        let result = copy(&scratch, path);
        let error = result["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("access denied"), "{path}: {result}");
    }
    // Backing up the whole current directory leaves the data dir out: no database, no key,
    // and no copy of the backup's own blobs.
    let total = scratch.run_ok(&["run", "E2_BackupSiteContent", "--input", "\".\""]);
    assert_eq!(total, "6", "only site/index.html is backed up");
}

#[test]
fn special_files_are_skipped_by_listings_and_refused_without_blocking() {
    let scratch = Scratch::new();
    write(scratch.path(), "site/a.txt", b"abc");
    let fifo = scratch.path().join("site/pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    // The listing skips the FIFO; the backup completes.
    assert_eq!(
        scratch.run_ok(&["run", "E2_BackupSiteContent", "--input", "\"site\""]),
        "3"
    );
    // Copying it directly (as after a swap between listing and copy) is refused at once,
    // not waited on.
    let result = copy(&scratch, "site/pipe");
    let error = result["error"].as_str().unwrap_or_default();
    assert!(error.contains("not a regular file"), "{result}");
}
