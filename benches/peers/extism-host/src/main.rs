//! A small Extism host: read the file, route each line by its action, and hand the
//! downloads, whole, to the Extism plugin in JSON batches of 256 (its state in
//! Extism's plugin variables).
//! `peers-extism-host PLUGIN.wasm EVENTS.ndjson`: findings as NDJSON on stdout, the
//! summary on stderr.

use std::io::{BufRead, BufReader};
use std::time::Instant;

use peers_common::Hit;

const BATCH: usize = 256;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(wasm), Some(path)) = (args.next(), args.next()) else {
        return Err("usage: peers-extism-host PLUGIN.wasm EVENTS.ndjson".into());
    };
    let manifest = extism::Manifest::new([extism::Wasm::file(wasm)]);
    let mut plugin = extism::Plugin::new(&manifest, [], false)?;
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let (mut events, mut delivered, mut inside) = (0u64, 0u64, 0.0);
    let mut hits: Vec<Hit> = Vec::new();
    // The batch: a JSON array of whole events, as they were in the file.
    let mut batch = String::from("[");
    let mut in_batch = 0;
    let mut call =
        |batch: &mut String, inside: &mut f64| -> Result<(), Box<dyn std::error::Error>> {
            batch.push(']');
            let t = Instant::now();
            let output = plugin.call::<&str, &str>("detect", batch)?;
            *inside += t.elapsed().as_secs_f64();
            hits.extend(serde_json::from_str::<Vec<Hit>>(output)?);
            batch.clear();
            batch.push('[');
            Ok(())
        };
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 {
        events += 1;
        let event = line.trim_end();
        if peers_common::subscribed(event) {
            delivered += 1;
            if in_batch > 0 {
                batch.push(',');
            }
            batch.push_str(event);
            in_batch += 1;
            if in_batch == BATCH {
                call(&mut batch, &mut inside)?;
                in_batch = 0;
            }
        }
        line.clear();
    }
    if in_batch > 0 {
        call(&mut batch, &mut inside)?;
    }
    peers_common::report(&hits, events, delivered, inside)?;
    Ok(())
}
