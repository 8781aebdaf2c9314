//! The API's one error type and its mapping to HTTP statuses and JSON bodies.
//!
//! Bodies follow the Durable Functions extension: most errors are an object
//! `{"Message", "ExceptionMessage"}` (the Python client raises `ExceptionMessage` on a
//! 400 from a start), and the few answers the extension gives as a bare JSON string
//! (purge and rewind preconditions, a purge without `createdTimeFrom`) are
//! [`Error::Text`]. Every error body is JSON.

use crate::runtime;
use crate::store;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failed request; the variant decides the status code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    /// An answer whose body is a JSON string, as the extension gives for some refusals.
    #[error("{1}")]
    Text(StatusCode, String),
}

impl Error {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Text(status, _) => *status,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if matches!(self, Self::Internal(_)) {
            tracing::error!("request failed: {self}");
        }
        let status = self.status();
        let body = match self {
            Self::Text(_, text) => serde_json::Value::String(text),
            other => {
                let message = other.to_string();
                serde_json::json!({ "Message": message, "ExceptionMessage": message })
            }
        };
        (status, Json(body)).into_response()
    }
}

impl From<store::Error> for Error {
    fn from(error: store::Error) -> Self {
        match error {
            store::Error::UnknownInstance(_) => Self::NotFound(error.to_string()),
            store::Error::InstanceExists(_) | store::Error::Conflict { .. } => {
                Self::Conflict(error.to_string())
            }
            store::Error::NotEnded(_) | store::Error::NotFailed { .. } => {
                Self::PreconditionFailed(error.to_string())
            }
            store::Error::Ended { .. } => Self::Gone(error.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<runtime::Error> for Error {
    fn from(error: runtime::Error) -> Self {
        match error {
            runtime::Error::Store(error) => error.into(),
            // The extension (before it stopped checking) refused unknown names with a
            // 400 whose `ExceptionMessage` the Python client shows.
            runtime::Error::UnknownOrchestrator { .. }
            | runtime::Error::BadInput(_)
            | runtime::Error::BadEventName(_)
            | runtime::Error::BadId(_) => Self::BadRequest(error.to_string()),
            runtime::Error::PayloadTooLarge(_) => Self::PayloadTooLarge(error.to_string()),
            runtime::Error::Ended { .. } => Self::Gone(error.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}
