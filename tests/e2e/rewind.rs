//! Rewind with the real binary: a backup that failed on unreadable files, fixed and
//! rewound, copies only the files that failed, over the HTTP API and with `weft rewind`.
//!
//! The files are made unreadable with `chmod 000`. Root reads such files anyway, so when
//! the tests run as root, `weft` runs as the unprivileged user `nobody` (65534) in a
//! scratch directory it owns, and the permission failure is a real one.

use crate::support::*;
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const NOBODY: u32 = 65534;
const COPY: &str = "E2_CopyFileToBlob";

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
        == 0
}

/// A backup site of `files` files in a scratch directory that `weft` can own; returns
/// the site and the files that are made unreadable.
fn site(scratch: &Scratch, files: usize, unreadable: &[usize]) -> (PathBuf, Vec<PathBuf>) {
    let site = scratch.path().join("site");
    let mut broken = Vec::new();
    for i in 0..files {
        let path = write(
            &site,
            &format!("dir{}/f{i}.bin", i % 2),
            &bytes(i as u64, 700 + i),
        );
        if unreadable.contains(&i) {
            broken.push(path);
        }
    }
    if running_as_root() {
        chown_tree(scratch.path(), NOBODY);
    }
    for path in &broken {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o000)).expect("chmod 000");
    }
    (site, broken)
}

fn chown_tree(root: &Path, uid: u32) {
    for entry in walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
    {
        std::os::unix::fs::lchown(entry.path(), Some(uid), Some(uid)).expect("chown");
    }
}

