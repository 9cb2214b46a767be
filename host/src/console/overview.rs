//! The overview: events accepted, and findings and decisions per outcome, over the
//! last hour (per minute) or day (per 15 minutes) as charts drawn on the server (SVG),
//! the open reviews, the
//! plugins' health and the Slack connection; it refreshes itself as records are
//! committed. Also the console's live stream.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::guard::Analyst;
use super::view::{Chrome, when};
use super::{PageError, blocking, render};
use crate::daemon::Daemon;
use crate::daemon::plugins::PluginStatus;
use crate::plugin::PluginKind;
use crate::records::Outcome;

/// The series the chart stacks, bottom to top: (style class, label).
const SERIES: [(&str, &str); 5] = [
    ("respond", "respond"),
    ("dry-run", "dry-run"),
    ("escalate", "escalate"),
    ("pending", "pending"),
    ("suppressed", "suppressed"),
];

/// Records looked at per kind for the chart (the newest first).
const MAX_CHARTED: usize = crate::ledger::MAX_SCANNED;

#[derive(Debug, Default, Deserialize)]
pub(super) struct Window {
    /// `hour` (default) or `day`.
    #[serde(default)]
    window: String,
}

/// A chart window: its length and bucket, in ms.
#[derive(Clone, Copy)]
struct Span {
    name: &'static str,
    length_ms: i64,
    bucket_ms: i64,
}

const HOUR: Span = Span {
    name: "hour",
    length_ms: 3_600_000,
    bucket_ms: 60_000,
};
const DAY: Span = Span {
    name: "day",
    length_ms: 86_400_000,
    bucket_ms: 900_000,
};

/// One stacked segment of a bar.
struct Segment {
    class: &'static str,
    y: f64,
    height: f64,
    title: String,
}

/// One bar: a bucket's decisions by outcome, and beside it its findings.
struct Bar {
    x: f64,
    width: f64,
    segments: Vec<Segment>,
}

/// The chart, in SVG user units.
struct Chart {
    width: f64,
    height: f64,
    bars: Vec<Bar>,
    /// Findings per bucket, as a polyline's points.
    findings_points: String,
    /// The largest count (the top of the y axis).
    top: u64,
    /// Axis labels: (x, text).
    ticks: Vec<(f64, String)>,
    /// Whether older records were not looked at (the counts are lower bounds).
    truncated: bool,
}

/// Plugin health, one row.
struct PluginRow {
    name: String,
    kind: &'static str,
    version: String,
    status: &'static str,
    faults: u64,
    last_fault: String,
    lag: String,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    window: &'static str,
    /// Events accepted in the window (counted since the daemon started).
    events: u64,
    /// Events accepted per bucket, as bars.
    events_chart: Chart,
    findings: u64,
    /// Decisions in the window per series, in [`SERIES`] order: (class, label, count).
    outcomes: Vec<(&'static str, &'static str, u64)>,
    open_reviews: usize,
    chart: Chart,
    plugins: Vec<PluginRow>,
    /// The Slack connection: (status, lag), if one is set.
    slack: Option<(String, String)>,
}

/// What the chart reads of a finding (the rest of the record is skipped unparsed).
#[derive(Deserialize)]
struct FindingStamp {
    #[serde(default)]
    committed_ms: i64,
}

/// What the chart reads of a decision.
#[derive(Deserialize)]
struct DecisionStamp {
    #[serde(default)]
    finding_committed_ms: i64,
    outcome: Outcome,
}

fn series_of(o: Outcome) -> usize {
    match o {
        Outcome::Respond => 0,
        Outcome::DryRun => 1,
        Outcome::Escalate => 2,
        Outcome::Pending => 3,
        Outcome::Suppressed => 4,
    }
}

/// Count what was committed in the window ending `now` by bucket: findings, and
/// decisions per series.
fn chart(
    daemon: &Daemon,
    tenant: &str,
    span: Span,
    now: i64,
) -> Result<(Chart, u64, [u64; 5]), PageError> {
    let from = now - span.length_ms;
    let buckets = usize::try_from(span.length_ms / span.bucket_ms).unwrap_or(1);
    let bucket = |t: i64| -> Option<usize> {
        (t >= from && t < now).then(|| usize::try_from((t - from) / span.bucket_ms).unwrap_or(0))
    };
    let mut findings = vec![0u64; buckets];
    let mut decisions = vec![[0u64; 5]; buckets];
    let found = daemon
        .ledger
        .findings_back(tenant, None, MAX_CHARTED, |f: &FindingStamp| {
            bucket(f.committed_ms).is_some()
        })
        .map_err(PageError::internal)?;
    for f in &found.items {
        if let Some(b) = bucket(f.committed_ms) {
            findings[b] += 1;
        }
    }
    let decided = daemon
        .ledger
        .decisions_back(tenant, None, MAX_CHARTED, |d: &DecisionStamp| {
            bucket(d.finding_committed_ms).is_some()
        })
        .map_err(PageError::internal)?;
    for d in &decided.items {
        if let Some(b) = bucket(d.finding_committed_ms) {
            decisions[b][series_of(d.outcome)] += 1;
        }
    }
    let top = decisions
        .iter()
        .map(|d| d.iter().sum::<u64>())
        .chain(findings.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let (width, height, base) = (960.0, 220.0, 200.0);
    let slot = width / buckets as f64;
    let scale = |n: u64| (n as f64 / top as f64) * (base - 10.0);
    let mut bars = Vec::with_capacity(buckets);
    for (i, counts) in decisions.iter().enumerate() {
        let x = i as f64 * slot;
        let mut y = base;
        let mut segments = Vec::new();
        for (s, &n) in counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let h = scale(n);
            y -= h;
            segments.push(Segment {
                class: SERIES[s].0,
                y,
                height: h,
                title: format!(
                    "{}: {n} {}",
                    when(from + i as i64 * span.bucket_ms),
                    SERIES[s].1
                ),
            });
        }
        bars.push(Bar {
            x: x + slot * 0.15,
            width: slot * 0.7,
            segments,
        });
    }
    let findings_points = findings
        .iter()
        .enumerate()
        .map(|(i, &n)| format!("{:.1},{:.1}", (i as f64 + 0.5) * slot, base - scale(n)))
        .collect::<Vec<_>>()
        .join(" ");
    let ticks = ticks(from, span, width);
    let mut totals = [0u64; 5];
    for d in &decisions {
        for (t, n) in totals.iter_mut().zip(d) {
            *t += n;
        }
    }
    let truncated = found.next.is_some() || decided.next.is_some();
    Ok((
        Chart {
            width,
            height,
            bars,
            findings_points,
            top,
            ticks,
            truncated,
        },
        findings.iter().sum(),
        totals,
    ))
}

