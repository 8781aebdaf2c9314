//! The errors a guest returns and the error of a task that did not produce a result.

use std::fmt::Display;

/// Why an orchestrator or an activity did not produce its output.
///
/// The registration macros turn it into the WIT `run-error` the host records, so `?`
/// works on everything that converts into it: a [`TaskError`] (a failed activity, timer,
/// event or sub-orchestration), a [`serde_json::Error`], and in activities the host's
/// `io-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not what the function accepts; the host reports it as
    /// `bad input: <message>`.
    #[error("{0}")]
    BadInput(String),
    /// The function ran and failed.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// A failure with `message`.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// A refusal of the input, with `message` saying what was expected.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::BadInput(message.into())
    }

    /// The same error with `context` and `": "` before its message, so that a person
    /// reads what was being done first.
    #[must_use]
    pub fn context(self, context: impl Display) -> Self {
        match self {
            Self::BadInput(message) => Self::BadInput(format!("{context}: {message}")),
            Self::Failed(message) => Self::Failed(format!("{context}: {message}")),
        }
    }

    /// The message, without its kind.
    pub fn message(&self) -> &str {
        match self {
            Self::BadInput(message) | Self::Failed(message) => message,
        }
    }
}

impl From<TaskError> for Error {
    fn from(error: TaskError) -> Self {
        Self::Failed(error.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Self::Failed(error.to_string())
    }
}

/// Why a task (an activity, a timer, an external event or a sub-orchestration) did not
/// produce a result of the expected type.
///
/// Its `Display` is `<name> failed: <message>`, the form an orchestrator that passes it
/// on with `?` reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} failed: {message}")]
pub struct TaskError {
    /// The activity's or sub-orchestrator's name, or the event's; `timer` for a timer.
    pub name: String,
    /// A message fit for a person: the activity's own error, or the host's (which says,
    /// for example, how many attempts were made).
    pub message: String,
}

/// Cuts `text` to at most `max` bytes (on a character boundary) for an error message, so
/// that a large payload does not become a large message.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_goes_first_and_keeps_the_kind() {
        let error = Error::bad_input("invalid type").context("the input must be a path");
        assert_eq!(
            error,
            Error::BadInput("the input must be a path: invalid type".to_string())
        );
        assert_eq!(error.message(), "the input must be a path: invalid type");
    }

    #[test]
    fn a_task_error_becomes_a_failure_that_names_the_task() {
        let error = Error::from(TaskError {
            name: "E2_GetFileList".to_string(),
            message: "not found (after 3 attempts)".to_string(),
        });
        assert_eq!(
            error.to_string(),
            "E2_GetFileList failed: not found (after 3 attempts)"
        );
    }

    #[test]
    fn excerpts_cut_on_character_boundaries() {
        assert_eq!(excerpt("short", 10), "short");
        assert_eq!(excerpt("ééé", 3), "é...");
    }
}
