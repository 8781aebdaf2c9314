//! The host side of the activities world's imports, one file per WIT interface.

mod blob;
mod fs;
mod log;

use super::confine;
use crate::bindings::activities::weft::orchestration::fs::IoError;

impl crate::bindings::activities::weft::orchestration::types::Host for super::ActivityState {}

impl From<confine::Error> for IoError {
    fn from(error: confine::Error) -> Self {
        match &error {
            confine::Error::Denied(_) | confine::Error::Private(_) => {
                IoError::AccessDenied(error.to_string())
            }
            // No file has the lossy name a listing gave for a name that is not UTF-8, and
            // `not-found` is what guests already treat as "skip and report this file".
            confine::Error::NotFound(_) | confine::Error::NotUtf8(_) => {
                IoError::NotFound(error.to_string())
            }
            confine::Error::Io { .. }
            | confine::Error::TooLarge { .. }
            | confine::Error::Abandoned(_) => IoError::Other(error.to_string()),
        }
    }
}
