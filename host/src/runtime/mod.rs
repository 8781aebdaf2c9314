//! The runtime: loads components, owns the store, and runs the workers that drive
//! orchestration instances and activity work items.
//!
//! Every unfinished instance gets a task that keeps its orchestrator hot until it ends
//! ([`instances`]). Activity work items are claimed from the store by one dispatcher and
//! run with bounded concurrency ([`dispatch`]); each result is committed to the
//! instance's inbox, and the instance is woken to consume it. [`components`] loads the
//! guests.

mod components;
mod dispatch;
mod instances;
pub use instances::event_to_raise;
mod rewind;
mod timers;
mod waiters;

use crate::activity::{self, ActivityComponent, confine::Confinement};
use crate::limits::{self, GuestLimits};
use crate::orchestrator::{self, OrchestratorComponent};
use crate::registry::Registry;
use crate::store::{self, Instance, Store, sqlite::SqliteStore};
use crate::{blobs, engine};
use chrono::Utc;
use object_store::ObjectStore;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc, watch};

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

/// How many times recording an activity's outcome is tried before the item is left to
/// the next start (about a minute of back-off in all).
const SETTLE_RETRIES: u32 = 16;

/// The most bytes of inputs and results (at least 1 KiB an activity) that activities
/// whose guests are done may hold while their copied blobs are made durable; an activity
/// over it keeps its slot until there is room.
const WAITING_RESULTS: usize = 64 << 20;

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
    #[error("'{0}' is not a valid event name: use 1 to 256 bytes")]
    BadEventName(String),
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
    /// The longest an activity attempt may take: its retry policy may set a shorter
    /// timeout, never a longer one.
    pub activity_timeout: Duration,
    /// How many host deaths while an activity ran (after the first, which is not
    /// recorded) fail it, so that an activity that takes the host down stops doing so.
    pub max_host_crashes: u32,
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
            activity_timeout: Duration::from_secs(3600),
            max_host_crashes: 3,
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
    /// The instances that have a task here.
    hot: Mutex<HashMap<String, instances::Hot>>,
    /// Where instances hand eagerly leased work items to the dispatcher.
    eager: orchestrator::Eager,
    /// The dispatcher's end of `eager`, taken when the workers start.
    eager_items: Mutex<Option<mpsc::UnboundedReceiver<store::WorkItem>>>,
    /// Instances that stopped because the host failed, with why.
    host_failures: Mutex<HashMap<String, String>>,
    /// How many times in a row each instance's task failed for the host's reasons.
    host_retries: Mutex<HashMap<String, u32>>,
    work_ready: Arc<Notify>,
    /// Notified when an episode stores a durable timer.
    timers_changed: Arc<Notify>,
    /// Bumped whenever an instance task ends (see [`Runtime::note_end`]).
    ended: watch::Sender<u64>,
    /// The clients waiting for an instance to end, woken by its own end only.
    waiters: waiters::Waiters,
    /// The bytes of activity outcomes handed to hot instances and not yet taken.
    handover: orchestrator::handover::Budget,
    orchestration_slots: Arc<Semaphore>,
    /// Instances waiting for one of `orchestration_slots`.
    queued: Mutex<instances::Queued>,
    /// Identifies this process's leases.
    owner: String,
    activity_slots: Arc<Semaphore>,
    /// Bytes of the inputs and results of activities whose guests are done and whose
    /// copied blobs are not durable yet; see [`WAITING_RESULTS`].
    waiting_results: Arc<Semaphore>,
    /// Activities started and not settled yet (their slots may be free already: see
    /// `dispatch::run_work_item`); a graceful stop waits for them.
    settling: watch::Sender<usize>,
    /// The activity tasks of each instance, by work item id: ending an instance cancels
    /// them.
    running: Mutex<HashMap<String, HashMap<i64, Arc<Notify>>>>,
    /// Bumped whenever an instance's last running activity task ends.
    let_go: watch::Sender<u64>,
    /// Instances that ended lately, with when: an item of theirs that waited in the
    /// dispatcher's queue is checked before it starts.
    recently_ended: Mutex<HashMap<String, std::time::Instant>>,
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

