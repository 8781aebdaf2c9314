//! The benchmark peer for Weft's blob uploads (`bench/blobs.sh`): a plain object_store
//! copy of a directory tree, with no durability, hashing or history, at a given
//! concurrency. Usage: `raw_copy DIR URL [FILES_AT_ONCE] [--sha256]`; the store is
//! configured from the environment (`AZURE_*`, `AWS_*`), the way `weft` is, with the same
//! part size and parts in flight. With `--sha256` it also does the hashing Weft does:
//! each file's SHA-256 goes with its blob as the metadata `sha256` (a large file is read
//! twice, hashed and then uploaded, since S3 takes metadata when an upload starts; Weft
//! also hashes the second read, to catch a file that changed), still without a history.

use anyhow::{Context, Result};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, WriteMultipart,
};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::io::AsyncReadExt;

const PART_SIZE: usize = 8 << 20;
const PARTS_IN_FLIGHT: usize = 4;

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(url)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: raw_copy DIR URL [FILES_AT_ONCE] [--sha256]");
    };
    let at_once: usize = args.next().map_or(Ok(16), |n| n.parse())?;
    let hashed = args.next().is_some_and(|flag| flag == "--sha256");
    let parsed = url::Url::parse(&url)?;
    let (store, _) = object_store::parse_url_opts(
        &parsed,
        std::env::vars().map(|(k, v)| (k.to_ascii_lowercase(), v)),
    )?;
    let store: Arc<dyn ObjectStore> = Arc::from(store);
    let files: Vec<_> = walkdir::WalkDir::new(&dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| entry.into_path())
        .collect();
    let slots = Arc::new(tokio::sync::Semaphore::new(at_once));
    let mut tasks = tokio::task::JoinSet::new();
    let started = std::time::Instant::now();
    for file in files {
        let permit = slots.clone().acquire_owned().await?;
        let store = store.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let name = format!(
                "backups/{}",
                file.display().to_string().trim_start_matches('/')
            );
            copy(&store, &file, &Path::parse(&name)?, hashed).await
        });
    }
    let mut bytes = 0;
    while let Some(done) = tasks.join_next().await {
        bytes += done??;
    }
    println!("{bytes} bytes in {:.3} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The blob attributes that carry `sha256`, as Weft's.
fn metadata(sha256: impl AsRef<[u8]>) -> Attributes {
    let hex: String = sha256.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Attributes::from_iter([(Attribute::Metadata("sha256".into()), hex)])
}

async fn copy(
    store: &Arc<dyn ObjectStore>,
    file: &std::path::Path,
    to: &Path,
    hashed: bool,
) -> Result<u64> {
    let mut source = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("open {}", file.display()))?;
    let size = source.metadata().await?.len();
    if size <= PART_SIZE as u64 {
        let mut data = Vec::with_capacity(size as usize);
        source.read_to_end(&mut data).await?;
        let mut options = PutOptions::default();
        if hashed {
            options.attributes = metadata(Sha256::digest(&data));
        }
        store.put_opts(to, PutPayload::from(data), options).await?;
        return Ok(size);
    }
    let mut options = PutMultipartOptions::default();
    if hashed {
        let path = file.to_path_buf();
        let digest = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut hasher = Sha256::new();
            std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
            Ok(hasher.finalize())
        })
        .await??;
        options.attributes = metadata(digest);
    }
    let upload = store.put_multipart_opts(to, options).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        let n = source.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        writer.write(&buffer[..n]);
    }
    writer.finish().await?;
    Ok(size)
}
