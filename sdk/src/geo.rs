//! Where an address is and who announces it, from the operator's geolocation databases
//! (the host's `geo` service, `aer:plugin@0.1.2`; `ctx.geo(ip)`).
//!
//! Every field may be unknown: without a database (the default, and in `aer test`
//! unless given `--geo`), for a private address, or for one the database lacks. A
//! detector should then judge nothing rather than guess.

pub use aer_wire::geo::{Coordinates, Network, Place};
