//! Orchestrators that exercise the host's edges in tests: determinism, the sandbox,
//! failures and custom status. None of them is meant for production use.

wit_bindgen::generate!({ world: "orchestration", path: "../../wit" });

use exports::weft::orchestration::orchestrator::{Guest, RunError};
use std::hash::{BuildHasher, Hasher};
use weft::orchestration::context;
use weft::orchestration::types::RetryPolicy;

struct Testing;

const NAMES: &[&str] = &[
    "Nondeterministic",
    "SandboxProbe",
    "FanOut",
    "CallActivity",
    "Panic",
    "CustomStatus",
    "InfiniteLoop",
    "MemoryBomb",
    "SpinOnFinishedTasks",
    "CallStorm",
];

impl Guest for Testing {
    fn names() -> Vec<String> {
        NAMES.iter().map(|name| name.to_string()).collect()
    }

    fn run(name: String) -> Result<String, RunError> {
        match name.as_str() {
            "Nondeterministic" => nondeterministic(),
            "SandboxProbe" => Ok(sandbox_probe()),
            "FanOut" => fan_out(),
            "CallActivity" => call_activity(),
            "Panic" => panic!("the Panic orchestrator panics on purpose"),
            "InfiniteLoop" => {
                let mut counter = 0u64;
                loop {
                    counter = std::hint::black_box(counter.wrapping_add(1));
                }
            }
            "MemoryBomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            // Waits once for real, then forever on the task that already finished: waits
            // that are already satisfied must not reset the CPU budget.
            "SpinOnFinishedTasks" => {
                let task = context::call_activity("Echo", "1", None);
                loop {
                    std::hint::black_box(context::when_all(&[task]));
                }
            }
            // Schedules activities with 1 MiB inputs forever, never waiting: the host must
            // not hold an unbounded amount for it.
            "CallStorm" => {
                let big = serde_json::to_string(&"x".repeat(1 << 20)).unwrap_or_default();
                loop {
                    context::call_activity("Echo", &big, None);
                }
            }
            "CustomStatus" => {
                context::set_custom_status(&context::input());
                Ok("\"done\"".to_string())
            }
            _ => Err(RunError::UnknownName(Self::names())),
        }
    }
}

/// Schedules different work when replayed: the first run sleeps, a replay echoes. A host
/// that replays it must fail the instance with a nondeterminism error.
fn nondeterministic() -> Result<String, RunError> {
    let task = if context::is_replaying() {
        context::call_activity("Echo", "\"replayed\"", None)
    } else {
        context::call_activity("Sleep", &context::input(), None)
    };
    let mut results = context::when_all(&[task]);
    results
        .pop()
        .and_then(Result::ok)
        .ok_or_else(|| RunError::Failed("no result".to_string()))
}

/// Reports what the orchestrator sees of the clock, randomness, files and environment.
fn sandbox_probe() -> String {
    let system_time_nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(7);
    let file = match std::fs::read_to_string("/etc/passwd") {
        Ok(text) => format!("read {} bytes", text.len()),
        Err(e) => format!("error: {e}"),
    };
    serde_json::json!({
        "currentTime": context::current_time(),
        "systemTimeNanos": system_time_nanos,
        "randomHash": hasher.finish(),
        "guid": context::new_guid(),
        "file": file,
        "env": std::env::vars().count(),
        "cwd": std::env::current_dir().ok(),
    })
    .to_string()
}

/// Calls `Echo` once per number in `0..input` in parallel and returns their sum.
fn fan_out() -> Result<String, RunError> {
    let count: u64 =
        serde_json::from_str(&context::input()).map_err(|e| RunError::BadInput(e.to_string()))?;
    let tasks: Vec<_> = (0..count)
        .map(|i| context::call_activity("Echo", &i.to_string(), None))
        .collect();
    let mut sum = 0u64;
    for result in context::when_all(&tasks) {
        let output = result.map_err(|e| RunError::Failed(e.message))?;
        sum += output
            .parse::<u64>()
            .map_err(|e| RunError::Failed(e.to_string()))?;
    }
    Ok(sum.to_string())
}

/// Calls the activity named in the input `{"name": ..., "input": ..., "retry": {...},
/// "count": N}` (N copies at once) and returns the first result, or its error as
/// `{"error": message}`.
fn call_activity() -> Result<String, RunError> {
    let input: serde_json::Value =
        serde_json::from_str(&context::input()).map_err(|e| RunError::BadInput(e.to_string()))?;
    let name = input["name"].as_str().unwrap_or_default();
    let retry = &input["retry"];
    let retry = retry.is_object().then(|| RetryPolicy {
        max_attempts: retry["maxAttempts"].as_u64().unwrap_or(1) as u32,
        first_retry_interval_ms: retry["firstRetryIntervalMs"].as_u64().unwrap_or(0),
        backoff_coefficient: retry["backoffCoefficient"].as_f64().unwrap_or(1.0),
        max_retry_interval_ms: retry["maxRetryIntervalMs"].as_u64(),
        retry_timeout_ms: retry["retryTimeoutMs"].as_u64(),
        timeout_ms: retry["timeoutMs"].as_u64(),
    });
    // `count` copies of the call at once (default one); the first result is returned.
    let count = input["count"].as_u64().unwrap_or(1).max(1);
    let tasks: Vec<_> = (0..count)
        .map(|_| context::call_activity(name, &input["input"].to_string(), retry))
        .collect();
    match context::when_all(&tasks).into_iter().next() {
        Some(Ok(output)) => Ok(output),
        Some(Err(error)) => Ok(serde_json::json!({ "error": error.message }).to_string()),
        None => Err(RunError::Failed("no result".to_string())),
    }
}

export!(Testing);
