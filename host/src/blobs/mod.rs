//! Blob stores by URL, through `object_store`: `file:///dir` (the embedded default),
//! `memory://`, Azure Blob (`az://` / `azure://`) and S3 (`s3://`), and the one operation
//! activities need from them: stream a local file into a blob, hashed on the way.

mod container;
mod group_sync;
mod local;
mod orphans;
mod staging;
mod upload;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as BlobPath;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Parts of a large file are this big (larger only when a file would need more than
/// [`MAX_PARTS`] of them). S3 needs at least 5 MiB per part; Azure takes up to 4000 MiB.
const PART_SIZE: usize = 8 << 20;
/// At most this many parts of one file are uploaded at once.
const PARTS_IN_FLIGHT: usize = 4;
/// S3 allows 10,000 parts per upload; a margin keeps rounding from crossing it.
const MAX_PARTS: u64 = 9_000;
/// File bytes held in memory by all uploads of this host together. A part's share is
/// returned when the store has accepted it, so memory stays bounded whatever the number
/// of activities running.
const BUFFER_BUDGET: usize = 40 << 20;
/// The user metadata key that holds a blob's SHA-256 (lowercase hex).
pub const SHA256_KEY: &str = "sha256";

/// Why a blob store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "unsupported blob store URL '{0}': use file:///absolute/dir, memory://, az://CONTAINER, azure://CONTAINER or s3://BUCKET"
    )]
    Unsupported(String),
    #[error("cannot use the blob directory {path}: {reason}")]
    Directory { path: String, reason: String },
    #[error("bad --blob-opt '{key}': {reason}")]
    BadOption { key: String, reason: String },
    #[error("cannot configure the blob store {url}: {reason}")]
    Build { url: String, reason: String },
    #[error("cannot create the {kind} '{name}': {reason}")]
    CreateContainer {
        kind: &'static str,
        name: String,
        reason: String,
    },
}

/// How the blob store is configured, beside its URL.
#[derive(Clone, Default)]
pub struct Options {
    /// object_store configuration keys (`--blob-opt KEY=VALUE`), on top of the
    /// `AZURE_*` or `AWS_*` environment variables.
    pub config: Vec<(String, String)>,
    /// Create the container or bucket when it is missing.
    pub create_container: bool,
    /// Do not upload a file whose blob already has the same size and SHA-256.
    pub skip_unchanged: bool,
}

/// Configuration values may be secrets: only the keys are shown.
impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field(
                "config",
                &self.config.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("create_container", &self.create_container)
            .field("skip_unchanged", &self.skip_unchanged)
            .finish()
    }
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub bytes: u64,
    /// Lowercase hex.
    pub sha256: String,
    /// False when `--skip-unchanged` found the same blob already there.
    pub uploaded: bool,
}

/// What is left to make a copied blob durable (see [`Blobs::copy_deferred`]): nothing
/// for a cloud blob, or a blob fsynced alone; a sync of its filesystem for a small
/// `file://` blob, which is queued for it already. Dropped, the blob still becomes
/// durable (and unmarked) with that sync, but nobody hears of it.
#[must_use = "a copy is durable only once its durability has been waited for"]
pub struct Durability(Option<Box<(local::LocalDir, local::Queued, String)>>);

impl Durability {
    /// Whether the blob is durable already.
    pub fn is_durable(&self) -> bool {
        self.0.is_none()
    }

    /// Waits until the blob is durable.
    pub async fn wait(self) -> Result<(), BlobError> {
        let Some(left) = self.0 else {
            return Ok(());
        };
        let (local, queued, name) = *left;
        local
            .synced(queued)
            .await
            .map_err(|failure| BlobError::Failed {
                reason: format!("cannot make the blob durable: {failure}"),
                name,
            })
    }
}

/// Why a copy or a blob operation failed; messages never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid blob name '{name}': {reason}")]
    Name { name: String, reason: String },
    #[error("no blob '{0}'")]
    NotFound(String),
    #[error("blob '{name}': {reason}")]
    Failed { name: String, reason: String },
}

/// The largest blob `blob.get` reads into memory for a guest.
pub const MAX_GET: u64 = 16 << 20;

/// The largest blob `blob.put` writes for a guest: the host holds its bytes until the
/// write is done, outside the budget that bounds the memory of copies.
pub const MAX_PUT: u64 = 16 << 20;

