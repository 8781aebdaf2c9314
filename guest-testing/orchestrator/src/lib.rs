//! Orchestrators that exercise the host's edges in tests: determinism, the sandbox,
//! failures and custom status, and the `weft bench` workloads. None of them is meant for
//! production use.

wit_bindgen::generate!({ world: "orchestration", path: "../../wit" });

use exports::weft::orchestration::orchestrator::{Guest, RunError};
use std::hash::{BuildHasher, Hasher};
use weft::orchestration::context;
use weft::orchestration::types::{RetryPolicy, TaskError};

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
    "Sequential",
    "FanOutThenRetry",
    "WasiSleep",
    "CallSubOrchestrator",
    "Eternal",
    "CarryEvents",
    "Recurse",
    "AbandonThenContinue",
    "LogFlood",
    "WhenAllRepeated",
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
            "Sequential" => sequential(),
            "FanOutThenRetry" => fan_out_then_retry(),
            "CallActivity" => call_activity(),
            "Panic" => panic!("the Panic orchestrator panics on purpose"),
            // A real-time sleep inside an orchestrator: the host must trap it.
            "WasiSleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok("\"slept\"".to_string())
            }
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
            // Logs 20,000 lines of 10 KiB at warn: the host must cut and drop them.
            "LogFlood" => {
                let line = "L".repeat(10 << 10);
                for _ in 0..20_000 {
                    context::log(weft::orchestration::types::LogLevel::Warn, &line);
                }
                Ok("\"done\"".to_string())
            }
            // Waits on one task with a 1 MiB result listed 2,000 times: the host must not
            // build 2 GiB of results for it.
            "WhenAllRepeated" => {
                let big = serde_json::to_string(&"x".repeat(1 << 20)).unwrap_or_default();
                let task = context::call_activity("Echo", &big, None);
                let results = context::when_all(&vec![task; 2000]);
                Ok(results.len().to_string())
            }
            "CustomStatus" => {
                context::set_custom_status(&context::input());
                Ok("\"done\"".to_string())
            }
            "CallSubOrchestrator" => call_sub_orchestrator(),
            "Eternal" => eternal(),
            "CarryEvents" => carry_events(),
            "Recurse" => recurse(),
            "AbandonThenContinue" => abandon_then_continue(),
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

/// Calls `Echo` once per number in `0..input`, one after another (each awaited before
/// the next is scheduled), and returns their sum: one episode per step.
fn sequential() -> Result<String, RunError> {
    let count: u64 =
        serde_json::from_str(&context::input()).map_err(|e| RunError::BadInput(e.to_string()))?;
    let mut sum = 0u64;
    for i in 0..count {
        let task = context::call_activity("Echo", &i.to_string(), None);
        sum += echoed(context::when_all(&[task]).pop())?;
    }
    Ok(sum.to_string())
}

/// Fans out `n` calls of `Echo` like `FanOut`, then calls `Fail` with one retry
/// `retryMs` later: input `{"n": N, "retryMs": MS}`. Returns the sum of the echoes once
/// the retry has failed too. While the retry is due, it is an instance with a long
/// history that still waits: what a restart must replay.
fn fan_out_then_retry() -> Result<String, RunError> {
    let input: serde_json::Value =
        serde_json::from_str(&context::input()).map_err(|e| RunError::BadInput(e.to_string()))?;
    let count = input["n"].as_u64().unwrap_or(0);
    let retry = RetryPolicy {
        max_attempts: 2,
        first_retry_interval_ms: input["retryMs"].as_u64().unwrap_or(0),
        backoff_coefficient: 1.0,
        max_retry_interval_ms: None,
        retry_timeout_ms: None,
        timeout_ms: None,
    };
    let tasks: Vec<_> = (0..count)
        .map(|i| context::call_activity("Echo", &i.to_string(), None))
        .collect();
    let mut sum = 0u64;
    for result in context::when_all(&tasks) {
        sum += echoed(Some(result))?;
    }
    let failing = context::call_activity("Fail", "\"on purpose\"", Some(retry));
    match context::when_all(&[failing]).pop() {
        Some(Err(_)) => Ok(sum.to_string()),
        _ => Err(RunError::Failed("Fail did not fail".to_string())),
    }
}

