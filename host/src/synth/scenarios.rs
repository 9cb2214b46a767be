//! Labelled attacks for every detector, and benign near-misses that look like them.

use rand::RngExt;
use rand::seq::{IndexedRandom, SliceRandom};

use super::geography::{CLOUD, FAR_AWAY, REGIONS, TRAVEL, VPN};
use super::population::{
    ATTACKER_AGENTS, ATTACKER_SCRIPTS, ATTACKERS, Population, Role, TOR_EXITS, agent,
};
use super::traffic::{Ctx, DayPlan, Sink, file, new_account, person, session_id};
use super::{DAY_MS, GenConfig, HOUR_MS, MINUTE_MS, Rng};
use crate::labels::{Label, LabelKind};
use aer_wire::Entity;

/// Everything a scenario needs.
struct World<'a> {
    config: &'a GenConfig,
    people: &'a Population,
    plans: &'a [Vec<DayPlan>],
    rng: &'a mut Rng,
    out: &'a mut Sink,
    labels: &'a mut Vec<Label>,
}

/// Add every scenario to `out`, and their labels to `labels`.
pub(crate) fn add_all(
    config: &GenConfig,
    people: &Population,
    plans: &[Vec<DayPlan>],
    rng: &mut Rng,
    out: &mut Sink,
    labels: &mut Vec<Label>,
) {
    let mut w = World {
        config,
        people,
        plans,
        rng,
        out,
        labels,
    };
    let n = (config.users / 25).max(3);
    w.excessive_downloads(n);
    w.rapid_account_creation(n);
    w.suspicious_file_sharing(n);
    w.message_volume(n);
    w.new_network_origin(n);
    w.session_fingerprint(n);
    w.privilege_escalation(n);
    w.slack_anomaly(n);
    w.impossible_travel(n);
    w.datacenter_origin(n);
    w.brute_force(n);
    w.mass_deletion(n);
    w.risky_app(n);
    w.life_changes(n);
    w.integration_apps();
}

/// A channel as an event's target.
fn channel(rng: &mut Rng) -> Entity {
    let n: u32 = rng.random_range(0..10_000_000);
    Entity {
        kind: "channel".into(),
        id: format!("C0{n:08}"),
        name: format!("project-{n}"),
        email: String::new(),
    }
}

/// An app as an event's target, with a Slack app id.
fn app(rng: &mut Rng) -> Entity {
    let n: u32 = rng.random_range(0..u32::MAX);
    Entity {
        kind: "app".into(),
        id: format!("A0{n:08X}"),
        name: format!("Helper {n:X}"),
        email: String::new(),
    }
}

/// The people of `pool` who are not among `victims`.
fn without(pool: Vec<usize>, victims: &[(usize, u32, DayPlan)]) -> Vec<usize> {
    pool.into_iter()
        .filter(|u| !victims.iter().any(|(v, _, _)| v == u))
        .collect()
}

/// An address in the /16 or /24 network `prefix`.
fn host_in(rng: &mut Rng, prefix: &str) -> String {
    match prefix.split('.').count() {
        3 => format!("{prefix}.{}", rng.random_range(2..=250)),
        _ => format!(
            "{prefix}.{}.{}",
            rng.random_range(0..=255),
            rng.random_range(1..=254)
        ),
    }
}

/// An attacker's address: one of their networks, or a Tor exit.
fn attacker_ip(rng: &mut Rng, tor: bool) -> String {
    if tor {
        return TOR_EXITS.choose(rng).expect("not empty").to_string();
    }
    format!(
        "{}.{}.{}",
        ATTACKERS.choose(rng).expect("not empty"),
        rng.random_range(0..=255),
        rng.random_range(1..=254)
    )
}