/// Which kind of store, for the fast path and for messages a person can act on.
enum Backend {
    Local(local::LocalDir),
    Memory,
    Cloud {
        /// "container" or "bucket".
        kind: &'static str,
        name: String,
        /// The flag that creates it, for the hint in errors.
        url: String,
    },
    /// A store given by an embedding program: attributes may be unsupported.
    Given,
}

/// The host's blob store and how files are streamed into it.
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    backend: Backend,
    skip_unchanged: bool,
    /// Bytes of file data in memory across all uploads; see [`BUFFER_BUDGET`].
    budget: Arc<Semaphore>,
    /// Configuration values that must never appear in a message.
    secrets: Vec<String>,
    /// For S3: aborts the multipart uploads an earlier copy of a blob left open.
    orphans: Option<orphans::Orphans>,
    /// How many aborts of abandoned uploads are under way (see [`Blobs::finish_aborts`]).
    aborting: Arc<tokio::sync::watch::Sender<usize>>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs")
            .field("store", &self.redact(self.store.to_string()))
            .finish_non_exhaustive()
    }
}

/// A container or bucket being opened, with what creating it needs.
struct Cloud<'a> {
    /// "container" or "bucket", for messages.
    kind: &'static str,
    name: String,
    url: &'a str,
    target: container::Target,
    credentials: container::Credentials,
}

