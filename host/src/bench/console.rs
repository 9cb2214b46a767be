//! The console's pages over HTTP with a tenant of 10,000 findings and 10,000
//! decisions: the time from a signed-in request to the last byte of the page, the
//! median of repeated requests. The records are written straight into the ledger (this
//! measures the pages, not the pipeline).

use std::time::Instant;

use super::Figure;
use crate::config::ServeConfig;
use crate::ledger::{Commit, StoredDecision};
use crate::loopback::Loopback;
use crate::pipeline::detect::Positioned;
use crate::records::{DecisionRecord, FindingRecord, Outcome};

/// Findings (and decisions) the tenant has.
const RECORDS: u64 = 10_000;
/// Requests per page.
const REQUESTS: usize = 15;
/// The goal for a page, in ms.
const GOAL_MS: f64 = 200.0;

fn finding(i: u64, t0: i64) -> FindingRecord {
    FindingRecord {
        rule: ["excessive-downloads", "risky-app", "new-network-origin"][(i % 3) as usize].into(),
        subject: format!("W{:06}", i % 500),
        score: 0.5 + (i % 50) as f32 / 100.0,
        severity: ["low", "medium", "high", "critical"][(i % 4) as usize].into(),
        summary: format!(
            "W{:06} downloaded {} items in 10 min (threshold 50) from 198.51.100.{} <b>not</b> markup",
            i % 500,
            50 + i % 40,
            i % 250
        ),
        evidence: vec![format!("ev-{i}")],
        attributes: [
            ("count", "57"),
            ("window_minutes", "10"),
            ("ip", "198.51.100.7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        time_ms: t0 + i as i64 * 60_000,
        plugin: "excessive-downloads".into(),
        plugin_version: "0.1.0".into(),
    }
}

/// Write `RECORDS` findings and a decision for each into `tenant`'s ledger.
fn seed(service: &Loopback, tenant: &str) -> anyhow::Result<()> {
    let ledger = &service.daemon.ledger;
    let now = crate::daemon::now_ms();
    let t0 = now - RECORDS as i64 * 60_000;
    let mut commit = Commit::default();
    let findings = (0..RECORDS)
        .map(|i| Positioned {
            finding: finding(i, t0),
            position: i,
        })
        .collect();
    commit.append_findings(ledger, tenant, findings, now)?;
    ledger.commit(commit)?;
    let outcomes = [
        Outcome::Suppressed,
        Outcome::Respond,
        Outcome::Pending,
        Outcome::DryRun,
    ];
    let mut commit = Commit::default();
    for i in 0..RECORDS {
        let f = finding(i, t0);
        commit.put_decision(
            tenant,
            &StoredDecision {
                seq: i,
                finding_committed_ms: now,
                decision: DecisionRecord {
                    id: format!("{i:024x}"),
                    time_ms: f.time_ms,
                    subject: f.subject.clone(),
                    outcome: outcomes[(i % 4) as usize],
                    reason: format!("respond: {} (score {:.2})", f.rule, f.score),
                    finding: f,
                    corroborating_rules: Vec::new(),
                },
            },
        )?;
    }
    ledger.commit(commit)?;
    ledger.flush()?;
    Ok(())
}

/// The median time of `REQUESTS` requests for `path`, in ms, and the page's bytes.
fn time(agent: &ureq::Agent, base: &str, cookie: &str, path: &str) -> anyhow::Result<(f64, usize)> {
    let mut times = Vec::with_capacity(REQUESTS);
    let mut bytes = 0;
    for _ in 0..REQUESTS {
        let started = Instant::now();
        let mut r = agent
            .get(format!("{base}{path}"))
            .header("Cookie", cookie)
            .call()?;
        anyhow::ensure!(r.status() == 200, "{path}: HTTP {}", r.status());
        bytes = r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()?
            .len();
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], bytes))
}

/// Measure the console's pages and report them.
pub fn measure_console(push: &mut dyn FnMut(Figure)) -> anyhow::Result<()> {
    let service = Loopback::start(ServeConfig::default(), false)?;
    let api = service.tenant("acme")?;
    seed(&service, "acme")?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let signed = agent
        .post(format!("{}/console/sign-in", service.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!("token={}&name=bench", api.token()).as_bytes())?;
    let cookie = signed
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("the console did not sign the bench in"))?;
    for (what, path, goal) in [
        (
            "findings, 1,000 of 10,000 on one page",
            "/console/findings?size=1000",
            true,
        ),
        (
            "findings, the first 100 of 10,000",
            "/console/findings",
            true,
        ),
        (
            "findings, a filter that looks through all 10,000 and matches none",
            "/console/findings?subject=nobody&size=1000",
            true,
        ),
        (
            "findings, a triage filter that looks up all 10,000",
            "/console/findings?triage=closed&size=1000",
            true,
        ),
        (
            "decisions, 1,000 of 10,000 on one page",
            "/console/decisions?size=1000",
            true,
        ),
        (
            "overview, charting the last day of 10,000 of each",
            "/console/overview?window=day",
            true,
        ),
        (
            "the oldest decision's case (its finding looked up)",
            "/console/decisions/0",
            false,
        ),
    ] {
        let (ms, bytes) = time(&agent, &service.base, &cookie, path)?;
        let name = format!(
            "console page (ms, median of {REQUESTS}): {what}; {} KiB",
            bytes / 1024
        );
        push(if goal {
            Figure {
                name,
                value: format!("{ms:.1}"),
                goal: format!("<= {GOAL_MS:.0}"),
                pass: Some(ms <= GOAL_MS),
            }
        } else {
            Figure::info(name, format!("{ms:.1}"))
        });
    }
    service.stop()?;
    Ok(())
}
