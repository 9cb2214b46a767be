//! Everyday traffic: each person's working days (or a script's hours), their logins,
//! sessions, messages, downloads, shares and admin chores.

use rand::RngExt;

use super::population::{self, Population, Role, User, agent};
use super::{DAY_MS, GenConfig, HOUR_MS, MINUTE_MS, Rng};
use crate::Event;
use aer_wire::{Context, Entity, Location};

/// Where generated events go, with the counters that keep their ids unique.
#[derive(Debug)]
pub(crate) struct Sink {
    /// Events, in generation order.
    pub events: Vec<Event>,
    seq: u64,
    /// Source of event ids (its own stream, so ids do not shift other choices).
    ids: Rng,
}

impl Sink {
    /// An empty sink whose ids derive from `seed`.
    pub fn new(seed: u64) -> Self {
        use rand::SeedableRng;
        Sink {
            events: Vec::new(),
            seq: 0,
            ids: Rng::seed_from_u64(seed ^ 0x05ee_d1d5),
        }
    }
}

/// The client context of an audit event.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ctx {
    /// Address.
    pub ip: String,
    /// User agent.
    pub ua: String,
    /// Session id ("" for token-based API calls).
    pub session: String,
}

/// A user's day: when they work, from where, and their main session.
#[derive(Debug, Clone, Default)]
pub(crate) struct DayPlan {
    /// Worked that day.
    pub active: bool,
    /// First and last activity (ms).
    pub start: i64,
    /// See `start`.
    pub end: i64,
    /// Main session's id.
    pub session: String,
    /// Main client's user agent.
    pub ua: String,
    /// Address before `switch_at`.
    pub ip: String,
    /// When the user moved (office to home), and the address after it.
    pub switch: Option<(i64, i64, String)>,
}

impl DayPlan {
    /// The main session's address at `t`.
    pub fn ip_at(&self, t: i64) -> &str {
        match &self.switch {
            Some((_, resume, ip)) if t >= *resume => ip,
            _ => &self.ip,
        }
    }

    /// The main session's context at `t`.
    pub fn ctx_at(&self, t: i64) -> Ctx {
        Ctx {
            ip: self.ip_at(t).to_owned(),
            ua: self.ua.clone(),
            session: self.session.clone(),
        }
    }

    /// A random moment of activity (never inside the commute gap).
    pub fn moment(&self, rng: &mut Rng) -> i64 {
        loop {
            let t = rng.random_range(self.start..=self.end);
            match &self.switch {
                Some((leave, resume, _)) if t > *leave && t < *resume => continue,
                _ => return t - t % 1000,
            }
        }
    }
}

impl Sink {
    fn next_id(&mut self) -> String {
        self.seq += 1;
        let rng = &mut self.ids;
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            rng.random::<u32>(),
            rng.random::<u16>(),
            rng.random::<u16>() & 0xfff,
            0x8000 | (rng.random::<u16>() & 0x3fff),
            self.seq
        )
    }

    /// An audit-log event by `user`.
    pub fn audit(
        &mut self,
        user: &User,
        t: i64,
        action: &str,
        target: Option<Entity>,
        ctx: &Ctx,
        details: &[(&str, &str)],
    ) {
        let id = self.next_id();
        let mut all = vec![(
            "actor.team".to_owned(),
            if user.external() {
                "T0PARTNER"
            } else {
                "T0ACME"
            }
            .to_owned(),
        )];
        if user.external() {
            all.push(("actor.account_type".into(), "external".into()));
        }
        // In the order ingest gives them back: actor fields, then details by name.
        let mut details = details.to_vec();
        details.sort_by_key(|(k, _)| *k);
        all.extend(details.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let (kind, id_, name, domain) = (
            "enterprise",
            population::WORKSPACE.0,
            population::WORKSPACE.1,
            population::WORKSPACE.2,
        );
        self.events.push(Event {
            id,
            time_ms: t - t % 1000,
            action: action.to_owned(),
            actor: person(user),
            target,
            context: Context {
                ip: ctx.ip.clone(),
                user_agent: ctx.ua.clone(),
                session_id: ctx.session.clone(),
                location: Location {
                    kind: kind.into(),
                    id: id_.into(),
                    name: name.into(),
                    domain: domain.into(),
                },
            },
            details: all,
        });
    }

    /// A message event (generic format: no client context).
    pub fn message(&mut self, user: &User, t: i64, channel: u32) {
        self.seq += 1;
        self.events.push(Event {
            id: format!("msg-{:09}", self.seq),
            time_ms: t - t % 1000,
            action: "message".into(),
            actor: person(user),
            target: Some(Entity {
                kind: "channel".into(),
                id: format!("C{channel:06}"),
                name: String::new(),
                email: String::new(),
            }),
            context: Context::default(),
            details: Vec::new(),
        });
    }
}

