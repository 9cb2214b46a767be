//! Excessive downloads: a user who downloads or exports far more than usual, judged
//! with the context of the downloads. See README.md for the rules and configuration.
//!
//! Three rules: a burst within a sliding window (`threshold`); an hour far above the
//! user's own hourly norm (`baseline`), whose bar is `baseline.usual_factor` times higher
//! for downloads from a network and device the user logged in from on an earlier day
//! (a busy hour at the usual desk is not an exfiltration; the same hour from a new
//! laptop or network is judged at the plain bar); and a day far above the user's own
//! daily norm (`daily`), which a slow exfiltration spread over a working day cannot
//! stay under, whatever its context.

use std::collections::BTreeMap;

use aer_sdk::prelude::*;
use aer_sdk::schemars::{self, JsonSchema};
use aer_sdk::signals::{agent_family, network};
use serde::{Deserialize, Serialize};

const DEFAULT_ACTIONS: [&str; 6] = [
    "file_downloaded",
    "canvas_downloaded",
    "list_downloaded",
    "manual_export_started",
    "scheduled_export_started",
    "channels_export_started",
];

/// Configuration, from JSON.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Items within the window that make a finding.
    #[schemars(range(min = 1))]
    pub threshold: u64,
    /// Width of the sliding window in minutes.
    #[schemars(range(min = 1))]
    pub window_minutes: i64,
    /// Actions that count.
    pub actions: Vec<String>,
    /// How many downloads one export action counts as.
    #[schemars(range(min = 1))]
    pub export_weight: u64,
    /// Also flag an hour far above the user's own hourly norm (`null` turns it off).
    pub baseline: Option<BaselineConfig>,
    /// Also flag a day far above the user's own daily norm (`null` turns it off).
    pub daily: Option<DailyConfig>,
    /// Logins that teach the user's usual contexts (network and device).
    pub login_actions: Vec<String>,
    /// Days a login context is remembered after it was last seen.
    #[schemars(range(min = 1, max = 3650))]
    pub context_days: i64,
    /// Count downloads an app made on the user's grant (`context.app`) as the user's;
    /// by default they are the app's, which `risky-app` judges.
    pub count_app_downloads: bool,
}

/// "A day unusual for this user": the day's total exceeds the user's daily mean plus
/// `k_sigma` standard deviations, its biggest day so far, and at least `floor`, once
/// `min_days` of history exist. History covers `days` days.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DailyConfig {
    /// Standard deviations above the daily mean.
    #[schemars(range(min = 0))]
    pub k_sigma: f64,
    /// Absolute minimum daily total worth a finding.
    #[schemars(range(min = 0))]
    pub floor: f64,
    /// Days of history needed before the daily norm is trusted.
    #[schemars(range(min = 1))]
    pub min_days: u32,
    /// Days of history kept.
    #[schemars(range(min = 1, max = 365))]
    pub days: u32,
}

impl Default for DailyConfig {
    fn default() -> Self {
        DailyConfig {
            k_sigma: 4.0,
            floor: 150.0,
            min_days: 5,
            days: 30,
        }
    }
}

/// "Unusual for this user": the hour's total exceeds the user's hourly mean plus
/// `k_sigma` standard deviations, and at least `floor`, once `min_hours` of history
/// exist. History covers `days` days.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// Standard deviations above the mean.
    #[schemars(range(min = 0))]
    pub k_sigma: f64,
    /// Absolute minimum hourly total worth a finding.
    #[schemars(range(min = 0))]
    pub floor: f64,
    /// Hours of history needed before the baseline is trusted.
    #[schemars(range(min = 1))]
    pub min_hours: u32,
    /// Days of history kept.
    #[schemars(range(min = 1))]
    pub days: u32,
    /// How many times higher the bar is for downloads from a usual context (a network
    /// and device the user logged in from on an earlier day).
    #[schemars(range(min = 1))]
    pub usual_factor: f64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            k_sigma: 6.0,
            floor: 30.0,
            min_hours: 24,
            days: 14,
            usual_factor: 2.5,
        }
    }
}

/// Contexts a user logged in from: `network|device` to (first seen, last seen).
type Contexts = BTreeMap<String, (i64, i64)>;