impl Blobs {
    /// Opens the blob store that `url` names; a `file://` directory is created if missing,
    /// and with `create_container` so is a missing container or bucket.
    pub async fn open(url: &str, options: &Options) -> Result<Self, Error> {
        if url == "memory://" || url == "memory:///" {
            reject_options(options, "memory://")?;
            return Ok(Self::new(
                Arc::new(InMemory::new()),
                Backend::Memory,
                options,
                Vec::new(),
            ));
        }
        if let Some(dir) = url.strip_prefix("file://") {
            reject_options(options, "file://")?;
            return Self::open_dir(Path::new(dir), options);
        }
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some("az" | "azure") => Self::open_azure(url, options).await,
            Some("s3") => Self::open_s3(url, options).await,
            _ => Err(Error::Unsupported(url.to_string())),
        }
    }

    /// A blob store in a local directory, fsynced on every write.
    pub fn open_dir(dir: &Path, options: &Options) -> Result<Self, Error> {
        let failed = |reason: String| Error::Directory {
            path: dir.display().to_string(),
            reason,
        };
        if !dir.is_absolute() {
            return Err(failed("the path must be absolute".to_string()));
        }
        std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
        let store = Arc::new(
            LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| failed(e.to_string()))?
                .with_fsync(true),
        );
        let local = local::LocalDir::new(dir.to_path_buf(), store.clone());
        Ok(Self::new(store, Backend::Local(local), options, Vec::new()))
    }

    /// A store given directly by an embedding program or a test.
    pub fn from_store(store: Arc<dyn ObjectStore>, options: &Options) -> Self {
        Self::new(store, Backend::Given, options, Vec::new())
    }

    fn new(
        store: Arc<dyn ObjectStore>,
        backend: Backend,
        options: &Options,
        secrets: Vec<String>,
    ) -> Self {
        Self {
            store,
            backend,
            skip_unchanged: options.skip_unchanged,
            budget: Arc::new(Semaphore::new(BUFFER_BUDGET)),
            secrets,
            orphans: None,
            aborting: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    async fn open_azure(url: &str, options: &Options) -> Result<Self, Error> {
        let mut builder = MicrosoftAzureBuilder::from_env()
            .with_url(url)
            .with_retry(retry_config());
        for (key, value) in &options.config {
            let parsed: AzureConfigKey = key.parse().map_err(|e| Error::BadOption {
                key: key.clone(),
                reason: format!("not an Azure configuration key ({e})"),
            })?;
            builder = builder.with_config(parsed, value);
        }
        let secrets = secrets("AZURE_", options);
        let container = container_name(url)?;
        let target = container::Target::azure(&builder, &container);
        let store = builder.build().map_err(|e| Error::Build {
            url: url.to_string(),
            reason: redact_with(&secrets, e.to_string()),
        })?;
        let credentials = container::Credentials::Azure(store.credentials().clone());
        let cloud = Cloud {
            kind: "container",
            name: container,
            url,
            target,
            credentials,
        };
        Self::open_cloud(Arc::new(store), cloud, options, secrets).await
    }

    async fn open_s3(url: &str, options: &Options) -> Result<Self, Error> {
        let mut builder = AmazonS3Builder::from_env()
            .with_url(url)
            .with_retry(retry_config());
        for (key, value) in &options.config {
            let parsed: AmazonS3ConfigKey = key.parse().map_err(|e| Error::BadOption {
                key: key.clone(),
                reason: format!("not an S3 configuration key ({e})"),
            })?;
            builder = builder.with_config(parsed, value);
        }
        let secrets = secrets("AWS_", options);
        let bucket = container_name(url)?;
        let target = container::Target::s3(&builder, &bucket);
        let skip_signature = builder.get_config_value(&AmazonS3ConfigKey::SkipSignature);
        let store = builder.build().map_err(|e| Error::Build {
            url: url.to_string(),
            reason: redact_with(&secrets, e.to_string()),
        })?;
        let credentials = container::Credentials::S3(store.credentials().clone());
        // Unsigned access (a public bucket) cannot abort uploads.
        let orphans = if container::truthy(skip_signature) {
            None
        } else {
            Some(
                orphans::Orphans::new(target.clone(), credentials.clone()).map_err(|reason| {
                    Error::Build {
                        url: url.to_string(),
                        reason: redact_with(&secrets, reason),
                    }
                })?,
            )
        };
        let cloud = Cloud {
            kind: "bucket",
            name: bucket,
            url,
            target,
            credentials,
        };
        let mut blobs = Self::open_cloud(Arc::new(store), cloud, options, secrets).await?;
        blobs.orphans = orphans;
        Ok(blobs)
    }

    /// The part of opening a cloud store that Azure and S3 share: creating the container
    /// or bucket when asked to, and naming it in errors.
    async fn open_cloud(
        store: Arc<dyn ObjectStore>,
        cloud: Cloud<'_>,
        options: &Options,
        secrets: Vec<String>,
    ) -> Result<Self, Error> {
        if options.create_container {
            container::ensure(&store, &cloud.target, cloud.credentials)
                .await
                .map_err(|reason| Error::CreateContainer {
                    kind: cloud.kind,
                    name: cloud.name.clone(),
                    reason: redact_with(&secrets, reason),
                })?;
        }
        let backend = Backend::Cloud {
            kind: cloud.kind,
            name: cloud.name,
            url: cloud.url.to_string(),
        };
        Ok(Self::new(store, backend, options, secrets))
    }

    /// Streams the file that `open` opens (on a blocking thread: a regular file, with its
    /// size then) into the blob `name`, hashing it on the way. The blob appears whole or
    /// not at all, with its SHA-256 as metadata, and is durable when this returns. A file
    /// that `open` refuses is its error, which is reported before a bad name.
    pub async fn copy_from<E: Send + 'static>(
        &self,
        open: impl FnOnce() -> Result<(std::fs::File, u64), E> + Send + 'static,
        name: &str,
    ) -> Result<Result<Copied, BlobError>, E> {
        Ok(match self.copy_deferred(open, name).await? {
            Ok((copied, durability)) => durability.wait().await.map(|()| copied),
            Err(error) => Err(error),
        })
    }

    /// [`Self::copy_from`], up to the blob's durability: the copy is in place (a reader
    /// sees it whole) when this returns, and durable once the [`Durability`] returned
    /// with it has been waited for. Nothing that names the blob may be reported before.
    /// (A `file://` blob waits for a sync of its filesystem shared with other copies; the
    /// copy need not sit in its activity meanwhile.)
    pub async fn copy_deferred<E: Send + 'static>(
        &self,
        open: impl FnOnce() -> Result<(std::fs::File, u64), E> + Send + 'static,
        name: &str,
    ) -> Result<Result<(Copied, Durability), BlobError>, E> {
        let location = match self.location(name) {
            Ok(location) => location,
            Err(bad_name) => {
                return match tokio::task::spawn_blocking(open).await {
                    Ok(Err(refused)) => Err(refused),
                    _ => Ok(Err(bad_name)),
                };
            }
        };
        let result = match &self.backend {
            Backend::Local(local) => {
                match local
                    .copy(open, &location, self.skip_unchanged, &self.budget)
                    .await?
                {
                    Ok(written) => local.queue(written).map(|(copied, queued)| {
                        let left = queued.map(|queued| (local.clone(), queued, name.to_string()));
                        (copied, Durability(left.map(Box::new)))
                    }),
                    Err(failure) => Err(failure),
                }
            }
            _ => upload::copy_from(self, open, &location)
                .await?
                .map(|copied| (copied, Durability(None))),
        };
        Ok(result.map_err(|error| self.describe(name, error)))
    }

    /// [`Self::copy_from`] a file already open, of `size` bytes.
    pub async fn copy_file(
        &self,
        file: std::fs::File,
        size: u64,
        name: &str,
    ) -> Result<Copied, BlobError> {
        let copied = self.copy_from(move || Ok((file, size)), name).await;
        copied.unwrap_or_else(|never: std::convert::Infallible| match never {})
    }

    /// Waits, for at most `grace`, for the aborts of uploads abandoned half-way (their
    /// copies timed out, or their instances ended) to reach the store: a host that ends
    /// calls it, so that it does not leave their parts on the server.
    pub async fn finish_aborts(&self, grace: std::time::Duration) {
        let mut aborting = self.aborting.subscribe();
        let done = aborting.wait_for(|count| *count == 0);
        if tokio::time::timeout(grace, done).await.is_err() {
            tracing::warn!(
                "uploads abandoned half-way are still being aborted after {grace:?}; their parts stay on the server until its lifecycle rule removes them"
            );
        }
    }

    /// Writes a small blob whole; one over [`MAX_PUT`] is refused.
    pub async fn put(&self, name: &str, data: Vec<u8>) -> Result<(), BlobError> {
        let location = self.location(name)?;
        if data.len() as u64 > MAX_PUT {
            return Err(BlobError::Failed {
                name: name.to_string(),
                reason: format!(
                    "it is {} bytes, over the {} MiB that blob.put writes; copy large blobs from a file instead",
                    data.len(),
                    MAX_PUT >> 20
                ),
            });
        }
        let result = match &self.backend {
            Backend::Local(local) => local.put(&location, data).await,
            _ => upload::put(self, &location, data).await.map(|_| ()),
        };
        result.map_err(|error| self.describe(name, error))
    }

    /// Reads a small blob whole; one over [`MAX_GET`] is refused before it is read, so
    /// that a guest cannot make the host hold a large blob in memory for it.
    pub async fn get(&self, name: &str) -> Result<Vec<u8>, BlobError> {
        use object_store::ObjectStoreExt;
        let location = self.location(name)?;
        let too_big = |size: u64| BlobError::Failed {
            name: name.to_string(),
            reason: format!(
                "it is {size} bytes, over the {} MiB that blob.get reads; stream large blobs instead",
                MAX_GET >> 20
            ),
        };
        if let Backend::Local(local) = &self.backend {
            return match local.get(&location, MAX_GET).await {
                Ok(local::Got::Bytes(bytes)) => Ok(bytes),
                Ok(local::Got::TooBig(size)) => Err(too_big(size)),
                Ok(local::Got::NotFound) => Err(BlobError::NotFound(name.to_string())),
                Err(error) => Err(self.describe(name, error)),
            };
        }
        let bytes = match self.store.get(&location).await {
            Ok(result) if result.meta.size > MAX_GET => return Err(too_big(result.meta.size)),
            Ok(result) => result.bytes().await,
            Err(error) => Err(error),
        };
        match bytes {
            Ok(bytes) => Ok(bytes.to_vec()),
            Err(object_store::Error::NotFound { .. }) => Err(BlobError::NotFound(name.to_string())),
            Err(error) => Err(self.describe(name, upload::Failure::Store(error))),
        }
    }

    /// Blob names are literal paths: `Path::parse` refuses what cannot be stored as given
    /// (empty, `.` or `..` segments, control characters) instead of re-encoding it.
    fn location(&self, name: &str) -> Result<BlobPath, BlobError> {
        let invalid = |reason: String| BlobError::Name {
            name: name.to_string(),
            reason,
        };
        let location = BlobPath::parse(name).map_err(|e| invalid(e.to_string()))?;
        if location.as_ref().is_empty() {
            return Err(invalid("the name is empty".to_string()));
        }
        Ok(location)
    }

    /// A message a person can act on, without secrets.
    fn describe(&self, name: &str, failure: upload::Failure) -> BlobError {
        let reason = match (&failure, &self.backend) {
            (
                upload::Failure::Store(object_store::Error::NotFound { .. }),
                Backend::Cloud { kind, name, url },
            ) => format!(
                "the {kind} '{name}' does not exist; create it, or run Weft with \
                 --create-container to create {url} ({failure})"
            ),
            (
                upload::Failure::Store(
                    object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. },
                ),
                Backend::Cloud { kind, name, .. },
            ) => format!(
                "the blob store refused access to the {kind} '{name}': check the \
                 credentials in the environment or --blob-opt ({failure})"
            ),
            (
                upload::Failure::Store(object_store::Error::Generic { .. }),
                Backend::Cloud { .. },
            ) if failure.to_string().contains("error sending request") => {
                format!(
                    "cannot reach the blob store: check its endpoint (AZURITE_BLOB_STORAGE_URL, \
                     AWS_ENDPOINT_URL or --blob-opt) and the network ({failure})"
                )
            }
            _ => failure.to_string(),
        };
        BlobError::Failed {
            name: name.to_string(),
            reason: self.redact(reason),
        }
    }

    pub(super) fn redact(&self, text: String) -> String {
        redact_with(&self.secrets, text)
    }
}

