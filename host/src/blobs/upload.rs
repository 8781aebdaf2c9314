//! Streams a local file into an object_store blob: small files in one request, large ones
//! as a multipart upload (Azure block list, S3 multipart) with several parts in flight,
//! every byte hashed with SHA-256 on the way and the memory held bounded host-wide.

use super::{Blobs, Copied, MAX_PARTS, PART_SIZE, PARTS_IN_FLIGHT, SHA256_KEY};
use bytes::Bytes;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, GetOptions, MultipartUpload, PutMultipartOptions, PutOptions,
    PutPayload, PutResult,
};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    #[error("{0}")]
    Store(#[from] object_store::Error),
    /// Reading the file, or (for `file://`) writing the blob: one message fits both.
    #[error("copying the file: {0}")]
    Read(#[from] std::io::Error),
    #[error(
        "the file changed while it was copied (its size or SHA-256 differs from the first read); the partial upload was aborted"
    )]
    Changed,
    #[error("{0}")]
    Local(String),
}

/// Lowercase hex of a SHA-256 digest.
pub(super) fn hex(digest: impl AsRef<[u8]>) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(64);
    for byte in digest.as_ref() {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Buffers at least this big are mapped memory of their own, returned to the system the
/// moment they are dropped; the allocator could keep freed parts in per-thread arenas.
const MAPPED: usize = 256 << 10;

/// Bytes read from a file.
pub(super) enum Data {
    Heap(Vec<u8>),
    Mapped(memmap2::MmapMut),
}

impl Data {
    /// `len` zero bytes.
    fn zeroed(len: usize) -> Result<Self, Failure> {
        if len >= MAPPED {
            Ok(Self::Mapped(memmap2::MmapMut::map_anon(len)?))
        } else {
            Ok(Self::Heap(vec![0u8; len]))
        }
    }
}

impl AsRef<[u8]> for Data {
    fn as_ref(&self) -> &[u8] {
        match self {
            Self::Heap(data) => data,
            Self::Mapped(data) => data,
        }
    }
}

impl AsMut<[u8]> for Data {
    fn as_mut(&mut self) -> &mut [u8] {
        match self {
            Self::Heap(data) => data,
            Self::Mapped(data) => data,
        }
    }
}

/// File data in memory, holding its share of the host's buffer budget until the store
/// has accepted it and the last reference is dropped.
struct Buffer {
    data: Data,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        self.data.as_ref()
    }
}

/// The payload of a part. Cloud stores drop it once sent, which returns its memory to the
/// budget; a store that keeps what it is given (`memory://`, or one an embedding program
/// passed in) gets a copy instead, or the budget would drain for good.
fn payload(blobs: &Blobs, data: Data, permit: OwnedSemaphorePermit) -> PutPayload {
    match blobs.backend {
        super::Backend::Cloud { .. } => PutPayload::from_bytes(Bytes::from_owner(Buffer {
            data,
            _permit: permit,
        })),
        _ => PutPayload::from(data.as_ref().to_vec()),
    }
}

/// Reserves `len` bytes of the buffer budget (at most the whole budget, so that one
/// oversized part cannot wait forever).
pub(super) async fn reserve(
    budget: &Arc<Semaphore>,
    len: usize,
) -> Result<OwnedSemaphorePermit, Failure> {
    budget
        .clone()
        .acquire_many_owned(memory(len as u64))
        .await
        .map_err(|_| Failure::Local("the host is shutting down".to_string()))
}

/// Reads exactly `len` bytes at `offset`; a short read means the file shrank.
pub(super) fn read_exact_at(file: &File, offset: u64, len: usize) -> Result<Data, Failure> {
    let mut data = Data::zeroed(len)?;
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut data.as_mut()[filled..], offset + filled as u64) {
            Ok(0) => return Err(Failure::Changed),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(data)
}