/// Contexts remembered per user (the least recently seen goes first).
const MAX_CONTEXTS: usize = 16;

const DAY_MS: i64 = 86_400_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            threshold: 50,
            window_minutes: 10,
            actions: DEFAULT_ACTIONS.iter().map(|s| s.to_string()).collect(),
            export_weight: 10,
            baseline: Some(BaselineConfig::default()),
            daily: Some(DailyConfig::default()),
            login_actions: vec!["user_login".to_owned()],
            context_days: 90,
            count_app_downloads: false,
        }
    }
}

/// The detector.
#[derive(Default)]
pub struct ExcessiveDownloads {
    config: Config,
}

impl Detector for ExcessiveDownloads {
    fn info(&self, base: PluginInfo) -> PluginInfo {
        base.actions(
            self.config
                .actions
                .iter()
                .chain(&self.config.login_actions)
                .cloned(),
        )
        .config_schema_of::<Config>()
    }

    fn configure(&mut self, config: &str) -> Result<()> {
        let c: Config = parse_config(config)?;
        if c.threshold == 0 {
            return Err("invalid configuration: threshold must be at least 1".into());
        }
        if c.window_minutes < 1 {
            return Err("invalid configuration: window_minutes must be at least 1".into());
        }
        if c.baseline
            .as_ref()
            .is_some_and(|b| !(b.usual_factor.is_finite() && b.usual_factor >= 1.0))
        {
            return Err("invalid configuration: baseline.usual_factor must be at least 1".into());
        }
        if c.daily.as_ref().is_some_and(|d| {
            !(d.k_sigma.is_finite() && d.k_sigma >= 0.0 && d.floor.is_finite() && d.floor >= 0.0)
                || d.min_days == 0
                || !(1..=365).contains(&d.days)
        }) {
            return Err(
                "invalid configuration: daily needs k_sigma and floor of at least 0, min_days of at least 1 and days from 1 to 365"
                    .into(),
            );
        }
        if !(1..=3650).contains(&c.context_days) {
            return Err("invalid configuration: context_days must be from 1 to 3650".into());
        }
        self.config = c;
        Ok(())
    }

