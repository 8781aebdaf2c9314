//! The progress bar of `weft run`: activities finished of scheduled, read from the
//! store, shown only when stderr is a terminal.

use crate::store::Store;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

/// Stops the bar when dropped.
pub struct Bar {
    task: Option<tokio::task::JoinHandle<()>>,
    bar: ProgressBar,
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.bar.finish_and_clear();
    }
}

/// Shows the progress of instance `id` until the returned [`Bar`] is dropped.
pub fn show(store: Arc<dyn Store>, id: &str) -> Bar {
    if !std::io::stderr().is_terminal() {
        return Bar {
            task: None,
            bar: ProgressBar::hidden(),
        };
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} activities",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    let (shown, id) = (bar.clone(), id.to_string());
    let task = tokio::spawn(async move {
        loop {
            if let Ok(progress) = store.progress(&id).await {
                shown.set_length(progress.scheduled);
                shown.set_position(progress.finished);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Bar {
        task: Some(task),
        bar,
    }
}
