//! Who works in the generated organisation, and their habits.

use rand::RngExt;
use rand::seq::{IndexedRandom, SliceRandom};

use super::{GenConfig, Rng, geography};

/// The organisation's email domain.
pub(crate) const DOMAIN: &str = "acme.example";
/// Partner organisations' domain (external users).
pub(crate) const PARTNER_DOMAIN: &str = "partner.example";
/// The workspace every event happens in.
pub(crate) const WORKSPACE: (&str, &str, &str) = ("E0ACME", "Acme", "acme");

/// Networks attackers come from (never used by the organisation).
pub(crate) const ATTACKERS: &[&str] = &[
    "45.134", "103.152", "194.165", "91.219", "179.43", "196.251",
];
/// Tor exits some attackers use.
pub(crate) const TOR_EXITS: &[&str] = &[
    "185.220.101.4",
    "185.220.101.33",
    "185.220.102.8",
    "199.249.230.87",
    "204.85.191.30",
    "171.25.193.77",
];

/// What kind of account, and so which habits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// An ordinary employee.
    Regular,
    /// Downloads many files every day.
    Analyst,
    /// Posts many messages every day.
    Chatty,
    /// Shares files to partners' Slack Connect channels every day.
    PartnerManager,
    /// Creates public links every day.
    Marketing,
    /// Creates accounts most days.
    HrAdmin,
    /// Grants permissions most days.
    ItAdmin,
    /// An admin who rarely uses admin rights.
    Admin,
    /// A script with an API token.
    Service,
    /// A partner's user in shared channels.
    External,
}

/// A client a user works with (after the first, mobile ones on the carrier's network).
#[derive(Debug, Clone)]
pub(crate) struct Device {
    /// User-agent template; `{a}`, `{b}` are version numbers that change over time.
    pub ua: &'static str,
}

const MAC_APP: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.{a}.{b} Chrome/13{a}.0.0.0 Electron/3{a}.0.0 Safari/537.36 Sonic Slack_SSB/4.{a}.{b}";
const WIN_APP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.{a}.{b} Chrome/13{a}.0.0.0 Electron/3{a}.0.0 Safari/537.36 Sonic Slack_SSB/4.{a}.{b}";
const MAC_CHROME: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/13{a}.0.0.0 Safari/537.36";
const WIN_EDGE: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/13{a}.0.0.0 Safari/537.36 Edg/13{a}.0.{b}.0";
const IPHONE: &str = "com.tinyspeck.chatlyio/25.{a}.{b} (iPhone; iOS 18.{a}; Scale/3.00)";
const ANDROID: &str = "com.Slack/25.{a}.{b} (Linux; Android 15; Pixel 9)";
const SERVICE: &[&str] = &[
    "python-requests/2.32.{a}",
    "Go-http-client/1.1",
    "curl/8.{a}.{b}",
];

/// Clients attackers use: families no employee has.
pub(crate) const ATTACKER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64; rv:13{a}.0) Gecko/20100101 Firefox/13{a}.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/12{a}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
];
/// Scripts attackers use with a stolen token.
pub(crate) const ATTACKER_SCRIPTS: &[&str] =
    &["python-requests/2.31.0", "curl/8.4.0", "Go-http-client/2.0"];

/// Fill a user-agent template with versions for `day` (clients update every few days).
pub(crate) fn agent(template: &str, day: u32) -> String {
    template
        .replace("{a}", &(1 + day / 5).to_string())
        .replace("{b}", &(100 + day * 3 % 17).to_string())
}

/// One account and its habits.
#[derive(Debug, Clone)]
pub(crate) struct User {
    /// Slack user id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// Kind of account.
    pub role: Role,
    /// Offset of the user's time zone from UTC, in hours.
    pub tz_hours: i64,
    /// Local hour the working day starts.
    pub start_hour: i64,
    /// Home address.
    pub home_ip: String,
    /// Office address.
    pub office_ip: String,
    /// Mobile carrier network (/16).
    pub carrier: &'static str,
    /// Home region (an index into [`super::geography::REGIONS`]).
    pub region: usize,
    /// Main client, then others.
    pub devices: Vec<Device>,
    /// Mean messages on a working day.
    pub messages: f64,
    /// Mean file downloads on a working day.
    pub downloads: f64,
    /// Never acted on (the generated policy lists them).
    pub allowlisted: bool,
}

impl User {
    /// Whether the decision engine treats this account as external.
    pub fn external(&self) -> bool {
        self.role == Role::External
    }
}

/// Everyone.
#[derive(Debug)]
pub(crate) struct Population {
    /// All accounts.
    pub users: Vec<User>,
}

