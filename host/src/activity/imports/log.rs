//! `weft:orchestration/log`: activity log lines, tagged with their instance and task.

use super::super::ActivityState;
use crate::bindings::activities::weft::orchestration::log::Host;
use crate::bindings::activities::weft::orchestration::types::LogLevel;

impl Host for ActivityState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let (instance, task) = (&self.instance_id, self.task_id);
        match level {
            LogLevel::Trace => tracing::trace!(%instance, task, "{message}"),
            LogLevel::Debug => tracing::debug!(%instance, task, "{message}"),
            LogLevel::Info => tracing::info!(%instance, task, "{message}"),
            LogLevel::Warn => tracing::warn!(%instance, task, "{message}"),
            LogLevel::Error => tracing::error!(%instance, task, "{message}"),
        }
        Ok(())
    }
}