/// The number an `Echo` of a number returned.
fn echoed(result: Option<Result<String, TaskError>>) -> Result<u64, RunError> {
    let output = result
        .ok_or_else(|| RunError::Failed("no result".to_string()))?
        .map_err(|e| RunError::Failed(e.message))?;
    output
        .parse::<u64>()
        .map_err(|e| RunError::Failed(e.to_string()))
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

fn input() -> Result<serde_json::Value, RunError> {
    serde_json::from_str(&context::input()).map_err(|e| RunError::BadInput(e.to_string()))
}

/// Starts the sub-orchestrations `{"name": ..., "input": ..., "instanceId": ...,
/// "count": N}` (N of them at once; an explicit id only for the first) and returns each
/// one's output as `{"ok": output}` or its error as `{"error": message}`.
fn call_sub_orchestrator() -> Result<String, RunError> {
    let input = input()?;
    let name = input["name"].as_str().unwrap_or_default();
    let count = input["count"].as_u64().unwrap_or(1).max(1);
    let tasks: Vec<_> = (0..count)
        .map(|n| {
            let id = input["instanceId"].as_str().filter(|_| n == 0);
            context::call_sub_orchestrator(name, &input["input"].to_string(), id)
        })
        .collect();
    let results: Vec<serde_json::Value> = context::when_all(&tasks)
        .into_iter()
        .map(|result| match result {
            Ok(output) => serde_json::json!({
                "ok": serde_json::from_str::<serde_json::Value>(&output).unwrap_or_default()
            }),
            Err(error) => serde_json::json!({ "error": error.message, "name": error.name }),
        })
        .collect();
    Ok(serde_json::Value::Array(results).to_string())
}

/// Input N: calls itself as a sub-orchestration with N + 1, without end; returns what its
/// child returns, and fails with its child's failure.
fn recurse() -> Result<String, RunError> {
    let depth = input()?.as_u64().unwrap_or(0);
    let child = context::call_sub_orchestrator("Recurse", &(depth + 1).to_string(), None);
    match context::when_all(&[child]).pop() {
        Some(Ok(output)) => Ok(output),
        Some(Err(error)) => Err(RunError::Failed(error.message)),
        None => Err(RunError::Failed("no result".to_string())),
    }
}

/// `{"n": N, "until": M}`: starts an activity that sleeps for an hour and never waits for
/// it, awaits `Echo`, then continues as new with N + 1 until that reaches M, which it
/// returns. Each execution leaves a sleeper behind for the host to cancel.
fn abandon_then_continue() -> Result<String, RunError> {
    let input = input()?;
    let n = input["n"].as_u64().unwrap_or(0) + 1;
    let until = input["until"].as_u64().unwrap_or(1);
    let _abandoned = context::call_activity("Sleep", "3600000", None);
    let echo = context::call_activity("Echo", &n.to_string(), None);
    context::when_all(&[echo]);
    if n >= until {
        return Ok(n.to_string());
    }
    context::continue_as_new(&serde_json::json!({ "n": n, "until": until }).to_string());
    Ok("null".to_string())
}

/// `{"n": N, "until": M}`: waits on a timer that is already due, then continues as new
/// with N + 1 until that reaches M, which it returns.
fn eternal() -> Result<String, RunError> {
    let input = input()?;
    let n = input["n"].as_u64().unwrap_or(0) + 1;
    let until = input["until"].as_u64().unwrap_or(1);
    let timer = context::create_timer(context::current_time());
    context::when_all(&[timer]);
    context::set_custom_status(&serde_json::json!({ "n": n }).to_string());
    if n >= until {
        return Ok(n.to_string());
    }
    context::continue_as_new(&serde_json::json!({ "n": n, "until": until }).to_string());
    Ok("null".to_string())
}

/// `{"generation": 0}` waits for the event `start`, then for a timer of a second, then
/// continues as new; generation 1 waits for two `x` events and returns their data. An
/// `x` raised during the first execution must reach the second.
fn carry_events() -> Result<String, RunError> {
    let input = input()?;
    if input["generation"].as_u64() == Some(1) {
        let first = context::wait_for_external_event("x");
        let second = context::wait_for_external_event("x");
        let data: Vec<serde_json::Value> = context::when_all(&[first, second])
            .into_iter()
            .map(|result| serde_json::from_str(&result.unwrap_or_default()).unwrap_or_default())
            .collect();
        return Ok(serde_json::Value::Array(data).to_string());
    }
    let start = context::wait_for_external_event("start");
    context::when_all(&[start]);
    let timer = context::create_timer(context::current_time() + 1000);
    context::when_all(&[timer]);
    context::continue_as_new(r#"{"generation": 1}"#);
    Ok("null".to_string())
}

export!(Testing);
