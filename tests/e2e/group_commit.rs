//! Group commit under crashes: many activity results are committed together, and each
//! caller hears "recorded" only once its group is durable. SIGKILL at random moments of a
//! fan-out must never lose a result that was acknowledged, nor record one twice.

use crate::support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

const TASKS: u64 = 30_000;
/// How many runs are killed before one is left to finish.
const KILLS: usize = 40;

/// Task ids whose outcome the log says was recorded (logged after the commit returned).
fn acknowledged(log: &str) -> BTreeSet<u64> {
    log.lines()
        .filter(|line| line.contains("outcome recorded"))
        .filter_map(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("task="))?
                .parse()
                .ok()
        })
        .collect()
}

/// Task id -> how many `TaskCompleted` events the history holds, and the task ids whose
/// completion waits in the inbox.
fn committed(scratch: &Scratch) -> (BTreeMap<u64, usize>, BTreeSet<u64>) {
    let db = scratch.db();
    let task_ids = |sql: &str| -> Vec<u64> {
        let mut stmt = db.prepare(sql).expect("prepare");
        stmt.query_map([], |row| row.get::<_, String>(0))
            .expect("query")
            .filter_map(Result::ok)
            .filter_map(|data| {
                serde_json::from_str::<serde_json::Value>(&data).ok()?["taskId"].as_u64()
            })
            .collect()
    };
    let mut history = BTreeMap::new();
    for task in task_ids("SELECT data FROM history WHERE event_type = 'TaskCompleted'") {
        *history.entry(task).or_insert(0) += 1;
    }
    let inbox = task_ids("SELECT data FROM inbox").into_iter().collect();
    (history, inbox)
}

#[test]
fn sigkill_during_group_commits_loses_no_acknowledged_result() {
    let scratch = Scratch::new();
    let components = ["--components", TESTING_ORCHESTRATOR, TESTING_ACTIVITIES];
    let mut rng = (std::process::id() as u64) | 1;
    let mut next = |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };
    let tasks = TASKS.to_string();
    let mut args = vec!["run", "FanOut", "--input", &tasks, "--instance-id", "fan"];
    args.extend(components);
    let mut cycles = 0;
    let mut checked_acks = 0;
    loop {
        let log_path = scratch.path().join(format!("cycle-{cycles}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut child = scratch
            .weft(&args)
            .env("WEFT_LOG", "weft=debug")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn weft");
        // The first cycles are killed at random moments; the last one is left to finish,
        // so that a slow machine (whose replay of a long history may outlast any moment
        // chosen) still gets to the end.
        let finished = if cycles < KILLS {
            std::thread::sleep(Duration::from_millis(30 + next(400)));
            let finished = child.try_wait().expect("try_wait").is_some();
            if !finished {
                kill(child.id());
            }
            finished
        } else {
            true
        };
        let output = wait_output(child, Duration::from_secs(600));
        let acked = acknowledged(&std::fs::read_to_string(&log_path).expect("read log"));
        let (history, inbox) = committed(&scratch);
        for task in &acked {
            assert!(
                history.contains_key(task) || inbox.contains(task),
                "cycle {cycles}: the result of task {task} was acknowledged but is not in the database"
            );
        }
        checked_acks += acked.len();
        for (task, count) in &history {
            assert_eq!(*count, 1, "task {task} is recorded {count} times");
        }
        cycles += 1;
        if finished {
            assert!(output.status.success(), "{}", describe(&output));
            break;
        }
        // Later cycles resume the same instance, once the first run got to create it (a
        // kill during start-up, on a loaded machine, may come before that).
        let created = scratch.data_dir().join("weft.db").exists()
            && scratch
                .db()
                .query_row(
                    "SELECT COUNT(*) FROM instances WHERE id = 'fan'",
                    [],
                    |row| row.get::<_, i64>(0),
                )
                .is_ok_and(|count| count == 1);
        if created {
            args = vec!["resume"];
            args.extend(components);
        }
    }
    let status = scratch.status("fan");
    assert_eq!(status["runtimeStatus"], "Completed");
    assert_eq!(
        status["output"],
        TASKS * (TASKS - 1) / 2,
        "the sum of 0..TASKS"
    );
    let (history, inbox) = committed(&scratch);
    assert_eq!(history.len() as u64, TASKS, "every task completed once");
    assert!(inbox.is_empty());
    eprintln!("{cycles} cycles, {checked_acks} acknowledgements checked");
    assert!(cycles > 1, "at least one run was killed");
    assert!(checked_acks > 0, "some acknowledgements were checked");
}
