//! Every bound put on a guest, with the defaults from the design's sandbox policy.

use serde::{Deserialize, Serialize};

/// Per-plugin resource limits, applied to every call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Deadline of one call (a batch, a tick, a response), in milliseconds of the
    /// plugin's own running: time the call waits in the host (effects over the
    /// network, the state store) extends it, up to `host_wait_ms`.
    pub deadline_ms: u64,
    /// Most time one call may wait in the host on top of its deadline, in milliseconds
    /// (a rate-limited Slack API answers after its `Retry-After`).
    pub host_wait_ms: u64,
    /// Largest linear memory a plugin may grow to, in bytes.
    pub memory_bytes: usize,
    /// Largest wasm stack, in bytes.
    pub stack_bytes: usize,
    /// Largest accepted component file, in bytes.
    pub component_bytes: usize,
    /// Most findings one call may return.
    pub findings_per_call: usize,
    /// Longest string in a finding (summary, attribute, evidence id), in bytes.
    pub string_bytes: usize,
    /// Most bytes copied from guest to host by one call (arguments of host calls and
    /// results), a wasmtime hostcall-fuel budget.
    pub copy_bytes_per_call: usize,
    /// Most bytes the host copies into a guest by one call's state reads (`get`,
    /// `get-many`, `scan`, baselines loaded), counted as each value is read: a call
    /// past it traps, so re-reading one large value cannot multiply host memory.
    pub read_bytes_per_call: u64,
    /// Most effects of each kind (`terminate-sessions`, `notify`) one decision may
    /// lead to, per responder; more are refused and fault the responder.
    pub effects_per_decision: u32,
    /// Longest state key, in bytes.
    pub state_key_bytes: u32,
    /// Largest state value, in bytes.
    pub state_value_bytes: u32,
    /// Most state operations in one call.
    pub state_ops_per_call: u32,
    /// Most state bytes written in one call.
    pub state_write_bytes_per_call: u64,
    /// Most log messages kept from one call (the rest are counted and dropped).
    pub log_messages_per_call: u32,
    /// Longest log message kept, in bytes (longer ones are cut).
    pub log_message_bytes: usize,
    /// Bytes of guest stdout/stderr kept per instance.
    pub stdio_bytes: usize,
    /// Most function bodies in one component (all its modules), checked before compiling.
    pub code_functions: u32,
    /// Largest function body, in bytes, checked before compiling.
    pub code_function_bytes: u64,
    /// Most locals one function may declare, checked before compiling.
    pub code_locals: u64,
    /// Longest a compilation may take before the upload is refused, in milliseconds.
    pub compile_timeout_ms: u64,
    /// Most compilations running at once (a timed-out one keeps its slot until it ends).
    pub compile_concurrency: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline_ms: 100,
            host_wait_ms: 60_000,
            memory_bytes: 64 << 20,
            stack_bytes: 512 << 10,
            component_bytes: 16 << 20,
            findings_per_call: 1_000,
            string_bytes: 16 << 10,
            copy_bytes_per_call: 32 << 20,
            read_bytes_per_call: 64 << 20,
            effects_per_decision: 4,
            state_key_bytes: 1_024,
            state_value_bytes: 1 << 20,
            state_ops_per_call: 1_000_000,
            state_write_bytes_per_call: 64 << 20,
            log_messages_per_call: 100,
            log_message_bytes: 4 << 10,
            stdio_bytes: 64 << 10,
            code_functions: 20_000,
            code_function_bytes: 1 << 20,
            code_locals: 50_000,
            compile_timeout_ms: 20_000,
            compile_concurrency: 2,
        }
    }
}
