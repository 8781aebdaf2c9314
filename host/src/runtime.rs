//! The runtime: loads components, owns the store, and runs the workers that drive
//! orchestration instances and activity work items.
//!
//! Every unfinished instance gets a task that keeps its orchestrator hot until it ends.
//! Activity work items are claimed from the store by one dispatcher and run with bounded
//! concurrency; each result is committed to the instance's inbox, and the instance is
//! woken to consume it.

use crate::activity::{self, ActivityComponent, confine::Confinement};
use crate::limits::{self, GuestLimits};
use crate::orchestrator::{self, InstanceEnv, OrchestratorComponent};
use crate::registry::Registry;
use crate::store::{self, Event, Instance, Store, WorkItem, sqlite::SqliteStore};
use crate::{blobs, engine};
use chrono::Utc;
use futures::FutureExt;
use object_store::ObjectStore;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

/// The sample components built from `guest-backup/`, embedded in the binary.
pub const SAMPLE_COMPONENTS: &[(&str, &[u8])] = &[
    (
        "<embedded backup-orchestrator>",
        include_bytes!(env!("WEFT_GUEST_BACKUP_ORCHESTRATOR")),
    ),
    (
        "<embedded backup-activities>",
        include_bytes!(env!("WEFT_GUEST_BACKUP_ACTIVITIES")),
    ),
];

/// How long a claimed work item stays leased. Only another process sharing the store
/// would take it over after that; this one keeps running it.
const LEASE: Duration = Duration::from_secs(300);
/// How often the dispatcher looks for due work when nothing woke it.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Why the runtime could not start or an instance could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Engine(#[from] engine::Error),
    #[error(transparent)]
    Orchestrator(#[from] orchestrator::Error),
    #[error(transparent)]
    Activity(#[from] activity::Error),
    #[error(transparent)]
    Blobs(#[from] blobs::Error),
    #[error("cannot allow directory: {0}")]
    AllowDir(#[from] activity::confine::Error),
    #[error("{path} is neither an orchestration nor an activity component: {reason}")]
    UnknownWorld { path: String, reason: String },
    #[error("unknown orchestrator '{name}'; known orchestrators: {known}")]
    UnknownOrchestrator { name: String, known: String },
    #[error(transparent)]
    PayloadTooLarge(#[from] limits::PayloadTooLarge),
    #[error("'{0}' is not a valid instance id: use 1 to 100 of A-Z a-z 0-9 - _ . : @")]
    BadId(String),
    #[error("the input is not valid JSON: {0}")]
    BadInput(String),
    #[error("instance '{id}' has already ended ({})", status.as_str())]
    Ended {
        id: String,
        status: store::RuntimeStatus,
    },
    #[error("data dir {data_dir} is in use by pid {pid}")]
    InUse { data_dir: String, pid: String },
    #[error("instance '{id}' could not run: {reason}")]
    HostFailure { id: String, reason: String },
}

/// Where a component comes from.
#[derive(Clone, Debug)]
pub enum ComponentSource {
    File(PathBuf),
    Embedded {
        name: &'static str,
        bytes: &'static [u8],
    },
}

impl ComponentSource {
    /// The sample backup components.
    pub fn samples() -> Vec<Self> {
        SAMPLE_COMPONENTS
            .iter()
            .map(|(name, bytes)| Self::Embedded { name, bytes })
            .collect()
    }
}

/// A validated runtime configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Holds `weft.db`, the compiled-component cache and, by default, the blobs.
    pub data_dir: PathBuf,
    pub components: Vec<ComponentSource>,
    /// Where compiled components are cached; `None` means `<data_dir>/cache`.
    pub cache_dir: Option<PathBuf>,
    /// A blob store URL; `None` means `file://<data_dir>/blobs`.
    pub blobs: Option<String>,
    /// A blob store given directly (embedding, tests); it takes precedence over `blobs`.
    pub blob_store: Option<Arc<dyn ObjectStore>>,
    /// Blob store configuration keys, `--create-container` and `--skip-unchanged`.
    pub blob_options: blobs::Options,
    /// Directories activities may read; must exist.
    pub allowed_dirs: Vec<PathBuf>,
    pub max_activities: usize,
    /// Orchestration instances kept hot at once; more wait their turn.
    pub max_orchestrations: usize,
    /// How long an orchestrator instance may wait idle before it is evicted (and later
    /// replayed); `None` keeps every instance hot until it ends.
    pub evict_after: Option<Duration>,
    /// CPU and memory limits of every guest execution.
    pub guest_limits: GuestLimits,
    /// Test-only: a pause before every activity call, to widen crash windows.
    pub activity_delay: Option<Duration>,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            components: ComponentSource::samples(),
            cache_dir: None,
            blobs: None,
            blob_store: None,
            blob_options: blobs::Options::default(),
            allowed_dirs: Vec::new(),
            max_activities: 16,
            max_orchestrations: 256,
            evict_after: Some(Duration::from_secs(30)),
            guest_limits: GuestLimits::default(),
            activity_delay: None,
        }
    }
}

/// A running Weft host.
pub struct Runtime {
    engine: wasmtime::Engine,
    store: Arc<dyn Store>,
    orchestrators: Registry<OrchestratorComponent>,
    activities: Registry<ActivityComponent>,
    io: Arc<activity::Io>,
    config: Config,
    /// Wake-up handles of the instances that have a task.
    hot: Mutex<HashMap<String, Arc<Notify>>>,
    /// Instances that stopped because the host failed, with why.
    host_failures: Mutex<HashMap<String, String>>,
    work_ready: Arc<Notify>,
    /// Bumped whenever an instance task ends.
    ended: watch::Sender<u64>,
    orchestration_slots: Arc<Semaphore>,
    /// Identifies this process's leases.
    owner: String,
    activity_slots: Arc<Semaphore>,
    /// Set when the runtime stops taking work.
    stopping: watch::Sender<bool>,
    /// Held while the runtime lives: one process per data dir.
    _lock: std::fs::File,
}

/// An instance id a client chose: it goes into URLs and file names unescaped, so it is
/// 1 to 100 of `A-Z a-z 0-9 - _ . : @`.
fn valid_id(id: &str) -> Result<String, Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.:@".contains(c);
    if id.is_empty() || id.len() > 100 || !id.chars().all(allowed) {
        return Err(Error::BadId(id.to_string()));
    }
    Ok(id.to_string())
}

