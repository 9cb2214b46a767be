//! The detector natively: read the file, route each line by its action, read the
//! downloads' fields and judge them with the state in a `HashMap`. `peers-native EVENTS.ndjson`: findings as NDJSON on
//! stdout, the summary on stderr.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::time::Instant;

fn main() -> std::io::Result<()> {
    let path = std::env::args()
        .nth(1)
        .expect("usage: peers-native EVENTS.ndjson");
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut state: HashMap<String, Vec<u8>> = HashMap::new();
    let (mut events, mut delivered, mut inside) = (0u64, 0u64, 0.0);
    let mut hits = Vec::new();
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 {
        events += 1;
        let event = line.trim_end();
        if peers_common::subscribed(event)
            && let Some(d) = peers_common::download(event)
        {
            delivered += 1;
            let t = Instant::now();
            let window = state.get(&d.user).cloned();
            let hit = peers_common::judge(
                &d,
                |_| window,
                |k, v| {
                    state.insert(k.to_owned(), v);
                },
            );
            inside += t.elapsed().as_secs_f64();
            hits.extend(hit);
        }
        line.clear();
    }
    peers_common::report(&hits, events, delivered, inside)?;
    Ok(())
}
