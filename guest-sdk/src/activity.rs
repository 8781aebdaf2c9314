//! Activities: the host's `fs`, `blob` and `log` imports, and the typed dispatch that
//! [`activities!`](crate::activities) generates.
//!
//! An activity is a plain function from its decoded input to its output,
//! `fn(I) -> Result<O, Error>`; it does its I/O through [`fs`] and [`blob`], which the host
//! confines to the directories and the blob store the operator allowed.

use crate::LogLevel;
use crate::error::{Error, excerpt};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The wit-bindgen bindings of the `activities` world; see
/// [`orchestration::bindings`](crate::orchestration::bindings) for why the export macro is
/// public.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "activities",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export_activities",
    });
}

use bindings::weft::orchestration::types as wit;

pub use bindings::weft::orchestration::blob;
pub use bindings::weft::orchestration::fs;
pub use fs::IoError;

/// Longest excerpt of a payload that an error message quotes.
const QUOTED: usize = 200;

impl From<IoError> for Error {
    fn from(error: IoError) -> Self {
        Self::Failed(io_message(error))
    }
}

/// The host's message for an `io-error`, whatever its kind.
pub fn io_message(error: IoError) -> String {
    match error {
        IoError::AccessDenied(message) | IoError::NotFound(message) | IoError::Other(message) => {
            message
        }
    }
}

/// Logs `message` through the host (which tags it with the activity and its instance).
pub fn log(level: LogLevel, message: &str) {
    let level = match level {
        LogLevel::Trace => wit::LogLevel::Trace,
        LogLevel::Debug => wit::LogLevel::Debug,
        LogLevel::Info => wit::LogLevel::Info,
        LogLevel::Warn => wit::LogLevel::Warn,
        LogLevel::Error => wit::LogLevel::Error,
    };
    bindings::weft::orchestration::log::log(level, message);
}

/// Logs `message` at the `info` level.
pub fn info(message: &str) {
    log(LogLevel::Info, message);
}

/// Logs `message` at the `warn` level.
pub fn warn(message: &str) {
    log(LogLevel::Warn, message);
}

/// An activity function the registration macro can run: `fn(I) -> Result<O, Error>`,
/// whose input `I` the SDK decodes from the call's JSON input.
pub trait Activity<I, O> {
    /// Decodes the input, runs the activity and encodes its output.
    #[doc(hidden)]
    fn run(self, name: &str, input: &str) -> Result<String, Error>;
}

impl<F, I, O> Activity<I, O> for F
where
    F: FnOnce(I) -> Result<O, Error>,
    I: DeserializeOwned,
    O: Serialize,
{
    fn run(self, name: &str, input: &str) -> Result<String, Error> {
        let decoded = serde_json::from_str(input).map_err(|e| {
            Error::BadInput(format!(
                "{name} cannot take the input {}: {e}",
                excerpt(input, QUOTED)
            ))
        })?;
        let output = self(decoded)?;
        serde_json::to_string(&output).map_err(|e| {
            Error::Failed(format!(
                "{name}'s output could not be serialized as JSON: {e}"
            ))
        })
    }
}

/// Runs one registered activity; the code [`activities!`](crate::activities) generates
/// calls it.
#[doc(hidden)]
pub fn __run<I, O>(
    name: &str,
    input: &str,
    activity: impl Activity<I, O>,
) -> Result<String, wit::RunError> {
    activity.run(name, input).map_err(|error| match error {
        Error::BadInput(message) => wit::RunError::BadInput(message),
        Error::Failed(message) => wit::RunError::Failed(message),
    })
}

/// The error for a name no registered activity has.
#[doc(hidden)]
pub fn __unknown_name(names: Vec<String>) -> wit::RunError {
    wit::RunError::UnknownName(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(city: String) -> Result<String, Error> {
        Ok(format!("Hello {city}!"))
    }

    #[test]
    fn inputs_are_decoded_and_outputs_encoded() {
        assert_eq!(
            hello.run("E1_SayHello", "\"Tokyo\""),
            Ok("\"Hello Tokyo!\"".to_string())
        );
    }

    #[test]
    fn an_undecodable_input_is_bad_input_that_names_the_activity() {
        let error = hello.run("E1_SayHello", "42").unwrap_err();
        match error {
            Error::BadInput(message) => assert!(
                message.starts_with("E1_SayHello cannot take the input 42: invalid type"),
                "{message}"
            ),
            other => panic!("not bad input: {other:?}"),
        }
    }

    #[test]
    fn io_errors_keep_the_hosts_message() {
        let error = Error::from(IoError::AccessDenied("outside the roots".to_string()));
        assert_eq!(error, Error::Failed("outside the roots".to_string()));
    }
}
