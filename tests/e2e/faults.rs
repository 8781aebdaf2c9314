//! Failing cleanly: guest limits, traps, bad components, oversized payloads, unusable
//! directories, a single writer per data dir and a graceful stop. Each case is a clear
//! error and loses nothing.

use crate::support::*;
use std::process::Stdio;

fn testing(args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["--components", TESTING_ORCHESTRATOR, TESTING_ACTIVITIES].map(String::from));
    all
}

fn run_testing(scratch: &Scratch, args: &[&str]) -> std::process::Output {
    let args = testing(args);
    scratch.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn runaway_and_memory_hungry_guests_fail_with_clear_messages() {
    let scratch = Scratch::new();
    let output = run_testing(&scratch, &["run", "InfiniteLoop", "--guest-cpu-ms", "200"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output)
            .contains("Failed: orchestrator exceeded its CPU time (200ms without waiting)"),
        "{}",
        describe(&output)
    );

    // A guest that cannot even start fails its instance (once, not on every start).
    let output = run_testing(
        &scratch,
        &["run", "FanOut", "--input", "3", "--guest-memory-mib", "1"],
    );
    assert!(
        stderr(&output).contains(
            "Failed: the orchestrator cannot start: it exceeded its memory limit of 1 MiB"
        ),
        "{}",
        describe(&output)
    );
    let resumed = run_testing(&scratch, &["resume"]);
    assert!(
        stderr(&resumed).contains("resuming 0 unfinished instance(s)"),
        "{}",
        describe(&resumed)
    );

    let output = run_testing(&scratch, &["run", "MemoryBomb", "--guest-memory-mib", "32"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("Failed: orchestrator exceeded its memory limit of 32 MiB"),
        "{}",
        describe(&output)
    );

    let spin = r#"{"name":"Spin","input":null}"#;
    let output = run_testing(
        &scratch,
        &[
            "run",
            "CallActivity",
            "--input",
            spin,
            "--guest-cpu-ms",
            "200",
        ],
    );
    assert_eq!(
        last_line(&output),
        r#"{"error":"activity Spin exceeded its CPU time (200ms without waiting)"}"#
    );

    // Neither waits that are already satisfied nor host calls reset the budget.
    let output = run_testing(
        &scratch,
        &["run", "SpinOnFinishedTasks", "--guest-cpu-ms", "300"],
    );
    assert!(
        stderr(&output)
            .contains("Failed: orchestrator exceeded its CPU time (300ms without waiting)"),
        "{}",
        describe(&output)
    );
    write(scratch.path(), "polled.txt", b"x");
    let poll = r#"{"name":"PollFileSize","input":"polled.txt"}"#;
    let output = run_testing(
        &scratch,
        &[
            "run",
            "CallActivity",
            "--input",
            poll,
            "--guest-cpu-ms",
            "300",
        ],
    );
    assert_eq!(
        last_line(&output),
        r#"{"error":"activity PollFileSize exceeded its CPU time (300ms without waiting)"}"#
    );

    // A storm of huge calls without a wait fails the orchestrator, not the host.
    let output = run_testing(&scratch, &["run", "CallStorm"]);
    assert!(
        stderr(&output)
            .contains("the orchestrator scheduled more than 250000 activities, timers or event waits, or 128 MiB"),
        "{}",
        describe(&output)
    );
    // A huge error message is cut before it is stored.
    let fail = format!(r#"{{"name":"Fail","input":"{}"}}"#, "y".repeat(100_000));
    let output = run_testing(&scratch, &["run", "CallActivity", "--input", &fail]);
    let error: serde_json::Value = serde_json::from_str(&last_line(&output)).expect("JSON");
    let message = error["error"].as_str().expect("an error message");
    assert!(message.len() < 5000, "{} bytes", message.len());
    assert!(message.ends_with("bytes in all]"), "{message}");

    // blob.get reads a small blob, and refuses a large one before reading it.
    write(&scratch.data_dir(), "blobs/small", &bytes(1, 1000));
    write(&scratch.data_dir(), "blobs/large", &bytes(2, 20 << 20));
    let small = run_testing(
        &scratch,
        &[
            "run",
            "CallActivity",
            "--input",
            r#"{"name":"GetBlob","input":"small"}"#,
        ],
    );
    assert_eq!(last_line(&small), "1000", "{}", describe(&small));
    let large = run_testing(
        &scratch,
        &[
            "run",
            "CallActivity",
            "--input",
            r#"{"name":"GetBlob","input":"large"}"#,
        ],
    );
    assert!(
        last_line(&large).contains("over the 16 MiB that blob.get reads"),
        "{}",
        describe(&large)
    );

    let allocate = r#"{"name":"Allocate","input":100}"#;
    let output = run_testing(
        &scratch,
        &[
            "run",
            "CallActivity",
            "--input",
            allocate,
            "--guest-memory-mib",
            "32",
        ],
    );
    assert_eq!(
        last_line(&output),
        r#"{"error":"activity Allocate exceeded its memory limit of 32 MiB"}"#
    );

    let output = run_testing(&scratch, &["run", "Panic"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("Failed: the orchestrator trapped: wasm `unreachable` executed"),
        "{}",
        describe(&output)
    );
    assert!(
        stderr(&output).contains("the guest printed: thread '<unnamed>'")
            && stderr(&output).contains("the Panic orchestrator panics on purpose"),
        "the panic message is part of the failure: {}",
        describe(&output)
    );
    assert!(
        !stderr(&output).contains("backtrace"),
        "no raw wasm backtrace: {}",
        stderr(&output)
    );

    // The host survived all of that: every instance is recorded as Failed or Completed.
    for id in scratch.instance_ids() {
        let status = scratch.status(&id);
        assert!(
            status["runtimeStatus"] == "Failed" || status["runtimeStatus"] == "Completed",
            "{status}"
        );
    }
}

#[test]
fn unknown_names_and_wrong_input_types_are_clear_errors() {
    let scratch = Scratch::new();
    let unknown = r#"{"name":"NoSuchActivity","input":1}"#;
    let output = run_testing(&scratch, &["run", "CallActivity", "--input", unknown]);
    assert_eq!(
        last_line(&output),
        r#"{"error":"unknown activity 'NoSuchActivity'; known activities: Allocate, Echo, Fail, GetBlob, PollFileSize, Repeat, Sleep, SleepThenFail, Spin"}"#
    );
    let output = scratch.run(&["run", "E2_BackupSiteContent", "--input", "42"]);
    assert!(
        stderr(&output)
            .contains("Failed: bad input: the input must be a directory path as a JSON string"),
        "{}",
        describe(&output)
    );
    let output = scratch.run(&["history", "no-such-id"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("no instance with id 'no-such-id'"));
}

#[test]
fn files_that_are_not_components_of_a_known_world_are_refused() {
    let scratch = Scratch::new();
    let text = write(scratch.path(), "notes.wasm", b"not wasm at all");
    let output = scratch.run(&[
        "run",
        "X",
        "--components",
        text.to_str().unwrap_or_default(),
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("notes.wasm is not a WebAssembly component"),
        "{}",
        describe(&output)
    );

    // An empty but valid component: the component preamble and nothing else.
    let empty = write(scratch.path(), "empty.wasm", b"\0asm\x0d\x00\x01\x00");
    let output = scratch.run(&[
        "run",
        "X",
        "--components",
        empty.to_str().unwrap_or_default(),
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output)
            .contains("empty.wasm is neither an orchestration nor an activity component"),
        "{}",
        describe(&output)
    );

    let output = scratch.run(&["run", "X", "--components", WRONG_WORLD]);
    assert!(!output.status.success());
    assert!(
        stderr(&output)
            .contains("wasi-hello.wasm is neither an orchestration nor an activity component"),
        "{}",
        describe(&output)
    );

    let missing = scratch.run(&["run", "X", "--components", "missing.wasm"]);
    assert!(
        stderr(&missing).contains("cannot read component missing.wasm"),
        "{}",
        describe(&missing)
    );
}

#[test]
fn payloads_over_the_limit_are_refused() {
    let scratch = Scratch::new();
    let big = format!("\"{}\"", "y".repeat(3000));
    let output = run_testing(
        &scratch,
        &[
            "run",
            "CustomStatus",
            "--input",
            &big,
            "--max-payload-kib",
            "2",
        ],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("the input is 3002 bytes, over the payload limit of 2048 bytes"),
        "{}",
        describe(&output)
    );
    assert!(scratch.instance_ids().is_empty(), "nothing was created");

    // A custom status is rewritten at every checkpoint: it is held to 64 KiB.
    let status = format!("\"{}\"", "s".repeat(70_000));
    let output = run_testing(&scratch, &["run", "CustomStatus", "--input", &status]);
    assert!(!output.status.success());
    assert!(
        stderr(&output)
            .contains("the custom status is 70002 bytes, over the payload limit of 65536 bytes"),
        "{}",
        describe(&output)
    );

    let repeat = r#"{"name":"Repeat","input":3000}"#;
    let output = run_testing(
        &scratch,
        &[
            "run",
            "CallActivity",
            "--input",
            repeat,
            "--max-payload-kib",
            "2",
        ],
    );
    assert!(
        last_line(&output).contains(
            "the output of activity Repeat is 3002 bytes, over the payload limit of 2048 bytes"
        ),
        "{}",
        describe(&output)
    );
}

/// A history that grows past `--max-history-mib` fails its instance at its next wait,
/// with a message that says what to do, and stays failed: no start replays it again.
#[test]
fn a_history_over_its_limit_fails_the_instance() {
    let scratch = Scratch::new();
    // 8,000 echoes record about 1.2 MiB of history; the limit is 1 MiB.
    let output = run_testing(
        &scratch,
        &["run", "FanOut", "--input", "8000", "--max-history-mib", "1"],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(
            "Failed: the history reached 1 MiB, over the limit of 1 MiB (--max-history-mib): continue as new"
        ),
        "{}",
        describe(&output)
    );
    let resumed = run_testing(&scratch, &["resume", "--max-history-mib", "1"]);
    assert!(
        stderr(&resumed).contains("resuming 0 unfinished instance(s)"),
        "{}",
        describe(&resumed)
    );
    // Under the default limit the same fan-out completes: sum of 0..8000.
    let output = run_testing(&scratch, &["run", "FanOut", "--input", "8000"]);
    assert_eq!(last_line(&output), "31996000", "{}", describe(&output));
}

/// A guest that logs without end has its lines cut to 4 KiB and dropped past the
/// process's rate, with a note of how many; one that waits on a task listed thousands of
/// times fails before the host builds its results.
#[test]
fn log_floods_and_repeated_waits_cost_the_host_a_bounded_amount() {
    let scratch = Scratch::new();
    let output = run_testing(&scratch, &["run", "LogFlood"]);
    assert_eq!(last_line(&output), "\"done\"", "{}", describe(&output));
    let text = stderr(&output);
    let lines: Vec<&str> = text.lines().filter(|line| line.contains("LLLL")).collect();
    // 1,000 lines a second pass: the 20,000 would take 20 s to go through.
    assert!(
        (1..10_000).contains(&lines.len()),
        "{} guest lines written",
        lines.len()
    );
    assert!(
        lines.iter().all(|line| line.len() < 5 << 10),
        "every line cut to about 4 KiB"
    );
    assert!(
        text.contains("[message cut: 10240 bytes in all]"),
        "{}",
        describe(&output)
    );
    assert!(
        text.contains("guest log line(s) dropped"),
        "{}",
        describe(&output)
    );

    let output = run_testing(&scratch, &["run", "WhenAllRepeated"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(
            "when-all would return 512 MiB of results, more than the orchestrator's memory limit of 512 MiB"
        ),
        "{}",
        describe(&output)
    );
}

#[test]
fn an_unusable_data_dir_is_a_clear_error() {
    let scratch = Scratch::new();
    let file = write(scratch.path(), "a-file", b"");
    let data_dir = file.join("data");
    let output = scratch.run(&[
        "run",
        "E2_BackupSiteContent",
        "--input",
        "\".\"",
        "--data-dir",
        data_dir.to_str().unwrap_or_default(),
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("cannot create the data directory"),
        "{}",
        describe(&output)
    );

    // A damaged database is named, and left as it was for the operator to look at.
    let damaged = scratch.data_dir().join("weft.db");
    write(&scratch.data_dir(), "weft.db", &bytes(9, 8192));
    let output = scratch.run(&["run", "E2_BackupSiteContent", "--input", "\".\""]);
    assert!(!output.status.success());
    let expected = format!("cannot use the database {}", damaged.display());
    assert!(stderr(&output).contains(&expected), "{}", describe(&output));
    assert_eq!(
        std::fs::read(&damaged).expect("still there"),
        bytes(9, 8192)
    );
}

#[test]
fn an_unwritable_blob_store_fails_the_backup_after_its_retries() {
    let scratch = Scratch::new();
    write(scratch.path(), "site/a.txt", b"abc");
    // A file where the `backups` directory must go: every write under it fails.
    write(&scratch.data_dir(), "blobs/backups", b"in the way");
    let output = scratch.run(&["run", "E2_BackupSiteContent", "--input", "\"site\""]);
    assert!(!output.status.success());
    let id = &scratch.instance_ids()[0];
    let status = scratch.status(id);
    assert_eq!(status["runtimeStatus"], "Failed");
    let message = status["output"].as_str().unwrap_or_default();
    assert!(
        message.contains("copying '") && message.contains("site/a.txt' failed"),
        "{message}"
    );
    assert!(message.contains("(after 3 attempts)"), "{message}");
    let history = scratch.history(id);
    let retries: Vec<_> = history
        .iter()
        .filter(|e| e["eventType"] == "TaskRetrying")
        .collect();
    assert_eq!(
        retries
            .iter()
            .map(|e| e["attempt"].as_u64())
            .collect::<Vec<_>>(),
        vec![Some(1), Some(2)]
    );
    assert_eq!(
        history
            .iter()
            .filter(|e| e["eventType"] == "TaskFailed")
            .count(),
        1
    );
}

#[test]
fn one_process_per_data_dir_and_a_graceful_stop_that_resumes() {
    let scratch = Scratch::new();
    let sleep = r#"{"name":"Sleep","input":1500}"#;
    let args = testing(&[
        "run",
        "CallActivity",
        "--input",
        sleep,
        "--instance-id",
        "sleepy",
        // The first run's activity cannot finish before the SIGTERM, however slow the
        // machine; the resume below runs it without the delay.
        "--test-activity-delay-ms",
        "600000",
    ]);
    let first = scratch
        .weft(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weft");
    poll(PATIENCE, || {
        (count_events(&scratch, "TaskScheduled") == 1).then_some(())
    });

    let second = run_testing(&scratch, &["resume"]);
    assert!(!second.status.success());
    let expected = format!("is in use by pid {}", first.id());
    assert!(stderr(&second).contains(&expected), "{}", describe(&second));

    let pid = first.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("send SIGTERM");
    let stopped = wait_output(first, PATIENCE);
    assert_eq!(
        stopped.status.code(),
        Some(130),
        "a stopped run says its work is not done: {}",
        describe(&stopped)
    );
    assert!(
        stderr(&stopped).contains("SIGTERM: stopping")
            && stderr(&stopped).contains("instance sleepy did not finish; `weft resume`"),
        "{}",
        describe(&stopped)
    );
    assert_ne!(scratch.status("sleepy")["runtimeStatus"], "Failed");

    let resumed = run_testing(&scratch, &["resume"]);
    assert!(resumed.status.success(), "{}", describe(&resumed));
    let status = scratch.status("sleepy");
    assert_eq!(status["runtimeStatus"], "Completed");
    assert_eq!(status["output"], 1500);
}

#[test]
fn an_attempt_over_its_timeout_fails_and_is_retried() {
    let scratch = Scratch::new();
    let input = r#"{"name":"Sleep","input":5000,"retry":{"maxAttempts":2,"firstRetryIntervalMs":10,"timeoutMs":200}}"#;
    let output = run_testing(
        &scratch,
        &[
            "run",
            "CallActivity",
            "--input",
            input,
            "--instance-id",
            "slow",
        ],
    );
    assert_eq!(
        last_line(&output),
        r#"{"error":"activity Sleep timed out after 200 ms (after 2 attempts)"}"#
    );
    let history = scratch.history("slow");
    let retries: Vec<_> = history
        .iter()
        .filter(|e| e["eventType"] == "TaskRetrying")
        .collect();
    assert_eq!(retries.len(), 1);
    assert_eq!(
        retries[0]["message"],
        "activity Sleep timed out after 200 ms"
    );

    // A policy cannot ask for more time than the host allows.
    let greedy = r#"{"name":"Sleep","input":60000,"retry":{"maxAttempts":1,"firstRetryIntervalMs":10,"timeoutMs":18446744073709551615}}"#;
    let output = run_testing(
        &scratch,
        &[
            "run",
            "CallActivity",
            "--input",
            greedy,
            "--activity-timeout-secs",
            "1",
        ],
    );
    assert_eq!(
        last_line(&output),
        r#"{"error":"activity Sleep timed out after 1000 ms"}"#,
        "{}",
        describe(&output)
    );
}

#[test]
fn a_retry_waits_for_its_stored_due_time_across_a_restart() {
    let scratch = Scratch::new();
    let input =
        r#"{"name":"Fail","input":1,"retry":{"maxAttempts":2,"firstRetryIntervalMs":1500}}"#;
    let args = testing(&[
        "run",
        "CallActivity",
        "--input",
        input,
        "--instance-id",
        "backoff",
    ]);
    let mut first = scratch
        .weft(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn weft");
    poll(PATIENCE, || {
        (count_events(&scratch, "TaskRetrying") == 1).then_some(())
    });
    first.kill().expect("SIGKILL weft");
    first.wait().expect("reap weft");
    let history = scratch.history("backoff");
    let retry = history
        .iter()
        .find(|e| e["eventType"] == "TaskRetrying")
        .expect("a retry notice");
    let retry_at =
        chrono::DateTime::parse_from_rfc3339(retry["retryAt"].as_str().unwrap_or_default())
            .expect("retryAt");

    let resumed = run_testing(&scratch, &["resume"]);
    assert!(resumed.status.success(), "{}", describe(&resumed));
    let log = stderr(&resumed);
    let second = log
        .lines()
        .find(|line| line.contains("activity started: Fail(1)") && line.contains("attempt=2"))
        .unwrap_or_else(|| panic!("no second attempt in:\n{log}"));
    let started =
        chrono::DateTime::parse_from_rfc3339(second.split_whitespace().next().unwrap_or_default())
            .expect("log time");
    assert!(
        started >= retry_at,
        "the second attempt started at {started}, before its due time {retry_at}"
    );
    assert_eq!(
        scratch.status("backoff")["output"],
        serde_json::json!({ "error": "failed on purpose with 1 (after 2 attempts)" })
    );
}

#[test]
fn the_cli_exits_quietly_on_a_closed_pipe_and_refuses_short_keys() {
    let scratch = Scratch::new();
    let output = run_testing(
        &scratch,
        &["run", "FanOut", "--input", "2000", "--instance-id", "big"],
    );
    assert!(output.status.success(), "{}", describe(&output));
    // The history is far larger than a pipe's buffer, so weft writes after `head` left.
    let piped = std::process::Command::new("bash")
        .current_dir(scratch.path())
        .env("WEFT_DATA_DIR", scratch.data_dir())
        .args([
            "-c",
            &format!("set -o pipefail; '{WEFT}' history big | head -1 >/dev/null"),
        ])
        .output()
        .expect("run a pipeline");
    assert!(piped.status.success(), "{}", describe(&piped));
    assert_eq!(stderr(&piped), "", "nothing is reported");

    let short = scratch.run(&["serve", "--addr", "127.0.0.1:0", "--key", "short"]);
    assert!(!short.status.success());
    assert!(
        stderr(&short).contains("the API key must be at least 16 characters long"),
        "{}",
        describe(&short)
    );
}

#[test]
fn a_damaged_cached_component_is_compiled_again_never_run() {
    let scratch = Scratch::new();
    let cache = scratch.path().join("cache");
    let cache_arg = cache.to_string_lossy().to_string();
    let args = ["run", "FanOut", "--input", "3", "--cache-dir", &cache_arg];
    let first = run_testing(&scratch, &args);
    assert_eq!(last_line(&first), "3", "{}", describe(&first));
    let mut damaged = 0;
    for entry in std::fs::read_dir(&cache).expect("the cache exists") {
        let path = entry.expect("a cache entry").path();
        let mut bytes = std::fs::read(&path).expect("read a cached component");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, bytes).expect("damage it");
        damaged += 1;
    }
    assert!(damaged >= 2, "both components were cached");
    let second = run_testing(&scratch, &args);
    assert_eq!(last_line(&second), "3", "{}", describe(&second));
    assert!(
        stderr(&second).contains("checksum mismatch"),
        "{}",
        describe(&second)
    );
    let third = run_testing(&scratch, &args);
    assert!(
        !stderr(&third).contains("checksum mismatch"),
        "the cache was repaired"
    );
}
