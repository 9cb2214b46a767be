//! The event pipeline's stages. So far: the [`decision`] engine, which the local
//! replay and the daemon share.

pub mod decision;