/// Whether the file has bytes past `size` (it grew while it was read).
pub(super) fn grew(file: &File, size: u64) -> Result<bool, Failure> {
    let mut probe = [0u8; 1];
    loop {
        match file.read_at(&mut probe, size) {
            Ok(n) => return Ok(n > 0),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The piece of a file read at a time to be hashed: small enough to stay in the CPU's
/// second-level cache between the read and the hash (a 2 GiB file hashed about 5% faster
/// than in 1 MiB pieces; see BENCHMARKS.md, session 14).
pub(super) const HASH_PIECE: usize = 128 << 10;

/// The SHA-256 of the first `size` bytes of `file`, read in pieces of [`HASH_PIECE`] bytes.
pub(super) fn hash_file(file: &File, size: u64) -> Result<String, Failure> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; HASH_PIECE];
    hash_range(file, 0..size, &mut hasher, &mut buffer)?;
    if grew(file, size)? {
        return Err(Failure::Changed);
    }
    Ok(hex(hasher.finalize()))
}

/// Feeds the bytes of `file` in `range` to `hasher`, read into `buffer` piece by piece.
pub(super) fn hash_range(
    file: &File,
    range: std::ops::Range<u64>,
    hasher: &mut Sha256,
    buffer: &mut [u8],
) -> Result<(), Failure> {
    let mut offset = range.start;
    while offset < range.end {
        let want = buffer.len().min((range.end - offset) as usize);
        match file.read_at(&mut buffer[..want], offset) {
            Ok(0) => return Err(Failure::Changed),
            Ok(n) => {
                hasher.update(&buffer[..n]);
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Failure::Local(format!("the reading thread failed: {e}")))?
}

fn attributes(sha256: &str) -> Attributes {
    Attributes::from_iter([(Attribute::Metadata(SHA256_KEY.into()), sha256.to_string())])
}

/// The part size for a file of `size` bytes: [`PART_SIZE`], or larger in whole MiB when
/// the file would need more than [`MAX_PARTS`] parts.
fn part_size(size: u64) -> usize {
    let needed = size.div_ceil(MAX_PARTS).div_ceil(1 << 20) << 20;
    (needed as usize).max(PART_SIZE)
}

/// True when the blob already holds exactly these bytes (same size and SHA-256).
async fn unchanged(
    blobs: &Blobs,
    location: &Path,
    size: u64,
    sha256: &str,
) -> Result<bool, Failure> {
    let options = GetOptions {
        head: true,
        ..GetOptions::default()
    };
    match blobs.store.get_opts(location, options).await {
        Ok(found) => Ok(found.meta.size == size
            && found
                .attributes
                .get(&Attribute::Metadata(SHA256_KEY.into()))
                .is_some_and(|value| value.as_ref() == sha256)),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(other) => Err(other.into()),
    }
}

/// A small file read whole, with its SHA-256 and the memory it holds.
type ReadWhole = (Result<(Data, String), Failure>, OwnedSemaphorePermit);

/// Reads a file of `size` bytes whole and hashes it.
fn read_whole(file: &File, size: u64) -> Result<(Data, String), Failure> {
    let data = read_exact_at(file, 0, size as usize)?;
    if grew(file, size)? {
        return Err(Failure::Changed);
    }
    let sha256 = hex(Sha256::digest(data.as_ref()));
    Ok((data, sha256))
}

/// Copies the file that `open` opens (with its size) into `location`; see
/// [`Blobs::copy_from`]. A file that goes up in one request is opened, read and hashed
/// on one blocking thread when memory for it is free then.
pub(super) async fn copy_from<E: Send + 'static>(
    blobs: &Blobs,
    open: impl FnOnce() -> Result<(File, u64), E> + Send + 'static,
    location: &Path,
) -> Result<Result<Copied, Failure>, E> {
    let budget = blobs.budget.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let (file, size) = open()?;
        let read: Option<ReadWhole> = (size <= part_size(size) as u64)
            .then(|| budget.try_acquire_many_owned(memory(size)).ok())
            .flatten()
            .map(|permit| (read_whole(&file, size), permit));
        Ok((file, size, read))
    })
    .await;
    Ok(match opened {
        Ok(Ok((file, size, read))) => copy(blobs, file, size, location, read).await,
        Ok(Err(refused)) => return Err(refused),
        Err(error) => Err(Failure::Local(format!(
            "the opening thread failed: {error}"
        ))),
    })
}

/// The budget a file of `size` bytes read whole takes (see [`reserve`]).
fn memory(size: u64) -> u32 {
    size.min(super::BUFFER_BUDGET as u64) as u32
}

