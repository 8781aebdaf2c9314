//! `weft bench sequential`: one instance calls `Echo` N times, each call awaited before
//! the next is scheduled, so every step is a full round trip: an episode committed (it
//! records the last result and schedules the next call), the activity run, and its result
//! handed back to the instance.

use super::{Workdir, millis, per_sec, timed_sum};
use anyhow::Result;
use serde_json::{Value, json};

pub fn run(n: u64, work: &Workdir) -> Result<Value> {
    eprintln!("sequential: {n} Echo activities, one after another");
    let (elapsed, cpu) = timed_sum("Sequential", n, work)?;
    let rate = per_sec(n, elapsed);
    eprintln!(
        "sequential: {n} steps in {:.3} s: {rate} steps/s, {:.3} ms per step",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / n.max(1) as f64
    );
    eprintln!("sequential: {:.3} s of CPU time", cpu.as_secs_f64());
    Ok(json!({
        "scenario": "sequential",
        "n": n,
        "wall_ms": millis(elapsed),
        "cpu_ms": millis(cpu),
        "steps_per_sec": rate,
    }))
}