/// The user as an event's actor or target.
pub(crate) fn person(u: &User) -> Entity {
    Entity {
        kind: "user".into(),
        id: u.id.clone(),
        name: u.name.clone(),
        email: u.email.clone(),
    }
}

/// A file as an event's target.
pub(crate) fn file(rng: &mut Rng) -> Entity {
    let n: u32 = rng.random_range(0..200_000);
    Entity {
        kind: "file".into(),
        id: format!("F{n:08}"),
        name: format!("doc-{n}.pdf"),
        email: String::new(),
    }
}

/// A random count with mean `mean` (at least 0).
pub(crate) fn count(rng: &mut Rng, mean: f64) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    let x = mean * rng.random_range(0.6..1.4);
    let whole = x.floor();
    whole as u32 + u32::from(rng.random_bool((x - whole).clamp(0.0, 1.0)))
}

/// A session id as Slack writes them (a decimal number).
pub(crate) fn session_id(rng: &mut Rng) -> String {
    rng.random_range(1_000_000_000u64..9_999_999_999)
        .to_string()
}

/// Generate everyone's ordinary days; returns each user's day plans.
pub(crate) fn normal(
    config: &GenConfig,
    people: &Population,
    rng: &mut Rng,
    out: &mut Sink,
) -> Vec<Vec<DayPlan>> {
    let mut plans = Vec::with_capacity(people.users.len());
    let regulars = people.with_role(Role::Regular);
    for user in &people.users {
        let mut days = Vec::with_capacity(config.days as usize);
        for day in 0..config.days {
            let midnight = config.start_ms + i64::from(day) * DAY_MS;
            let plan = if user.role == Role::Service {
                service_day(user, day, midnight, rng, out);
                DayPlan::default()
            } else {
                person_day(user, day, midnight, &regulars, people, rng, out)
            };
            days.push(plan);
        }
        plans.push(days);
    }
    plans
}

