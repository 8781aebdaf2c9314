//! The bench's only door into the runtime and the store: every call into
//! [`Runtime`] or [`crate::store::Store`] that a scenario makes goes through this module,
//! so that a change of their signatures (an async store, an async `start`) is adapted here
//! alone. Every function is already `async` for that reason.

use crate::runtime::{ComponentSource, Config, Runtime};
use crate::store::RuntimeStatus;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The testing guests (`guest-testing/`), embedded like the sample: `FanOut`,
/// `Sequential`, `FanOutThenRetry` and the `Echo` and `Fail` activities.
const TESTING_COMPONENTS: &[(&str, &[u8])] = &[
    (
        "<embedded testing-orchestrator>",
        include_bytes!(env!("WEFT_GUEST_TESTING_ORCHESTRATOR")),
    ),
    (
        "<embedded testing-activities>",
        include_bytes!(env!("WEFT_GUEST_TESTING_ACTIVITIES")),
    ),
];

/// A runtime loaded with the testing guests, on one data dir.
pub struct BenchHost {
    runtime: Arc<Runtime>,
}

/// How a bench host is set up.
pub struct HostOptions<'a> {
    pub data_dir: &'a Path,
    /// Where compiled components are cached; `None`: inside the data dir.
    pub cache_dir: Option<&'a Path>,
    pub max_activities: usize,
}

impl BenchHost {
    /// Opens `data_dir` with the testing guests. Instances are kept hot until they end,
    /// so that no eviction (and replay) happens in the middle of a measurement.
    pub async fn open(options: &HostOptions<'_>) -> Result<Self> {
        let mut config = Config::new(options.data_dir);
        config.components = TESTING_COMPONENTS
            .iter()
            .map(|(name, bytes)| ComponentSource::Embedded { name, bytes })
            .collect();
        config.cache_dir = options.cache_dir.map(Path::to_path_buf);
        config.max_activities = options.max_activities;
        config.evict_after = None;
        let runtime = Runtime::open(config)
            .await
            .with_context(|| format!("cannot open {}", options.data_dir.display()))?;
        Ok(Self { runtime })
    }

    /// Starts the activity dispatcher and resumes every unfinished instance.
    pub async fn start_workers(&self) -> Result<()> {
        self.runtime.start_workers().await?;
        Ok(())
    }

    /// Starts an instance of `name` with `input` (JSON) and returns its id.
    pub async fn start(&self, name: &str, input: &str) -> Result<String> {
        Ok(self.runtime.start(name, input, None).await?.id)
    }

    /// Waits for the instance to end and returns its output; an instance that did not
    /// complete is an error that says why.
    pub async fn wait_completed(&self, id: &str) -> Result<String> {
        let instance = self.runtime.wait(id).await?;
        let output = instance.output.unwrap_or_else(|| "null".to_string());
        if instance.status != RuntimeStatus::Completed {
            bail!("instance {id} ended {}: {output}", instance.status.as_str());
        }
        Ok(output)
    }

    /// The kinds of the instance's history events, in order (`TaskScheduled`, ...).
    pub async fn history_kinds(&self, id: &str) -> Result<Vec<&'static str>> {
        let history = self.runtime.store().history(id).await?;
        Ok(history.iter().map(|event| event.event.kind()).collect())
    }

    /// Stops taking work, waiting at most `grace` for running activities.
    pub async fn shutdown(&self, grace: Duration) {
        self.runtime.shutdown(grace).await;
    }
}