    fn on_event(&mut self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        if event.actor.id.is_empty() {
            return Ok(());
        }
        if self.config.login_actions.iter().any(|a| a == event.action) {
            return self.learn_context(ctx, event);
        }
        if !self.config.actions.iter().any(|a| a == event.action)
            || (!self.config.count_app_downloads && event.detail("context.app").is_some())
        {
            return Ok(());
        }
        let weight = if event.action.ends_with("_downloaded") {
            1
        } else {
            self.config.export_weight
        };
        let user = event.actor.id;
        let window = Window::minutes(self.config.window_minutes);
        let count = window.add(ctx.state(), &["w/", user].concat(), event.time_ms, weight)?;
        if count >= self.config.threshold
            && self.not_reported_within(ctx, user, event.time_ms, window.width_ms())?
        {
            let excess = count as f32 / self.config.threshold as f32;
            let severity = if excess >= 3.0 {
                Severity::High
            } else {
                Severity::Medium
            };
            ctx.emit(
                Finding::new("excessive-downloads", user)
                    .score((0.5 + 0.25 * excess).min(1.0))
                    .severity(severity)
                    .summary(format!(
                        "{user} downloaded {count} items in {} min (threshold {})",
                        self.config.window_minutes, self.config.threshold
                    ))
                    .evidence(event.id)
                    .attr("basis", "threshold")
                    .attr("count", count)
                    .attr("threshold", self.config.threshold)
                    .attr("window_minutes", self.config.window_minutes)
                    .attr("ip", event.context.ip),
            );
            return Ok(());
        }
        if let Some(b) = self.config.baseline.clone() {
            let stats = Baseline::hourly(b.days).observe(
                ctx.state(),
                &["h/", user].concat(),
                event.time_ms,
                weight as f64,
            )?;
            let plain = stats.sigma_threshold(b.k_sigma, b.floor);
            // The context is looked up only when the plain bar is passed.
            if stats.buckets >= b.min_hours && stats.current > plain {
                let usual = self.usual_context(ctx, event)?;
                let limit = if usual { plain * b.usual_factor } else { plain };
                if stats.current > limit
                    && self.not_reported_within(ctx, user, event.time_ms, 3_600_000)?
                {
                    let context = if usual { "usual" } else { "new" };
                    ctx.emit(
                        Finding::new("excessive-downloads", user)
                            .score(0.8)
                            .severity(Severity::Medium)
                            .summary(format!(
                                "{user} downloaded {} items this hour from a {context} network and device; their norm is {:.1} ± {:.1}",
                                stats.current, stats.mean, stats.stddev
                            ))
                            .evidence(event.id)
                            .attr("basis", "baseline")
                            .attr("context", context)
                            .attr("count", stats.current)
                            .attr("mean", format!("{:.2}", stats.mean))
                            .attr("stddev", format!("{:.2}", stats.stddev))
                            .attr("limit", format!("{limit:.1}"))
                            .attr("ip", event.context.ip),
                    );
                    return Ok(());
                }
            }
        }
        if let Some(d) = self.config.daily.clone() {
            let today = self.today(ctx, user, event.time_ms, weight, &d)?;
            // The norm is read only once the day passes the floor (rarely).
            if today <= d.floor {
                return Ok(());
            }
            let stats = Baseline::daily(d.days).query(
                ctx.state(),
                &["dd/", user].concat(),
                event.time_ms,
            )?;
            let limit = stats.sigma_threshold(d.k_sigma, d.floor).max(stats.max);
            if stats.buckets >= d.min_days
                && today > limit
                && self.not_reported_within(ctx, user, event.time_ms, DAY_MS)?
            {
                ctx.emit(
                    Finding::new("excessive-downloads", user)
                        .score(0.8)
                        .severity(Severity::High)
                        .summary(format!(
                            "{user} downloaded {today} items today; their daily norm is {:.1} ± {:.1}, their biggest day {:.0}",
                            stats.mean, stats.stddev, stats.max
                        ))
                        .evidence(event.id)
                        .attr("basis", "daily")
                        .attr("count", today)
                        .attr("mean", format!("{:.2}", stats.mean))
                        .attr("stddev", format!("{:.2}", stats.stddev))
                        .attr("limit", format!("{limit:.1}"))
                        .attr("ip", event.context.ip),
                );
            }
        }
        Ok(())
    }
}

/// A download's or login's context: its network and device (user-agent family).
fn context_of(event: &Event<'_>) -> Option<String> {
    let net = network(event.context.ip, 16, 48)?;
    Some(format!("{net}|{}", agent_family(event.context.user_agent)))
}

impl ExcessiveDownloads {
    /// Add `weight` to the user's total for the day of `time_ms` and return it. The
    /// running total is one small state value (buffered within a call); a day's total
    /// goes into the daily baseline once, when the user's next day starts, so the host's
    /// baseline is called once per user and day rather than on every download.
    fn today(
        &self,
        ctx: &mut Context<'_>,
        user: &str,
        time_ms: i64,
        weight: u64,
        d: &DailyConfig,
    ) -> Result<f64> {
        let key = ["dt/", user].concat();
        let day = time_ms.div_euclid(DAY_MS);
        let (mut current, mut total) = match ctx.state().get_bytes(&key) {
            Some(b) if b.len() == 16 => (
                i64::from_le_bytes(b[..8].try_into().unwrap_or_default()),
                u64::from_le_bytes(b[8..].try_into().unwrap_or_default()),
            ),
            _ => (day, 0),
        };
        // An event of an earlier day arriving late counts towards the current one.
        if day > current {
            if total > 0 {
                Baseline::daily(d.days).observe(
                    ctx.state(),
                    &["dd/", user].concat(),
                    current.saturating_mul(DAY_MS),
                    total as f64,
                )?;
            }
            (current, total) = (day, 0);
        }
        total = total.saturating_add(weight);
        let mut bytes = Vec::with_capacity(16);
        bytes.extend_from_slice(&current.to_le_bytes());
        bytes.extend_from_slice(&total.to_le_bytes());
        ctx.state().set_bytes(&key, bytes);
        Ok(total as f64)
    }

