//! `weft bench`: every scenario runs once at a small size through the real binary and
//! ends with one JSON object of figures. No timing is asserted, only that the figures
//! are there and positive.

use crate::support::*;
use serde_json::Value;

/// Runs `weft bench ARGS` and returns the JSON object on stdout's last line.
fn bench(args: &[&str]) -> serde_json::Map<String, Value> {
    let scratch = Scratch::new();
    let mut all = vec!["bench"];
    all.extend(args);
    let output = scratch.run(&all);
    assert!(
        output.status.success(),
        "weft {all:?} failed:\n{}",
        describe(&output)
    );
    let line = last_line(&output);
    match serde_json::from_str(&line) {
        Ok(Value::Object(figures)) => figures,
        _ => panic!(
            "the last stdout line is not a JSON object: {line:?}\n{}",
            describe(&output)
        ),
    }
}

/// Asserts that `field` is a number greater than zero.
fn positive(figures: &serde_json::Map<String, Value>, field: &str) -> f64 {
    let value = figures.get(field).and_then(Value::as_f64);
    match value {
        Some(value) if value > 0.0 => value,
        _ => panic!("{field} is not a positive number in {figures:?}"),
    }
}

/// Asserts that `field` is a positive number if rclone is installed, else null.
fn positive_if_rclone(figures: &serde_json::Map<String, Value>, field: &str) {
    let installed = std::process::Command::new("rclone")
        .arg("version")
        .output()
        .is_ok_and(|output| output.status.success());
    if installed {
        positive(figures, field);
    } else {
        assert_eq!(figures.get(field), Some(&Value::Null), "{field}");
    }
}

#[test]
fn fanout_reports_activities_per_second() {
    let figures = bench(&["fanout", "--n", "200"]);
    assert_eq!(figures["scenario"], "fanout");
    assert_eq!(figures["n"], 200);
    positive(&figures, "activities_per_sec");
    positive(&figures, "wall_ms");
}

#[test]
fn sequential_reports_steps_per_second() {
    let figures = bench(&["sequential", "--n", "50"]);
    assert_eq!(figures["scenario"], "sequential");
    assert_eq!(figures["n"], 50);
    for field in [
        "steps_per_sec",
        "sqlite_commits_per_sec",
        "vs_sqlite_commits",
    ] {
        positive(&figures, field);
    }
    // The disk's I/O pressure around the run: a share in %, or null without the kernel's
    // pressure stall information.
    assert!(figures["io_pressure"].is_object(), "{figures:?}");
    for when in ["before", "after"] {
        let pressure = &figures["io_pressure"][when];
        assert!(
            pressure.is_null()
                || pressure
                    .as_f64()
                    .is_some_and(|p| (0.0..=100.0).contains(&p)),
            "io_pressure.{when}: {figures:?}"
        );
    }
}

#[test]
fn replay_reports_the_recovery_time_of_a_long_history() {
    let figures = bench(&["replay", "--n", "200"]);
    assert_eq!(figures["scenario"], "replay");
    positive(&figures, "replay_ms");
    // ExecutionStarted, the 200 scheduled and completed Echoes, the sleep, and the
    // episodes in between: at least 402 events were replayed.
    assert!(positive(&figures, "history_events") >= 402.0, "{figures:?}");
}

#[test]
fn backup_compares_weft_with_its_peers() {
    let figures = bench(&[
        "backup",
        "--files",
        "50",
        "--big-files",
        "1",
        "--big-mib",
        "2",
        "--runs",
        "1",
    ]);
    assert_eq!(figures["scenario"], "backup");
    assert_eq!(figures["files"], 51);
    for field in [
        "bytes",
        "weft_ms",
        "raw_object_store_ms",
        "raw_hash_sync_ms",
        "cp_ms",
        "overhead_ratio",
        "overhead_ratio_same_work",
        "vs_cp",
        "weft_peak_rss_mib",
    ] {
        positive(&figures, field);
    }
    positive_if_rclone(&figures, "rclone_ms");
    positive_if_rclone(&figures, "vs_rclone");
}

#[test]
fn scale_reports_files_per_second_and_peak_memory() {
    let figures = bench(&["scale", "--files", "500", "--baseline-files", "100"]);
    assert_eq!(figures["scenario"], "scale");
    assert_eq!(figures["files"], 500);
    for field in [
        "files_per_sec",
        "peak_rss_mib",
        "baseline_files_per_sec",
        "vs_baseline",
    ] {
        positive(&figures, field);
    }
}
