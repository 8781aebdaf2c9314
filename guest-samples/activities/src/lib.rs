//! The samples' activities: `E1_SayHello`, `E3_GetIsClear` (whether a file exists,
//! through the host's `fs` import) and `E4_SendSmsChallenge` (makes a 4-digit code and
//! "sends" it by writing the blob `sms/<phone>`).

use std::hash::BuildHasher;
use weft_sdk::Error;
use weft_sdk::activity::{self, IoError, blob, fs};

weft_sdk::activities! {
    "E1_SayHello" => say_hello,
    "E3_GetIsClear" => is_clear,
    "E4_SendSmsChallenge" => send_sms_challenge,
}

fn say_hello(city: String) -> Result<String, Error> {
    Ok(format!("Hello {city}!"))
}

/// Clear once the file exists.
fn is_clear(path: String) -> Result<bool, Error> {
    match fs::file_size(&path) {
        Ok(_) => Ok(true),
        Err(IoError::NotFound(_)) => Ok(false),
        Err(other) => Err(other.into()),
    }
}

/// Makes a code from 1000 to 9999 and writes it to the blob `sms/<phone>`.
fn send_sms_challenge(phone: String) -> Result<u32, Error> {
    let valid = |c: char| c.is_ascii_digit() || c == '+' || c == '-';
    if phone.is_empty() || phone.len() > 32 || !phone.chars().all(valid) {
        return Err(Error::bad_input(format!(
            "'{phone}' is not a phone number (digits, + and -, at most 32)"
        )));
    }
    // The standard library's hasher keys come from the host's real randomness.
    let random = std::collections::hash_map::RandomState::new().hash_one(&phone);
    let code = 1000 + (random % 9000) as u32;
    activity::info(&format!("Sending verification code to {phone}."));
    blob::put(&format!("sms/{phone}"), code.to_string().as_bytes())?;
    Ok(code)
}