/// Retries inside one activity attempt are few and short: the orchestrator's retry
/// policy is the one a person configures and sees in the history.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
    }
}

fn reject_options(options: &Options, scheme: &str) -> Result<(), Error> {
    match options.config.first() {
        Some((key, _)) => Err(Error::BadOption {
            key: key.clone(),
            reason: format!("{scheme} blob stores take no options"),
        }),
        None => Ok(()),
    }
}

/// The container or bucket: the host of `az://NAME`, `azure://NAME` or `s3://NAME`.
fn container_name(url: &str) -> Result<String, Error> {
    let parsed = url::Url::parse(url).map_err(|e| Error::Build {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    match parsed.host_str() {
        Some(host) if !host.is_empty() => Ok(host.to_string()),
        _ => Err(Error::Build {
            url: url.to_string(),
            reason: "the URL names no container or bucket".to_string(),
        }),
    }
}

/// Whether a configuration key names a secret (key, token, password, signature).
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "key",
        "secret",
        "token",
        "sas",
        "password",
        "signature",
        "sig",
    ]
    .iter()
    .any(|word| key.contains(word))
        && !key.ends_with("key_id")
}

/// The secret values of the environment (variables starting with `prefix`) and options.
fn secrets(prefix: &str, options: &Options) -> Vec<String> {
    let mut secrets: Vec<String> = std::env::vars()
        .filter(|(key, _)| key.starts_with(prefix) && is_secret_key(key))
        .map(|(_, value)| value)
        .chain(
            options
                .config
                .iter()
                .filter(|(key, _)| is_secret_key(key))
                .map(|(_, value)| value.clone()),
        )
        .filter(|value| value.len() >= 4)
        .collect();
    // A SAS token's parts may appear on their own in a URL.
    let parts: Vec<String> = secrets
        .iter()
        .flat_map(|secret| secret.split('&').map(str::to_string).collect::<Vec<_>>())
        .filter(|part| part.len() >= 8)
        .collect();
    secrets.extend(parts);
    // Longest first, so that a secret containing another is replaced whole.
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    secrets.dedup();
    secrets
}