fn fix(broken: &[PathBuf]) {
    for path in broken {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
}

/// Runs `weft` as the scratch directory's owner, with a compiled-component cache that
/// owner can write.
fn as_owner(scratch: &Scratch, command: &mut Command) {
    command.env("WEFT_CACHE_DIR", scratch.path().join("cache"));
    if running_as_root() {
        command.uid(NOBODY).gid(NOBODY);
    }
}

/// The raw history (`weft history`), read as the data dir's owner.
fn history(scratch: &Scratch, id: &str) -> Vec<Value> {
    let mut command = scratch.weft(&["history", id]);
    as_owner(scratch, &mut command);
    let output = command.output().expect("weft history");
    assert!(output.status.success(), "{}", describe(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON lines"))
        .collect()
}

/// The copies in a history: how many were scheduled, and the inputs (file paths) of the
/// copies that completed before and after the rewind marker.
struct Copies {
    scheduled: usize,
    completed_before: Vec<String>,
    completed_after: Vec<String>,
    failed_before: Vec<String>,
}

fn copies(history: &[Value]) -> Copies {
    let mut names: HashMap<u64, (String, String)> = HashMap::new();
    let mut copies = Copies {
        scheduled: 0,
        completed_before: Vec::new(),
        completed_after: Vec::new(),
        failed_before: Vec::new(),
    };
    let mut rewound = false;
    for event in history {
        let task = event["taskId"].as_u64().unwrap_or(u64::MAX);
        let is_copy = |names: &HashMap<u64, (String, String)>| {
            names
                .get(&task)
                .filter(|(name, _)| name == COPY)
                .map(|(_, input)| input.clone())
        };
        match event["eventType"].as_str().unwrap_or_default() {
            "TaskScheduled" => {
                let name = event["name"].as_str().unwrap_or_default().to_string();
                let input = event["input"].as_str().unwrap_or_default().to_string();
                if name == COPY {
                    copies.scheduled += 1;
                }
                names.insert(task, (name, input));
            }
            "TaskCompleted" => {
                if let Some(input) = is_copy(&names) {
                    if rewound {
                        copies.completed_after.push(input);
                    } else {
                        copies.completed_before.push(input);
                    }
                }
            }
            "TaskFailed" if !rewound => {
                if let Some(input) = is_copy(&names) {
                    copies.failed_before.push(input);
                }
            }
            "ExecutionRewound" => rewound = true,
            _ => {}
        }
    }
    for list in [
        &mut copies.completed_before,
        &mut copies.completed_after,
        &mut copies.failed_before,
    ] {
        list.sort();
    }
    copies
}

fn json_paths(paths: &[PathBuf]) -> Vec<String> {
    let mut paths: Vec<String> = paths
        .iter()
        .map(|p| serde_json::to_string(p.to_str().unwrap_or_default()).unwrap_or_default())
        .collect();
    paths.sort();
    paths
}

fn check_blobs(scratch: &Scratch, site: &Path) {
    for (file, _) in files_under(site) {
        let blob = blob_of(&scratch.data_dir(), &file);
        assert_eq!(
            std::fs::read(&blob).ok(),
            std::fs::read(&file).ok(),
            "{} was backed up",
            file.display()
        );
    }
}

#[test]
fn a_rewound_backup_copies_only_the_files_that_failed() {
    let scratch = Scratch::new();
    let (site, broken) = site(&scratch, 8, &[2, 5]);
    let total: u64 = (0..8).map(|i| 700 + i as u64).sum();
    let server = Server::start_with(&scratch, "127.0.0.1:0", &["--max-activities", "2"], |c| {
        as_owner(&scratch, c)
    });
    let client = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client");
    let url = |path: &str| {
        format!(
            "{}/runtime/webhooks/durabletask/{path}{}code={}",
            server.base,
            if path.contains('?') { '&' } else { '?' },
            server.key
        )
    };
    let started = client
        .post(url("orchestrators/E2_BackupSiteContent/backup"))
        .json(&json!(site))
        .send()
        .expect("POST");
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let ended = |client: &Client| {
        poll(Duration::from_secs(300), || {
            let response = client.get(url("instances/backup")).send().expect("GET");
            (response.status() == StatusCode::OK).then(|| response.json::<Value>().expect("JSON"))
        })
    };
    let failed = ended(&client);
    assert_eq!(failed["runtimeStatus"], "Failed", "{failed}");
    let before = copies(&history(&scratch, "backup"));
    assert_eq!(before.scheduled, 8);
    assert_eq!(before.failed_before, json_paths(&broken));
    assert_eq!(before.completed_before.len(), 6);

    // Rewinding before the fix is allowed, but only a Failed instance can be rewound.
    fix(&broken);
    let rewind = client
        .post(url("instances/backup/rewind?reason=permissions+fixed"))
        .send()
        .expect("POST");
    assert_eq!(rewind.status(), StatusCode::ACCEPTED);
    let done = ended(&client);
    assert_eq!(done["runtimeStatus"], "Completed", "{done}");
    assert_eq!(done["output"], total);
    let again = client
        .post(url("instances/backup/rewind"))
        .send()
        .expect("POST");
    assert_eq!(again.status(), StatusCode::PRECONDITION_FAILED);

    let history = history(&scratch, "backup");
    let after = copies(&history);
    assert_eq!(after.scheduled, 8, "no copy was scheduled anew");
    assert_eq!(
        after.completed_after,
        json_paths(&broken),
        "only the failed files were copied again"
    );
    assert_eq!(after.completed_before, before.completed_before);
    assert!(
        history
            .iter()
            .any(|e| e["eventType"] == "ExecutionRewound" && e["reason"] == "permissions fixed")
    );
    check_blobs(&scratch, &site);
    // The extension's history shape shows the rewind and the copies' final outcomes.
    let shown: Value = client
        .get(url("instances/backup?showHistory=true"))
        .send()
        .expect("GET")
        .json()
        .expect("JSON");
    let events = shown["historyEvents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(events.iter().any(|e| e["EventType"] == "ExecutionRewound"));
    assert!(
        !events.iter().any(|e| e["EventType"] == "TaskScheduled"),
        "no task is pending"
    );
}

#[test]
fn weft_rewind_finishes_a_failed_run_from_the_command_line() {
    let scratch = Scratch::new();
    let (site, broken) = site(&scratch, 4, &[1]);
    let total: u64 = (0..4).map(|i| 700 + i as u64).sum();
    let input = serde_json::to_string(site.to_str().unwrap_or_default()).expect("JSON");
    let mut run = scratch.weft(&[
        "run",
        "E2_BackupSiteContent",
        "--input",
        &input,
        "--instance-id",
        "cli",
    ]);
    as_owner(&scratch, &mut run);
    let output = run.output().expect("weft run");
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Failed"),
        "{}",
        describe(&output)
    );

    fix(&broken);
    let mut rewind = scratch.weft(&["rewind", "cli", "--reason", "fixed"]);
    as_owner(&scratch, &mut rewind);
    let output = rewind.output().expect("weft rewind");
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(last_line(&output), total.to_string());
    let after = copies(&history(&scratch, "cli"));
    assert_eq!(after.scheduled, 4);
    assert_eq!(after.completed_after, json_paths(&broken));
    check_blobs(&scratch, &site);

    // A completed instance is not rewound.
    let mut again = scratch.weft(&["rewind", "cli"]);
    as_owner(&scratch, &mut again);
    let output = again.output().expect("weft rewind");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("not Failed"),
        "{}",
        describe(&output)
    );
}
