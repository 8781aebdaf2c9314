//! The cloud-backup sample end to end with the real binary.

use crate::support::*;
use std::path::Path;

/// Asserts that every file under `root` has a byte-identical blob.
fn assert_blobs_match(scratch: &Scratch, root: &Path) {
    for (file, _) in files_under(root) {
        let blob = blob_of(&scratch.data_dir(), &file);
        let expected = std::fs::read(&file).expect("read source");
        let found = std::fs::read(&blob)
            .unwrap_or_else(|e| panic!("blob {} for {}: {e}", blob.display(), file.display()));
        assert!(
            found == expected,
            "blob {} differs from {}",
            blob.display(),
            file.display()
        );
    }
}

#[test]
fn backs_up_a_generated_tree_byte_for_byte() {
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    write(&site, "empty.txt", b"");
    write(&site, "with space/a file.txt", b"spaces in names");
    write(&site, "ünïcødé/日本語.txt", "non-ASCII names".as_bytes());
    write(&site, "deep/er/and/deeper/leaf.bin", &bytes(1, 4097));
    for i in 0..1000 {
        write(
            &site,
            &format!("many/{:02}/file-{i}.txt", i % 17),
            &bytes(i, (i as usize * 37) % 2000),
        );
    }
    write(&site, "big/64MiB.bin", &bytes(64, 64 << 20));
    let files = files_under(&site);
    let total: u64 = files.iter().map(|(_, size)| size).sum();

    let output = scratch.run_ok(&["run", "E2_BackupSiteContent", "--input", "\"site\""]);
    assert_eq!(output, total.to_string());
    assert_blobs_match(&scratch, &site);

    let ids = scratch.instance_ids();
    assert_eq!(ids.len(), 1);
    let status = scratch.status(&ids[0]);
    assert_eq!(status["runtimeStatus"], "Completed");
    assert_eq!(status["output"], total);
    assert_eq!(status["input"], "site");

    let history = scratch.history(&ids[0]);
    let of = |kind: &str, name: &str| {
        history
            .iter()
            .filter(|e| e["eventType"] == kind && (name.is_empty() || e["name"] == name))
            .count()
    };
    assert_eq!(of("TaskScheduled", "E2_GetFileList"), 1);
    assert_eq!(of("TaskScheduled", "E2_CopyFileToBlob"), files.len());
    assert_eq!(of("TaskCompleted", ""), files.len() + 1);
    assert_eq!(of("TaskFailed", ""), 0);
    assert_eq!(of("ExecutionCompleted", ""), 1);
    for (seq, event) in history.iter().enumerate() {
        assert_eq!(event["seq"], seq, "sequence numbers are contiguous");
    }
}

#[test]
fn an_empty_directory_backs_up_zero_bytes() {
    let scratch = Scratch::new();
    std::fs::create_dir(scratch.path().join("empty")).expect("mkdir");
    assert_eq!(
        scratch.run_ok(&["run", "E2_BackupSiteContent", "--input", "\"empty\""]),
        "0"
    );
}

#[test]
fn a_missing_directory_fails_the_instance_with_its_path() {
    let scratch = Scratch::new();
    let output = scratch.run(&[
        "run",
        "E2_BackupSiteContent",
        "--input",
        "\"does-not-exist\"",
    ]);
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does-not-exist"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let id = &scratch.instance_ids()[0];
    let status = scratch.status(id);
    assert_eq!(status["runtimeStatus"], "Failed");
    assert!(
        status["output"]
            .as_str()
            .unwrap_or_default()
            .contains("does-not-exist"),
        "{status}"
    );
}

#[test]
fn an_empty_or_missing_input_fails_with_a_clear_error() {
    let scratch = Scratch::new();
    for input in ["\"   \"", "null"] {
        let output = scratch.run(&["run", "E2_BackupSiteContent", "--input", input]);
        assert!(!output.status.success(), "{}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("must name the directory to back up"),
            "{stderr}"
        );
    }
}