/// Replaces every known secret, and every URL query signature, with `***`.
fn redact_with(secrets: &[String], text: String) -> String {
    // Stores answer with indented XML; one line reads better in a status or a log.
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    // A refused signature comes back with how the server signed (S3: the canonical
    // request and the string to sign, in text and in hex; Azure: the string to sign):
    // kilobytes that bury the reason and help no one who is not debugging a signer.
    for tag in SIGNING_DETAILS {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        while let Some(start) = text.find(&open) {
            let end = text[start..]
                .find(&close)
                .map_or(text.len(), |e| start + e + close.len());
            text.replace_range(start..end, "");
        }
    }
    if let Some(start) = text.find(AZURE_STRING_TO_SIGN) {
        let end = text[start..]
            .find("</AuthenticationErrorDetail>")
            .map_or(text.len(), |e| start + e);
        text.replace_range(start..end, "");
    }
    for secret in secrets {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "***");
        }
    }
    for marker in ["sig=", "Signature="] {
        let mut from = 0;
        while let Some(found) = text[from..].find(marker) {
            let start = from + found + marker.len();
            let end = text[start..]
                .find(|c: char| c == '&' || c == '"' || c == '\'' || c.is_whitespace())
                .map_or(text.len(), |e| start + e);
            text.replace_range(start..end, "***");
            from = start + 3;
        }
    }
    text
}

