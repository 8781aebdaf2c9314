//! Crash resumption with the real binary: SIGKILL mid-backup, start again, and check
//! that the instance completes and no copy recorded before the kill ran again.

use crate::support::*;
use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::time::Duration;

/// The activity inputs in "activity started" log lines, with how often each appears.
fn started_copies(log: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in log.lines() {
        if let Some(rest) = line.split("activity started: E2_CopyFileToBlob(").nth(1)
            && let Some(input) = rest.rsplit_once(')').map(|(input, _)| input)
        {
            *counts.entry(input.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn a_killed_backup_resumes_without_redoing_recorded_copies() {
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    for i in 0..200 {
        write(
            &site,
            &format!("d{}/f{i}.txt", i % 7),
            &bytes(i, 100 + i as usize),
        );
    }
    let total: u64 = files_under(&site).iter().map(|(_, size)| size).sum();

    let first_log = scratch.path().join("first.log");
    let mut child = scratch
        .weft(&[
            "run",
            "E2_BackupSiteContent",
            "--input",
            "\"site\"",
            "--max-activities",
            "2",
            "--test-activity-delay-ms",
            "20",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&first_log).expect("log file"))
        .spawn()
        .expect("spawn weft");
    // Kill once some, but not all, copies are recorded.
    poll(Duration::from_secs(120), || {
        (count_events(&scratch, "TaskCompleted") >= 30).then_some(())
    });
    child.kill().expect("SIGKILL weft");
    child.wait().expect("reap weft");

    let db = scratch.db();
    let mut stmt = db
        .prepare("SELECT data FROM history WHERE event_type = 'TaskCompleted'")
        .expect("query completions");
    let completed_tasks: BTreeSet<u64> = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .expect("completions")
        .filter_map(Result::ok)
        .map(|data| {
            serde_json::from_str::<serde_json::Value>(&data).expect("event JSON")["taskId"]
                .as_u64()
                .unwrap_or(0)
        })
        .collect();
    let inputs: HashMap<u64, String> = db
        .prepare("SELECT data FROM history WHERE event_type = 'TaskScheduled'")
        .expect("query scheduled")
        .query_map([], |row| row.get::<_, String>(0))
        .expect("scheduled")
        .filter_map(Result::ok)
        .map(|data| {
            let event: serde_json::Value = serde_json::from_str(&data).expect("event JSON");
            (
                event["taskId"].as_u64().unwrap_or(0),
                event["input"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    drop(stmt);
    drop(db);
    let copies_before: BTreeSet<String> = completed_tasks
        .iter()
        .filter(|task| **task != 0)
        .filter_map(|task| inputs.get(task).cloned())
        .collect();
    assert!(
        copies_before.len() < 200,
        "the kill came after every copy was recorded; widen the window"
    );

    let output = scratch.run(&["resume"]);
    assert!(output.status.success(), "{}", describe(&output));
    let second_log = String::from_utf8_lossy(&output.stderr).to_string();

    let id = &scratch.instance_ids()[0];
    let status = scratch.status(id);
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], total);
    for (file, _) in files_under(&site) {
        let blob =
            std::fs::read(blob_of(&scratch.data_dir(), &file)).expect("every file has a blob");
        assert_eq!(blob, std::fs::read(&file).expect("source"));
    }

    let rerun = started_copies(&second_log);
    for input in &copies_before {
        assert!(
            !rerun.contains_key(input),
            "{input} was recorded before the kill but copied again"
        );
    }
    // Every copy ran at least once in all, and the history records each exactly once.
    let first = started_copies(&std::fs::read_to_string(&first_log).expect("first log"));
    assert_eq!(
        first.len() + rerun.keys().filter(|k| !first.contains_key(*k)).count(),
        200
    );
    let history = scratch.history(id);
    let mut seen = BTreeSet::new();
    for event in history.iter().filter(|e| e["eventType"] == "TaskCompleted") {
        assert!(
            seen.insert(event["taskId"].as_u64()),
            "task {} completed twice",
            event["taskId"]
        );
    }
    assert_eq!(seen.len(), 201);
}
