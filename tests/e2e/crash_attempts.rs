//! Host crashes and activity attempts: a crash while an activity runs does not consume one
//! of its retry attempts, yet an activity that is running whenever the host dies is failed
//! after a bounded number of such deaths.

use crate::support::*;
use std::process::Stdio;
use std::time::Duration;

/// Runs `weft ARGS` with its log in `log`, and SIGKILLs it once the log shows `started`
/// activity starts in all (counting earlier runs' logs).
fn kill_after_starts(scratch: &Scratch, args: &[&str], log: &str, starts: usize, name: &str) {
    let path = scratch.path().join(log);
    let child = scratch
        .weft(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&path).expect("log file"))
        .spawn()
        .expect("spawn weft");
    let pattern = format!("activity started: {name}(");
    poll(Duration::from_secs(120), || {
        let seen: usize = std::fs::read_dir(scratch.path())
            .ok()?
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
            .map(|entry| {
                std::fs::read_to_string(entry.path())
                    .unwrap_or_default()
                    .matches(&pattern)
                    .count()
            })
            .sum();
        (seen >= starts).then_some(())
    });
    kill(child.id());
    let _ = wait_output(child, Duration::from_secs(60));
}

fn components() -> [&'static str; 3] {
    ["--components", TESTING_ORCHESTRATOR, TESTING_ACTIVITIES]
}

#[test]
fn crashes_do_not_consume_retry_attempts() {
    let scratch = Scratch::new();
    let input = r#"{"name":"SleepThenFail","input":1500,"retry":{"maxAttempts":3,"firstRetryIntervalMs":10}}"#;
    let mut run = vec![
        "run",
        "CallActivity",
        "--input",
        input,
        "--instance-id",
        "tries",
    ];
    run.extend(components());
    let mut resume = vec!["resume"];
    resume.extend(components());
    kill_after_starts(&scratch, &run, "1.log", 1, "SleepThenFail");
    kill_after_starts(&scratch, &resume, "2.log", 2, "SleepThenFail");
    let finished = scratch.run(&resume);
    assert!(finished.status.success(), "{}", describe(&finished));
    let status = scratch.status("tries");
    assert_eq!(
        status["output"]["error"], "failed on purpose after 1500 ms (after 3 attempts)",
        "{status}"
    );
    let retries = scratch
        .history("tries")
        .iter()
        .filter(|e| e["eventType"] == "TaskRetrying")
        .count();
    assert_eq!(retries, 2, "two crashes left all three attempts");
}

#[test]
fn an_activity_running_whenever_the_host_dies_is_failed_after_a_few_deaths() {
    let scratch = Scratch::new();
    let input = r#"{"name":"Sleep","input":600000}"#;
    let mut run = vec![
        "run",
        "CallActivity",
        "--input",
        input,
        "--instance-id",
        "doomed",
    ];
    run.extend(components());
    let mut resume = vec!["resume"];
    resume.extend(components());
    kill_after_starts(&scratch, &run, "1.log", 1, "Sleep");
    for round in 2..=4 {
        kill_after_starts(&scratch, &resume, &format!("{round}.log"), round, "Sleep");
    }
    let finished = scratch.run(&resume);
    assert!(finished.status.success(), "{}", describe(&finished));
    let status = scratch.status("doomed");
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(
        status["output"]["error"],
        "activity Sleep was running when the host died 3 times; it is failed so that it stops taking the host down"
    );
}