/// The elements of an S3 refusal that show how the server signed the request.
const SIGNING_DETAILS: [&str; 5] = [
    "CanonicalRequest",
    "CanonicalRequestBytes",
    "StringToSign",
    "StringToSignBytes",
    "SignatureProvided",
];

/// Where Azure's `AuthenticationErrorDetail` starts to show how the server signed.
const AZURE_STRING_TO_SIGN: &str = "Server used following string to sign:";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_signature_is_told_without_how_it_was_signed() {
        let s3 = r#"Server returned non-2xx status code: 403 Forbidden: <?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message>
<AWSAccessKeyId>AKIDEXAMPLE</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256
20261126T000000Z
20261126/us-east-1/s3/aws4_request
abc</StringToSign><SignatureProvided>f00d</SignatureProvided><StringToSignBytes>41 57 53</StringToSignBytes>
<CanonicalRequest>PUT
/b/k
</CanonicalRequest><CanonicalRequestBytes>50 55 54</CanonicalRequestBytes><RequestId>R1</RequestId></Error>"#;
        assert_eq!(
            redact_with(&[], s3.to_string()),
            "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\" \
             encoding=\"UTF-8\"?> <Error><Code>SignatureDoesNotMatch</Code><Message>The \
             request signature we calculated does not match the signature you provided. \
             Check your key and signing method.</Message> \
             <AWSAccessKeyId>AKIDEXAMPLE</AWSAccessKeyId> <RequestId>R1</RequestId></Error>"
        );
        let azure = "<Error><Code>AuthenticationFailed</Code><AuthenticationErrorDetail>The MAC \
             signature found in the HTTP request 'c2ln' is not the same as any computed \
             signature. Server used following string to sign: 'PUT\n\n\nx-ms-date:...'.\
             </AuthenticationErrorDetail></Error>";
        assert_eq!(
            redact_with(&[], azure.to_string()),
            "<Error><Code>AuthenticationFailed</Code><AuthenticationErrorDetail>The MAC \
             signature found in the HTTP request 'c2ln' is not the same as any computed \
             signature. </AuthenticationErrorDetail></Error>"
        );
    }

    #[test]
    fn secrets_and_signatures_are_redacted() {
        let secrets = vec!["s3cr3t-value".to_string()];
        let text = "PUT http://h/c/b?sv=1&sig=abc%2Fdef&x=1 failed with s3cr3t-value".to_string();
        let redacted = redact_with(&secrets, text);
        assert_eq!(
            redacted,
            "PUT http://h/c/b?sv=1&sig=***&x=1 failed with ***"
        );
    }

    #[test]
    fn secret_keys_are_recognised() {
        for key in [
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "azure_storage_sas_key",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "AWS_ACCESS_KEY_ID",
            "AWS_REGION",
            "AZURE_STORAGE_ACCOUNT_NAME",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn options_debug_shows_keys_only() {
        let options = Options {
            config: vec![("aws_secret_access_key".into(), "hunter2hunter2".into())],
            ..Options::default()
        };
        let shown = format!("{options:?}");
        assert!(shown.contains("aws_secret_access_key"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

#[cfg(test)]
mod copy_tests {
    use super::*;

    /// A store that keeps what it is given must not keep the upload budget with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_takes_more_than_the_budget() {
        let blobs = Blobs::open("memory://", &Options::default())
            .await
            .expect("memory store");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big");
        let size = BUFFER_BUDGET + (3 << 20);
        std::fs::write(&path, vec![7u8; size]).expect("write");
        for i in 0..2 {
            let file = std::fs::File::open(&path).expect("open");
            let copied = tokio::time::timeout(
                Duration::from_secs(60),
                blobs.copy_file(file, size as u64, &format!("big{i}")),
            )
            .await
            .expect("the copy does not hang")
            .expect("the copy succeeds");
            assert_eq!(copied.bytes, size as u64);
        }
    }
}
