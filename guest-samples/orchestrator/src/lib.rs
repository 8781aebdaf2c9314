//! The Durable Functions samples beside the backup, named as theirs are:
//! `E1_HelloSequence` (function chaining), `E3_Monitor` (a polling loop on durable
//! timers) and `E4_SmsPhoneVerification` (human interaction: an external event or a
//! timeout), and two orchestrators that show one primitive each, `DurableTimer` and
//! `WaitForEvent`.

wit_bindgen::generate!({ world: "orchestration", path: "../../wit" });

use exports::weft::orchestration::orchestrator::{Guest, RunError};
use serde::Deserialize;
use weft::orchestration::context;

const NAMES: &[&str] = &[
    "E1_HelloSequence",
    "E3_Monitor",
    "E4_SmsPhoneVerification",
    "DurableTimer",
    "WaitForEvent",
];

struct Samples;

impl Guest for Samples {
    fn names() -> Vec<String> {
        NAMES.iter().map(|name| name.to_string()).collect()
    }

    fn run(name: String) -> Result<String, RunError> {
        match name.as_str() {
            "E1_HelloSequence" => hello_sequence(),
            "E3_Monitor" => monitor(),
            "E4_SmsPhoneVerification" => sms_phone_verification(),
            "DurableTimer" => durable_timer(),
            "WaitForEvent" => wait_for_event(),
            _ => Err(RunError::UnknownName(Self::names())),
        }
    }
}

/// Function chaining: one activity after the other, each with its own input.
fn hello_sequence() -> Result<String, RunError> {
    let mut outputs: Vec<String> = Vec::new();
    for city in ["Tokyo", "Seattle", "London"] {
        outputs.push(call("E1_SayHello", &city)?);
    }
    Ok(json(&outputs))
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
fn monitor() -> Result<String, RunError> {
    let input: MonitorInput = input()?;
    let expiry = context::current_time().saturating_add(input.expiry_secs.saturating_mul(1000));
    while context::current_time() < expiry {
        if call::<bool>("E3_GetIsClear", &input.path)? {
            return Ok(json(&"clear"));
        }
        let next = context::current_time()
            .saturating_add(input.polling_interval_secs.saturating_mul(1000))
            .min(expiry);
        context::when_all(&[context::create_timer(next)]);
    }
    Ok(json(&"expired"))
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
fn sms_phone_verification() -> Result<String, RunError> {
    let input: VerificationInput = input()?;
    let code: u32 = call("E4_SendSmsChallenge", &input.phone)?;
    let deadline = context::current_time().saturating_add(input.timeout_secs.saturating_mul(1000));
    let timeout = context::create_timer(deadline);
    let mut authorized = false;
    for _ in 0..3 {
        let response = context::wait_for_external_event("SmsChallengeResponse");
        if context::when_any(&[response, timeout]) == 1 {
            break;
        }
        let answer = context::when_all(&[response]).pop().and_then(Result::ok);
        if answer.and_then(|text| serde_json::from_str::<u32>(&text).ok()) == Some(code) {
            authorized = true;
            break;
        }
    }
    Ok(json(&authorized))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimerInput {
    delay_ms: u64,
}

/// Waits on one durable timer; returns when it was due and the orchestration time
/// after it fired (never earlier).
fn durable_timer() -> Result<String, RunError> {
    let input: TimerInput = input()?;
    let fire_at = context::current_time().saturating_add(input.delay_ms);
    context::when_all(&[context::create_timer(fire_at)]);
    Ok(serde_json::json!({ "fireAt": fire_at, "firedAt": context::current_time() }).to_string())
}

#[derive(Deserialize)]
struct EventInput {
    name: String,
    count: u32,
}

/// Waits for `count` events named `name`, one after the other; returns their data.
fn wait_for_event() -> Result<String, RunError> {
    let input: EventInput = input()?;
    let mut received = Vec::new();
    for _ in 0..input.count {
        let event = context::wait_for_external_event(&input.name);
        let data = context::when_all(&[event])
            .pop()
            .and_then(Result::ok)
            .unwrap_or_default();
        received.push(serde_json::from_str::<serde_json::Value>(&data).unwrap_or_default());
    }
    Ok(json(&received))
}

fn input<T: serde::de::DeserializeOwned>() -> Result<T, RunError> {
    let text = context::input();
    serde_json::from_str(&text).map_err(|e| RunError::BadInput(format!("{text}: {e}")))
}

/// Calls one activity and waits for its result.
fn call<T: serde::de::DeserializeOwned>(
    name: &str,
    input: &impl serde::Serialize,
) -> Result<T, RunError> {
    let task = context::call_activity(name, &json(input), None);
    let output = context::when_all(&[task])
        .pop()
        .ok_or_else(|| RunError::Failed(format!("{name} returned nothing")))?
        .map_err(|e| RunError::Failed(format!("{name} failed: {}", e.message)))?;
    serde_json::from_str(&output)
        .map_err(|e| RunError::Failed(format!("unexpected output of {name} {output}: {e}")))
}

fn json(value: &impl serde::Serialize) -> String {
    // Serializing strings, numbers and lists of them cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

export!(Samples);