/// A script's day: hourly syncs and a few bot messages, around the clock.
fn service_day(user: &User, day: u32, midnight: i64, rng: &mut Rng, out: &mut Sink) {
    let ctx = Ctx {
        ip: user.office_ip.clone(),
        ua: agent(user.devices[0].ua, day),
        session: String::new(),
    };
    for hour in 0..24 {
        let from = midnight + hour * HOUR_MS;
        for _ in 0..rng.random_range(10..=20) {
            let t = from + rng.random_range(0..HOUR_MS);
            let f = file(rng);
            out.audit(user, t, "file_downloaded", Some(f), &ctx, &[]);
        }
        for _ in 0..count(rng, user.messages / 24.0) {
            let t = from + rng.random_range(0..HOUR_MS);
            out.message(user, t, 1);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn person_day(
    user: &User,
    day: u32,
    midnight: i64,
    regulars: &[usize],
    people: &Population,
    rng: &mut Rng,
    out: &mut Sink,
) -> DayPlan {
    let weekday = day % 7 < 5;
    let active = day < 2 || rng.random_bool(if weekday { 0.95 } else { 0.12 });
    if !active {
        return DayPlan::default();
    }
    let (start, len) = if weekday {
        (
            midnight
                + (user.start_hour - user.tz_hours) * HOUR_MS
                + rng.random_range(0..45 * MINUTE_MS),
            rng.random_range(450 * MINUTE_MS..570 * MINUTE_MS),
        )
    } else {
        (
            midnight + (rng.random_range(10..18) - user.tz_hours) * HOUR_MS,
            rng.random_range(30 * MINUTE_MS..120 * MINUTE_MS),
        )
    };
    let in_office = weekday && !user.external() && rng.random_bool(0.6);
    let ip = if in_office {
        user.office_ip.clone()
    } else {
        user.home_ip.clone()
    };
    // Some office days end at home, in the same session, after the commute.
    let switch = (in_office && rng.random_bool(0.3)).then(|| {
        let leave = start + len * rng.random_range(40..60) / 100;
        (
            leave,
            leave + rng.random_range(45 * MINUTE_MS..75 * MINUTE_MS),
            user.home_ip.clone(),
        )
    });
    let plan = DayPlan {
        active,
        start,
        end: start + len,
        session: session_id(rng),
        ua: agent(user.devices[0].ua, day),
        ip,
        switch,
    };
    let t0 = plan.start;
    out.audit(user, t0, "user_login", None, &plan.ctx_at(t0), &[]);

    // The other devices: mobile on the carrier's network; every device is used on the
    // first two days, so it is known before anyone judges it.
    let mut mobile_ctx = None;
    for device in user.devices.iter().skip(1) {
        if day < 2 || rng.random_bool(0.4) {
            let ctx = Ctx {
                ip: format!(
                    "{}.{}.{}",
                    user.carrier,
                    rng.random_range(0..=255),
                    rng.random_range(1..=254)
                ),
                ua: agent(device.ua, day),
                session: session_id(rng),
            };
            let t = plan.moment(rng);
            out.audit(user, t, "user_login", None, &ctx, &[]);
            mobile_ctx = Some((t, ctx));
        }
    }

    let scale = if weekday { 1.0 } else { 0.15 };
    for _ in 0..count(rng, user.messages * scale) {
        let t = plan.moment(rng);
        out.message(user, t, rng.random_range(1..60));
    }
    let act = |out: &mut Sink, rng: &mut Rng, mean: f64, action: &str, details: &[(&str, &str)]| {
        for _ in 0..count(rng, mean) {
            let t = plan.moment(rng);
            let ctx = match &mobile_ctx {
                Some((since, ctx)) if t > *since && rng.random_bool(0.15) => ctx.clone(),
                _ => plan.ctx_at(t),
            };
            let f = file(rng);
            out.audit(user, t, action, Some(f), &ctx, details);
        }
    };
    act(out, rng, user.downloads * scale, "file_downloaded", &[]);
    act(out, rng, 1.5 * scale, "file_uploaded", &[]);
    act(
        out,
        rng,
        1.2 * scale,
        "file_shared",
        &[("is_ext_shared", "false"), ("channel_privacy", "private")],
    );
    act(out, rng, 2.5 * scale, "canvas_opened", &[]);
    act(out, rng, 0.8 * scale, "canvas_edited", &[]);
    act(out, rng, 0.5 * scale, "list_opened", &[]);
    act(out, rng, 1.0 * scale, "huddle_participant_joined", &[]);
    let external_share = [("is_ext_shared", "true"), ("channel_privacy", "shared")];
    match user.role {
        Role::PartnerManager if weekday => {
            let n = rng.random_range(3.0..8.0);
            act(out, rng, n, "file_shared", &external_share);
        }
        Role::Marketing if weekday => {
            let n = rng.random_range(1.0..3.0);
            act(out, rng, n, "file_public_link_created", &[]);
        }
        Role::HrAdmin if weekday && (day < 3 || rng.random_bool(0.6)) => {
            for _ in 0..rng.random_range(1..=3) {
                let t = plan.moment(rng);
                let new = new_account(rng);
                let action = if rng.random_bool(0.5) {
                    "user_created"
                } else {
                    "guest_created"
                };
                out.audit(user, t, action, Some(new), &plan.ctx_at(t), &[]);
            }
        }
        Role::ItAdmin if weekday && (day < 3 || rng.random_bool(0.5)) => {
            for _ in 0..rng.random_range(1..=2) {
                let t = plan.moment(rng);
                let target = &people.users[regulars[rng.random_range(0..regulars.len())]];
                let action = if rng.random_bool(0.7) {
                    "permissions_assigned"
                } else {
                    "role_change_to_admin"
                };
                out.audit(user, t, action, Some(person(target)), &plan.ctx_at(t), &[]);
            }
        }
        Role::Admin if weekday && rng.random_bool(0.08) => {
            let t = plan.moment(rng);
            out.audit(user, t, "manual_export_started", None, &plan.ctx_at(t), &[]);
        }
        _ if weekday && rng.random_bool(0.03) => {
            act(out, rng, 1.0, "file_shared", &external_share);
        }
        _ => {}
    }
    if rng.random_bool(0.3) {
        let t = plan.end;
        out.audit(user, t, "user_logout", None, &plan.ctx_at(t), &[]);
    }
    plan
}

/// A newly created account as an event's target.
pub(crate) fn new_account(rng: &mut Rng) -> Entity {
    let n: u32 = rng.random_range(0..100_000_000);
    Entity {
        kind: "user".into(),
        id: format!("W9{n:08}"),
        name: format!("new{n}"),
        email: format!("new{n}@{}", population::DOMAIN),
    }
}
