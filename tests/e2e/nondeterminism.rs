//! An orchestrator that schedules different work when replayed fails with an error that
//! names the sequence number, the recorded call and the new one.

use crate::support::*;
use std::process::Stdio;

#[test]
fn a_replay_that_schedules_different_work_fails_the_instance() {
    let scratch = Scratch::new();
    let components = ["--components", TESTING_ORCHESTRATOR, TESTING_ACTIVITIES];
    let mut args = vec![
        "run",
        "Nondeterministic",
        "--input",
        "600000",
        "--instance-id",
        "nd",
    ];
    args.extend(components);
    let mut child = scratch
        .weft(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn weft");
    // The first run has scheduled its (long) Sleep: kill it so that the next start replays.
    poll(PATIENCE, || {
        (count_events(&scratch, "TaskScheduled") == 1).then_some(())
    });
    child.kill().expect("SIGKILL weft");
    child.wait().expect("reap weft");

    let mut args = vec!["resume"];
    args.extend(components);
    let output = scratch.run(&args);
    assert!(
        !output.status.success(),
        "the instance failed, so resume reports failure"
    );

    let status = scratch.status("nd");
    assert_eq!(status["runtimeStatus"], "Failed");
    let message = status["output"].as_str().unwrap_or_default();
    assert!(
        message.contains("NonDeterminism at task 0 (history sequence 2)"),
        "{message}"
    );
    assert!(
        message.contains("records call-activity Sleep(600000)"),
        "{message}"
    );
    assert!(
        message.contains("called call-activity Echo(\"replayed\")"),
        "{message}"
    );
    let history = scratch.history("nd");
    assert_eq!(
        history.last().map(|e| e["eventType"].clone()),
        Some("ExecutionFailed".into())
    );
}
