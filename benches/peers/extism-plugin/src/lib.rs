//! The detector as an Extism plugin: `detect` takes a JSON array of whole events (the
//! downloads the host routed to it), reads the fields it needs, and returns the
//! findings, each user's window kept in Extism's plugin variables.

use extism_pdk::{FnResult, plugin_fn, var};
use peers_common::{Entry, Hit};

#[plugin_fn]
pub fn detect(input: String) -> FnResult<String> {
    let entries: Vec<Entry<'_>> = serde_json::from_str(&input)?;
    let mut hits: Vec<Hit> = Vec::new();
    for d in entries.into_iter().filter_map(Entry::download) {
        let d = &d;
        let mut failed = None;
        let hit = peers_common::judge(
            d,
            |k| var::get::<Vec<u8>>(k).ok().flatten(),
            |k, v| {
                if let Err(e) = var::set(k, v) {
                    failed = Some(e);
                }
            },
        );
        if let Some(e) = failed {
            return Err(e.into());
        }
        hits.extend(hit);
    }
    Ok(serde_json::to_string(&hits)?)
}