/// Copies `file` into `location`, given what was `read` of it already, if anything.
async fn copy(
    blobs: &Blobs,
    file: File,
    size: u64,
    location: &Path,
    read: Option<ReadWhole>,
) -> Result<Copied, Failure> {
    let file = Arc::new(file);
    let part = part_size(size);
    if size <= part as u64 {
        // One read, hashed in memory, one request.
        let (read, permit) = match read {
            Some(read) => read,
            None => {
                let permit = reserve(&blobs.budget, size as usize).await?;
                let reader = file.clone();
                (blocking(move || read_whole(&reader, size)).await, permit)
            }
        };
        let (data, sha256) = read?;
        if blobs.skip_unchanged && unchanged(blobs, location, size, &sha256).await? {
            return Ok(Copied {
                bytes: size,
                sha256,
                uploaded: false,
            });
        }
        let payload = payload(blobs, data, permit);
        put_payload(blobs, location, payload, &sha256).await?;
        return Ok(Copied {
            bytes: size,
            sha256,
            uploaded: true,
        });
    }

    // S3 takes an object's metadata when the upload starts, so the SHA-256 must be
    // known first: one pass hashes, the upload pass hashes again and must agree.
    let reader = file.clone();
    let sha256 = blocking(move || hash_file(&reader, size)).await?;
    if blobs.skip_unchanged && unchanged(blobs, location, size, &sha256).await? {
        return Ok(Copied {
            bytes: size,
            sha256,
            uploaded: false,
        });
    }
    if let Some(orphans) = &blobs.orphans {
        match orphans.abort(location).await {
            Ok(0) => {}
            Ok(aborted) => {
                tracing::info!(blob = %location, "aborted {aborted} multipart upload(s) an earlier copy left open");
            }
            Err(error) => {
                tracing::warn!(blob = %location, "cannot abort the multipart uploads an earlier copy left open: {}", blobs.redact(error));
            }
        }
    }
    let options = PutMultipartOptions {
        attributes: attributes(&sha256),
        ..PutMultipartOptions::default()
    };
    let upload = match blobs.store.put_multipart_opts(location, options).await {
        Err(object_store::Error::NotImplemented { .. })
            if matches!(blobs.backend, super::Backend::Given) =>
        {
            blobs
                .store
                .put_multipart_opts(location, PutMultipartOptions::default())
                .await?
        }
        other => other?,
    };
    let mut upload = AbortOnDrop {
        upload: Some(upload),
        parts: tokio::task::JoinSet::new(),
        secrets: blobs.secrets.clone(),
        aborting: blobs.aborting.clone(),
    };
    let streamed = async {
        let mut hasher = Sha256::new();
        let mut offset = 0u64;
        while offset < size {
            let len = part.min((size - offset) as usize);
            let permit = reserve(&blobs.budget, len).await?;
            let reader = file.clone();
            let (data, updated) = blocking(move || {
                let data = read_exact_at(&reader, offset, len)?;
                hasher.update(data.as_ref());
                Ok((data, hasher))
            })
            .await?;
            hasher = updated;
            offset += len as u64;
            upload.put_part(payload(blobs, data, permit))?;
            while upload.parts.len() >= PARTS_IN_FLIGHT {
                finish_one(&mut upload.parts).await?;
            }
        }
        while !upload.parts.is_empty() {
            finish_one(&mut upload.parts).await?;
        }
        let reader = file.clone();
        if blocking(move || grew(&reader, size)).await? || hex(hasher.finalize()) != sha256 {
            return Err(Failure::Changed);
        }
        Ok(())
    }
    .await;
    match streamed {
        Ok(()) => {
            upload.complete().await?;
            Ok(Copied {
                bytes: size,
                sha256,
                uploaded: true,
            })
        }
        Err(error) => {
            // No partial blob.
            upload.abort().await;
            Err(error)
        }
    }
}

/// A multipart upload that is aborted unless it completes: one dropped half-way (its
/// attempt timed out, or its instance ended, and the copy's future was dropped) is
/// aborted by a task of its own, so its parts do not stay on the server. An abort first
/// stops the parts in flight and waits for them, so that none is stored after it.
struct AbortOnDrop {
    upload: Option<Box<dyn MultipartUpload>>,
    /// The parts in flight, each a task of its own, so that parts progress while the
    /// next is read; a part's memory returns to the budget when the store has it.
    parts: tokio::task::JoinSet<object_store::Result<()>>,
    /// The store's secrets, kept out of the message should the abort fail.
    secrets: Vec<String>,
    /// Counts the aborts under way (see [`Blobs::finish_aborts`]).
    aborting: Arc<tokio::sync::watch::Sender<usize>>,
}

