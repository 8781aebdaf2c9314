//! The samples' activities: `E1_SayHello`, `E3_GetIsClear` (whether a file exists,
//! through the host's `fs` import) and `E4_SendSmsChallenge` (makes a 4-digit code and
//! "sends" it by writing the blob `sms/<phone>`).

wit_bindgen::generate!({ world: "activities", path: "../../wit" });

use exports::weft::orchestration::activity::{Guest, RunError};
use std::hash::BuildHasher;
use weft::orchestration::fs::{self, IoError};
use weft::orchestration::types::LogLevel;
use weft::orchestration::{blob, log};

struct Activities;

impl Guest for Activities {
    fn names() -> Vec<String> {
        ["E1_SayHello", "E3_GetIsClear", "E4_SendSmsChallenge"]
            .iter()
            .map(|name| name.to_string())
            .collect()
    }

    fn run(name: String, input: String) -> Result<String, RunError> {
        let input: String = serde_json::from_str(&input)
            .map_err(|e| RunError::BadInput(format!("{name} takes a JSON string: {e}")))?;
        let output = match name.as_str() {
            "E1_SayHello" => serde_json::to_string(&format!("Hello {input}!")),
            "E3_GetIsClear" => serde_json::to_string(&is_clear(&input)?),
            "E4_SendSmsChallenge" => serde_json::to_string(&send_sms_challenge(&input)?),
            _ => return Err(RunError::UnknownName(Self::names())),
        };
        output.map_err(|e| RunError::Failed(e.to_string()))
    }
}

/// Clear once the file exists.
fn is_clear(path: &str) -> Result<bool, RunError> {
    match fs::file_size(path) {
        Ok(_) => Ok(true),
        Err(IoError::NotFound(_)) => Ok(false),
        Err(IoError::AccessDenied(message) | IoError::Other(message)) => {
            Err(RunError::Failed(message))
        }
    }
}

/// Makes a code from 1000 to 9999 and writes it to the blob `sms/<phone>`.
fn send_sms_challenge(phone: &str) -> Result<u32, RunError> {
    let valid = |c: char| c.is_ascii_digit() || c == '+' || c == '-';
    if phone.is_empty() || phone.len() > 32 || !phone.chars().all(valid) {
        return Err(RunError::BadInput(format!(
            "'{phone}' is not a phone number (digits, + and -, at most 32)"
        )));
    }
    // The standard library's hasher keys come from the host's real randomness.
    let random = std::collections::hash_map::RandomState::new().hash_one(phone);
    let code = 1000 + (random % 9000) as u32;
    log::log(
        LogLevel::Info,
        &format!("Sending verification code to {phone}."),
    );
    blob::put(&format!("sms/{phone}"), code.to_string().as_bytes()).map_err(|error| {
        RunError::Failed(match error {
            IoError::AccessDenied(m) | IoError::NotFound(m) | IoError::Other(m) => m,
        })
    })?;
    Ok(code)
}

export!(Activities);