impl World<'_> {
    /// Days attacks happen on: the second half, after at least a week of history.
    fn attack_days(&self, earliest: u32) -> std::ops::Range<u32> {
        let days = self.config.days;
        let from = (days / 2).max(earliest).min(days.saturating_sub(1));
        from..days
    }

    /// The users of `pool` no scenario has touched yet (labelled neither attacked nor a
    /// near-miss), when there are at least `n` (else the whole pool, as in a small
    /// organisation): the newer scenarios pick from them, so every episode is measured
    /// on its own and a near-miss is never hidden behind an attack on the same person.
    fn untouched(&self, pool: Vec<usize>, n: usize) -> Vec<usize> {
        let touched: std::collections::HashSet<&str> =
            self.labels.iter().map(|l| l.subject.as_str()).collect();
        let fresh: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|&u| !touched.contains(self.people.users[u].id.as_str()))
            .collect();
        if fresh.len() >= n { fresh } else { pool }
    }

    /// A day in `days` on which user `u` works, with its plan.
    fn active_day(&mut self, u: usize, days: std::ops::Range<u32>) -> Option<(u32, DayPlan)> {
        let candidates: Vec<u32> = days.filter(|&d| self.plans[u][d as usize].active).collect();
        let day = *candidates.choose(self.rng)?;
        Some((day, self.plans[u][day as usize].clone()))
    }

    /// Victims for `n` attacks from `pool`, each with an active day in `days`, spread
    /// over the pool (shuffled, reused only when it runs out).
    fn victims(
        &mut self,
        pool: &[usize],
        n: usize,
        days: std::ops::Range<u32>,
    ) -> Vec<(usize, u32, DayPlan)> {
        let mut pool = pool.to_vec();
        pool.shuffle(self.rng);
        let mut out = Vec::new();
        for &u in pool.iter().cycle().take(pool.len() * 4) {
            if out.len() == n {
                break;
            }
            if let Some((day, plan)) = self.active_day(u, days.clone()) {
                out.push((u, day, plan));
            }
        }
        out
    }

    fn label(
        &mut self,
        kind: LabelKind,
        detector: &str,
        scenario: &str,
        u: usize,
        span: (i64, i64),
    ) {
        let subject = self.people.users[u].id.clone();
        self.label_subject(kind, detector, scenario, subject, span);
    }

    /// A label about a subject that is not one of the people (an address, an app).
    fn label_subject(
        &mut self,
        kind: LabelKind,
        detector: &str,
        scenario: &str,
        subject: String,
        span: (i64, i64),
    ) {
        self.labels.push(Label {
            kind,
            detector: detector.into(),
            scenario: scenario.into(),
            subject,
            start_ms: span.0 - span.0 % 1000,
            end_ms: span.1 - span.1 % 1000,
        });
    }

    /// User `u` logs in at `t0` in `ctx` and opens `k` canvases over the `span` after it.
    /// Returns the first and last time.
    fn login_and_work(&mut self, u: usize, t0: i64, ctx: &Ctx, span: i64, k: u32) -> (i64, i64) {
        let user = &self.people.users[u];
        self.out.audit(user, t0, "user_login", None, ctx, &[]);
        let s = self.spread(u, t0 + MINUTE_MS, span, k, "canvas_opened", ctx, &[]);
        (t0, s.1)
    }

    /// `k` events of `action` by user `u` spread over `from..from + span`, in `ctx`.
    /// Returns the first and last time.
    #[allow(clippy::too_many_arguments)]
    fn spread(
        &mut self,
        u: usize,
        from: i64,
        span: i64,
        k: u32,
        action: &str,
        ctx: &Ctx,
        details: &[(&str, &str)],
    ) -> (i64, i64) {
        let user = &self.people.users[u];
        let step = span / i64::from(k.max(1));
        for i in 0..i64::from(k) {
            let t = from + i * step;
            let f = file(self.rng);
            self.out.audit(user, t, action, Some(f), ctx, details);
        }
        (from, from + (i64::from(k) - 1).max(0) * step)
    }

    /// `k` downloads by user `u` over `from..from + span` in their own main session,
    /// wherever it is at each moment. Returns the first and last time.
    fn downloads_in_session(
        &mut self,
        u: usize,
        plan: &DayPlan,
        from: i64,
        span: i64,
        k: u32,
    ) -> (i64, i64) {
        let user = &self.people.users[u];
        let step = span / i64::from(k.max(1));
        for i in 0..i64::from(k) {
            let t = from + i * step;
            let f = file(self.rng);
            self.out
                .audit(user, t, "file_downloaded", Some(f), &plan.ctx_at(t), &[]);
        }
        (from, from + (i64::from(k) - 1).max(0) * step)
    }

    fn excessive_downloads(&mut self, n: usize) {
        const D: &str = "excessive-downloads";
        let days = self.attack_days(7);
        let pool: Vec<usize> = self
            .people
            .victims()
            .into_iter()
            .filter(|&u| self.people.users[u].downloads >= 1.5)
            .collect();
        for (i, (u, _, plan)) in self.victims(&pool, n, days.clone()).into_iter().enumerate() {
            let t0 = plan.moment(self.rng);
            if i % 5 < 3 {
                // A bulk grab: 70 to 200 files in 8 to 15 minutes.
                let k = self.rng.random_range(70..=200);
                let span = self.rng.random_range(8..=15) * MINUTE_MS;
                let s = self.downloads_in_session(u, &plan, t0, span, k);
                self.label(LabelKind::Attack, D, "download-burst", u, s);
            } else {
                // A slow exfiltration from the usual desk: about 300 files over six
                // hours, under the threshold's rate and a busy hour's, far above the
                // user's daily norm.
                let start = plan.start + HOUR_MS;
                let k = self.rng.random_range(280..=320);
                let s = self.downloads_in_session(u, &plan, start, 6 * HOUR_MS, k);
                self.label(LabelKind::Attack, D, "slow-exfiltration", u, s);
            }
        }
        // The same against allowlisted and external users: flagged, never acted on.
        let mut special: Vec<usize> = self
            .people
            .users
            .iter()
            .enumerate()
            .filter(|(_, u)| u.allowlisted)
            .map(|(i, _)| i)
            .collect();
        special.extend(self.people.with_role(Role::External).into_iter().take(2));
        for u in special {
            if let Some((_, plan)) = self.active_day(u, days.clone()) {
                let t0 = plan.moment(self.rng);
                let s = self.downloads_in_session(u, &plan, t0, 10 * MINUTE_MS, 120);
                self.label(LabelKind::Attack, D, "download-burst", u, s);
            }
        }
        // Near-misses: a busy day at the usual desk (36 to 46 files within an hour,
        // far above the user's hourly norm, from their own network and device).
        let mut busy: Vec<usize> = pool.clone();
        busy.shuffle(self.rng);
        for (u, _, plan) in self.victims(&busy, n / 2, days.clone()) {
            let t0 = plan.moment(self.rng);
            let hour = t0 - t0.rem_euclid(HOUR_MS) + MINUTE_MS;
            let k = self.rng.random_range(36..=46);
            let s = self.downloads_in_session(u, &plan, hour, 55 * MINUTE_MS, k);
            self.label(LabelKind::NearMiss, D, "busy-hour-at-the-desk", u, s);
        }
        // An admin's legitimate bulk export; an analyst's heavy hour.
        let admins = self.people.with_role(Role::Admin);
        for (u, _, plan) in self.victims(&admins, 3, days.clone()) {
            let t0 = plan.moment(self.rng);
            let user = &self.people.users[u];
            self.out.audit(
                user,
                t0,
                "manual_export_started",
                None,
                &plan.ctx_at(t0),
                &[],
            );
            let t1 = t0 + 5 * MINUTE_MS;
            self.out.audit(
                user,
                t1,
                "channels_export_started",
                None,
                &plan.ctx_at(t1),
                &[],
            );
            let (_, end) =
                self.downloads_in_session(u, &plan, t0 + 10 * MINUTE_MS, 20 * MINUTE_MS, 5);
            self.label(LabelKind::NearMiss, D, "admin-bulk-export", u, (t0, end));
        }
        let analysts = self.people.with_role(Role::Analyst);
        for (u, _, plan) in self.victims(&analysts, 3, days) {
            // Twice their usual pace for an hour.
            let pace = (self.people.users[u].downloads / 8.5).round() as u32;
            let t0 = plan.moment(self.rng);
            let s = self.downloads_in_session(u, &plan, t0, 60 * MINUTE_MS, pace);
            self.label(LabelKind::NearMiss, D, "analyst-heavy-hour", u, s);
        }
    }

    fn rapid_account_creation(&mut self, n: usize) {
        const D: &str = "rapid-account-creation";
        let days = self.attack_days(7);
        let admins = self.people.with_role(Role::Admin);
        for (u, _, plan) in self.victims(&admins, n, days) {
            let t0 = plan.moment(self.rng);
            let k: i64 = self.rng.random_range(12..=25);
            let step = self.rng.random_range(10..=30) * MINUTE_MS / k;
            for i in 0..k {
                let t = t0 + i * step;
                let action = if i % 3 == 0 {
                    "user_created"
                } else {
                    "guest_created"
                };
                let new = new_account(self.rng);
                self.out.audit(
                    &self.people.users[u],
                    t,
                    action,
                    Some(new),
                    &plan.ctx_at(t),
                    &[],
                );
            }
            self.label(
                LabelKind::Attack,
                D,
                "account-seeding",
                u,
                (t0, t0 + (k - 1) * step),
            );
        }
        // Near-miss: HR onboarding a team of guests (a regular creator).
        let hr = self.people.with_role(Role::HrAdmin);
        for (u, _, plan) in self.victims(&hr, hr.len(), 5..self.config.days) {
            let t0 = plan.moment(self.rng);
            let k: i64 = self.rng.random_range(20..=35);
            for i in 0..k {
                let t = t0 + i * (55 * MINUTE_MS / k);
                let new = new_account(self.rng);
                self.out.audit(
                    &self.people.users[u],
                    t,
                    "guest_created",
                    Some(new),
                    &plan.ctx_at(t),
                    &[],
                );
            }
            self.label(
                LabelKind::NearMiss,
                D,
                "team-onboarding",
                u,
                (t0, t0 + 55 * MINUTE_MS),
            );
        }
    }

    fn suspicious_file_sharing(&mut self, n: usize) {
        const D: &str = "suspicious-file-sharing";
        let days = self.attack_days(7);
        let pool = self.people.victims();
        for (u, _, plan) in self.victims(&pool, n, days.clone()) {
            let t0 = plan.moment(self.rng);
            let k: i64 = self.rng.random_range(8..=20);
            let step = self.rng.random_range(10..=25) * MINUTE_MS / k;
            for i in 0..k {
                let t = t0 + i * step;
                let f = file(self.rng);
                let ctx = plan.ctx_at(t);
                let user = &self.people.users[u];
                if i % 2 == 0 {
                    self.out
                        .audit(user, t, "file_public_link_created", Some(f), &ctx, &[]);
                } else {
                    let ext = [("is_ext_shared", "true"), ("channel_privacy", "shared")];
                    self.out.audit(user, t, "file_shared", Some(f), &ctx, &ext);
                }
            }
            self.label(
                LabelKind::Attack,
                D,
                "mass-external-sharing",
                u,
                (t0, t0 + (k - 1) * step),
            );
        }
        // Near-miss: a partner manager's busy day, six more shares spread over it.
        let pms = self.people.with_role(Role::PartnerManager);
        for (u, _, plan) in self.victims(&pms, pms.len(), days) {
            let ext = [("is_ext_shared", "true"), ("channel_privacy", "shared")];
            let mut times: Vec<i64> = (0..6).map(|_| plan.moment(self.rng)).collect();
            times.sort();
            for &t in &times {
                let f = file(self.rng);
                self.out.audit(
                    &self.people.users[u],
                    t,
                    "file_shared",
                    Some(f),
                    &plan.ctx_at(t),
                    &ext,
                );
            }
            self.label(
                LabelKind::NearMiss,
                D,
                "partner-busy-day",
                u,
                (times[0], times[5]),
            );
        }
    }

    fn message_volume(&mut self, n: usize) {
        const D: &str = "message-volume";
        let days = self.attack_days(7);
        let mut pool = self.people.victims();
        let victims = self.victims(&pool, n, days.clone());
        let allowlisted: Vec<usize> = self
            .people
            .users
            .iter()
            .enumerate()
            .filter(|(_, u)| u.allowlisted)
            .map(|(i, _)| i)
            .collect();
        let mut listed = Vec::new();
        for &u in &allowlisted {
            if let Some((day, plan)) = self.active_day(u, days.clone()) {
                listed.push((u, day, plan));
            }
        }
        for (u, _, plan) in victims.into_iter().chain(listed) {
            let t0 = plan.moment(self.rng);
            let k: i64 = self.rng.random_range(250..=450);
            let step = self.rng.random_range(30..=50) * MINUTE_MS / k;
            for i in 0..k {
                self.out.message(
                    &self.people.users[u],
                    t0 + i * step,
                    self.rng.random_range(1..60),
                );
            }
            self.label(
                LabelKind::Attack,
                D,
                "message-spam",
                u,
                (t0, t0 + (k - 1) * step),
            );
        }
        // Near-miss: a busy hour (an incident channel) for ordinary users.
        pool.shuffle(self.rng);
        pool.truncate(n / 2);
        for (u, _, plan) in self.victims(&pool, n / 2, days) {
            let t0 = plan.moment(self.rng);
            let k: i64 = self.rng.random_range(25..=35);
            for i in 0..k {
                self.out
                    .message(&self.people.users[u], t0 + i * (HOUR_MS / k), 7);
            }
            self.label(LabelKind::NearMiss, D, "busy-hour", u, (t0, t0 + HOUR_MS));
        }
    }

    fn new_network_origin(&mut self, n: usize) {
        const D: &str = "new-network-origin";
        let days = self.attack_days(7);
        let pool = self.people.victims();
        let victims = self.victims(&pool, n, days.clone());
        for (i, (u, day, plan)) in victims.iter().cloned().enumerate() {
            let tor = i % 4 == 3;
            let ctx = Ctx {
                ip: attacker_ip(self.rng, tor),
                ua: agent(ATTACKER_AGENTS.choose(self.rng).expect("not empty"), day),
                session: session_id(self.rng),
            };
            // Attackers keep their own hours: any time of the victim's day or night.
            let t0 = plan.start - 6 * HOUR_MS + self.rng.random_range(0..DAY_MS / 2);
            let s = self.login_and_work(u, t0, &ctx, 20 * MINUTE_MS, 4);
            let scenario = if tor {
                "tor-login"
            } else {
                "foreign-login-new-device"
            };
            self.label(LabelKind::Attack, D, scenario, u, (t0, s.1));
        }
        // Near-misses: travellers on their own devices, for two or three days (not the
        // attacked users, whose trips would hide their attacks' labels).
        let mut pool = without(pool, &victims);
        pool.shuffle(self.rng);
        for &u in pool.iter().take(n) {
            let first = self.rng.random_range(days.clone());
            let net = TRAVEL.choose(self.rng).expect("not empty").0;
            let host = format!(
                "{net}.{}.{}",
                self.rng.random_range(0..=255),
                self.rng.random_range(1..=254)
            );
            let user = &self.people.users[u];
            let mut span = (i64::MAX, i64::MIN);
            for day in first..(first + self.rng.random_range(2..=3)).min(self.config.days) {
                let t = self.config.start_ms
                    + i64::from(day) * DAY_MS
                    + (9 - user.tz_hours - 1) * HOUR_MS;
                let ctx = Ctx {
                    ip: host.clone(),
                    ua: agent(user.devices[0].ua, day),
                    session: session_id(self.rng),
                };
                self.out.audit(user, t, "user_login", None, &ctx, &[]);
                let s = self.spread(u, t + MINUTE_MS, 4 * HOUR_MS, 5, "canvas_opened", &ctx, &[]);
                span = (span.0.min(t), span.1.max(s.1));
            }
            self.label(LabelKind::NearMiss, D, "travelling-user", u, span);
            self.label(
                LabelKind::NearMiss,
                "impossible-travel",
                "travelling-user",
                u,
                span,
            );
        }
    }

    fn session_fingerprint(&mut self, n: usize) {
        const D: &str = "session-fingerprint";
        let days = self.attack_days(7);
        let pool = self.people.victims();
        // Near-misses already in everyday traffic, labelled: a session that moves from
        // the office to home after the commute (the same client, two networks).
        let mut moved = 0;
        for &u in &pool {
            if moved == n {
                break;
            }
            if let Some(plan) = days
                .clone()
                .map(|d| &self.plans[u][d as usize])
                .find(|p| p.switch.is_some())
            {
                let (leave, resume, _) = plan.switch.clone().expect("found above");
                let span = (leave - 30 * MINUTE_MS, (resume + HOUR_MS).min(plan.end));
                self.label(LabelKind::NearMiss, D, "office-to-home", u, span);
                moved += 1;
            }
        }
        for (i, (u, day, plan)) in self.victims(&pool, n, days).into_iter().enumerate() {
            let t0 = plan.start
                + self
                    .rng
                    .random_range(0..(plan.end - plan.start - 30 * MINUTE_MS).max(1));
            let ip = attacker_ip(self.rng, false);
            match i % 5 {
                0 | 1 => {
                    // The stolen cookie replayed from the attacker's own browser.
                    let ctx = Ctx {
                        ip,
                        ua: agent(ATTACKER_AGENTS.choose(self.rng).expect("not empty"), day),
                        session: plan.session.clone(),
                    };
                    let s = self.spread(u, t0, 10 * MINUTE_MS, 4, "file_downloaded", &ctx, &[]);
                    self.label(LabelKind::Attack, D, "cookie-other-client", u, s);
                }
                2 | 3 => {
                    // The stolen cookie with a copied user agent, next to its owner.
                    let user = &self.people.users[u];
                    let thief = Ctx {
                        ip,
                        ua: plan.ua.clone(),
                        session: plan.session.clone(),
                    };
                    for k in 0..7 {
                        let t = t0 + k * 3 * MINUTE_MS;
                        let f = file(self.rng);
                        self.out
                            .audit(user, t, "canvas_opened", Some(f), &plan.ctx_at(t), &[]);
                        let f = file(self.rng);
                        self.out
                            .audit(user, t + 90_000, "file_downloaded", Some(f), &thief, &[]);
                    }
                    self.label(
                        LabelKind::Attack,
                        D,
                        "cookie-concurrent-use",
                        u,
                        (t0, t0 + 20 * MINUTE_MS),
                    );
                }
                _ => {
                    // A stolen token driven by a script.
                    let ctx = Ctx {
                        ip,
                        ua: ATTACKER_SCRIPTS
                            .choose(self.rng)
                            .expect("not empty")
                            .to_string(),
                        session: String::new(),
                    };
                    let s = self.spread(u, t0, 10 * MINUTE_MS, 6, "file_downloaded", &ctx, &[]);
                    self.label(LabelKind::Attack, D, "scripted-agent", u, s);
                }
            }
        }
    }

    fn privilege_escalation(&mut self, n: usize) {
        const D: &str = "privilege-escalation";
        let days = self.attack_days(8);
        // Near-miss: the IT admins' routine grants, three in an afternoon.
        let it = self.people.with_role(Role::ItAdmin);
        let regulars = self.people.victims();
        for (u, _, plan) in self.victims(&it, it.len(), days.clone()) {
            let t0 = plan.moment(self.rng);
            for k in 0..3 {
                let t = t0 + k * 20 * MINUTE_MS;
                let target = &self.people.users[*regulars.choose(self.rng).expect("not empty")];
                self.out.audit(
                    &self.people.users[u],
                    t,
                    "permissions_assigned",
                    Some(person(target)),
                    &plan.ctx_at(t),
                    &[],
                );
            }
            self.label(
                LabelKind::NearMiss,
                D,
                "it-admin-routine",
                u,
                (t0, t0 + 40 * MINUTE_MS),
            );
        }
        let admins = self.people.with_role(Role::Admin);
        for (i, (u, _, plan)) in self.victims(&admins, n, days).into_iter().enumerate() {
            let t0 = plan.moment(self.rng);
            let ctx = plan.ctx_at(t0);
            let user = &self.people.users[u];
            let (scenario, end) = match i % 4 {
                0 | 1 => {
                    let target = &self.people.users[*regulars.choose(self.rng).expect("not empty")];
                    let action = if i % 8 == 0 {
                        "role_change_to_owner"
                    } else {
                        "role_change_to_admin"
                    };
                    self.out
                        .audit(user, t0, action, Some(person(target)), &ctx, &[]);
                    ("unusual-granter", t0)
                }
                2 => {
                    self.out.audit(
                        user,
                        t0,
                        "role_change_to_owner",
                        Some(person(user)),
                        &ctx,
                        &[],
                    );
                    ("self-escalation", t0)
                }
                _ => {
                    let new = new_account(self.rng);
                    self.out
                        .audit(user, t0, "guest_created", Some(new.clone()), &ctx, &[]);
                    let t1 = t0 + self.rng.random_range(2..=20) * MINUTE_MS;
                    self.out.audit(
                        user,
                        t1,
                        "role_change_to_admin",
                        Some(new),
                        &plan.ctx_at(t1),
                        &[],
                    );
                    ("new-account-promoted", t1)
                }
            };
            self.label(LabelKind::Attack, D, scenario, u, (t0, end));
        }
    }

    fn slack_anomaly(&mut self, n: usize) {
        const D: &str = "slack-anomaly";
        let days = self.attack_days(7);
        let pool = self.people.victims();
        let reasons = [
            r#"["tor"]"#,
            r#"["asn","ip_address"]"#,
            r#"["session_fingerprint"]"#,
            r#"["excessive_downloads"]"#,
            r#"["unexpected_user_agent"]"#,
        ];
        for (u, _, plan) in self.victims(&pool, n, days) {
            let t0 = plan.moment(self.rng);
            let reason = *reasons.choose(self.rng).expect("not empty");
            let user = &self.people.users[u];
            let micros = (t0 * 1000).to_string();
            let details = [("reason", reason), ("action_timestamp", micros.as_str())];
            self.out.audit(
                user,
                t0,
                "anomaly",
                Some(person(user)),
                &plan.ctx_at(t0),
                &details,
            );
            self.label(LabelKind::Attack, D, "slack-anomaly", u, (t0, t0));
        }
    }

    fn impossible_travel(&mut self, n: usize) {
        const D: &str = "impossible-travel";
        let days = self.attack_days(7);
        let pool = self.untouched(self.people.victims(), 2 * n);
        for (u, day, plan) in self.victims(&pool, n, days.clone()) {
            // A stolen password used from far away, an hour or two after its owner
            // logged in at home or at the office: also a new network on a new device.
            let far = FAR_AWAY.choose(self.rng).expect("not empty").0;
            let ctx = Ctx {
                ip: host_in(self.rng, far),
                ua: agent(ATTACKER_AGENTS.choose(self.rng).expect("not empty"), day),
                session: session_id(self.rng),
            };
            let t0 = plan.start + self.rng.random_range(20..150) * MINUTE_MS;
            let s = self.login_and_work(u, t0, &ctx, 20 * MINUTE_MS, 4);
            self.label(LabelKind::Attack, D, "password-used-abroad", u, (t0, s.1));
            self.label(
                LabelKind::Attack,
                "new-network-origin",
                "far-login-new-device",
                u,
                (t0, s.1),
            );
        }
        // Near-misses: people on a commercial VPN whose exit is abroad, on their own device.
        let mut pool = pool;
        pool.shuffle(self.rng);
        pool.truncate(n);
        for (u, _, plan) in self.victims(&pool, n / 2, days) {
            let vpn = VPN.choose(self.rng).expect("not empty").0;
            let ctx = Ctx {
                ip: host_in(self.rng, vpn),
                ua: plan.ua.clone(),
                session: session_id(self.rng),
            };
            let t0 = plan.start + self.rng.random_range(20..150) * MINUTE_MS;
            let s = self.login_and_work(u, t0, &ctx, 30 * MINUTE_MS, 3);
            self.label(LabelKind::NearMiss, D, "vpn-login", u, (t0, s.1));
        }
    }

    fn datacenter_origin(&mut self, n: usize) {
        const D: &str = "datacenter-origin";
        let days = self.attack_days(7);
        let pool = self.untouched(self.people.victims(), 2 * n);
        let victims = self.victims(&pool, n, days.clone());
        for (u, _, plan) in &victims {
            // A password (or a token) replayed from a cloud server that claims its
            // owner's own browser: no new device, no far-away country to give it away.
            let cloud = CLOUD.choose(self.rng).expect("not empty").0;
            let ctx = Ctx {
                ip: host_in(self.rng, cloud),
                ua: plan.ua.clone(),
                session: session_id(self.rng),
            };
            let t0 = plan.start
                + self
                    .rng
                    .random_range(0..(plan.end - plan.start - 30 * MINUTE_MS).max(1));
            let s = self.login_and_work(*u, t0, &ctx, 15 * MINUTE_MS, 4);
            self.label(
                LabelKind::Attack,
                D,
                "login-from-cloud-server",
                *u,
                (t0, s.1),
            );
        }
        // Near-misses: people who work on a cloud desktop in their region every day, from
        // their first day (so it is theirs before anyone is judged).
        let mut pool = without(pool, &victims);
        pool.shuffle(self.rng);
        for &u in pool.iter().take(n / 2) {
            let user = &self.people.users[u];
            let desktop = host_in(self.rng, REGIONS[user.region].cloud_desktop);
            let mut span = (i64::MAX, i64::MIN);
            for day in 0..self.config.days {
                let plan = self.plans[u][day as usize].clone();
                if !plan.active {
                    continue;
                }
                let ctx = Ctx {
                    ip: desktop.clone(),
                    ua: plan.ua.clone(),
                    session: session_id(self.rng),
                };
                let t0 = plan.start + self.rng.random_range(5..60) * MINUTE_MS;
                let s = self.login_and_work(u, t0, &ctx, 2 * HOUR_MS, 3);
                if days.contains(&day) {
                    span = (span.0.min(t0), span.1.max(s.1));
                }
            }
            if span.0 <= span.1 {
                self.label(LabelKind::NearMiss, D, "cloud-desktop", u, span);
            }
        }
    }

    fn brute_force(&mut self, n: usize) {
        const D: &str = "brute-force";
        let days = self.attack_days(7);
        let pool = self.untouched(self.people.victims(), 2 * n);
        let victims = self.victims(&pool, n, days.clone());
        for (i, (u, day, plan)) in victims.iter().cloned().enumerate() {
            let ctx = Ctx {
                ip: attacker_ip(self.rng, false),
                ua: agent(ATTACKER_AGENTS.choose(self.rng).expect("not empty"), day),
                session: String::new(),
            };
            let t0 = plan.start + self.rng.random_range(0..(plan.end - plan.start).max(1));
            if i % 2 == 0 {
                // Password guessing against one account, then a success: a new network
                // on a new device too.
                let tries: i64 = self.rng.random_range(6..=12);
                let user = &self.people.users[u];
                for k in 0..tries {
                    self.out
                        .audit(user, t0 + k * 40_000, "user_login_failed", None, &ctx, &[]);
                }
                let t = t0 + tries * 40_000;
                let ok = Ctx {
                    session: session_id(self.rng),
                    ..ctx.clone()
                };
                self.out.audit(user, t, "user_login", None, &ok, &[]);
                self.label(LabelKind::Attack, D, "guessed", u, (t0, t));
                self.label(
                    LabelKind::Attack,
                    "new-network-origin",
                    "guessed-login-new-device",
                    u,
                    (t, t),
                );
            } else {
                // One address spraying a common password over many accounts, and one
                // of them opening: the address is the spray's subject.
                let mut sprayed: Vec<usize> = self.people.victims();
                sprayed.shuffle(self.rng);
                sprayed.retain(|v| *v != u);
                sprayed.truncate(14);
                for (k, &v) in sprayed.iter().enumerate() {
                    let t = t0 + k as i64 * 90_000;
                    self.out.audit(
                        &self.people.users[v],
                        t,
                        "user_login_failed",
                        None,
                        &ctx,
                        &[],
                    );
                }
                let t = t0 + sprayed.len() as i64 * 90_000;
                let ok = Ctx {
                    session: session_id(self.rng),
                    ..ctx.clone()
                };
                self.out
                    .audit(&self.people.users[u], t, "user_login", None, &ok, &[]);
                self.label_subject(LabelKind::Attack, D, "spray", ctx.ip.clone(), (t0, t));
                self.label(LabelKind::Attack, D, "sprayed", u, (t, t));
                self.label(
                    LabelKind::Attack,
                    "new-network-origin",
                    "sprayed-login-new-device",
                    u,
                    (t, t),
                );
            }
        }
        // Near-misses: a password typo streak (two or three failures, then in), from the
        // user's own desk.
        let mut pool = without(pool, &victims);
        pool.shuffle(self.rng);
        pool.truncate(n);
        for (u, _, plan) in self.victims(&pool, n, days) {
            let t0 = plan.start - 3 * MINUTE_MS;
            let ctx = plan.ctx_at(plan.start);
            let typos: i64 = self.rng.random_range(2..=3);
            let user = &self.people.users[u];
            for k in 0..typos {
                self.out
                    .audit(user, t0 + k * 30_000, "user_login_failed", None, &ctx, &[]);
            }
            self.label(LabelKind::NearMiss, D, "typo-streak", u, (t0, plan.start));
        }
    }

    fn mass_deletion(&mut self, n: usize) {
        const D: &str = "mass-deletion";
        let days = self.attack_days(7);
        let pool = self.untouched(self.people.victims(), 2 * n);
        // Everyday housekeeping: a fifth of the people delete a few files on some days.
        for u in 0..self.people.users.len() {
            if self.people.users[u].role == Role::Service || !self.rng.random_bool(0.2) {
                continue;
            }
            for day in 0..self.config.days {
                let plan = self.plans[u][day as usize].clone();
                if !plan.active || !self.rng.random_bool(0.3) {
                    continue;
                }
                for _ in 0..self.rng.random_range(1..=5) {
                    let t = plan.moment(self.rng);
                    let f = file(self.rng);
                    self.out.audit(
                        &self.people.users[u],
                        t,
                        "file_deleted",
                        Some(f),
                        &plan.ctx_at(t),
                        &[],
                    );
                }
            }
        }
        let victims = self.victims(&pool, n, days.clone());
        for (u, _, plan) in &victims {
            // A wiper in its owner's session: files, then channels archived and deleted,
            // within half an hour.
            let t0 = plan.start
                + self
                    .rng
                    .random_range(0..(plan.end - plan.start - 40 * MINUTE_MS).max(1));
            let ctx = plan.ctx_at(t0);
            let user = &self.people.users[*u];
            let files: i64 = self.rng.random_range(30..=45);
            for k in 0..files {
                let f = file(self.rng);
                self.out
                    .audit(user, t0 + k * 20_000, "file_deleted", Some(f), &ctx, &[]);
            }
            let mut t = t0 + files * 20_000;
            for action in [
                "public_channel_archive",
                "public_channel_archive",
                "private_channel_archive",
                "public_channel_deleted",
            ] {
                t += 60_000;
                let c = channel(self.rng);
                self.out.audit(user, t, action, Some(c), &ctx, &[]);
            }
            self.label(LabelKind::Attack, D, "wiper", *u, (t0, t));
        }
        // Near-misses: a clean-up of old files spread over an afternoon.
        let mut pool = without(pool, &victims);
        pool.shuffle(self.rng);
        pool.truncate(n);
        for (u, _, plan) in self.victims(&pool, n / 2, days) {
            let t0 = plan.start + 2 * HOUR_MS;
            let k: i64 = self.rng.random_range(40..=48);
            let step = 4 * HOUR_MS / k;
            let user = &self.people.users[u];
            for i in 0..k {
                let t = t0 + i * step;
                let f = file(self.rng);
                self.out
                    .audit(user, t, "file_deleted", Some(f), &plan.ctx_at(t), &[]);
            }
            self.label(
                LabelKind::NearMiss,
                D,
                "spread-clean-up",
                u,
                (t0, t0 + 4 * HOUR_MS),
            );
        }
    }

    fn risky_app(&mut self, n: usize) {
        const D: &str = "risky-app";
        let days = self.attack_days(7);
        let pool = self.untouched(self.people.victims(), 2 * n);
        let broad = r#"["channels:history","chat:write","files:read"]"#;
        for (u, _, plan) in self.victims(&pool, n, days.clone()) {
            // An unapproved app with broad scopes, installed by a regular user (a
            // consent phish), then pulling files on the user's grant from its server.
            let app = app(self.rng);
            let t0 = plan.start + self.rng.random_range(0..(plan.end - plan.start).max(1));
            let user = &self.people.users[u];
            self.out.audit(
                user,
                t0,
                "app_installed",
                Some(app.clone()),
                &plan.ctx_at(t0),
                &[
                    ("entity.is_directory_approved", "false"),
                    ("entity.scopes", broad),
                ],
            );
            let server = Ctx {
                ip: attacker_ip(self.rng, false),
                ua: String::new(),
                session: String::new(),
            };
            let via = serde_json::json!({"id": app.id, "name": app.name}).to_string();
            let k: i64 = 22;
            let start = t0 + 5 * MINUTE_MS;
            for i in 0..k {
                let f = file(self.rng);
                self.out.audit(
                    user,
                    start + i * 20_000,
                    "file_downloaded",
                    Some(f),
                    &server,
                    &[("context.app", &via)],
                );
            }
            let end = start + (k - 1) * 20_000;
            self.label_subject(
                LabelKind::Attack,
                D,
                "consent-phish",
                app.id.clone(),
                (t0, end),
            );
        }
        // Near-misses: IT installs an approved app with the same scopes, which then
        // syncs files; and a narrow-scoped app anyone may add.
        let it = self.people.with_role(Role::ItAdmin);
        for (u, _, plan) in self.victims(&it, n / 2, days) {
            let app = app(self.rng);
            let t0 = plan.start + HOUR_MS;
            let user = &self.people.users[u];
            self.out.audit(
                user,
                t0,
                "app_installed",
                Some(app.clone()),
                &plan.ctx_at(t0),
                &[
                    ("entity.is_directory_approved", "true"),
                    ("entity.scopes", broad),
                ],
            );
            let via = serde_json::json!({"id": app.id, "name": app.name}).to_string();
            let server = Ctx {
                ip: format!("{}.7.7", super::geography::SERVICE_NETWORK.0),
                ua: String::new(),
                session: String::new(),
            };
            for i in 0..15 {
                let f = file(self.rng);
                self.out.audit(
                    user,
                    t0 + 5 * MINUTE_MS + i * 20_000,
                    "file_downloaded",
                    Some(f),
                    &server,
                    &[("context.app", &via)],
                );
            }
            let span = (t0, t0 + 15 * MINUTE_MS);
            self.label_subject(
                LabelKind::NearMiss,
                D,
                "approved-app-by-it",
                app.id.clone(),
                span,
            );
        }
    }

    /// Near-misses of everyday life: a new laptop at the usual desk, and a move to a
    /// new home (a new broadband network) with the usual laptop.
    fn life_changes(&mut self, n: usize) {
        const D: &str = "new-network-origin";
        let days = self.attack_days(7);
        let mut pool = self.untouched(self.people.victims(), 2 * n);
        pool.shuffle(self.rng);
        pool.truncate(n);
        for (i, (u, day, plan)) in self.victims(&pool, n / 2, days).into_iter().enumerate() {
            let user = &self.people.users[u];
            let (ctx, scenario) = if i % 2 == 0 {
                // The new laptop: another desktop client, where the user always works.
                let ua = if user.devices[0].ua.contains("Macintosh") {
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/13{a}.0.0.0 Safari/537.36 Edg/13{a}.0.{b}.0"
                } else {
                    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/13{a}.0.0.0 Safari/537.36"
                };
                let ctx = Ctx {
                    ip: plan.ip.clone(),
                    ua: agent(ua, day),
                    session: session_id(self.rng),
                };
                (ctx, "new-laptop")
            } else {
                // The move: the region's other broadband provider, the usual laptop.
                let region = &REGIONS[user.region];
                let isp = region
                    .isps
                    .iter()
                    .map(|(net, ..)| *net)
                    .find(|net| !user.home_ip.starts_with(net))
                    .unwrap_or(region.isps[0].0);
                let ctx = Ctx {
                    ip: host_in(self.rng, isp),
                    ua: plan.ua.clone(),
                    session: session_id(self.rng),
                };
                (ctx, "new-home-network")
            };
            let t0 = plan.start + self.rng.random_range(30..120) * MINUTE_MS;
            let s = self.login_and_work(u, t0, &ctx, 2 * HOUR_MS, 4);
            self.label(LabelKind::NearMiss, D, scenario, u, (t0, s.1));
        }
    }

    /// Integration apps acting in their own name from their cloud servers around the
    /// clock (near-misses for `datacenter-origin`, which judges people only).
    fn integration_apps(&mut self) {
        let days = self.attack_days(7);
        let first = self.config.start_ms + i64::from(days.start) * DAY_MS;
        let end = self.config.start_ms + i64::from(self.config.days) * DAY_MS;
        for k in 0..3 {
            let app = app(self.rng);
            let cloud = CLOUD[k % CLOUD.len()].0;
            let ctx = Ctx {
                ip: host_in(self.rng, cloud),
                ua: "Slack-Integration/1.0".into(),
                session: String::new(),
            };
            let owner = &self.people.users[self.people.with_role(Role::ItAdmin)[0]];
            let mut span = (i64::MAX, i64::MIN);
            for hour in 0..i64::from(self.config.days) * 24 {
                let from = self.config.start_ms + hour * HOUR_MS;
                for _ in 0..self.rng.random_range(1..=4) {
                    let t = from + self.rng.random_range(0..HOUR_MS);
                    let f = file(self.rng);
                    self.out
                        .audit(owner, t, "file_uploaded", Some(f), &ctx, &[]);
                    if let Some(e) = self.out.events.last_mut() {
                        e.actor = app.clone();
                    }
                    if (first..end).contains(&t) {
                        span = (span.0.min(t), span.1.max(t));
                    }
                }
            }
            if span.0 <= span.1 {
                let (kind, subject) = (LabelKind::NearMiss, app.id.clone());
                self.label_subject(kind, "datacenter-origin", "integration-app", subject, span);
            }
        }
    }
}
