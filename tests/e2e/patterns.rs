//! The Durable Functions patterns beyond fan-out/fan-in, with the real binary: durable
//! timers (across a SIGKILL), external events (over HTTP and from the CLI, with and
//! without a host running), and the samples E1_HelloSequence, E3_Monitor,
//! E4_SmsPhoneVerification and E6_PeriodicBackup (sub-orchestrations, continue-as-new).

use crate::support::*;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) const SAMPLES_ORCHESTRATOR: &str = env!("WEFT_GUEST_SAMPLES_ORCHESTRATOR");
pub(crate) const SAMPLES_ACTIVITIES: &str = env!("WEFT_GUEST_SAMPLES_ACTIVITIES");
pub(crate) const BACKUP_ORCHESTRATOR: &str = env!("WEFT_GUEST_BACKUP_ORCHESTRATOR");
const WEBHOOKS: &str = "runtime/webhooks/durabletask";

fn with_samples(args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(
        ["--components", SAMPLES_ORCHESTRATOR, SAMPLES_ACTIVITIES]
            .iter()
            .map(|a| a.to_string()),
    );
    all
}

fn run(scratch: &Scratch, args: &[&str]) -> std::process::Output {
    let args = with_samples(args);
    scratch.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not a time: {value}: {e}"))
        .with_timezone(&Utc)
}

/// The history's events of one kind.
fn events(scratch: &Scratch, id: &str, kind: &str) -> Vec<Value> {
    scratch
        .history(id)
        .into_iter()
        .filter(|event| event["eventType"] == kind)
        .collect()
}

/// Waits until the history of `id` holds `count` events of `kind` (the instance may not
/// exist yet when it starts looking).
pub(crate) fn wait_for_events(scratch: &Scratch, id: &str, kind: &str, count: usize) -> Vec<Value> {
    poll(PATIENCE, || {
        std::thread::sleep(Duration::from_millis(100));
        let output = scratch.run(&["history", id]);
        let found: Vec<Value> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|event| event["eventType"] == kind)
            .collect();
        (found.len() >= count).then_some(found)
    })
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

fn url(server: &Server, path: &str) -> String {
    format!("{}/{WEBHOOKS}/{path}?code={}", server.base, server.key)
}

