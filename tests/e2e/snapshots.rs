//! Snapshots of what users and stored histories depend on: the history of a one-file
//! backup and its status document, with ids, times and paths scrubbed. A change here is
//! a change to the stored format or the API, and must be deliberate.

use crate::support::*;

/// Replaces what differs between runs: the scratch path, instance ids and timestamps.
fn scrub(scratch: &Scratch, id: &str, text: &str) -> String {
    let mut text = text
        .replace(scratch.path().to_str().unwrap_or_default(), "<scratch>")
        .replace(id, "<id>");
    // RFC 3339 times: 2026-01-02T03:04:05(.678)Z
    let mut out = String::new();
    while let Some(start) = text.find("\"20") {
        let rest = &text[start + 1..];
        let end = rest.find('"').unwrap_or(0);
        let candidate = &rest[..end];
        let is_time = candidate.len() >= 20
            && candidate.as_bytes().get(10) == Some(&b'T')
            && candidate.ends_with('Z');
        out.push_str(&text[..start + 1]);
        out.push_str(if is_time { "<time>" } else { candidate });
        text = rest[end..].to_string();
    }
    out.push_str(&text);
    out
}

#[test]
fn a_one_file_backup_records_this_history_and_status() {
    let scratch = Scratch::new();
    write(scratch.path(), "site/only.txt", b"twelve bytes");
    assert_eq!(
        scratch.run_ok(&["run", "E2_BackupSiteContent", "--input", "\"site\""]),
        "12"
    );
    let id = scratch.instance_ids().remove(0);

    let history = scratch.run(&["history", &id]);
    insta::assert_snapshot!(
        "backup_history",
        scrub(&scratch, &id, &String::from_utf8_lossy(&history.stdout))
    );
    let status = scratch.run(&["status", &id]);
    insta::assert_snapshot!(
        "backup_status",
        scrub(&scratch, &id, &String::from_utf8_lossy(&status.stdout))
    );
}

/// Replaces 13-digit numbers (milliseconds since the epoch in outputs) as well.
fn scrub_millis(text: &str) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    for c in text.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.len() == 13 {
            out.push_str("<millis>");
        } else {
            out.push_str(&digits);
        }
        digits.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

#[test]
fn a_timer_and_an_external_event_record_these_histories() {
    use crate::patterns::{SAMPLES_ACTIVITIES, SAMPLES_ORCHESTRATOR, wait_for_events};
    let scratch = Scratch::new();
    let samples = ["--components", SAMPLES_ORCHESTRATOR, SAMPLES_ACTIVITIES];

    let mut args = vec![
        "run",
        "DurableTimer",
        "--instance-id",
        "timer",
        "--input",
        r#"{"delayMs": 10}"#,
    ];
    args.extend(samples);
    scratch.run_ok(&args);
    let history = scratch.run(&["history", "timer"]);
    insta::assert_snapshot!(
        "timer_history",
        scrub_millis(&scrub(
            &scratch,
            "timer",
            &String::from_utf8_lossy(&history.stdout)
        ))
    );

    let mut args = vec![
        "run",
        "WaitForEvent",
        "--instance-id",
        "waiter",
        "--input",
        r#"{"name": "Go", "count": 1}"#,
    ];
    args.extend(samples);
    let child = scratch
        .weft(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn weft run");
    // Should an assertion fail before it ends, the run (waiting for its event) must not
    // outlive the test.
    let _guard = KillOnDrop(child.id());
    wait_for_events(&scratch, "waiter", "EventWaitStarted", 1);
    scratch.run_ok(&["raise-event", "waiter", "Go", "--data", r#"{"x": 1}"#]);
    let output = wait_output(child, std::time::Duration::from_secs(120));
    assert_eq!(last_line(&output), r#"[{"x":1}]"#, "{}", describe(&output));
    let history = scratch.run(&["history", "waiter"]);
    insta::assert_snapshot!(
        "event_history",
        scrub(
            &scratch,
            "waiter",
            &String::from_utf8_lossy(&history.stdout)
        )
    );
}

/// SIGKILLs a process when dropped (harmless once it has exited and been reaped).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            kill(self.0);
        }
    }
}