/// Takes the data dir's lock file, so that a second process fails at once instead of
/// contending for the database. The lock dies with the process, however it ends.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, Error> {
    use std::io::{Read, Seek, Write};
    let path = data_dir.join("weft.lock");
    let failed = |source: std::io::Error| store::Error::DataDir {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(Error::InUse {
                data_dir: data_dir.display().to_string(),
                pid: pid.trim().to_string(),
            });
        }
        Err(std::fs::TryLockError::Error(error)) => return Err(failed(error).into()),
    }
    file.set_len(0).map_err(failed)?;
    file.rewind().map_err(failed)?;
    write!(file, "{}", std::process::id()).map_err(failed)?;
    Ok(file)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Runtime {
    /// Opens the data dir and loads the configured components.
    pub async fn open(config: Config) -> Result<Arc<Self>, Error> {
        let data_dir =
            std::path::absolute(&config.data_dir).map_err(|source| store::Error::DataDir {
                path: config.data_dir.display().to_string(),
                source,
            })?;
        std::fs::create_dir_all(&data_dir).map_err(|source| store::Error::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let lock = lock_data_dir(&data_dir)?;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&data_dir.join("weft.db"))?);
        let blobs = match (&config.blob_store, &config.blobs) {
            (Some(store), _) => blobs::Blobs::from_store(store.clone(), &config.blob_options),
            (None, Some(url)) => blobs::Blobs::open(url, &config.blob_options).await?,
            (None, None) => blobs::Blobs::open_dir(&data_dir.join("blobs"), &config.blob_options)?,
        };
        let mut allowed = config.allowed_dirs.clone();
        if allowed.is_empty() {
            allowed.push(PathBuf::from("."));
        }
        let io = Arc::new(activity::Io {
            confinement: Confinement::new(&allowed)?,
            blobs,
        });

        let engine = engine::new_engine(engine::PoolLimits {
            instances: (config.max_activities + config.max_orchestrations + 8) as u32,
        })?;
        limits::start_ticker(&engine);
        let cache = config
            .cache_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("cache"));
        let mut orchestrators = Registry::default();
        let mut activities = Registry::default();
        for source in &config.components {
            let (component, origin) = match source {
                ComponentSource::File(path) => (
                    engine::load_component_file(&engine, path, Some(&cache))?,
                    path.display().to_string(),
                ),
                ComponentSource::Embedded { name, bytes } => (
                    engine::load_component(&engine, bytes, name, Some(&cache))?,
                    name.to_string(),
                ),
            };
            match OrchestratorComponent::new(&engine, &component, &origin).await {
                Ok(orchestrator) => orchestrators.add(orchestrator),
                Err(orchestrator::Error::WrongWorld {
                    reason: as_orchestration,
                    ..
                }) => {
                    match ActivityComponent::new(&engine, &component, &origin, io.clone()).await {
                        Ok(activity) => activities.add(activity),
                        Err(activity::Error::WrongWorld {
                            reason: as_activities,
                            ..
                        }) => {
                            return Err(Error::UnknownWorld {
                                path: origin,
                                reason: format!(
                                    "as an orchestration: {as_orchestration}; as activities: {as_activities}"
                                ),
                            });
                        }
                        Err(other) => return Err(other.into()),
                    }
                }
                Err(other) => return Err(other.into()),
            }
        }

        let config_max_activities = config.max_activities.max(1);
        Ok(Arc::new(Self {
            engine,
            store,
            orchestrators,
            activities,
            io,
            orchestration_slots: Arc::new(Semaphore::new(config.max_orchestrations.max(1))),
            config: Config { data_dir, ..config },
            hot: Mutex::new(HashMap::new()),
            host_failures: Mutex::new(HashMap::new()),
            work_ready: Arc::new(Notify::new()),
            ended: watch::Sender::new(0),
            owner: uuid::Uuid::new_v4().simple().to_string(),
            activity_slots: Arc::new(Semaphore::new(config_max_activities)),
            stopping: watch::Sender::new(false),
            _lock: lock,
        }))
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// Creates an instance of orchestrator `name`. Nothing is written if the name is
    /// unknown or the input is not JSON. It runs once workers are started.
    pub fn create(&self, name: &str, input: &str, id: Option<&str>) -> Result<Instance, Error> {
        if self.orchestrators.get(name).is_none() {
            return Err(Error::UnknownOrchestrator {
                name: name.to_string(),
                known: self.orchestrators.known(),
            });
        }
        self.config
            .guest_limits
            .check_payload(|| "the input".to_string(), input)?;
        serde_json::from_str::<serde::de::IgnoredAny>(input)
            .map_err(|e| Error::BadInput(e.to_string()))?;
        let id = match id {
            Some(id) => valid_id(id)?,
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        Ok(self.store.create_instance(&id, name, input, Utc::now())?)
    }

    /// Creates an instance and runs it at once.
    pub fn start(
        self: &Arc<Self>,
        name: &str,
        input: &str,
        id: Option<&str>,
    ) -> Result<Instance, Error> {
        let instance = self.create(name, input, id)?;
        self.spawn_instance(instance.id.clone());
        Ok(instance)
    }

    /// Asks a running instance to end now, as Terminated.
    pub fn terminate(self: &Arc<Self>, id: &str, reason: &str) -> Result<(), Error> {
        self.control(
            id,
            store::Event::ExecutionTerminated {
                reason: reason.to_string(),
            },
        )
    }

    /// Pauses an instance: it records completions only once resumed.
    pub fn suspend(self: &Arc<Self>, id: &str, reason: &str) -> Result<(), Error> {
        self.control(
            id,
            store::Event::ExecutionSuspended {
                reason: reason.to_string(),
            },
        )
    }

    /// Lets a suspended instance go on.
    pub fn resume(self: &Arc<Self>, id: &str, reason: &str) -> Result<(), Error> {
        self.control(
            id,
            store::Event::ExecutionResumed {
                reason: reason.to_string(),
            },
        )
    }

    fn control(self: &Arc<Self>, id: &str, event: store::Event) -> Result<(), Error> {
        // Held throughout, so that no task can start for this instance meanwhile.
        let hot = lock(&self.hot);
        let instance = self
            .store
            .instance(id)?
            .ok_or_else(|| store::Error::UnknownInstance(id.to_string()))?;
        if instance.status.is_terminal() {
            return Err(Error::Ended {
                id: id.to_string(),
                status: instance.status,
            });
        }
        // Nothing would read a terminate message if no task here runs the instance (it was
        // evicted, or the host failed it), or none can (its orchestrator is not loaded; a task for it
        // exits without reading): end it directly. Such a task writes nothing.
        let runnable = hot.contains_key(id) && self.orchestrators.get(&instance.name).is_some();
        if let (false, store::Event::ExecutionTerminated { reason }) = (runnable, &event) {
            orchestrator::end_without_replay(
                &*self.store,
                &instance,
                store::RuntimeStatus::Terminated,
                reason,
            )?;
            drop(hot);
            self.ended.send_modify(|count| *count += 1);
            return Ok(());
        }
        self.store.post_message(id, &event, Utc::now())?;
        drop(hot);
        self.wake(id);
        Ok(())
    }

    /// Starts the activity dispatcher and resumes every unfinished instance.
    pub fn start_workers(self: &Arc<Self>) -> Result<(), Error> {
        // This process is the data dir's only user, so no lease can be live.
        self.store.release_leases()?;
        tokio::spawn(self.clone().dispatch_activities());
        for id in self.store.unfinished_instances()? {
            self.spawn_instance(id);
        }
        Ok(())
    }

    /// Waits until instance `id` is Completed, Failed or Terminated.
    pub async fn wait(&self, id: &str) -> Result<Instance, Error> {
        let mut ended = self.ended.subscribe();
        loop {
            ended.borrow_and_update();
            let instance = self
                .store
                .instance(id)?
                .ok_or_else(|| store::Error::UnknownInstance(id.to_string()))?;
            if instance.status.is_terminal() {
                return Ok(instance);
            }
            if let Some(reason) = lock(&self.host_failures).get(id) {
                return Err(Error::HostFailure {
                    id: id.to_string(),
                    reason: reason.clone(),
                });
            }
            if ended.changed().await.is_err() {
                return Err(Error::HostFailure {
                    id: id.to_string(),
                    reason: "the runtime stopped".to_string(),
                });
            }
        }
    }

    /// Waits until no instance task is running: every instance this runtime could run
    /// has ended (those whose orchestrator is not loaded stay pending).
    pub async fn wait_idle(&self) -> Result<(), Error> {
        let mut ended = self.ended.subscribe();
        loop {
            ended.borrow_and_update();
            if !self.anything_to_run()? {
                return Ok(());
            }
            if ended.changed().await.is_err() {
                return Ok(());
            }
        }
    }

    /// Whether an unfinished, unsuspended instance with a loaded orchestrator remains.
    fn anything_to_run(&self) -> Result<bool, Error> {
        for id in self.store.unfinished_instances()? {
            if let Some(instance) = self.store.instance(&id)?
                && instance.status != store::RuntimeStatus::Suspended
                && self.orchestrators.get(&instance.name).is_some()
                && !lock(&self.host_failures).contains_key(&id)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn spawn_instance(self: &Arc<Self>, id: String) {
        let wake = {
            let mut hot = lock(&self.hot);
            if hot.contains_key(&id) {
                return;
            }
            let wake = Arc::new(Notify::new());
            hot.insert(id.clone(), wake.clone());
            wake
        };
        // A failure of an earlier instance with this id says nothing about this run.
        lock(&self.host_failures).remove(&id);
        let runtime = self.clone();
        tokio::spawn(async move {
            let result = runtime.run_instance(&id, wake.clone()).await;
            lock(&runtime.hot).remove(&id);
            match result {
                Err(reason) => {
                    tracing::error!(instance = %id, "{reason}");
                    lock(&runtime.host_failures).insert(id.clone(), reason);
                }
                // The instance ended, but its id was reused by a new instance while this
                // task still held it: run the new one.
                Ok(Some(status)) if status.is_terminal() => {
                    if matches!(runtime.store.instance(&id), Ok(Some(now)) if !now.status.is_terminal())
                    {
                        runtime.spawn_instance(id);
                    }
                }
                // Evicted while idle. A message that came after it stopped listening left
                // a permit; later ones find it gone and start it themselves.
                Ok(Some(_)) => {
                    if wake.notified().now_or_never().is_some() {
                        runtime.spawn_instance(id);
                    }
                }
                Ok(None) => {}
            }
            runtime.ended.send_modify(|count| *count += 1);
        });
    }

    /// Runs an instance until it ends; `None` if it cannot run in this process.
    async fn run_instance(
        &self,
        id: &str,
        wake: Arc<Notify>,
    ) -> Result<Option<store::RuntimeStatus>, String> {
        let _slot = self
            .orchestration_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let instance = match self.store.instance(id) {
            Ok(Some(instance)) => instance,
            Ok(None) => return Err(format!("instance {id} vanished")),
            Err(error) => return Err(error.to_string()),
        };
        if self.orchestrators.get(&instance.name).is_none() {
            tracing::warn!(
                instance = %id,
                "orchestrator {} is not loaded; the instance stays {} until a host with it runs",
                instance.name,
                instance.status.as_str()
            );
            return Ok(None);
        }
        let env = InstanceEnv {
            engine: self.engine.clone(),
            store: self.store.clone(),
            wake,
            work_ready: self.work_ready.clone(),
            limits: self.config.guest_limits,
            evict_after: self.config.evict_after,
        };
        let status = orchestrator::run_instance(&env, &self.orchestrators, &instance)
            .await
            .map_err(|e| e.to_string())?;
        tracing::debug!(instance = %id, "instance ended {}", status.as_str());
        Ok(Some(status))
    }

    /// Stops taking work and waits up to `grace` for running activities to record their
    /// results. Everything else is already committed or will be redone on the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.send_replace(true);
        let all = self.config.max_activities.max(1) as u32;
        if tokio::time::timeout(grace, self.activity_slots.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(
                "activities still running after {grace:?} are abandoned; they run again on the next start"
            );
        }
    }

    async fn dispatch_activities(self: Arc<Self>) {
        let slots = self.activity_slots.clone();
        let mut stopping = self.stopping.subscribe();
        loop {
            let first = tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                _ = stopping.wait_for(|stop| *stop) => return,
            };
            if *stopping.borrow() {
                return;
            }
            let now = Utc::now();
            let lease_until = now + LEASE;
            let max = 1 + slots.available_permits();
            let items = match self.store.claim_work(&self.owner, max, now, lease_until) {
                Ok(items) => items,
                Err(error) => {
                    tracing::error!("cannot claim work: {error}");
                    drop(first);
                    tokio::time::sleep(IDLE_POLL).await;
                    continue;
                }
            };
            if items.is_empty() {
                drop(first);
                tokio::select! {
                    () = self.work_ready.notified() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
                continue;
            }
            let mut permit = Some(first);
            for item in items {
                let permit = match permit.take() {
                    Some(permit) => permit,
                    // Only this loop takes permits, so the ones counted above are free.
                    None => match slots.clone().acquire_owned().await {
                        Ok(permit) => permit,
                        Err(_) => return,
                    },
                };
                tokio::spawn(self.clone().supervise(item, permit));
            }
        }
    }

    /// Runs a work item; should the host itself fail (panic) while running it, the task
    /// fails with that instead of leaving its lease held until a restart.
    async fn supervise(self: Arc<Self>, item: WorkItem, permit: OwnedSemaphorePermit) {
        let run = tokio::spawn(self.clone().run_work_item(item.clone(), permit));
        if let Err(error) = run.await
            && error.is_panic()
        {
            tracing::error!(instance = %item.instance_id, task = item.task_id, "the host failed running {}: {error}", item.name);
            let message = format!("the host failed while running activity {}", item.name);
            self.record(
                &item,
                Event::TaskFailed {
                    task_id: item.task_id,
                    message,
                },
            );
        }
    }

    async fn run_work_item(self: Arc<Self>, item: WorkItem, _permit: OwnedSemaphorePermit) {
        if let Some(delay) = self.config.activity_delay {
            tokio::time::sleep(delay).await;
        }
        tracing::info!(
            instance = %item.instance_id,
            task = item.task_id,
            attempt = item.attempt,
            "activity started: {}({})",
            item.name,
            item.input
        );
        let Some(component) = self.activities.get(&item.name) else {
            // Retrying cannot help: no loaded component provides this name.
            let message = format!(
                "unknown activity '{}'; known activities: {}",
                item.name,
                self.activities.known()
            );
            return self.record(
                &item,
                Event::TaskFailed {
                    task_id: item.task_id,
                    message,
                },
            );
        };
        let run = component.run(
            &self.engine,
            self.io.clone(),
            self.config.guest_limits,
            &item.instance_id,
            item.task_id,
            &item.name,
            &item.input,
        );
        let timeout = item.retry.as_ref().and_then(|policy| policy.timeout_ms);
        let outcome = match timeout {
            Some(ms) => tokio::time::timeout(Duration::from_millis(ms), run)
                .await
                .unwrap_or_else(|_| Err(format!("activity {} timed out after {ms} ms", item.name))),
            None => run.await,
        };
        let message = match outcome {
            Ok(result) => {
                return self.record(
                    &item,
                    Event::TaskCompleted {
                        task_id: item.task_id,
                        result,
                    },
                );
            }
            Err(message) => message,
        };
        let now = Utc::now();
        let retry_at = item
            .retry
            .as_ref()
            .and_then(|policy| policy.next_retry(item.attempt, item.first_attempt_at, now));
        let Some(retry_at) = retry_at else {
            let message = match item.attempt {
                1 => message,
                attempts => format!("{message} (after {attempts} attempts)"),
            };
            return self.record(
                &item,
                Event::TaskFailed {
                    task_id: item.task_id,
                    message,
                },
            );
        };
        tracing::info!(
            instance = %item.instance_id,
            task = item.task_id,
            attempt = item.attempt,
            "activity failed, retrying at {retry_at}: {message}"
        );
        let notice = Event::TaskRetrying {
            task_id: item.task_id,
            attempt: item.attempt,
            message,
            retry_at,
        };
        match self
            .store
            .retry_work(&item, &self.owner, retry_at, &notice, now)
        {
            Ok(true) => {
                self.wake(&item.instance_id);
                self.work_ready.notify_one();
            }
            Ok(false) => {
                tracing::debug!(instance = %item.instance_id, task = item.task_id, "retry dropped: the lease was lost")
            }
            Err(error) => {
                tracing::error!(instance = %item.instance_id, task = item.task_id, "cannot schedule the retry: {error}")
            }
        }
    }

    /// Commits an activity's final outcome and wakes its instance.
    fn record(self: &Arc<Self>, item: &WorkItem, completion: Event) {
        match self
            .store
            .complete_work(item, &self.owner, &completion, Utc::now())
        {
            Ok(true) => self.wake(&item.instance_id),
            Ok(false) => {
                tracing::debug!(instance = %item.instance_id, task = item.task_id, "result dropped: the lease was lost")
            }
            Err(error) => {
                tracing::error!(instance = %item.instance_id, task = item.task_id, "cannot record the result: {error}")
            }
        }
    }

    /// Tells an instance that its inbox has news, starting it if it is not running here.
    fn wake(self: &Arc<Self>, instance_id: &str) {
        let hot = lock(&self.hot);
        match hot.get(instance_id) {
            Some(wake) => wake.notify_one(),
            None => {
                drop(hot);
                self.spawn_instance(instance_id.to_string());
            }
        }
    }
}