fn start(server: &Server, name: &str, id: &str, input: &str) {
    let response = client()
        .post(url(server, &format!("orchestrators/{name}/{id}")))
        .header("content-type", "application/json")
        .body(input.to_string())
        .send()
        .expect("POST start");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

fn raise(server: &Server, id: &str, name: &str, data: &str) -> StatusCode {
    client()
        .post(url(server, &format!("instances/{id}/raiseEvent/{name}")))
        .header("content-type", "application/json")
        .body(data.to_string())
        .send()
        .expect("POST raiseEvent")
        .status()
}

/// Waits until the instance has ended; returns its status.
fn ended(scratch: &Scratch, id: &str) -> Value {
    poll(PATIENCE, || {
        std::thread::sleep(Duration::from_millis(100));
        let status = scratch.status(id);
        let done = ["Completed", "Failed", "Terminated"]
            .contains(&status["runtimeStatus"].as_str().unwrap_or_default());
        done.then_some(status)
    })
}

/// `weft serve` on loopback with the samples' components.
pub fn serve(scratch: &Scratch) -> Server {
    let args = with_samples(&[]);
    Server::start(
        scratch,
        "127.0.0.1:0",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
}

fn sms_blob(scratch: &Scratch, phone: &str) -> PathBuf {
    scratch.data_dir().join("blobs/sms").join(phone)
}

/// The code E4_SendSmsChallenge "sent", read from its blob once it is there.
fn sms_code(scratch: &Scratch, phone: &str) -> u32 {
    let blob = sms_blob(scratch, phone);
    poll(PATIENCE, || {
        std::thread::sleep(Duration::from_millis(50));
        std::fs::read_to_string(&blob).ok()?.trim().parse().ok()
    })
}

#[test]
fn e1_hello_sequence_chains_three_calls() {
    let scratch = Scratch::new();
    let output = run(
        &scratch,
        &["run", "E1_HelloSequence", "--instance-id", "e1"],
    );
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        last_line(&output),
        r#"["Hello Tokyo!","Hello Seattle!","Hello London!"]"#
    );
    let scheduled: Vec<Value> = events(&scratch, "e1", "TaskScheduled")
        .into_iter()
        .map(|event| event["input"].clone())
        .collect();
    assert_eq!(scheduled, ["\"Tokyo\"", "\"Seattle\"", "\"London\""]);
}

#[test]
fn a_durable_timer_survives_sigkill_and_fires_never_before_its_time() {
    let scratch = Scratch::new();
    let args = with_samples(&[
        "run",
        "DurableTimer",
        "--instance-id",
        "timer",
        "--input",
        // Long enough that the kill below comes first, even on a slow machine.
        r#"{"delayMs": 10000}"#,
    ]);
    let child = scratch
        .weft(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn weft run");
    let created = wait_for_events(&scratch, "timer", "TimerCreated", 1);
    kill(child.id());
    let _ = wait_output(child, PATIENCE);
    let fire_at = time(&created[0]["fireAt"]);
    // The timer is stored, not held by the dead process.
    let stored: i64 = scratch
        .db()
        .query_row(
            "SELECT COUNT(*) FROM timers WHERE instance_id = 'timer'",
            [],
            |row| row.get(0),
        )
        .expect("count timers");
    assert_eq!(stored, 1);

    let resumed = run(&scratch, &["resume"]);
    assert!(resumed.status.success(), "{}", describe(&resumed));
    assert!(Utc::now() >= fire_at);
    let status = scratch.status("timer");
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    let output = &status["output"];
    assert_eq!(output["fireAt"].as_i64(), Some(fire_at.timestamp_millis()));
    assert!(
        output["firedAt"].as_i64() >= output["fireAt"].as_i64(),
        "the orchestration resumed before its timer's time: {output}"
    );
    let fired = events(&scratch, "timer", "TimerFired");
    assert_eq!(fired.len(), 1, "a timer fires once");
    assert!(time(&fired[0]["timestamp"]) >= fire_at, "{fired:?}");
    let left: i64 = scratch
        .db()
        .query_row("SELECT COUNT(*) FROM timers", [], |row| row.get(0))
        .expect("count timers");
    assert_eq!(left, 0);
}

#[test]
fn e3_monitor_is_clear_once_the_file_appears_and_expires_otherwise() {
    let scratch = Scratch::new();
    let server = serve(&scratch);
    let marker = scratch.path().join("ready.flag");
    let input = |expiry: u64| {
        serde_json::json!({
            "path": marker.display().to_string(),
            "pollingIntervalSecs": 1,
            "expirySecs": expiry,
        })
        .to_string()
    };
    // Polled each second until it expires: several polls, even when each takes a while.
    start(&server, "E3_Monitor", "expires", &input(8));
    start(&server, "E3_Monitor", "clears", &input(600));
    let status = ended(&scratch, "expires");
    assert_eq!(status["output"], "expired", "{status}");
    assert!(events(&scratch, "expires", "TimerFired").len() >= 2);

    // Still polling on timers: the file appears, and the next poll sees it.
    wait_for_events(&scratch, "clears", "TimerFired", 1);
    std::fs::write(&marker, b"ok").expect("write the marker");
    let status = ended(&scratch, "clears");
    assert_eq!(status["output"], "clear", "{status}");
    drop(server);
}

#[test]
fn e4_is_verified_with_the_code_from_the_blob_and_refused_otherwise() {
    let scratch = Scratch::new();
    let server = serve(&scratch);
    let input = |phone: &str, timeout: u64| {
        serde_json::json!({ "phone": phone, "timeoutSecs": timeout }).to_string()
    };
    start(
        &server,
        "E4_SmsPhoneVerification",
        "right",
        &input("+1555001", 600),
    );
    start(
        &server,
        "E4_SmsPhoneVerification",
        "wrong",
        &input("+1555002", 600),
    );
    start(
        &server,
        "E4_SmsPhoneVerification",
        "slow",
        &input("+1555003", 2),
    );

    // The right code, over HTTP.
    let code = sms_code(&scratch, "+1555001");
    assert_eq!(
        raise(&server, "right", "SmsChallengeResponse", &code.to_string()),
        StatusCode::ACCEPTED
    );
    assert_eq!(ended(&scratch, "right")["output"], true);

    // Three wrong codes, from the CLI while the host runs: it delivers them.
    let code = sms_code(&scratch, "+1555002");
    for attempt in 1..=3 {
        let wrong = (code % 9000 + attempt) % 9000 + 1000;
        assert_ne!(wrong, code);
        scratch.run_ok(&[
            "raise-event",
            "wrong",
            "SmsChallengeResponse",
            "--data",
            &wrong.to_string(),
        ]);
    }
    let status = ended(&scratch, "wrong");
    assert_eq!(status["output"], false, "{status}");
    assert_eq!(events(&scratch, "wrong", "EventRaised").len(), 3);

    // No answer before the timeout.
    assert_eq!(ended(&scratch, "slow")["output"], false);

    // A finished instance refuses events, clearly.
    assert_eq!(
        raise(&server, "right", "SmsChallengeResponse", "1"),
        StatusCode::GONE
    );
    let refused = scratch.run(&[
        "raise-event",
        "right",
        "SmsChallengeResponse",
        "--data",
        "1",
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("has already ended (Completed)"), "{stderr}");
    let unknown = scratch.run(&["raise-event", "nobody", "E", "--data", "1"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no instance with id 'nobody'"));
    let bad = scratch.run(&["raise-event", "wrong", "E", "--data", "not json"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not valid JSON"));
    drop(server);
}

#[test]
fn e4_takes_events_raised_while_the_host_is_down_and_before_the_wait() {
    let scratch = Scratch::new();
    let phone = "+1555004";
    let input = serde_json::json!({ "phone": phone, "timeoutSecs": 600 }).to_string();

    // The host dies while the challenge is being sent: nothing waits for an event yet.
    let server = Server::start(
        &scratch,
        "127.0.0.1:0",
        // The challenge is never sent by this host, however long the kill takes.
        &with_samples(&["--test-activity-delay-ms", "600000"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    start(&server, "E4_SmsPhoneVerification", "later", &input);
    wait_for_events(&scratch, "later", "TaskScheduled", 1);
    server.kill();
    let _ = std::fs::remove_file(sms_blob(&scratch, phone));

    // A wrong answer, raised with no host: it waits in the inbox, and is taken by the
    // first wait once the code has been sent.
    let posted = scratch.run(&[
        "raise-event",
        "later",
        "SmsChallengeResponse",
        "--data",
        "0",
    ]);
    assert!(posted.status.success(), "{}", describe(&posted));
    assert!(String::from_utf8_lossy(&posted.stderr).contains("no host runs"));

    let server = serve(&scratch);
    let code = sms_code(&scratch, phone);
    wait_for_events(&scratch, "later", "EventWaitStarted", 2);
    server.kill();

    // The right answer, again while the host is down; the next host delivers it.
    scratch.run_ok(&[
        "raise-event",
        "later",
        "SmsChallengeResponse",
        "--data",
        &code.to_string(),
    ]);
    let resumed = run(&scratch, &["resume"]);
    assert!(resumed.status.success(), "{}", describe(&resumed));
    let status = scratch.status("later");
    assert_eq!(status["output"], true, "{status}");

    let history = scratch.history("later");
    let position = |kind: &str| {
        history
            .iter()
            .position(|event| event["eventType"] == kind)
            .unwrap_or(usize::MAX)
    };
    assert!(
        position("EventRaised") < position("EventWaitStarted"),
        "the first answer was raised before the orchestration waited: {history:?}"
    );
}

#[test]
fn cli_controls_reach_a_running_host_and_purge_removes_every_row() {
    let scratch = Scratch::new();
    let server = serve(&scratch);
    start(
        &server,
        "WaitForEvent",
        "waiter",
        r#"{"name": "Go", "count": 2}"#,
    );
    wait_for_events(&scratch, "waiter", "EventWaitStarted", 1);
    scratch.run_ok(&["suspend", "waiter"]);
    poll(PATIENCE, || {
        (scratch.status("waiter")["runtimeStatus"] == "Suspended").then_some(())
    });
    // Events raised while suspended are held, in order.
    for data in ["1", "2"] {
        scratch.run_ok(&["raise-event", "waiter", "Go", "--data", data]);
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(scratch.status("waiter")["runtimeStatus"], "Suspended");
    scratch.run_ok(&["resume-instance", "waiter"]);
    let status = ended(&scratch, "waiter");
    assert_eq!(status["output"], serde_json::json!([1, 2]), "{status}");

    start(
        &server,
        "WaitForEvent",
        "doomed",
        r#"{"name": "Go", "count": 1}"#,
    );
    wait_for_events(&scratch, "doomed", "EventWaitStarted", 1);
    let refused = scratch.run(&["purge", "doomed"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("has not ended"));
    scratch.run_ok(&["terminate", "doomed", "--reason", "enough"]);
    let status = ended(&scratch, "doomed");
    assert_eq!(status["runtimeStatus"], "Terminated");
    assert_eq!(status["output"], "enough");
    scratch.run_ok(&["purge", "doomed"]);
    let db = scratch.db();
    for table in [
        "instances",
        "history",
        "inbox",
        "work_items",
        "payloads",
        "timers",
    ] {
        let column = if table == "instances" {
            "id"
        } else {
            "instance_id"
        };
        let rows: i64 = db
            .query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE {column} = 'doomed'"),
                [],
                |row| row.get(0),
            )
            .expect("count rows");
        assert_eq!(rows, 0, "rows left in {table}");
    }
    drop(server);
}

#[test]
fn an_instance_waiting_on_a_timer_is_evicted_and_replayed_when_it_fires() {
    let scratch = Scratch::new();
    let output = run(
        &scratch,
        &[
            "run",
            "DurableTimer",
            "--instance-id",
            "idle",
            "--input",
            r#"{"delayMs": 2000}"#,
            "--evict-after-ms",
            "100",
        ],
    );
    assert!(output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("evicted while idle"), "{stderr}");
    let result: Value = serde_json::from_str(&last_line(&output)).expect("JSON output");
    assert!(
        result["firedAt"].as_i64() >= result["fireAt"].as_i64(),
        "{result}"
    );
    assert_eq!(events(&scratch, "idle", "TimerFired").len(), 1);
}

/// `weft serve` with the samples and the backup sample, whose `E2_BackupSiteContent`
/// `E6_PeriodicBackup` runs as a sub-orchestration.
fn serve_with_backup(scratch: &Scratch) -> Server {
    Server::start(
        scratch,
        "127.0.0.1:0",
        &[
            "--components",
            SAMPLES_ORCHESTRATOR,
            SAMPLES_ACTIVITIES,
            BACKUP_ORCHESTRATOR,
            BACKUP_ACTIVITIES,
        ],
    )
}

/// How many backups the eternal orchestration runs in its test.
const E6_ITERATIONS: u64 = 1000;
/// The most history rows one execution of `E6_PeriodicBackup` may hold: one iteration's
/// events (start, the sub-orchestration and its result, the timer and its firing, three
/// episodes), with room to spare, and far below what 1,000 iterations would leave
/// without continue-as-new.
const E6_MAX_HISTORY_ROWS: i64 = 16;

#[test]
fn e6_periodic_backup_continues_as_new_with_a_bounded_history() {
    let scratch = Scratch::new();
    write(scratch.path(), "site/a.txt", b"abc");
    write(scratch.path(), "site/b/c.txt", b"hello");
    let server = serve_with_backup(&scratch);
    start(
        &server,
        "E6_PeriodicBackup",
        "e6",
        r#"{"path": "site", "intervalSecs": 0}"#,
    );

    // Sample the history's size while the iterations run: it never grows with them.
    let mut most_rows = 0;
    let status = poll(Duration::from_secs(1800), || {
        std::thread::sleep(Duration::from_millis(200));
        most_rows = most_rows.max(scratch.history_rows("e6"));
        let status = scratch.status("e6");
        let state = status["runtimeStatus"].as_str().unwrap_or_default();
        assert!(
            !["Completed", "Failed", "Terminated"].contains(&state),
            "an eternal orchestration ended: {status}"
        );
        let iteration = status["customStatus"]["iteration"].as_u64()?;
        (iteration + 1 >= E6_ITERATIONS).then_some(status)
    });
    assert!(
        most_rows <= E6_MAX_HISTORY_ROWS,
        "the history grew to {most_rows} rows"
    );
    assert!(most_rows > 0, "the history was never seen");

    // Each iteration backed up the two files (8 bytes) and continued with the next count.
    assert_eq!(status["customStatus"]["lastTotalBytes"], 8, "{status}");
    assert!(
        status["customStatus"]["lastBackupAt"].as_u64() > Some(0),
        "{status}"
    );
    let iteration = status["customStatus"]["iteration"]
        .as_u64()
        .unwrap_or_default();
    assert_eq!(status["input"]["path"], "site", "{status}");
    assert_eq!(status["input"]["intervalSecs"], 0, "{status}");
    assert!(
        status["input"]["iteration"].as_u64() >= Some(iteration),
        "{status}"
    );
    // One sub-orchestration instance, replaced by each iteration: 1,000 backups leave
    // two instances in the store, not a thousand.
    // (The latest may be running: the iterations go on.)
    let backup = scratch.status("e6:backup");
    assert_eq!(backup["name"], "E2_BackupSiteContent", "{backup}");
    assert_ne!(backup["runtimeStatus"], "Failed", "{backup}");
    assert_eq!(scratch.instance_count(), 2);
    for file in ["site/a.txt", "site/b/c.txt"] {
        let blob = blob_of(&scratch.data_dir(), &scratch.path().join(file));
        let original = std::fs::read(scratch.path().join(file)).expect("the site's file");
        assert_eq!(
            std::fs::read(&blob).ok(),
            Some(original),
            "{}",
            blob.display()
        );
    }

    // An eternal orchestration ends when a client terminates it.
    scratch.run_ok(&["terminate", "e6", "--reason", "enough"]);
    assert_eq!(ended(&scratch, "e6")["runtimeStatus"], "Terminated");
    drop(server);
}

#[test]
fn e6_fails_with_the_error_of_its_backup_sub_orchestration() {
    let scratch = Scratch::new();
    let server = serve_with_backup(&scratch);
    start(
        &server,
        "E6_PeriodicBackup",
        "e6-missing",
        r#"{"path": "does-not-exist", "intervalSecs": 3600}"#,
    );
    let status = ended(&scratch, "e6-missing");
    assert_eq!(status["runtimeStatus"], "Failed", "{status}");
    let message = status["output"].as_str().unwrap_or_default();
    assert!(
        message.contains("E2_BackupSiteContent failed") && message.contains("does-not-exist"),
        "{status}"
    );
    let backup = scratch.status("e6-missing:backup");
    assert_eq!(backup["runtimeStatus"], "Failed", "{backup}");
    drop(server);
}
