//! `weft:orchestration/fs`: listing files under the allowed directories, and their sizes.

use super::super::ActivityState;
use crate::abandoned::Abandoned;
use crate::bindings::activities::weft::orchestration::fs::{FileEntry, Host, IoError};

impl Host for ActivityState {
    async fn list_files(
        &mut self,
        root: String,
    ) -> wasmtime::Result<Result<Vec<FileEntry>, IoError>> {
        let io = self.io.clone();
        // No guest can receive a listing larger than its memory; none is built.
        let limit = self.budget.limits().memory;
        // Walking a tree is blocking I/O; keep it off the async workers. Host time spent
        // here is not the guest's CPU time.
        // If this call is dropped (the attempt timed out, the instance ended), the walk
        // stops rather than run on in the blocking pool.
        let abandoned = Abandoned::default();
        let _abandon = abandoned.on_drop();
        self.budget.enter_host();
        let listed = tokio::task::spawn_blocking(move || {
            io.confinement.list_files(&root, limit, &abandoned)
        })
        .await;
        self.budget.leave_host();
        let listed = listed?;
        Ok(listed
            .map(|files| {
                files
                    .into_iter()
                    .map(|file| FileEntry {
                        path: file.path,
                        size: file.size,
                    })
                    .collect()
            })
            .map_err(IoError::from))
    }

    async fn file_size(&mut self, path: String) -> wasmtime::Result<Result<u64, IoError>> {
        let io = self.io.clone();
        self.budget.enter_host();
        let opened = tokio::task::spawn_blocking(move || io.confinement.open_file(&path)).await;
        self.budget.leave_host();
        let opened = opened?;
        Ok(opened.map(|(_, size)| size).map_err(IoError::from))
    }
}
