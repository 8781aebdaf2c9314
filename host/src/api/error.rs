//! The API's one error type and its mapping to HTTP statuses.

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
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if matches!(self, Self::Internal(_)) {
            tracing::error!("request failed: {self}");
        }
        (
            self.status(),
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

impl From<store::Error> for Error {
    fn from(error: store::Error) -> Self {
        match error {
            store::Error::UnknownInstance(_) => Self::NotFound(error.to_string()),
            store::Error::InstanceExists(_)
            | store::Error::NotEnded(_)
            | store::Error::Conflict { .. } => Self::Conflict(error.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<runtime::Error> for Error {
    fn from(error: runtime::Error) -> Self {
        match error {
            runtime::Error::Store(error) => error.into(),
            runtime::Error::UnknownOrchestrator { .. } => Self::NotFound(error.to_string()),
            runtime::Error::BadInput(_) | runtime::Error::BadId(_) => {
                Self::BadRequest(error.to_string())
            }
            runtime::Error::PayloadTooLarge(_) => Self::PayloadTooLarge(error.to_string()),
            runtime::Error::Ended { .. } => Self::Gone(error.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}
