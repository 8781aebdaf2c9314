//! `weft:orchestration/blob`: the blob store (object_store). Files are streamed into
//! blobs in the host, in bounded parts, never whole in memory and never through the guest.

use super::super::ActivityState;
use crate::bindings::activities::weft::orchestration::blob::Host;
use crate::bindings::activities::weft::orchestration::fs::IoError;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use tokio::io::AsyncWriteExt;

fn blob_path(name: &str) -> Result<Path, IoError> {
    Path::parse(name).map_err(|e| IoError::Other(format!("invalid blob name '{name}': {e}")))
}

fn blob_error(name: &str, error: impl std::fmt::Display) -> IoError {
    IoError::Other(format!("blob '{name}': {error}"))
}

impl ActivityState {
    async fn copy_file_now(
        &mut self,
        path: String,
        name: String,
    ) -> wasmtime::Result<Result<u64, IoError>> {
        // Access is checked first: a refused path is reported as such, whatever the name.
        let io = self.io.clone();
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || io.confinement.open_file(&path)).await?
        };
        let mut source = match opened {
            Ok((file, _)) => tokio::fs::File::from_std(file),
            Err(error) => return Ok(Err(error.into())),
        };
        let target = match blob_path(&name) {
            Ok(target) => target,
            Err(error) => return Ok(Err(error)),
        };
        let mut writer = BufWriter::new(self.io.blobs.clone(), target);
        let copied = match tokio::io::copy(&mut source, &mut writer).await {
            Ok(copied) => copied,
            Err(error) => {
                // Leave no partial blob behind; the copy failed as a whole.
                let _ = writer.abort().await;
                return Ok(Err(IoError::Other(format!(
                    "copying '{path}' to blob '{name}': {error}"
                ))));
            }
        };
        if let Err(error) = writer.shutdown().await {
            return Ok(Err(IoError::Other(format!(
                "copying '{path}' to blob '{name}': {error}"
            ))));
        }
        Ok(Ok(copied))
    }

    async fn put_now(
        &mut self,
        name: String,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), IoError>> {
        let target = match blob_path(&name) {
            Ok(target) => target,
            Err(error) => return Ok(Err(error)),
        };
        Ok(self
            .io
            .blobs
            .put(&target, data.into())
            .await
            .map(|_| ())
            .map_err(|e| blob_error(&name, e)))
    }

    async fn get_now(&mut self, name: String) -> wasmtime::Result<Result<Vec<u8>, IoError>> {
        let target = match blob_path(&name) {
            Ok(target) => target,
            Err(error) => return Ok(Err(error)),
        };
        let bytes = match self.io.blobs.get(&target).await {
            Ok(result) => result.bytes().await,
            Err(error) => Err(error),
        };
        Ok(bytes.map(|bytes| bytes.to_vec()).map_err(|e| match e {
            object_store::Error::NotFound { .. } => IoError::NotFound(format!("no blob '{name}'")),
            other => blob_error(&name, other),
        }))
    }
}

/// Host time spent in these calls is not the guest's CPU time.
impl Host for ActivityState {
    async fn copy_file(
        &mut self,
        path: String,
        name: String,
    ) -> wasmtime::Result<Result<u64, IoError>> {
        self.budget.enter_host();
        let result = self.copy_file_now(path, name).await;
        self.budget.leave_host();
        result
    }

    async fn put(&mut self, name: String, data: Vec<u8>) -> wasmtime::Result<Result<(), IoError>> {
        self.budget.enter_host();
        let result = self.put_now(name, data).await;
        self.budget.leave_host();
        result
    }

    async fn get(&mut self, name: String) -> wasmtime::Result<Result<Vec<u8>, IoError>> {
        self.budget.enter_host();
        let result = self.get_now(name).await;
        self.budget.leave_host();
        result
    }
}