    /// Remember a login's context (written at logins only, which are rare).
    fn learn_context(&self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<()> {
        let Some(context) = context_of(event) else {
            return Ok(());
        };
        let key = ["c/", event.actor.id].concat();
        let t = event.time_ms;
        let mut known: Contexts = ctx.state().get(&key)?.unwrap_or_default();
        let forget = self.config.context_days.saturating_mul(DAY_MS);
        known.retain(|_, (_, last)| t - *last < forget);
        known
            .entry(context)
            .and_modify(|(_, last)| *last = (*last).max(t))
            .or_insert((t, t));
        while known.len() > MAX_CONTEXTS {
            let oldest = known
                .iter()
                .min_by_key(|(_, (_, last))| *last)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                known.remove(&k);
            }
        }
        ctx.state().set(&key, &known)
    }

    /// Whether the event comes from a network and device the user logged in from on an
    /// earlier day (a context first seen today, an attacker's just-opened one, is not).
    fn usual_context(&self, ctx: &mut Context<'_>, event: &Event<'_>) -> Result<bool> {
        let Some(context) = context_of(event) else {
            return Ok(false);
        };
        let known: Contexts = ctx
            .state()
            .get(&["c/", event.actor.id].concat())?
            .unwrap_or_default();
        let t = event.time_ms;
        Ok(known.get(&context).is_some_and(|(first, last)| {
            t - first >= DAY_MS && t - last < self.config.context_days.saturating_mul(DAY_MS)
        }))
    }

    /// One finding per user per `span`: true (and remembered) if none was made within it.
    fn not_reported_within(
        &self,
        ctx: &mut Context<'_>,
        user: &str,
        time_ms: i64,
        span: i64,
    ) -> Result<bool> {
        let key = ["r/", user].concat();
        let last: Option<i64> = ctx.state().get(&key)?;
        if last.is_some_and(|t| time_ms - t < span) {
            return Ok(false);
        }
        ctx.state().set(&key, &time_ms)?;
        Ok(true)
    }
}

aer_sdk::export_detector!(ExcessiveDownloads);

#[cfg(test)]
mod tests {
    use super::*;
    use aer_sdk::testing::{OwnedEvent, TestDetector, event};

    const MIN: i64 = 60_000;

    fn downloads(user: &str, n: i64, start: i64, step: i64) -> Vec<OwnedEvent> {
        (0..n)
            .map(|i| {
                event("file_downloaded")
                    .id(format!("{user}-{i}"))
                    .actor(user)
                    .at(start + i * step)
                    .build()
            })
            .collect()
    }

    fn detector(config: &str) -> TestDetector<ExcessiveDownloads> {
        let mut t = TestDetector::new();
        t.configure(config).expect("valid config");
        t
    }

