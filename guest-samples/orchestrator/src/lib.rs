//! The Durable Functions samples beside the backup, named as theirs are:
//! `E1_HelloSequence` (function chaining), `E3_Monitor` (a polling loop on durable
//! timers), `E4_SmsPhoneVerification` (human interaction: an external event or a
//! timeout) and `E6_PeriodicBackup` (an eternal orchestration: a backup as a
//! sub-orchestration, a timer, then continue-as-new), and two orchestrators that show one
//! primitive each, `DurableTimer` and `WaitForEvent`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;
use weft_sdk::{Context, Error};

weft_sdk::orchestrators! {
    "E1_HelloSequence" => hello_sequence,
    "E3_Monitor" => monitor,
    "E4_SmsPhoneVerification" => sms_phone_verification,
    "E6_PeriodicBackup" => periodic_backup,
    "DurableTimer" => durable_timer,
    "WaitForEvent" => wait_for_event,
}

/// Function chaining: one activity after the other, each with its own input.
fn hello_sequence(ctx: &Context) -> Result<Vec<String>, Error> {
    let mut outputs = Vec::new();
    for city in ["Tokyo", "Seattle", "London"] {
        outputs.push(ctx.call_activity("E1_SayHello", &city).get()?);
    }
    Ok(outputs)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MonitorInput {
    path: String,
    polling_interval_secs: u64,
    expiry_secs: u64,
}

/// The monitor: until the expiry, asks whether the file is there, and if not sleeps on
/// a durable timer. The instance holds nothing while it sleeps.
fn monitor(ctx: &Context, input: MonitorInput) -> Result<&'static str, Error> {
    let expiry = ctx.time_after(Duration::from_secs(input.expiry_secs));
    while ctx.current_time() < expiry {
        let clear: bool = ctx.call_activity("E3_GetIsClear", &input.path).get()?;
        if clear {
            return Ok("clear");
        }
        let next = ctx.time_after(Duration::from_secs(input.polling_interval_secs));
        ctx.create_timer(next.min(expiry)).get()?;
    }
    Ok("expired")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerificationInput {
    phone: String,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
}

fn default_timeout() -> u64 {
    90
}

/// Human interaction: sends a code, then takes up to three answers (the external event
/// `SmsChallengeResponse`) before one deadline, a durable timer.
fn sms_phone_verification(ctx: &Context, input: VerificationInput) -> Result<bool, Error> {
    let code: u32 = ctx
        .call_activity("E4_SendSmsChallenge", &input.phone)
        .get()?;
    let timeout = ctx.create_timer_after(Duration::from_secs(input.timeout_secs));
    for _ in 0..3 {
        let response = ctx.wait_for_external_event::<Value>("SmsChallengeResponse");
        if ctx.when_any(&[&response, &timeout]) == 1 {
            return Ok(false);
        }
        // An answer that is not a number is a wrong answer, not a failure.
        if response.get()?.as_u64() == Some(u64::from(code)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The input of `E6_PeriodicBackup`, and of each execution it continues as.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PeriodicBackupInput {
    /// The directory to back up.
    path: String,
    /// The wait between the end of one backup and the start of the next.
    interval_secs: u64,
    /// How many backups ran before this execution (0 at first).
    #[serde(default)]
    iteration: u64,
}

/// An eternal orchestration: backs up a directory with `E2_BackupSiteContent` as a
/// sub-orchestration, reports the result in its custom status, sleeps on a durable timer,
/// then continues as new, so its history stays as short as one iteration's. With the blob
/// store's `--skip-unchanged` this is a periodic incremental backup.
fn periodic_backup(ctx: &Context, input: PeriodicBackupInput) -> Result<(), Error> {
    // Every iteration's backup has the same id: each replaces the last one, which has
    // ended, so an eternal backup keeps one sub-orchestration instance, not one per run.
    let backup_id = format!("{}:backup", ctx.instance_id());
    let total_bytes: u64 = ctx
        .call_sub_orchestrator("E2_BackupSiteContent", &input.path, Some(&backup_id))
        .get()?;
    ctx.set_custom_status(&json!({
        "lastTotalBytes": total_bytes,
        "lastBackupAt": ctx.current_time_millis(),
        "iteration": input.iteration,
    }))?;
    ctx.create_timer_after(Duration::from_secs(input.interval_secs))
        .get()?;
    ctx.continue_as_new(&PeriodicBackupInput {
        iteration: input.iteration.saturating_add(1),
        ..input
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimerInput {
    delay_ms: u64,
}

/// Waits on one durable timer; returns when it was due and the orchestration time
/// after it fired (never earlier).
fn durable_timer(ctx: &Context, input: TimerInput) -> Result<Value, Error> {
    let fire_at = ctx.current_time_millis().saturating_add(input.delay_ms);
    ctx.create_timer_after(Duration::from_millis(input.delay_ms))
        .get()?;
    Ok(json!({ "fireAt": fire_at, "firedAt": ctx.current_time_millis() }))
}

#[derive(Deserialize)]
struct EventInput {
    name: String,
    count: u32,
}

/// Waits for `count` events named `name`, one after the other; returns their data.
fn wait_for_event(ctx: &Context, input: EventInput) -> Result<Vec<Value>, Error> {
    let mut received = Vec::new();
    for _ in 0..input.count {
        received.push(ctx.wait_for_external_event(&input.name).get()?);
    }
    Ok(received)
}
