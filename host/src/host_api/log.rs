//! `aer:plugin/log`: plugin messages into tracing, capped per call.

use crate::bindings::host::aer::plugin::log::{Host, Level};
use crate::host_api::HostState;

/// One kept plugin log message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The message, cut to the configured length.
    pub message: String,
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

/// Cut `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

impl Host for HostState {
    fn write(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        if self.call.logs.len() >= self.limits.log_messages_per_call as usize {
            self.call.logs_dropped = self.call.logs_dropped.saturating_add(1);
            return Ok(());
        }
        // Escaped: a plugin's message must not forge lines in the host's text log.
        let message =
            crate::text::escape_control(&truncate(message, self.limits.log_message_bytes))
                .into_owned();
        let plugin = self.id.to_string();
        match level {
            Level::Debug => tracing::debug!(%plugin, "{message}"),
            Level::Info => tracing::info!(%plugin, "{message}"),
            Level::Warn => tracing::warn!(%plugin, "{message}"),
            Level::Error => tracing::error!(%plugin, "{message}"),
        }
        self.call.logs.push(LogRecord {
            level: level_name(level),
            message,
        });
        Ok(())
    }
}
