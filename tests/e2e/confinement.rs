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
    assert_eq!(result, 4);
}

#[test]
fn allow_dir_extends_the_allowed_directories() {
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
}
