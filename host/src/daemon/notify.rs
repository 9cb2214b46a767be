//! The daemon's own notifications (the policy's `notifications`): each decision a
//! route takes goes to the route's channels (once per subject and rule within its
//! dedup window, or gathered into a digest), and every review goes to the security
//! route with a link to it. Each message is an action log entry (responder
//! `route:<name>` or `review`), staged in the commit of what caused it, so none is
//! lost or sent twice across a crash, and performed by the effects executor like a
//! responder's notification (Slack `chat.postMessage` or a webhook).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Daemon, DaemonError, now_ms};
use crate::ledger::{ActionEntry, ActionKey, Commit, DigestLine, ReviewKind};
use crate::pipeline::notify::{digest_message, line, ocsf_detection_finding, review_message};
use crate::pipeline::policy::{Policy, RouteFormat};
use crate::records::DecisionRecord;

/// Lines a digest shows (the rest are counted).
const DIGEST_LINES: usize = 50;
/// Digest lines the digest pass reads at once.
const DIGEST_SCAN: usize = 10_000;

/// Stages one tenant's notifications into a commit, then queues them once it is
/// applied.
pub(crate) struct Notifier<'a> {
    daemon: &'a Daemon,
    tenant: &'a str,
    policy: &'a Policy,
    /// Sends noted in this step: (route, subject, rule) → event time.
    sent: HashMap<(String, String, String), i64>,
    /// The action log's entry count, as this step leaves it.
    count: Option<u64>,
    keys: Vec<ActionKey>,
}

impl<'a> Notifier<'a> {
    /// A notifier for `tenant` under `policy`.
    pub(crate) fn new(daemon: &'a Daemon, tenant: &'a str, policy: &'a Policy) -> Self {
        Notifier {
            daemon,
            tenant,
            policy,
            sent: HashMap::new(),
            count: None,
            keys: Vec::new(),
        }
    }

    /// Stage a message to `channel` (from `responder`, about decision `decision_id`)
    /// into `commit`, within the action log quota.
    fn stage(
        &mut self,
        commit: &mut Commit,
        decision_id: &str,
        responder: &str,
        channel: &str,
        text: String,
        body: String,
    ) -> Result<(), DaemonError> {
        let count = match self.count {
            Some(n) => n,
            None => self.daemon.ledger.action_count(self.tenant)?,
        };
        let max = self.daemon.config.quota(self.tenant).max_action_log_entries;
        if count >= max {
            tracing::warn!(tenant = %self.tenant, max, "the action log is full: a notification is dropped");
            self.daemon
                .metrics
                .action(self.tenant, "notify", "action_log_full");
            return Ok(());
        }
        let key = ActionKey::new(self.tenant, decision_id, responder, "notify", channel);
        let now = now_ms();
        let entry = ActionEntry {
            decision_id: decision_id.to_owned(),
            responder: responder.to_owned(),
            action: "notify".into(),
            target: channel.to_owned(),
            status: "queued".into(),
            time_ms: now,
            queued_ms: now,
            text,
            body,
            ..ActionEntry::default()
        };
        commit.put_action(&key, &entry)?;
        self.count = Some(count + 1);
        commit.set_action_count(self.tenant, count + 1);
        self.daemon.metrics.action(self.tenant, "notify", "queued");
        self.keys.push(key);
        Ok(())
    }

    /// Stage what the routes send about decision `seq`, `d`.
    pub(crate) fn decision(
        &mut self,
        commit: &mut Commit,
        seq: u64,
        d: &DecisionRecord,
    ) -> Result<(), DaemonError> {
        let policy = self.policy;
        for route in policy.notifications.routes.iter().filter(|r| r.takes(d)) {
            if route.dedup_minutes > 0 {
                let id = (
                    route.name.clone(),
                    d.subject.clone(),
                    d.finding.rule.clone(),
                );
                let last = match self.sent.get(&id) {
                    Some(t) => Some(*t),
                    None => self.daemon.ledger.notified(
                        self.tenant,
                        &route.name,
                        &d.subject,
                        &d.finding.rule,
                    )?,
                };
                let window = route.dedup_minutes.saturating_mul(60_000);
                if last.is_some_and(|t| d.time_ms.saturating_sub(t) < window) {
                    continue;
                }
                commit.set_notified(self.tenant, &id.0, &id.1, &id.2, d.time_ms);
                self.sent.insert(id, d.time_ms);
            }
            let responder = format!("route:{}", route.name);
            if route.digest_seconds > 0 {
                let entry = DigestLine {
                    route: route.name.clone(),
                    time_ms: now_ms(),
                    line: line(d),
                };
                commit.add_digest_line(self.tenant, seq, &entry)?;
                continue;
            }
            let text = line(d);
            let body = match route.format {
                RouteFormat::Ocsf => ocsf_detection_finding(self.tenant, d).to_string(),
                RouteFormat::Text => String::new(),
            };
            for channel in &route.to {
                self.stage(
                    commit,
                    &d.id,
                    &responder,
                    channel,
                    text.clone(),
                    body.clone(),
                )?;
            }
        }
        Ok(())
    }

