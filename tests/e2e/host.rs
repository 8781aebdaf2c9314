//! The host in-process, with real SQLite, real components and a real (but flaky) blob
//! store: retries recover from injected failures, and a runaway instance does not stop
//! the others.

use crate::support::*;
use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weft::runtime::{ComponentSource, Config, Runtime};
use weft::store::RuntimeStatus;

/// A local blob store whose writes to blobs containing `flaky` fail the first `failures` times.
#[derive(Debug)]
struct FlakyStore {
    inner: LocalFileSystem,
    failures: usize,
    seen: Mutex<HashMap<String, usize>>,
}

impl std::fmt::Display for FlakyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlakyStore({})", self.inner)
    }
}

impl FlakyStore {
    fn check(&self, location: &Path) -> object_store::Result<()> {
        if !location.as_ref().contains("flaky") {
            return Ok(());
        }
        let mut seen = self.seen.lock().expect("lock");
        let count = seen.entry(location.to_string()).or_default();
        *count += 1;
        if *count <= self.failures {
            return Err(object_store::Error::Generic {
                store: "flaky",
                source: format!("injected failure {count}").into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for FlakyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check(location)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Awaits `future`, failing the test if it takes more than two minutes (a safety net,
/// not a timing assertion).
async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), future)
        .await
        .expect("finished within the safety limit")
}

fn config(scratch: &Scratch) -> Config {
    let mut config = Config::new(scratch.data_dir());
    config.cache_dir = Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("weft-cache"));
    config.allowed_dirs = vec![scratch.path().to_path_buf()];
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_recover_from_blob_store_failures_and_the_history_shows_each_attempt() {
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    write(&site, "steady.txt", b"steady");
    write(&site, "flaky-one.txt", b"flaky 1");
    write(&site, "flaky-two.txt", b"flaky two");
    let blobs = scratch.path().join("blobs");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    let mut config = config(&scratch);
    config.blob_store = Some(Arc::new(FlakyStore {
        inner: LocalFileSystem::new_with_prefix(&blobs).expect("local store"),
        failures: 2,
        seen: Mutex::new(HashMap::new()),
    }));

    let runtime = Runtime::open(config).await.expect("open the runtime");
    runtime.start_workers().await.expect("start workers");
    let input = serde_json::to_string(site.to_str().unwrap_or_default()).expect("JSON");
    let instance = runtime
        .start("E2_BackupSiteContent", &input, None)
        .await
        .expect("start");
    let ended = tokio::time::timeout(Duration::from_secs(120), runtime.wait(&instance.id))
        .await
        .expect("the backup ends")
        .expect("wait");
    assert_eq!(ended.status, RuntimeStatus::Completed, "{:?}", ended.output);
    assert_eq!(ended.output.as_deref(), Some("22"));

    let history = runtime
        .store()
        .history(&instance.id)
        .await
        .expect("history");
    let retries: Vec<_> = history
        .iter()
        .filter_map(|e| match &e.event {
            weft::store::Event::TaskRetrying {
                task_id,
                attempt,
                message,
                ..
            } => Some((*task_id, *attempt, message.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        retries.len(),
        4,
        "two failed attempts for each flaky file: {retries:?}"
    );
    assert!(
        retries
            .iter()
            .all(|(_, _, message)| message.contains("injected failure")),
        "{retries:?}"
    );
    let mut attempts: Vec<_> = retries
        .iter()
        .map(|(task, attempt, _)| (*task, *attempt))
        .collect();
    attempts.sort();
    let flaky_tasks: Vec<_> = attempts.iter().map(|(task, _)| *task).collect();
    assert_eq!(
        attempts,
        vec![
            (flaky_tasks[0], 1),
            (flaky_tasks[0], 2),
            (flaky_tasks[2], 1),
            (flaky_tasks[2], 2)
        ]
    );
    for (file, _) in files_under(&site) {
        let blob = blobs
            .join("backups")
            .join(file.strip_prefix("/").expect("absolute"));
        assert_eq!(
            std::fs::read(&blob).expect("blob"),
            std::fs::read(&file).expect("file")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_instance_fails_alone_while_others_complete() {
    let scratch = Scratch::new();
    let mut config = config(&scratch);
    config.components = [TESTING_ORCHESTRATOR, TESTING_ACTIVITIES]
        .map(|p| ComponentSource::File(p.into()))
        .to_vec();
    config.guest_limits.cpu = Duration::from_millis(300);
    config.guest_limits.memory = 64 << 20;
    let runtime = Runtime::open(config).await.expect("open the runtime");
    runtime.start_workers().await.expect("start workers");
    let runaway = runtime
        .start("InfiniteLoop", "null", None)
        .await
        .expect("start");
    let bomb = runtime
        .start("MemoryBomb", "null", None)
        .await
        .expect("start");
    let fan_out = runtime.start("FanOut", "20", None).await.expect("start");

    let wait = |id: String| {
        let runtime = runtime.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(120), runtime.wait(&id))
                .await
                .expect("ends")
                .expect("wait")
        }
    };
    let fan_out = wait(fan_out.id).await;
    assert_eq!(
        (fan_out.status, fan_out.output.as_deref()),
        (RuntimeStatus::Completed, Some("190"))
    );
    let runaway = wait(runaway.id).await;
    assert_eq!(runaway.status, RuntimeStatus::Failed);
    assert!(
        runaway
            .output
            .unwrap_or_default()
            .contains("orchestrator exceeded its CPU time")
    );
    let bomb = wait(bomb.id).await;
    assert_eq!(bomb.status, RuntimeStatus::Failed);
    let output = bomb.output.unwrap_or_default();
    assert!(
        output.contains("orchestrator exceeded its memory limit of 64 MiB"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_suspended_before_it_runs_schedules_nothing_until_resumed() {
    let scratch = Scratch::new();
    let mut config = config(&scratch);
    config.components = [TESTING_ORCHESTRATOR, TESTING_ACTIVITIES]
        .map(|p| ComponentSource::File(p.into()))
        .to_vec();
    let runtime = Runtime::open(config).await.expect("open the runtime");
    let instance = runtime
        .create("FanOut", "3", Some("held"))
        .await
        .expect("create");
    runtime
        .suspend(&instance.id, "not yet")
        .await
        .expect("suspend");
    runtime.start_workers().await.expect("start workers");

    let store = runtime.store().clone();
    let suspended = tokio::time::timeout(PATIENCE, async {
        loop {
            match store.instance("held").await {
                Ok(Some(found)) if found.status == RuntimeStatus::Suspended => return found,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("the instance is recorded as suspended");
    assert_eq!(suspended.status, RuntimeStatus::Suspended);
    let scheduled = store.progress("held").await.expect("progress").scheduled;
    assert_eq!(scheduled, 0, "a suspended instance runs nothing");

    runtime.resume("held", "go").await.expect("resume");
    let ended = tokio::time::timeout(PATIENCE, runtime.wait("held"))
        .await
        .expect("ends")
        .expect("wait");
    assert_eq!(
        (ended.status, ended.output.as_deref()),
        (RuntimeStatus::Completed, Some("3"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_no_loaded_component_can_run_can_still_be_terminated() {
    let scratch = Scratch::new();
    let mut testing = config(&scratch);
    testing.components = [TESTING_ORCHESTRATOR, TESTING_ACTIVITIES]
        .map(|p| ComponentSource::File(p.into()))
        .to_vec();
    let first = Runtime::open(testing).await.expect("open the runtime");
    first
        .create("FanOut", "3", Some("orphan"))
        .await
        .expect("create");
    drop(first);

    // A host with only the backup sample cannot run FanOut: the instance stays Pending.
    // The first runtime's lock on the data dir is released when its file is closed, but
    // a process that another test starts meanwhile holds a copy of every descriptor
    // from its fork to its exec, so the data dir may still be in use for a moment.
    let runtime = within(async {
        loop {
            match Runtime::open(config(&scratch)).await {
                Err(weft::runtime::Error::InUse { .. }) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                opened => return opened,
            }
        }
    })
    .await
    .expect("open the runtime again");
    runtime.start_workers().await.expect("start workers");
    within(runtime.wait_idle()).await.expect("idle");
    let store = runtime.store().clone();
    assert_eq!(
        store
            .instance("orphan")
            .await
            .expect("read")
            .map(|i| i.status),
        Some(RuntimeStatus::Pending)
    );

    runtime
        .terminate("orphan", "cleaning up")
        .await
        .expect("terminate");
    let ended = within(runtime.wait("orphan")).await.expect("wait");
    assert_eq!(
        (ended.status, ended.output.as_deref()),
        (RuntimeStatus::Terminated, Some("\"cleaning up\""))
    );
    assert!(matches!(
        runtime.terminate("orphan", "again").await,
        Err(weft::runtime::Error::Ended { .. })
    ));
}
