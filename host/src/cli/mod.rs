//! The `weft` command line: clap arguments, resolved into a runtime configuration, and
//! one function per subcommand.

mod progress;

use crate::api;
use crate::limits::GuestLimits;
use crate::runtime::{ComponentSource, Config, Runtime};
use crate::status;
use crate::store::{Event, Instance, Listing, RuntimeStatus, Store, sqlite::SqliteStore};
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "weft",
    version,
    about = "Durable orchestrations written as WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start an orchestration and wait for it; its output JSON is the last line of stdout.
    Run {
        /// The orchestrator to run, e.g. E2_BackupSiteContent.
        name: String,
        /// The orchestration's input, as JSON (a directory is a JSON string: '"/var/www"').
        #[arg(long, default_value = "null")]
        input: String,
        /// Use this instance id instead of a generated one.
        #[arg(long)]
        instance_id: Option<String>,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Run the workers and the Durable Functions-compatible HTTP API.
    Serve {
        /// Where to listen; port 0 picks a free one (the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:7071")]
        addr: std::net::SocketAddr,
        /// The API key; default: the one kept in <data-dir>/api-key, generated on first start.
        #[arg(long, env = "WEFT_API_KEY", hide_env_values = true)]
        key: Option<String>,
        /// Where clients reach this server (e.g. https://weft.example.com behind a proxy);
        /// every URL the API hands out starts with it. Default: http://ADDR as bound.
        #[arg(long)]
        public_url: Option<String>,
        /// Also serve the API without a key on this loopback address, under
        /// /durabletask/, as the Functions host's local rpcBaseUrl (the official
        /// clients' rpc endpoint). Only loopback addresses are accepted.
        #[arg(long)]
        rpc_addr: Option<std::net::SocketAddr>,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Rewind a Failed instance: run it again from its failures (failed activities run
    /// again, completed ones are not re-run) and wait for it, as `run` does.
    Rewind {
        id: String,
        /// Why, recorded in the history.
        #[arg(long, default_value = "rewound from the command line")]
        reason: String,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Finish every unfinished instance in the data dir, then exit.
    Resume {
        #[command(flatten)]
        host: HostArgs,
    },
    /// Print an instance's status as JSON.
    Status {
        id: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Print an instance's history, one JSON event per line.
    History {
        id: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Raise the external event NAME on an instance. Works whether or not a host runs on
    /// the data dir: the event waits in the instance's inbox, and a running host
    /// delivers it within a second (otherwise the next `weft serve` or `weft resume`).
    RaiseEvent {
        id: String,
        name: String,
        /// The event's data, as JSON.
        #[arg(long, default_value = "null")]
        data: String,
        #[command(flatten)]
        data_dir: DataArgs,
    },
    /// Terminate an instance that has not ended (delivered as `raise-event` is).
    Terminate {
        id: String,
        /// Why, recorded in the history and shown as the output.
        #[arg(long, default_value = "terminated from the command line")]
        reason: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Suspend an instance: it records no completions until resumed (delivered as
    /// `raise-event` is).
    Suspend {
        id: String,
        #[arg(long, default_value = "suspended from the command line")]
        reason: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Resume a suspended instance (`weft resume` is another thing: it finishes every
    /// unfinished instance).
    ResumeInstance {
        id: String,
        #[arg(long, default_value = "resumed from the command line")]
        reason: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Delete an ended instance: every row of it (history, payloads, inbox, timers).
    Purge {
        id: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List instances, newest first.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Measure throughput and scale; the last stdout line is a JSON object of figures.
    Bench(crate::bench::BenchArgs),
}

#[derive(Args, Debug)]
struct DataArgs {
    /// Where Weft keeps its database, compiled components and default blob store.
    #[arg(long, env = "WEFT_DATA_DIR", default_value = ".weft")]
    data_dir: PathBuf,
}

#[derive(Args, Debug)]
struct HostArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Where compiled components are cached; default: <data-dir>/cache.
    #[arg(long, env = "WEFT_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Orchestration and activity components (.wasm); default: the embedded backup sample.
    #[arg(long, num_args = 1..)]
    components: Vec<PathBuf>,
    /// Blob store URL: file:///absolute/dir, memory://, az://CONTAINER (or
    /// azure://CONTAINER; configured by AZURE_* variables) or s3://BUCKET (configured by
    /// AWS_* variables); default: file://<data-dir>/blobs.
    #[arg(long)]
    blobs: Option<String>,
    /// An object_store configuration key for the blob store, e.g.
    /// azure_storage_account_name=myaccount or aws_region=eu-west-1. Repeatable. Pass
    /// secrets in AZURE_*/AWS_* variables instead: a command line is visible to others.
    #[arg(long = "blob-opt", value_name = "KEY=VALUE", value_parser = key_value)]
    blob_opts: Vec<(String, String)>,
    /// Create the blob container or bucket if it does not exist.
    #[arg(long)]
    create_container: bool,
    /// Do not upload a file whose blob already has the same size and SHA-256 (every file
    /// is still read and hashed).
    #[arg(long)]
    skip_unchanged: bool,
    /// A directory activities may read (repeatable); default: the current directory.
    #[arg(long = "allow-dir", value_name = "DIR")]
    allow_dirs: Vec<PathBuf>,
    /// Activities run at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_activities: u32,
    /// Longest a guest may compute without waiting, in milliseconds.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    guest_cpu_ms: u64,
    /// Largest memory a guest may grow to, in MiB.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=4096))]
    guest_memory_mib: u64,
    /// Largest JSON payload (input, output, custom status), in KiB.
    #[arg(long, default_value_t = 16_384, value_parser = clap::value_parser!(u64).range(1..=262_144))]
    max_payload_kib: u64,
    /// Largest history of one orchestrator execution, in MiB: an instance whose history
    /// grows past it fails (continue-as-new starts a fresh history).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    max_history_mib: u64,
    /// The longest an activity attempt may run, in seconds; over it, the attempt fails
    /// (and may be retried). A retry policy may set a shorter timeout, never a longer one.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    activity_timeout_secs: u64,
    /// Fail an activity once the host has died this many times while it ran (the first
    /// death not counted), so that an activity that takes the host down stops doing so.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_host_crashes: u32,
    /// Evict an orchestrator instance that has waited this long (it replays when its
    /// next message comes); 0 keeps instances hot until they end.
    #[arg(long, default_value_t = 30_000)]
    evict_after_ms: u64,
    /// Test only: pause this long before each activity call.
    #[arg(long, hide = true)]
    test_activity_delay_ms: Option<u64>,
}

impl HostArgs {
    fn config(&self) -> Config {
        let mut config = Config::new(&self.data.data_dir);
        if !self.components.is_empty() {
            config.components = self
                .components
                .iter()
                .cloned()
                .map(ComponentSource::File)
                .collect();
        }
        config.blobs = self.blobs.clone();
        config.blob_options = crate::blobs::Options {
            config: self.blob_opts.clone(),
            create_container: self.create_container,
            skip_unchanged: self.skip_unchanged,
        };
        config.cache_dir = self.cache_dir.clone();
        // The current directory only when no directory is given.
        config.allowed_dirs = self.allow_dirs.clone();
        config.max_activities = self.max_activities as usize;
        config.guest_limits = GuestLimits {
            cpu: Duration::from_millis(self.guest_cpu_ms),
            memory: (self.guest_memory_mib as usize) << 20,
            payload: (self.max_payload_kib as usize) << 10,
            history: (self.max_history_mib as usize) << 20,
        };
        config.activity_timeout = Duration::from_secs(self.activity_timeout_secs);
        config.max_host_crashes = self.max_host_crashes;
        config.evict_after =
            (self.evict_after_ms > 0).then(|| Duration::from_millis(self.evict_after_ms));
        config.activity_delay = self.test_activity_delay_ms.map(Duration::from_millis);
        config
    }
}

/// Parses `KEY=VALUE`.
fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err("expected KEY=VALUE".to_string()),
    }
}

/// Runs the command line; the exit code is 0 on success.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Many files and connections at once are normal for a backup host.
    api::server::raise_descriptor_limit();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(code) => code,
        // The reader went away (`weft list --json | head -1`): nothing is wrong.
        Err(error) if broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes `text` and a newline to stdout, reporting a closed pipe as an error to stop on.
fn print_line(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run {
            name,
            input,
            instance_id,
            host,
        } => block_on(run_orchestration(
            &name,
            &input,
            instance_id.as_deref(),
            &host,
        )),
        Command::Resume { host } => block_on(resume(&host)),
        Command::Serve {
            addr,
            key,
            public_url,
            rpc_addr,
            host,
        } => block_on(serve(
            Listeners {
                addr,
                public_url,
                rpc_addr,
            },
            key,
            &host,
        )),
        Command::Rewind { id, reason, host } => block_on(rewind(&id, &reason, &host)),
        Command::Status { id, data } => block_on(async move {
            let instance = find(&open_store(&data)?, &id).await?;
            print_line(&serde_json::to_string_pretty(&status::instance_json(
                &instance,
            ))?)?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::History { id, data } => block_on(async move {
            let store = open_store(&data)?;
            find(&store, &id).await?;
            let history = store.history(&id).await?;
            let mut out = std::io::stdout().lock();
            for event in history {
                writeln!(out, "{}", status::event_json(&event))?;
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::RaiseEvent {
            id,
            name,
            data,
            data_dir,
        } => block_on(async move {
            let event = crate::runtime::event_to_raise(&GuestLimits::default(), &name, &data)?;
            post(&data_dir, &id, event).await
        }),
        Command::Terminate { id, reason, data } => {
            block_on(post(&data, &id, Event::ExecutionTerminated { reason }))
        }
        Command::Suspend { id, reason, data } => {
            block_on(post(&data, &id, Event::ExecutionSuspended { reason }))
        }
        Command::ResumeInstance { id, reason, data } => {
            block_on(post(&data, &id, Event::ExecutionResumed { reason }))
        }
        Command::Purge { id, data } => block_on(async move {
            if !open_store(&data)?.purge(&id).await? {
                bail!("no instance with id '{id}'");
            }
            eprintln!("instance {id} purged");
            Ok(ExitCode::SUCCESS)
        }),
        Command::List { json, data } => block_on(async move {
            list(&open_store(&data)?, json).await?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Bench(args) => crate::bench::run(args),
    }
}

/// Runs `future` on a multi-threaded runtime. Work still running when it returns (an
/// abandoned activity, say) gets a moment to stop, then is dropped: everything that
/// matters is committed already.
fn block_on<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(future);
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

/// Opens an existing data dir's store without loading components.
fn open_store(data: &DataArgs) -> Result<SqliteStore> {
    let db = data.data_dir.join("weft.db");
    if !db.exists() {
        bail!(
            "no Weft data in {} (no weft.db); pass --data-dir",
            display(&data.data_dir)
        );
    }
    Ok(SqliteStore::open(&db)?)
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Posts `event` to an instance's inbox in the data dir's database, and says who will
/// deliver it: the host that runs on the data dir (it watches the inbox), or the next one.
async fn post(data: &DataArgs, id: &str, event: Event) -> Result<ExitCode> {
    let store = open_store(data)?;
    let kind = event.kind();
    store.post_message(id, &event, chrono::Utc::now()).await?;
    if host_running(&data.data_dir) {
        eprintln!("{kind} posted to instance {id}; the running host delivers it");
    } else {
        eprintln!(
            "{kind} posted to instance {id}; no host runs on {}: the next `weft serve` or `weft resume` delivers it",
            display(&data.data_dir)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a host holds the data dir's lock.
fn host_running(data_dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(data_dir.join("weft.lock")) else {
        return false;
    };
    // The lock is released when `file` is dropped.
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

async fn find(store: &dyn Store, id: &str) -> Result<Instance> {
    store
        .instance(id)
        .await?
        .with_context(|| format!("no instance with id '{id}'"))
}

async fn run_orchestration(
    name: &str,
    input: &str,
    id: Option<&str>,
    host: &HostArgs,
) -> Result<ExitCode> {
    let runtime = Runtime::open(host.config()).await?;
    let instance = runtime.create(name, input, id).await?;
    eprintln!("instance {} of {name} started", instance.id);
    runtime.start_workers().await?;
    follow(&runtime, &instance.id).await
}

/// Waits for instance `id` to end with a progress bar, and prints how it ended; a signal
/// stops the host and says how to finish the instance.
async fn follow(runtime: &Runtime, id: &str) -> Result<ExitCode> {
    let bar = progress::show(runtime.store().clone(), id);
    let ended = tokio::select! {
        ended = runtime.wait(id) => ended,
        signal = stop_signal() => {
            drop(bar);
            stop(runtime, signal?).await;
            eprintln!(
                "instance {id} did not finish; `weft resume` (with the same --data-dir) finishes it"
            );
            return Ok(ExitCode::from(INTERRUPTED));
        }
    };
    drop(bar);
    let code = finish(&ended?)?;
    // The activities cancelled as the instance ended let go of their uploads, which are
    // aborted in the blob store before the process ends.
    runtime.finish_instance(id, EXIT_GRACE).await;
    Ok(code)
}

/// How long an ending `weft run` waits, at most, for the instance's cancelled activities
/// to let go, and again for their abandoned uploads to be aborted. It ends as soon as they
/// are done; the bound matters only for a slow or loaded store, where an abort given up on
/// leaves the upload's parts stored (and billed) until a later run sweeps them.
const EXIT_GRACE: Duration = Duration::from_secs(30);

/// Where `weft serve` listens and how clients reach it.
struct Listeners {
    addr: std::net::SocketAddr,
    public_url: Option<String>,
    rpc_addr: Option<std::net::SocketAddr>,
}

async fn serve(listeners: Listeners, key: Option<String>, host: &HostArgs) -> Result<ExitCode> {
    let Listeners {
        addr,
        public_url,
        rpc_addr,
    } = listeners;
    if let Some(rpc) = rpc_addr
        && !rpc.ip().is_loopback()
    {
        bail!(
            "--rpc-addr {rpc} is not a loopback address: the rpc listener takes no key, so it only listens on 127.0.0.1 or ::1"
        );
    }
    let public_url = match public_url {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Some(url.trim_end_matches('/').to_string())
        }
        Some(url) => bail!("--public-url {url} must start with http:// or https://"),
        None => None,
    };
    let runtime = Runtime::open(host.config()).await?;
    let key = match key {
        Some(key) if key.trim().len() >= MIN_KEY_LEN => key.trim().to_string(),
        Some(_) => bail!("the API key must be at least {MIN_KEY_LEN} characters long"),
        None => api::key::load_or_create(runtime.data_dir())?,
    };
    runtime.start_workers().await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let rpc_listener = match rpc_addr {
        Some(rpc) => Some(
            tokio::net::TcpListener::bind(rpc)
                .await
                .with_context(|| format!("cannot listen on {rpc}"))?,
        ),
        None => None,
    };
    let rpc_url = match &rpc_listener {
        Some(listener) => Some(format!("http://{}", listener.local_addr()?)),
        None => None,
    };
    // An unspecified listening address (0.0.0.0) is no address to hand out; loopback
    // is the one that surely reaches this host. --public-url says better.
    let public_url = public_url.unwrap_or_else(|| {
        let mut reachable = bound;
        if reachable.ip().is_unspecified() {
            reachable.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{reachable}")
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "weft listening on http://{bound}")?;
        writeln!(out, "key: {key}")?;
        if let Some(rpc_url) = &rpc_url {
            writeln!(out, "rpc listening on {rpc_url}/durabletask/")?;
        }
        out.flush()?;
    }
    let api = std::sync::Arc::new(api::Api {
        runtime: runtime.clone(),
        key,
        public_url,
        rpc_url,
        history_turns: tokio::sync::Semaphore::new(api::HISTORY_TURNS),
    });
    // One bound for both listeners' connections.
    let connections = std::sync::Arc::new(tokio::sync::Semaphore::new(
        api::server::raise_descriptor_limit(),
    ));
    let rpc = async {
        match rpc_listener {
            Some(listener) => {
                api::server::serve(listener, api::rpc_router(api.clone()), connections.clone())
                    .await
                    .context("the rpc HTTP server failed")
            }
            None => std::future::pending().await,
        }
    };
    // On a signal the server futures are dropped: no new requests, then the workers stop.
    tokio::select! {
        served = api::server::serve(listener, api::router(api.clone()), connections.clone()) => served.context("the HTTP server failed")?,
        served = rpc => served?,
        signal = stop_signal() => {
            stop(&runtime, signal?).await;
            return Ok(ExitCode::SUCCESS);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The shortest API key `--key` accepts: a short key can be guessed.
const MIN_KEY_LEN: usize = 16;

/// Waits for SIGTERM or SIGINT (Ctrl-C) and says which.
async fn stop_signal() -> Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}

/// The exit code of a `run` or `resume` that a signal stopped before its work was done.
const INTERRUPTED: u8 = 130;

/// A graceful stop: take no new work and let running activities record their results for
/// a moment. Unfinished instances resume on the next start.
async fn stop(runtime: &Runtime, signal: &str) {
    eprintln!(
        "{signal}: stopping; unfinished instances resume on the next `weft run` or `weft resume`"
    );
    runtime.shutdown(Duration::from_secs(3)).await;
}

/// Prints the outcome of an ended instance: output on stdout, failure on stderr.
fn finish(instance: &Instance) -> Result<ExitCode> {
    let output = instance.output.as_deref().unwrap_or("null");
    match instance.status {
        RuntimeStatus::Completed => {
            print_line(output)?;
            Ok(ExitCode::SUCCESS)
        }
        status => {
            let message =
                serde_json::from_str::<String>(output).unwrap_or_else(|_| output.to_string());
            eprintln!("instance {} {}: {message}", instance.id, status.as_str());
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn rewind(id: &str, reason: &str, host: &HostArgs) -> Result<ExitCode> {
    let runtime = Runtime::open(host.config()).await?;
    runtime.rewind(id, reason).await?;
    eprintln!("instance {id} rewound");
    runtime.start_workers().await?;
    follow(&runtime, id).await
}

async fn resume(host: &HostArgs) -> Result<ExitCode> {
    let runtime = Runtime::open(host.config()).await?;
    let pending = runtime.store().unfinished_instances().await?;
    eprintln!("resuming {} unfinished instance(s)", pending.len());
    runtime.start_workers().await?;
    tokio::select! {
        idle = runtime.wait_idle() => idle?,
        signal = stop_signal() => {
            stop(&runtime, signal?).await;
            return Ok(ExitCode::from(INTERRUPTED));
        }
    }
    let mut code = ExitCode::SUCCESS;
    for id in pending {
        let instance = find(&**runtime.store(), &id).await?;
        eprintln!(
            "instance {id} ({}): {}",
            instance.name,
            instance.status.as_str()
        );
        if instance.status != RuntimeStatus::Completed {
            code = ExitCode::FAILURE;
        }
    }
    Ok(code)
}

/// Prints every instance, newest first, read a page at a time so that memory stays
/// bounded whatever the store holds; the table reads no payloads.
async fn list(store: &dyn Store, json: bool) -> Result<()> {
    const PAGE: usize = 500;
    if !json {
        writeln!(
            std::io::stdout(),
            "{:<32}  {:<24}  {:<10}  {:<20}  {:<20}",
            "INSTANCE",
            "NAME",
            "STATUS",
            "CREATED",
            "UPDATED"
        )?;
    }
    let mut skip = 0;
    loop {
        let listing = Listing {
            skip,
            limit: PAGE,
            input: json,
            output: json,
            max_bytes: 16 << 20,
        };
        let listed = store.list_instances(&Default::default(), listing).await?;
        skip += listed.instances.len();
        let mut out = std::io::stdout().lock();
        for instance in &listed.instances {
            let value = status::instance_json(instance);
            if json {
                writeln!(out, "{value}")?;
                continue;
            }
            writeln!(
                out,
                "{:<32}  {:<24}  {:<10}  {:<20}  {:<20}",
                instance.id,
                instance.name,
                instance.status.as_str(),
                value["createdTime"].as_str().unwrap_or_default(),
                value["lastUpdatedTime"].as_str().unwrap_or_default(),
            )?;
        }
        if !listed.more {
            return Ok(());
        }
    }
}
