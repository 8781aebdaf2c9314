//! The orchestrator sandbox: clocks, randomness, files and environment are deterministic
//! or absent, never the host's.

use crate::support::*;
use serde_json::Value;

fn probe(scratch: &Scratch, id: &str) -> Value {
    let output = scratch.run_ok(&[
        "run",
        "SandboxProbe",
        "--instance-id",
        id,
        "--components",
        TESTING_ORCHESTRATOR,
        TESTING_ACTIVITIES,
    ]);
    serde_json::from_str(&output).expect("the probe returns JSON")
}

#[test]
fn an_orchestrator_sees_replayed_time_seeded_randomness_and_no_files() {
    let first = Scratch::new();
    let seen = probe(&first, "probe-1");

    // The wall clock is the orchestration time recorded in the history, not the host's.
    let current = seen["currentTime"].as_u64().expect("currentTime");
    assert_eq!(seen["systemTimeNanos"].as_u64(), Some(current * 1_000_000));
    let history = first.history("probe-1");
    let started = history
        .iter()
        .find(|e| e["eventType"] == "OrchestratorStarted")
        .expect("an episode");
    let recorded =
        chrono::DateTime::parse_from_rfc3339(started["timestamp"].as_str().unwrap_or_default())
            .expect("timestamp")
            .timestamp_millis();
    assert_eq!(current as i64, recorded);

    // No file system, no environment.
    assert!(
        seen["file"]
            .as_str()
            .unwrap_or_default()
            .starts_with("error"),
        "{seen}"
    );
    assert_eq!(seen["env"], 0);

    // The same instance id elsewhere sees the same randomness and GUIDs; another id does not.
    let second = Scratch::new();
    let again = probe(&second, "probe-1");
    assert_eq!(again["randomHash"], seen["randomHash"]);
    assert_eq!(again["guid"], seen["guid"]);
    let other = probe(&second, "probe-2");
    assert_ne!(other["randomHash"], seen["randomHash"]);
    assert_ne!(other["guid"], seen["guid"]);
}

#[test]
fn an_orchestrator_that_sleeps_traps_with_a_pointer_to_durable_timers() {
    let scratch = Scratch::new();
    let output = scratch.run(&[
        "run",
        "WasiSleep",
        "--instance-id",
        "sleeper",
        "--components",
        TESTING_ORCHESTRATOR,
        TESTING_ACTIVITIES,
    ]);
    assert!(!output.status.success(), "{}", describe(&output));
    let status = scratch.status("sleeper");
    assert_eq!(status["runtimeStatus"], "Failed", "{status}");
    let message = status["output"].as_str().unwrap_or_default();
    assert!(
        message.contains("use context.create-timer for durable waits"),
        "{message}"
    );
}
