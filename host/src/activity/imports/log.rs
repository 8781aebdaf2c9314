//! `weft:orchestration/log`: activity log lines, tagged with their instance and task
//! (cut and rate-limited: see `guest_log`).

use super::super::ActivityState;
use crate::bindings::activities::weft::orchestration::log::Host;
use crate::bindings::activities::weft::orchestration::types::LogLevel;
use crate::guest_log;
use tracing::Level;

impl Host for ActivityState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            LogLevel::Trace => Level::TRACE,
            LogLevel::Debug => Level::DEBUG,
            LogLevel::Info => Level::INFO,
            LogLevel::Warn => Level::WARN,
            LogLevel::Error => Level::ERROR,
        };
        let writer = guest_log::Writer {
            instance: &self.instance_id,
            task: Some(self.task_id),
        };
        guest_log::write(level, &writer, message);
        Ok(())
    }
}