    #[test]
    fn burst_over_threshold_gives_one_finding() {
        let mut t = detector(r#"{"threshold": 20, "window_minutes": 10}"#);
        let findings = t.run(&downloads("U1", 30, 0, 1_000)).unwrap();
        assert_eq!(findings.len(), 1, "{findings:?}");
        let f = &findings[0];
        assert_eq!(f.subject, "U1");
        assert_eq!(f.rule, "excessive-downloads");
        assert_eq!(f.evidence, vec!["U1-19".to_string()]);
        assert_eq!(f.time_ms, 19_000);
    }

    #[test]
    fn slow_steady_downloads_stay_quiet() {
        let mut t = detector(r#"{"threshold": 20, "window_minutes": 10}"#);
        // One download a minute for a day: at most 10 in any 10-minute window.
        let findings = t.run_batched(&downloads("U1", 1_440, 0, MIN), 100).unwrap();
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn state_carries_across_batches() {
        let mut t = detector(r#"{"threshold": 20}"#);
        let events = downloads("U1", 25, 0, 1_000);
        let findings = t.run_batched(&events, 3).unwrap();
        assert_eq!(findings.len(), 1);
    }

    #[test]
    fn users_are_counted_separately() {
        let mut t = detector(r#"{"threshold": 20}"#);
        let mut events = downloads("U1", 15, 0, 1_000);
        events.extend(downloads("U2", 15, 0, 1_000));
        events.sort_by_key(|e| e.time_ms);
        assert!(t.run(&events).unwrap().is_empty());
    }

    #[test]
    fn exports_weigh_more_than_downloads() {
        let mut t = detector(r#"{"threshold": 20, "export_weight": 10}"#);
        let events: Vec<OwnedEvent> = (0..2)
            .map(|i| {
                event("manual_export_started")
                    .id(format!("x{i}"))
                    .actor("A")
                    .at(i)
                    .build()
            })
            .collect();
        assert_eq!(t.run(&events).unwrap().len(), 1);
    }

    #[test]
    fn reports_again_only_after_a_window() {
        let mut t = detector(r#"{"threshold": 5, "window_minutes": 10}"#);
        let mut events = downloads("U1", 10, 0, 1_000);
        events.extend(
            downloads("U1", 10, 11 * MIN, 1_000)
                .into_iter()
                .map(|mut e| {
                    e.id.push_str("-late");
                    e
                }),
        );
        assert_eq!(t.run(&events).unwrap().len(), 2);
    }

    #[test]
    fn baseline_flags_an_hour_far_above_the_users_norm_only() {
        let hour = 60 * MIN;
        let config =
            r#"{"threshold": 1000, "baseline": {"k_sigma": 4, "floor": 20, "min_hours": 24}}"#;
        let mut t = detector(config);
        let mut events = Vec::new();
        // Two days: U1 downloads 3 an hour, U2 60 an hour.
        for h in 0..48 {
            events.extend(downloads("U1", 3, h * hour, MIN).into_iter().map(|mut e| {
                e.id = format!("{}-{h}", e.id);
                e
            }));
            events.extend(
                downloads("U2", 60, h * hour, 30_000)
                    .into_iter()
                    .map(|mut e| {
                        e.id = format!("{}-{h}", e.id);
                        e
                    }),
            );
        }
        // Then one hour of 40 each: far above U1's norm, below U2's.
        events.extend(
            downloads("U1", 40, 48 * hour, 60_000)
                .into_iter()
                .map(|mut e| {
                    e.id.push_str("-spike");
                    e
                }),
        );
        events.extend(
            downloads("U2", 40, 48 * hour, 60_000)
                .into_iter()
                .map(|mut e| {
                    e.id.push_str("-spike");
                    e
                }),
        );
        events.sort_by_key(|e| e.time_ms);
        let findings = t.run_batched(&events, 256).unwrap();
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].subject, "U1");
        assert!(
            findings[0]
                .attributes
                .contains(&("basis".to_string(), "baseline".to_string()))
        );
        // 4 sigma over a mean of 3 with no spread is the floor of 20: the 21st download.
        assert_eq!(findings[0].evidence, vec!["U1-20-spike".to_string()]);
    }

    const DESK: &str = "198.51.100.20";
    const LAPTOP: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/120.0";
    const OTHER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0";

    /// `days` working days of a user who logs in at the desk and downloads a few files
    /// an hour there, then `extra` on the next day.
    fn history_then(days: i64, extra: Vec<OwnedEvent>) -> Vec<OwnedEvent> {
        let hour = 60 * MIN;
        let mut events = Vec::new();
        for d in 0..days {
            let day = d * 24 * hour;
            events.push(
                event("user_login")
                    .id(format!("login-{d}"))
                    .actor("U1")
                    .ip(DESK)
                    .user_agent(LAPTOP)
                    .at(day + 8 * hour)
                    .build(),
            );
            for h in 9..17 {
                for (i, mut e) in downloads("U1", 2, day + h * hour, 7 * MIN)
                    .into_iter()
                    .enumerate()
                {
                    e.id = format!("d{d}-{h}-{i}");
                    e.context.ip = DESK.into();
                    e.context.user_agent = LAPTOP.into();
                    events.push(e);
                }
            }
        }
        events.extend(extra);
        events.sort_by_key(|e| e.time_ms);
        events
    }

    /// `n` downloads by U1 from (`ip`, `ua`) evenly over `span` from `start`.
    fn from(n: i64, start: i64, span: i64, ip: &str, ua: &str, tag: &str) -> Vec<OwnedEvent> {
        downloads("U1", n, start, span / n)
            .into_iter()
            .map(|mut e| {
                e.id = format!("{tag}-{}", e.id);
                e.context.ip = ip.into();
                e.context.user_agent = ua.into();
                e
            })
            .collect()
    }

    #[test]
    fn a_busy_hour_at_the_usual_desk_is_spared_and_the_same_hour_elsewhere_is_not() {
        let day7 = 7 * 24 * 60 * MIN + 10 * 60 * MIN;
        let busy = from(45, day7, 55 * MIN, DESK, LAPTOP, "busy");
        let findings = detector("{}")
            .run_batched(&history_then(7, busy), 256)
            .unwrap();
        assert!(findings.is_empty(), "{findings:#?}");
        let elsewhere = from(45, day7, 55 * MIN, "203.0.113.9", OTHER, "away");
        let findings = detector("{}")
            .run_batched(&history_then(7, elsewhere), 256)
            .unwrap();
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].attribute("basis"), Some("baseline"));
        assert_eq!(findings[0].attribute("context"), Some("new"));
    }

    #[test]
    fn a_context_opened_today_is_not_usual() {
        let day7 = 7 * 24 * 60 * MIN + 10 * 60 * MIN;
        let mut extra = vec![
            event("user_login")
                .id("thief-login")
                .actor("U1")
                .ip("203.0.113.9")
                .user_agent(OTHER)
                .at(day7 - MIN)
                .build(),
        ];
        extra.extend(from(45, day7, 55 * MIN, "203.0.113.9", OTHER, "thief"));
        let findings = detector("{}")
            .run_batched(&history_then(7, extra), 256)
            .unwrap();
        assert_eq!(findings.len(), 1, "{findings:#?}");
    }

    #[test]
    fn a_slow_exfiltration_over_a_day_from_the_usual_desk_is_flagged_daily() {
        let day7 = 7 * 24 * 60 * MIN + 9 * 60 * MIN;
        // 300 over six hours: 50 an hour, under the usual desk's hourly bar.
        let slow = from(300, day7, 6 * 60 * MIN, DESK, LAPTOP, "slow");
        let findings = detector("{}")
            .run_batched(&history_then(7, slow), 256)
            .unwrap();
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].attribute("basis"), Some("daily"));
        let findings = detector(r#"{"daily": null}"#)
            .run_batched(
                &history_then(7, from(300, day7, 6 * 60 * MIN, DESK, LAPTOP, "slow")),
                256,
            )
            .unwrap();
        assert!(
            findings.is_empty(),
            "the hourly rule alone spares it: {findings:#?}"
        );
    }

    #[test]
    fn downloads_an_app_made_on_the_users_grant_are_the_apps() {
        let through_app: Vec<OwnedEvent> = downloads("U1", 60, 0, 1_000)
            .into_iter()
            .map(|mut e| {
                e.details.push((
                    "context.app".into(),
                    r#"{"id":"A0SYNC","name":"Sync"}"#.into(),
                ));
                e
            })
            .collect();
        assert!(detector("{}").run(&through_app).unwrap().is_empty());
        let counted = detector(r#"{"count_app_downloads": true}"#)
            .run(&through_app)
            .unwrap();
        assert_eq!(counted.len(), 1);
    }

    #[test]
    fn bad_config_names_the_field() {
        let mut t = TestDetector::<ExcessiveDownloads>::new();
        let err = t
            .configure(r#"{"threshold": "many"}"#)
            .err()
            .expect("rejected");
        assert!(err.message().contains("invalid type"), "{err}");
        let err = t.configure(r#"{"treshold": 3}"#).err().expect("rejected");
        assert!(err.message().contains("treshold"), "{err}");
        let err = t.configure(r#"{"threshold": 0}"#).err().expect("rejected");
        assert!(err.message().contains("threshold"), "{err}");
    }
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_schema_matches_the_configuration() {
        aer_sdk::testing::TestDetector::<super::ExcessiveDownloads>::new().check_config_schema();
    }
}
