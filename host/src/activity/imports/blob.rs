//! `weft:orchestration/blob`: the blob store. Files are streamed into blobs by the host
//! ([`crate::blobs`]), hashed on the way, never whole in memory and never through the
//! guest.

use super::super::ActivityState;
use crate::bindings::activities::weft::orchestration::blob::{Copied, Host};
use crate::bindings::activities::weft::orchestration::fs::IoError;
use crate::blobs::BlobError;

impl From<BlobError> for IoError {
    fn from(error: BlobError) -> Self {
        match error {
            BlobError::NotFound(_) => IoError::NotFound(error.to_string()),
            BlobError::Name { .. } | BlobError::Failed { .. } => IoError::Other(error.to_string()),
        }
    }
}

impl ActivityState {
    async fn copy_file_now(
        &mut self,
        path: String,
        name: String,
    ) -> wasmtime::Result<Result<Copied, IoError>> {
        // Access is checked first: a refused path is reported as such, whatever the name.
        // The blob is in place when this returns, and durable before the activity's
        // result is reported (see [`crate::activity::Pending`]).
        let io = self.io.clone();
        let copied = self
            .io
            .blobs
            .copy_deferred(move || io.confinement.open_file(&path), &name)
            .await;
        Ok(match copied {
            Ok(Ok((copied, durability))) => match self.pending.push(durability).await {
                Ok(()) => Ok(Copied {
                    bytes: copied.bytes,
                    sha256: copied.sha256,
                    uploaded: copied.uploaded,
                }),
                Err(failed) => Err(IoError::Other(failed)),
            },
            Ok(Err(error)) => Err(IoError::from(error)),
            Err(refused) => Err(refused.into()),
        })
    }
}

/// Host time spent in these calls is not the guest's CPU time.
impl Host for ActivityState {
    async fn copy_file(
        &mut self,
        path: String,
        name: String,
    ) -> wasmtime::Result<Result<Copied, IoError>> {
        self.budget.enter_host();
        let result = self.copy_file_now(path, name).await;
        self.budget.leave_host();
        result
    }

    async fn put(&mut self, name: String, data: Vec<u8>) -> wasmtime::Result<Result<(), IoError>> {
        self.budget.enter_host();
        let result = self.io.blobs.put(&name, data).await.map_err(IoError::from);
        self.budget.leave_host();
        Ok(result)
    }

    async fn get(&mut self, name: String) -> wasmtime::Result<Result<Vec<u8>, IoError>> {
        self.budget.enter_host();
        let result = self.io.blobs.get(&name).await.map_err(IoError::from);
        self.budget.leave_host();
        Ok(result)
    }
}