    /// Stage the security route's message about review `id` of decision `d`.
    pub(crate) fn review(
        &mut self,
        commit: &mut Commit,
        kind: ReviewKind,
        id: u64,
        d: &DecisionRecord,
    ) -> Result<(), DaemonError> {
        let Some(channel) = self.policy.notifications.security_channel(self.policy) else {
            tracing::warn!(tenant = %self.tenant, review = id, "no security route: a review is not announced");
            return Ok(());
        };
        let base = self
            .daemon
            .config
            .http
            .public_url
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/');
        let link = format!("{base}/v1/reviews/{id}");
        let text = review_message(kind.as_str(), id, d, &link);
        self.stage(commit, &d.id, "review", channel, text, String::new())
    }

    /// Queue what was staged, once its commit is applied.
    pub(crate) fn queue(self) {
        for key in self.keys {
            self.daemon.effects.push(self.tenant, key);
        }
    }
}

/// Send every digest whose period has passed: its lines in one message to each of the
/// route's channels, the lines removed in the same commit. A route no longer in the
/// policy drops its lines.
pub(crate) fn send_digests(daemon: &Daemon) -> Result<usize, DaemonError> {
    let lines = daemon.ledger.digest_lines(DIGEST_SCAN)?;
    // (tenant, route) → its lines with their keys, in key order.
    type Group = ((String, String), Vec<(Vec<u8>, DigestLine)>);
    let mut groups: Vec<Group> = Vec::new();
    for (tenant, key, l) in lines {
        let id = (tenant, l.route.clone());
        match groups.last_mut() {
            Some((g, list)) if *g == id => list.push((key, l)),
            _ => groups.push((id, vec![(key, l)])),
        }
    }
    let mut sent = 0;
    for ((tenant, route_name), list) in groups {
        let policy = daemon.policy(&tenant)?;
        let route = policy
            .notifications
            .routes
            .iter()
            .find(|r| r.name == route_name && r.digest_seconds > 0);
        let first = list.first().map_or(0, |(_, l)| l.time_ms);
        if let Some(route) = route {
            let due = first.saturating_add((route.digest_seconds as i64).saturating_mul(1000));
            if now_ms() < due {
                continue;
            }
        }
        let mut commit = Commit::default();
        let mut notifier = Notifier::new(daemon, &tenant, &policy);
        if let Some(route) = route {
            let shown: Vec<String> = list
                .iter()
                .take(DIGEST_LINES)
                .map(|(_, l)| l.line.clone())
                .collect();
            let text = digest_message(&route.name, list.len() as u64, &shown);
            let id = format!("digest/{}/{first}", route.name);
            let responder = format!("route:{}", route.name);
            for channel in &route.to {
                notifier.stage(
                    &mut commit,
                    &id,
                    &responder,
                    channel,
                    text.clone(),
                    String::new(),
                )?;
            }
            sent += 1;
        }
        for (key, _) in &list {
            commit.remove_digest_line(key);
        }
        daemon.ledger.commit(commit)?;
        daemon.ledger.flush()?;
        notifier.queue();
    }
    Ok(sent)
}

/// Run [`send_digests`] every second until `stop` is set.
pub(crate) fn run(daemon: &Daemon, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(250));
        if let Err(e) = send_digests(daemon) {
            tracing::error!("notification digests: {e}");
        }
    }
}
