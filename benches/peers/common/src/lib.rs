//! What every contender of the peer benchmark shares: the detector's rule (a user's
//! downloads within 10 minutes reaching 50 is a finding, once per crossing), written
//! against a key-value state so each framework keeps it in its own state facility, and
//! the typed reading of a Slack audit entry the hosts outside AER use: each host reads
//! every event's action to route it, and hands the whole events a plugin subscribes to
//! (as AER does), which the plugin reads itself.

use serde::{Deserialize, Serialize};

/// The window, in milliseconds.
pub const WINDOW_MS: i64 = 10 * 60_000;
/// Downloads in the window that make a finding.
pub const THRESHOLD: usize = 50;
/// The action the detector watches.
pub const ACTION: &str = "file_downloaded";

/// A download, as the detector sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Download {
    /// The event's id.
    pub id: String,
    /// Who downloaded.
    pub user: String,
    /// When, in milliseconds since the epoch.
    pub time_ms: i64,
}

/// A finding: the user and the download that reached the threshold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Hit {
    /// The user.
    pub subject: String,
    /// The download's event id.
    pub evidence: String,
}

/// Judge one download; `get` and `set` reach the user's window in the framework's
/// state (its times, little-endian `i64`s).
pub fn judge(
    d: &Download,
    get: impl FnOnce(&str) -> Option<Vec<u8>>,
    set: impl FnOnce(&str, Vec<u8>),
) -> Option<Hit> {
    let mut times: Vec<i64> = get(&d.user)
        .unwrap_or_default()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
        .filter(|&t| t > d.time_ms - WINDOW_MS)
        .collect();
    times.push(d.time_ms);
    let hit = (times.len() == THRESHOLD).then(|| Hit {
        subject: d.user.clone(),
        evidence: d.id.clone(),
    });
    set(
        &d.user,
        times.iter().flat_map(|t| t.to_le_bytes()).collect(),
    );
    hit
}

/// The fields of a Slack audit entry the hosts outside AER read (a typed parse).
#[derive(Deserialize)]
pub struct Entry<'a> {
    #[serde(borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    date_create: Option<i64>,
    #[serde(borrow)]
    action: Option<std::borrow::Cow<'a, str>>,
    actor: Option<Actor<'a>>,
}

#[derive(Deserialize)]
struct Actor<'a> {
    #[serde(borrow)]
    user: Option<User<'a>>,
}

#[derive(Deserialize)]
struct User<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
}

/// Just the action of an entry: what a host reads of every event to route it (as AER
/// routes by subscription).
#[derive(Deserialize)]
struct Routed<'a> {
    #[serde(borrow)]
    action: Option<std::borrow::Cow<'a, str>>,
}

/// Whether an NDJSON line is an event the detector subscribes to.
pub fn subscribed(line: &str) -> bool {
    serde_json::from_str::<Routed<'_>>(line).is_ok_and(|r| r.action.as_deref() == Some(ACTION))
}

impl Entry<'_> {
    /// The download this entry is, if it is one.
    pub fn download(self) -> Option<Download> {
        if self.action.as_deref() != Some(ACTION) {
            return None;
        }
        Some(Download {
            id: self.id?.into_owned(),
            user: self.actor?.user?.id.into_owned(),
            time_ms: self.date_create?.checked_mul(1000)?,
        })
    }
}

/// The download in one event's JSON, if it is one.
pub fn download(json: &str) -> Option<Download> {
    serde_json::from_str::<Entry<'_>>(json).ok()?.download()
}

/// What a contender ends with: its findings as NDJSON on stdout, and on stderr the
/// line the table is built from.
pub fn report(
    hits: &[Hit],
    events: u64,
    delivered: u64,
    plugin_seconds: f64,
) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    for h in hits {
        writeln!(out, "{}", serde_json::to_string(h)?)?;
    }
    eprintln!(
        "peers: events {events} delivered {delivered} findings {} plugin_us_per_event {:.3}",
        hits.len(),
        plugin_seconds * 1e6 / delivered.max(1) as f64
    );
    Ok(())
}