/// Checks an instance id that a guest chose for a sub-orchestration by the rule for
/// clients' ids.
pub fn check_instance_id(id: &str) -> Result<(), Error> {
    valid_id(id).map(drop)
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
        // Weft's own files stay closed to activities even inside an allowed directory:
        // the database and API key (the data dir), compiled code, and a local blob store
        // (so that a backup never copies its own output into itself).
        let mut private = vec![data_dir.clone()];
        private.extend(config.cache_dir.clone());
        private.extend(
            config
                .blobs
                .as_deref()
                .and_then(|url| url.strip_prefix("file://"))
                .map(PathBuf::from),
        );
        let io = Arc::new(activity::Io {
            confinement: Confinement::new(&allowed, &private)?,
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
        let components::Components {
            orchestrators,
            activities,
        } = components::load(&engine, &config.components, &cache, &io).await?;
        let config_max_activities = config.max_activities.max(1);
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let (eager_items, eager_receiver) = mpsc::unbounded_channel();
        Ok(Arc::new(Self {
            engine,
            store,
            orchestrators,
            activities,
            io,
            orchestration_slots: Arc::new(Semaphore::new(config.max_orchestrations.max(1))),
            queued: Mutex::new(instances::Queued::default()),
            config: Config { data_dir, ..config },
            hot: Mutex::new(HashMap::new()),
            host_failures: Mutex::new(HashMap::new()),
            host_retries: Mutex::new(HashMap::new()),
            work_ready: Arc::new(Notify::new()),
            timers_changed: Arc::new(Notify::new()),
            ended: watch::Sender::new(0),
            waiters: waiters::Waiters::default(),
            handover: orchestrator::handover::Budget::default(),
            eager: orchestrator::Eager {
                owner: owner.clone(),
                items: eager_items,
            },
            eager_items: Mutex::new(Some(eager_receiver)),
            owner,
            activity_slots: Arc::new(Semaphore::new(config_max_activities)),
            waiting_results: Arc::new(Semaphore::new(WAITING_RESULTS)),
            settling: watch::Sender::new(0),
            running: Mutex::new(HashMap::new()),
            let_go: watch::Sender::new(0),
            recently_ended: Mutex::new(HashMap::new()),
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
    pub async fn create(
        &self,
        name: &str,
        input: &str,
        id: Option<&str>,
    ) -> Result<Instance, Error> {
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
        Ok(self
            .store
            .create_instance(&id, name, input, Utc::now())
            .await?)
    }

    /// Creates an instance and runs it at once.
    pub async fn start(
        self: &Arc<Self>,
        name: &str,
        input: &str,
        id: Option<&str>,
    ) -> Result<Instance, Error> {
        let instance = self.create(name, input, id).await?;
        self.spawn_instance(instance.id.clone());
        Ok(instance)
    }

    /// Starts the activity dispatcher and resumes every unfinished instance.
    pub async fn start_workers(self: &Arc<Self>) -> Result<(), Error> {
        // This process is the data dir's only user, so no lease can be live.
        self.store.release_leases().await?;
        let eager = lock(&self.eager_items).take();
        if let Some(eager) = eager {
            tokio::spawn(self.clone().dispatch_activities(eager));
            tokio::spawn(self.clone().run_timers());
            let cursor = self.inbox_end().await?;
            tokio::spawn(self.clone().watch_inbox(cursor));
        }
        for id in self.store.unfinished_instances().await? {
            self.spawn_instance(id);
        }
        Ok(())
    }

    /// Waits until instance `id` is Completed, Failed or Terminated. Only the instance's
    /// own task ending wakes the wait, so waits for many instances cost nothing while
    /// others end.
    pub async fn wait(&self, id: &str) -> Result<Instance, Error> {
        let waiting = self.waiters.wait_for(id);
        loop {
            let woken = waiting.next();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let instance = self
                .store
                .instance(id)
                .await?
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
            woken.await;
        }
    }

    /// Tells [`Runtime::wait`] and [`Runtime::wait_idle`] that instance `id`'s task ended
    /// or the instance ended without one.
    fn note_end(&self, id: &str) {
        self.ended.send_modify(|count| *count += 1);
        self.waiters.wake(id);
    }

    /// Waits until no instance task is running: every instance this runtime could run
    /// has ended (those whose orchestrator is not loaded stay pending).
    pub async fn wait_idle(&self) -> Result<(), Error> {
        let mut ended = self.ended.subscribe();
        loop {
            ended.borrow_and_update();
            if !self.anything_to_run().await? {
                return Ok(());
            }
            if ended.changed().await.is_err() {
                return Ok(());
            }
        }
    }

    /// Whether an unfinished, unsuspended instance with a loaded orchestrator remains
    /// (one query, however many instances there are).
    async fn anything_to_run(&self) -> Result<bool, Error> {
        let names = self.orchestrators.names();
        let failed: Vec<String> = lock(&self.host_failures).keys().cloned().collect();
        Ok(self.store.any_runnable(&names, &failed).await?)
    }

    /// Stops taking work and waits up to `grace` for running activities to record their
    /// results, and up to `grace` again for the uploads abandoned half-way to be aborted.
    /// Everything else is already committed or will be redone on the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.send_replace(true);
        let all = self.config.max_activities.max(1) as u32;
        let mut settling = self.settling.subscribe();
        let drained = async {
            let _all = self.activity_slots.acquire_many(all).await;
            let _ = settling.wait_for(|count| *count == 0).await;
        };
        if tokio::time::timeout(grace, drained).await.is_err() {
            tracing::warn!(
                "activities still running after {grace:?} are abandoned; they run again on the next start"
            );
        }
        // Then the uploads that activities abandoned half-way are aborted in the store.
        self.io.blobs.finish_aborts(grace).await;
    }

    /// Waits, for at most `grace` each, until the activities of the ended instance `id`
    /// have let go (those its end cancelled are dropped at once), and until the uploads
    /// they abandoned half-way are aborted in the blob store: `weft run` calls it before
    /// it exits.
    pub async fn finish_instance(&self, id: &str, grace: Duration) {
        let mut let_go = self.let_go.subscribe();
        // (The map is looked at under the channel's read lock; `Registered` releases the
        // map's lock before it bumps the channel.)
        let all_let_go = let_go.wait_for(|_| !lock(&self.running).contains_key(id));
        let _ = tokio::time::timeout(grace, all_let_go).await;
        self.io.blobs.finish_aborts(grace).await;
    }
}
