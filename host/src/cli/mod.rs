//! The `weft` command line: clap arguments, resolved into a runtime configuration, and
//! one function per subcommand.

mod progress;

use crate::api;
use crate::limits::GuestLimits;
use crate::runtime::{ComponentSource, Config, Runtime};
use crate::status;
use crate::store::{Instance, RuntimeStatus, Store, sqlite::SqliteStore};
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
    /// List instances, newest first.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
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
    /// A directory activities may read, besides the current directory. Repeatable.
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
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    max_payload_kib: u64,
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
        config.allowed_dirs = std::iter::once(PathBuf::from("."))
            .chain(self.allow_dirs.iter().cloned())
            .collect();
        config.max_activities = self.max_activities as usize;
        config.guest_limits = GuestLimits {
            cpu: Duration::from_millis(self.guest_cpu_ms),
            memory: (self.guest_memory_mib as usize) << 20,
            payload: (self.max_payload_kib as usize) << 10,
        };
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
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
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
        Command::Serve { addr, key, host } => block_on(serve(addr, key, &host)),
        Command::Status { id, data } => {
            let instance = find(&open_store(&data)?, &id)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&status::instance_json(&instance))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::History { id, data } => {
            let store = open_store(&data)?;
            find(&store, &id)?;
            let mut out = std::io::stdout().lock();
            for event in store.history(&id)? {
                writeln!(out, "{}", status::event_json(&event))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List { json, data } => {
            list(&open_store(&data)?, json)?;
            Ok(ExitCode::SUCCESS)
        }
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

fn find(store: &dyn Store, id: &str) -> Result<Instance> {
    store
        .instance(id)?
        .with_context(|| format!("no instance with id '{id}'"))
}

async fn run_orchestration(
    name: &str,
    input: &str,
    id: Option<&str>,
    host: &HostArgs,
) -> Result<ExitCode> {
    let runtime = Runtime::open(host.config()).await?;
    let instance = runtime.create(name, input, id)?;
    eprintln!("instance {} of {name} started", instance.id);
    runtime.start_workers()?;
    let bar = progress::show(runtime.store().clone(), &instance.id);
    let ended = tokio::select! {
        ended = runtime.wait(&instance.id) => ended,
        signal = stop_signal() => {
            drop(bar);
            return stop(&runtime, signal?).await;
        }
    };
    drop(bar);
    finish(&ended?)
}

async fn serve(
    addr: std::net::SocketAddr,
    key: Option<String>,
    host: &HostArgs,
) -> Result<ExitCode> {
    let runtime = Runtime::open(host.config()).await?;
    let key = match key {
        Some(key) if !key.trim().is_empty() => key.trim().to_string(),
        Some(_) => bail!("the API key must not be empty"),
        None => api::key::load_or_create(runtime.data_dir())?,
    };
    runtime.start_workers()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "weft listening on http://{bound}")?;
        writeln!(out, "key: {key}")?;
        out.flush()?;
    }
    let router = api::router(std::sync::Arc::new(api::Api {
        runtime: runtime.clone(),
        key,
    }));
    // On a signal the server future is dropped: no new requests, then the workers stop.
    tokio::select! {
        served = axum::serve(listener, router).into_future() => served.context("the HTTP server failed")?,
        signal = stop_signal() => return stop(&runtime, signal?).await,
    }
    Ok(ExitCode::SUCCESS)
}

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

/// A graceful stop: take no new work, let running activities record their results for a
/// moment, and exit 0. Unfinished instances resume on the next start.
async fn stop(runtime: &Runtime, signal: &str) -> Result<ExitCode> {
    eprintln!(
        "{signal}: stopping; unfinished instances resume on the next `weft run` or `weft resume`"
    );
    runtime.shutdown(Duration::from_secs(3)).await;
    Ok(ExitCode::SUCCESS)
}

/// Prints the outcome of an ended instance: output on stdout, failure on stderr.
fn finish(instance: &Instance) -> Result<ExitCode> {
    let output = instance.output.as_deref().unwrap_or("null");
    match instance.status {
        RuntimeStatus::Completed => {
            println!("{output}");
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

async fn resume(host: &HostArgs) -> Result<ExitCode> {
    let runtime = Runtime::open(host.config()).await?;
    let pending = runtime.store().unfinished_instances()?;
    eprintln!("resuming {} unfinished instance(s)", pending.len());
    runtime.start_workers()?;
    tokio::select! {
        idle = runtime.wait_idle() => idle?,
        signal = stop_signal() => return stop(&runtime, signal?).await,
    }
    let mut code = ExitCode::SUCCESS;
    for id in pending {
        let instance = find(&**runtime.store(), &id)?;
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

fn list(store: &dyn Store, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let instances = store.list_instances(&Default::default(), 0, usize::MAX)?;
    if json {
        for instance in &instances {
            writeln!(out, "{}", status::instance_json(instance))?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<32}  {:<24}  {:<10}  {:<20}  {:<20}",
        "INSTANCE", "NAME", "STATUS", "CREATED", "UPDATED"
    )?;
    for instance in &instances {
        let value = status::instance_json(instance);
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
    Ok(())
}