impl AbortOnDrop {
    fn put_part(&mut self, data: PutPayload) -> Result<(), Failure> {
        match &mut self.upload {
            Some(upload) => {
                self.parts.spawn(upload.put_part(data));
                Ok(())
            }
            None => Err(Failure::Local("the upload has ended".to_string())),
        }
    }

    /// Completes the upload; if that fails, aborts it.
    async fn complete(&mut self) -> Result<(), Failure> {
        let Some(upload) = &mut self.upload else {
            return Err(Failure::Local("the upload has ended".to_string()));
        };
        // Left in place while it completes, so that a drop meanwhile still aborts it.
        let completed = upload.complete().await;
        if completed.is_ok() {
            self.upload = None;
        } else {
            self.abort().await;
        }
        completed.map(|_| ()).map_err(Failure::from)
    }

    async fn abort(&mut self) {
        if let Some(upload) = &mut self.upload {
            stop(&mut self.parts).await;
            if let Err(error) = upload.abort().await {
                // Its parts stay on the server until the next copy of the same blob, after
                // a restart, aborts the uploads left open (or a lifecycle rule does).
                let reason = super::redact_with(&self.secrets, error.to_string());
                tracing::warn!("cannot abort a failed multipart upload: {reason}");
            }
            self.upload = None;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(mut upload) = self.upload.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let secrets = std::mem::take(&mut self.secrets);
            let mut parts = std::mem::take(&mut self.parts);
            let aborting = self.aborting.clone();
            aborting.send_modify(|count| *count += 1);
            runtime.spawn(async move {
                stop(&mut parts).await;
                if let Err(error) = upload.abort().await {
                    let reason = super::redact_with(&secrets, error.to_string());
                    tracing::warn!("cannot abort an abandoned multipart upload: {reason}");
                }
                aborting.send_modify(|count| *count -= 1);
            });
        }
    }
}

/// Stops the parts in flight and waits until none runs.
async fn stop(parts: &mut tokio::task::JoinSet<object_store::Result<()>>) {
    parts.abort_all();
    while parts.join_next().await.is_some() {}
}

async fn finish_one(
    in_flight: &mut tokio::task::JoinSet<object_store::Result<()>>,
) -> Result<(), Failure> {
    match in_flight.join_next().await {
        Some(Ok(result)) => Ok(result?),
        Some(Err(e)) => Err(Failure::Local(format!("a part upload failed: {e}"))),
        None => Ok(()),
    }
}

/// Writes a whole payload with its SHA-256 as metadata. A store given by an embedding
/// program may not support metadata; it then gets the bytes alone.
async fn put_payload(
    blobs: &Blobs,
    location: &Path,
    payload: PutPayload,
    sha256: &str,
) -> Result<PutResult, Failure> {
    let options = PutOptions {
        attributes: attributes(sha256),
        ..PutOptions::default()
    };
    match blobs
        .store
        .put_opts(location, payload.clone(), options)
        .await
    {
        Err(object_store::Error::NotImplemented { .. })
            if matches!(blobs.backend, super::Backend::Given) =>
        {
            Ok(blobs
                .store
                .put_opts(location, payload, PutOptions::default())
                .await?)
        }
        other => Ok(other?),
    }
}

/// Writes a small blob whole, with its SHA-256.
pub(super) async fn put(
    blobs: &Blobs,
    location: &Path,
    data: Vec<u8>,
) -> Result<PutResult, Failure> {
    let sha256 = hex(Sha256::digest(&data));
    put_payload(blobs, location, PutPayload::from(data), &sha256).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_only_for_huge_files() {
        assert_eq!(part_size(0), PART_SIZE);
        assert_eq!(part_size(100 << 20), PART_SIZE);
        let huge = 200u64 << 30;
        let part = part_size(huge) as u64;
        assert!(part > PART_SIZE as u64);
        assert!(huge.div_ceil(part) <= MAX_PARTS);
        assert_eq!(part % (1 << 20), 0);
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(
            hex(Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