#[test]
fn bad_command_lines_fail_before_anything_is_written() {
    let scratch = Scratch::new();
    let output = scratch.run(&["run", "NoSuchOrchestrator", "--input", "1"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "unknown orchestrator 'NoSuchOrchestrator'; known orchestrators: E2_BackupSiteContent"
        ),
        "{stderr}"
    );

    let output = scratch.run(&["run", "E2_BackupSiteContent", "--input", "{not json"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not valid JSON"));
    assert!(scratch.instance_ids().is_empty(), "no instance was created");

    let output = scratch.run(&["status", "no-such-id"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no instance with id 'no-such-id'"));
}

#[test]
fn instances_evicted_while_idle_replay_to_the_same_result() {
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    for i in 0..8 {
        write(&site, &format!("f{i}.txt"), &bytes(i, 300 + i as usize));
    }
    let total: u64 = files_under(&site).iter().map(|(_, size)| size).sum();
    let output = scratch.run(&[
        "run",
        "E2_BackupSiteContent",
        "--input",
        "\"site\"",
        "--evict-after-ms",
        "20",
        "--max-activities",
        "1",
        // Each completion comes long after the replay the one before caused, however
        // slow the machine, so the instance is idle (and evicted) between them.
        "--test-activity-delay-ms",
        "1000",
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(last_line(&output), total.to_string());
    let log = String::from_utf8_lossy(&output.stderr);
    let evictions = log.matches("evicted while idle").count();
    assert!(
        evictions >= 5,
        "the instance was evicted between completions ({evictions} times):\n{log}"
    );

    // Replays add nothing to the history: one schedule and one completion per task.
    let history = scratch.history(&scratch.instance_ids()[0]);
    let count = |kind: &str| history.iter().filter(|e| e["eventType"] == kind).count();
    assert_eq!((count("TaskScheduled"), count("TaskCompleted")), (9, 9));
    assert!(!log.contains("NonDeterminism"));
}

#[test]
fn backs_up_a_tree_whose_file_list_is_over_a_mebibyte() {
    // 9,000 files with long paths: the file list (the output of E2_GetFileList, then an
    // event in the history) is about 1.5 MB, over the old 1 MiB payload limit.
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    let dir = format!(
        "{}/{}",
        "a-rather-long-directory-name".repeat(2),
        "x".repeat(40)
    );
    for i in 0..9_000u64 {
        write(
            &site,
            &format!("{dir}/{:02}/file-number-{i:06}.txt", i % 50),
            &bytes(i, (i % 7) as usize),
        );
    }
    let files = files_under(&site);
    let list_len: usize = files
        .iter()
        .map(|(path, _)| path.to_string_lossy().len() + 3)
        .sum();
    assert!(list_len > 1 << 20, "the file list is {list_len} bytes");
    let total: u64 = files.iter().map(|(_, size)| size).sum();

    let output = scratch.run_ok(&["run", "E2_BackupSiteContent", "--input", "\"site\""]);
    assert_eq!(output, total.to_string());
    assert_blobs_match(&scratch, &site);
    // The list is stored once, compressed, out of line: the database stays far smaller
    // than the list would be if each row that refers to it held a copy.
    let db = scratch.db();
    let stored: i64 = db
        .query_row("SELECT COUNT(*) FROM payloads", [], |row| row.get(0))
        .expect("count payloads");
    assert!(stored >= 1, "the large file list is stored out of line");
    let largest_row: i64 = db
        .query_row("SELECT MAX(LENGTH(data)) FROM history", [], |row| {
            row.get(0)
        })
        .expect("largest history row");
    assert!(
        largest_row < 64 << 10,
        "history rows stay small: {largest_row}"
    );
}

#[test]
fn a_file_that_vanishes_after_the_listing_is_reported_not_fatal() {
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    for i in 0..5 {
        write(&site, &format!("logs/{i}.log"), &bytes(i, 100));
    }
    let child = scratch
        .weft(&[
            "run",
            "E2_BackupSiteContent",
            "--input",
            "\"site\"",
            "--instance-id",
            "rotated",
            "--max-activities",
            "1",
            "--test-activity-delay-ms",
            "300",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn weft");
    // Once the listing is recorded, a log is rotated away before its copy runs.
    poll(std::time::Duration::from_secs(60), || {
        (count_events(&scratch, "TaskCompleted") >= 1).then_some(())
    });
    std::fs::remove_file(site.join("logs/4.log")).expect("rotate a log away");
    let output = wait_output(child, std::time::Duration::from_secs(120));
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(last_line(&output), "400", "four files of 100 bytes");
    let status = scratch.status("rotated");
    assert_eq!(status["customStatus"]["skippedCount"], 1, "{status}");
    let skipped = status["customStatus"]["skipped"][0]
        .as_str()
        .unwrap_or_default();
    assert!(skipped.ends_with("logs/4.log"), "{status}");
}