fn octets(rng: &mut Rng) -> String {
    format!(
        "{}.{}",
        rng.random_range(0..=255),
        rng.random_range(1..=254)
    )
}

impl Population {
    /// A population of `config.users` accounts: two HR and two IT admins, 4% other
    /// admins, 1% service accounts, 2% each of partner managers and marketing, 5% each
    /// of analysts and chatty users, 4% external; the rest ordinary employees.
    pub fn new(config: &GenConfig, rng: &mut Rng) -> Self {
        let n = config.users.max(30);
        let share = |pct: usize, min: usize| (n * pct / 100).max(min);
        let mut roles = Vec::with_capacity(n);
        roles.extend(std::iter::repeat_n(Role::HrAdmin, 2));
        roles.extend(std::iter::repeat_n(Role::ItAdmin, 2));
        roles.extend(std::iter::repeat_n(Role::Admin, share(4, 8)));
        roles.extend(std::iter::repeat_n(Role::Service, share(1, 2)));
        roles.extend(std::iter::repeat_n(Role::External, share(4, 3)));
        roles.extend(std::iter::repeat_n(Role::Analyst, share(5, 2)));
        roles.extend(std::iter::repeat_n(Role::Chatty, share(5, 2)));
        roles.extend(std::iter::repeat_n(Role::PartnerManager, share(2, 2)));
        roles.extend(std::iter::repeat_n(Role::Marketing, share(2, 2)));
        roles.resize(n.max(roles.len()), Role::Regular);
        roles.shuffle(rng);

        let mut users = Vec::with_capacity(roles.len());
        for (i, role) in roles.into_iter().enumerate() {
            let handle = format!("user{i:04}");
            let external = role == Role::External;
            let service = role == Role::Service;
            let desktop = [MAC_APP, WIN_APP, MAC_CHROME, WIN_EDGE];
            let mut devices = vec![Device {
                ua: if service {
                    SERVICE.choose(rng).expect("not empty")
                } else {
                    desktop.choose(rng).expect("not empty")
                },
            }];
            if !service && rng.random_bool(0.7) {
                devices.push(Device {
                    ua: if rng.random_bool(0.6) {
                        IPHONE
                    } else {
                        ANDROID
                    },
                });
            }
            let messages = config.messages_per_day
                * match role {
                    Role::Chatty => rng.random_range(2.5..3.5),
                    Role::External => rng.random_range(0.1..0.4),
                    Role::Service => 0.3,
                    _ => rng.random_range(0.6..1.4),
                };
            let downloads = match role {
                Role::Analyst => rng.random_range(60.0..180.0),
                Role::Service => 0.0,
                _ => rng.random_range(0.5..4.0),
            };
            let tz_hours = *[-8i64, -7, -6, -5, -5, -5, 0, 0, 1, 1, 2]
                .choose(rng)
                .expect("not empty");
            let region = geography::region_of(tz_hours);
            let here = &geography::REGIONS[region];
            users.push(User {
                id: format!("W{:07}", 100 + i),
                name: handle.clone(),
                email: format!(
                    "{handle}@{}",
                    if external { PARTNER_DOMAIN } else { DOMAIN }
                ),
                role,
                tz_hours,
                start_hour: rng.random_range(7..=10),
                home_ip: format!(
                    "{}.{}",
                    here.isps.choose(rng).expect("not empty").0,
                    octets(rng)
                ),
                office_ip: if service {
                    format!("{}.{}", geography::SERVICE_NETWORK.0, octets(rng))
                } else {
                    format!("{}.{}", here.office, rng.random_range(2..=250))
                },
                carrier: here.carrier.0,
                region,
                devices,
                messages,
                downloads,
                allowlisted: false,
            });
        }
        // Two ordinary employees are allowlisted (and will be attacked).
        for u in users.iter_mut().filter(|u| u.role == Role::Regular).take(2) {
            u.allowlisted = true;
        }
        Population { users }
    }

    /// Ids of allowlisted users.
    pub fn allowlisted(&self) -> Vec<String> {
        self.users
            .iter()
            .filter(|u| u.allowlisted)
            .map(|u| u.id.clone())
            .collect()
    }

    /// Indices of users with `role`.
    pub fn with_role(&self, role: Role) -> Vec<usize> {
        (0..self.users.len())
            .filter(|&i| self.users[i].role == role)
            .collect()
    }

    /// Indices of ordinary employees that are not allowlisted (attack victims).
    pub fn victims(&self) -> Vec<usize> {
        (0..self.users.len())
            .filter(|&i| self.users[i].role == Role::Regular && !self.users[i].allowlisted)
            .collect()
    }
}