/// Events accepted per bucket of the window ending `now`, as bars of their own scale;
/// and their sum.
fn events_chart(daemon: &Daemon, tenant: &str, span: Span, now: i64) -> (Chart, u64) {
    let from = now - span.length_ms;
    let buckets = usize::try_from(span.length_ms / span.bucket_ms).unwrap_or(1);
    let counts = daemon
        .activity
        .buckets(tenant, from, span.bucket_ms, buckets);
    let top = counts.iter().copied().max().unwrap_or(0).max(1);
    let (width, height, base) = (960.0, 120.0, 100.0);
    let slot = width / buckets as f64;
    let bars = counts
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let h = (n as f64 / top as f64) * (base - 10.0);
            Bar {
                x: i as f64 * slot + slot * 0.15,
                width: slot * 0.7,
                segments: vec![Segment {
                    class: "events",
                    y: base - h,
                    height: h,
                    title: format!("{}: {n} events", when(from + i as i64 * span.bucket_ms)),
                }],
            }
        })
        .collect();
    let chart = Chart {
        width,
        height,
        bars,
        findings_points: String::new(),
        top,
        ticks: ticks(from, span, width),
        truncated: false,
    };
    (chart, counts.iter().sum())
}

/// Axis labels for a window from `from`: (x, `HH:MM`).
fn ticks(from: i64, span: Span, width: f64) -> Vec<(f64, String)> {
    (0..=4)
        .map(|k| {
            let t = from + span.length_ms * k / 4;
            let label = chrono::DateTime::from_timestamp_millis(t)
                .map(|t| t.format("%H:%M").to_string())
                .unwrap_or_default();
            (width * k as f64 / 4.0, label)
        })
        .collect()
}

fn plugin_rows(daemon: &Daemon, tenant: &str) -> Result<Vec<PluginRow>, PageError> {
    let next = daemon.inbox.next_seq(tenant).map_err(PageError::internal)?;
    daemon
        .plugins(tenant)
        .map_err(PageError::internal)?
        .into_iter()
        .map(|p| {
            let lag = if p.kind == PluginKind::Detector {
                let cursor = daemon
                    .detector_cursor(tenant, &p.name)
                    .map_err(PageError::internal)?;
                next.saturating_sub(cursor).to_string()
            } else {
                String::new()
            };
            Ok(PluginRow {
                kind: match p.kind {
                    PluginKind::Detector => "detector",
                    PluginKind::Responder => "responder",
                },
                version: p.active.clone(),
                status: match p.status {
                    PluginStatus::Enabled => "enabled",
                    PluginStatus::Disabled => "disabled",
                    PluginStatus::Quarantined => "quarantined",
                },
                faults: p.faults,
                last_fault: p.last_fault.clone().unwrap_or_default(),
                lag,
                name: p.name,
            })
        })
        .collect()
}

/// `GET /console/overview`.
pub(super) async fn page(
    Analyst { tenant, session }: Analyst,
    State(daemon): State<Arc<Daemon>>,
    Query(w): Query<Window>,
) -> Result<Response, PageError> {
    let span = match w.window.as_str() {
        "" | "hour" => HOUR,
        "day" => DAY,
        other => return Err(PageError::bad_request(format!("no window {other:?}"))),
    };
    blocking(move || {
        let now = crate::daemon::now_ms();
        let (chart, findings, totals) = chart(&daemon, &tenant, span, now)?;
        let (events_chart, events) = events_chart(&daemon, &tenant, span, now);
        let open_reviews = super::reviews::open_reviews(&daemon, &tenant)?;
        let slack = daemon
            .source(&tenant)
            .map_err(PageError::internal)?
            .map(|s| {
                let status = s["status"]["state"]
                    .as_str()
                    .unwrap_or("waiting for its first call")
                    .to_owned();
                let lag = s["lag_seconds"]
                    .as_i64()
                    .map_or_else(|| "not read yet".to_owned(), |l| format!("{l} s behind"));
                (status, lag)
            });
        Ok(render(&OverviewPage {
            chrome: Chrome::new(&tenant, &session, "/console/overview"),
            window: span.name,
            events,
            events_chart,
            findings,
            outcomes: SERIES
                .iter()
                .zip(totals)
                .map(|(&(class, label), n)| (class, label, n))
                .collect(),
            open_reviews,
            chart,
            plugins: plugin_rows(&daemon, &tenant)?,
            slack,
        }))
    })
    .await
}

/// `GET /console/stream`: the tenant's live stream (the API's `/v1/stream`), for the
/// pages' refreshes.
pub(super) async fn stream(
    Analyst { tenant, .. }: Analyst,
    State(daemon): State<Arc<Daemon>>,
) -> Response {
    crate::web::live(&daemon, tenant).into_response()
}
