//! The event pipeline's stages, in pipeline order. Each is a plain unit the three
//! drivers share: the daemon's workers (`daemon/worker.rs`, committing each stage's
//! output to disk), `aer replay` ([`crate::replay`]) and `aer test`
//! ([`crate::runner`]).
//!
//! 1. [`gather`]: which events one detector call gets (one batching rule).
//! 2. [`detect`]: call a detector on them; its findings at their positions, its state
//!    writes.
//! 3. [`decide`]: the decision engine under the tenant's [`policy`], in one order.
//! 4. [`respond`]: the decision a responder gets and what becomes of its effects.

pub mod decide;
pub mod detect;
pub mod faults;
pub mod gather;
pub mod notify;
pub mod policy;
pub mod respond;
pub mod suppress;
