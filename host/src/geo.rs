//! The operator's geolocation databases (MaxMind format): where an address is and who
//! announces it, for the `aer:plugin/geo` host service.
//!
//! Any mix of GeoLite2/GeoIP2 City or Country (country, coordinates), ASN (network and
//! organisation), Anonymous IP or Enterprise (hosting provider, VPN, Tor, proxy) files
//! is read; for each address the first database that knows a field answers it. An
//! address is a hosting network's when a database says so or its autonomous system is
//! on the operator's list ([`DEFAULT_HOSTING_ASNS`] unless configured). Without a
//! database every answer is unknown.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Autonomous systems of large hosting and cloud providers, the default list of
/// hosting networks (for databases that name an address's AS but not its use, such as
/// GeoLite2 ASN): Amazon (16509, 14618), Google Cloud (396982, 15169), Microsoft
/// (8075), DigitalOcean (14061), OVH (16276), Hetzner (24940), Linode/Akamai (63949),
/// Vultr (20473), Alibaba (45102), Oracle (31898), Scaleway (12876), Contabo (51167),
/// Tencent (132203), Leaseweb (60781).
pub const DEFAULT_HOSTING_ASNS: &[u32] = &[
    16509, 14618, 396982, 15169, 8075, 14061, 16276, 24940, 63949, 20473, 45102, 31898, 12876,
    51167, 132203, 60781,
];

/// Longest organisation name handed to a plugin, in bytes.
const MAX_ORGANISATION_BYTES: usize = 128;

/// Longest address text looked up (a longer one is not an address).
const MAX_ADDRESS_BYTES: usize = 64;

pub use aer_wire::geo::{Coordinates, Network, Place};

/// Why the geolocation databases could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot use geolocation database {}: {source}", path.display())]
pub struct GeoError {
    /// The file.
    pub path: PathBuf,
    /// What was wrong with it.
    #[source]
    pub source: maxminddb::MaxMindDbError,
}

struct Database {
    path: PathBuf,
    reader: maxminddb::Reader<Vec<u8>>,
}

/// The operator's databases, opened once and shared by every plugin call.
pub struct Geo {
    databases: Vec<Database>,
    hosting_asns: BTreeSet<u32>,
}

impl std::fmt::Debug for Geo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Geo")
            .field("databases", &self.describe())
            .field("hosting_asns", &self.hosting_asns.len())
            .finish()
    }
}

impl Default for Geo {
    fn default() -> Self {
        Geo::none()
    }
}

/// The fields of GeoIP2/GeoLite2 City, Country, ASN, Anonymous IP and Enterprise
/// records that the service reads; every other field is skipped.
#[derive(Deserialize, Default)]
struct Record<'a> {
    #[serde(borrow)]
    country: Option<Country<'a>>,
    location: Option<Location>,
    autonomous_system_number: Option<u32>,
    #[serde(borrow)]
    autonomous_system_organization: Option<&'a str>,
    is_hosting_provider: Option<bool>,
    is_anonymous: Option<bool>,
    is_anonymous_vpn: Option<bool>,
    is_public_proxy: Option<bool>,
    is_tor_exit_node: Option<bool>,
    #[serde(borrow)]
    traits: Option<Traits<'a>>,
}

#[derive(Deserialize)]
struct Country<'a> {
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
    accuracy_radius: Option<u16>,
}

#[derive(Deserialize)]
struct Traits<'a> {
    autonomous_system_number: Option<u32>,
    #[serde(borrow)]
    autonomous_system_organization: Option<&'a str>,
    user_type: Option<&'a str>,
    is_hosting_provider: Option<bool>,
    is_anonymous: Option<bool>,
    is_anonymous_vpn: Option<bool>,
    is_public_proxy: Option<bool>,
    is_tor_exit_node: Option<bool>,
}

impl Geo {
    /// No database: every address is unknown.
    pub fn none() -> Geo {
        Geo {
            databases: Vec::new(),
            hosting_asns: DEFAULT_HOSTING_ASNS.iter().copied().collect(),
        }
    }

    /// Open `paths` (read whole into memory and checked as MaxMind databases), with
    /// `hosting_asns` as the list of hosting networks.
    pub fn open(
        paths: &[PathBuf],
        hosting_asns: impl IntoIterator<Item = u32>,
    ) -> Result<Geo, GeoError> {
        let databases = paths
            .iter()
            .map(|path| {
                let error = |source| GeoError {
                    path: path.clone(),
                    source,
                };
                let reader = maxminddb::Reader::open_readfile(path).map_err(error)?;
                Ok(Database {
                    path: path.clone(),
                    reader,
                })
            })
            .collect::<Result<_, GeoError>>()?;
        Ok(Geo {
            databases,
            hosting_asns: hosting_asns.into_iter().collect(),
        })
    }

    /// Whether any database is loaded.
    pub fn is_known(&self) -> bool {
        !self.databases.is_empty()
    }

    /// Each database's path, type and build date, e.g. for the start-up log.
    pub fn describe(&self) -> Vec<String> {
        self.databases
            .iter()
            .map(|d| {
                let m = d.reader.metadata();
                let built = chrono::DateTime::from_timestamp(
                    i64::try_from(m.build_epoch).unwrap_or(i64::MAX),
                    0,
                )
                .map_or_else(|| "?".to_owned(), |t| t.format("%Y-%m-%d").to_string());
                format!("{} ({}, built {built})", d.path.display(), m.database_type)
            })
            .collect()
    }

    /// What the databases say of `address` (unknown for text that is not an address).
    pub fn lookup(&self, address: &str) -> Place {
        if self.databases.is_empty() || address.len() > MAX_ADDRESS_BYTES {
            return Place::default();
        }
        let Ok(ip) = address.trim().parse::<IpAddr>() else {
            return Place::default();
        };
        let mut place = Place::default();
        let mut asn = None;
        let mut organisation = None;
        let (mut hosting, mut anonymous) = (None, None);
        for db in &self.databases {
            let Some(record) = decode(&db.reader, ip, &db.path) else {
                continue;
            };
            let traits = record.traits.as_ref();
            if place.country.is_none() {
                place.country = record
                    .country
                    .and_then(|c| c.iso_code)
                    .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
                    .map(str::to_owned);
            }
            if place.coordinates.is_none() {
                place.coordinates = record.location.and_then(coordinates);
            }
            asn = asn.or(record
                .autonomous_system_number
                .filter(|n| *n != 0)
                .or(traits.and_then(|t| t.autonomous_system_number.filter(|n| *n != 0))));
            organisation = organisation.or(record
                .autonomous_system_organization
                .or(traits.and_then(|t| t.autonomous_system_organization))
                .filter(|o| !o.is_empty())
                .map(|o| clip(o, MAX_ORGANISATION_BYTES)));
            let said_hosting = record.is_hosting_provider.or(traits.and_then(|t| {
                t.is_hosting_provider
                    .or(t.user_type.map(|u| u == "hosting"))
            }));
            hosting = merge(hosting, said_hosting);
            let anon_fields = [
                record.is_anonymous,
                record.is_anonymous_vpn,
                record.is_public_proxy,
                record.is_tor_exit_node,
            ];
            let anon_traits = traits.map_or([None; 4], |t| {
                [
                    t.is_anonymous,
                    t.is_anonymous_vpn,
                    t.is_public_proxy,
                    t.is_tor_exit_node,
                ]
            });
            for said in anon_fields.into_iter().chain(anon_traits) {
                anonymous = merge(anonymous, said);
            }
        }
        let listed = asn.is_some_and(|n| self.hosting_asns.contains(&n));
        if asn.is_some() || organisation.is_some() || hosting.is_some() || anonymous.is_some() {
            place.network = Some(Network {
                asn: asn.unwrap_or(0),
                organisation: organisation.unwrap_or_default(),
                hosting: hosting.unwrap_or(false) || listed,
                anonymous: anonymous.unwrap_or(false),
            });
        }
        place
    }
}

/// One database's record for `ip`, if it holds one it can decode.
fn decode<'a>(
    reader: &'a maxminddb::Reader<Vec<u8>>,
    ip: IpAddr,
    path: &Path,
) -> Option<Record<'a>> {
    let found = reader.lookup(ip).ok()?;
    match found.decode::<Record<'a>>() {
        Ok(record) => record,
        Err(e) => {
            tracing::debug!(database = %path.display(), %ip, "unreadable geolocation record: {e}");
            None
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// A database's "yes" wins over another's "no"; either wins over silence.
fn merge(known: Option<bool>, said: Option<bool>) -> Option<bool> {
    match (known, said) {
        (Some(a), Some(b)) => Some(a || b),
        (a, b) => a.or(b),
    }
}

/// Coordinates in range, or none.
fn coordinates(l: Location) -> Option<Coordinates> {
    let (latitude, longitude) = (l.latitude?, l.longitude?);
    let valid = latitude.is_finite()
        && longitude.is_finite()
        && (-90.0..=90.0).contains(&latitude)
        && (-180.0..=180.0).contains(&longitude);
    valid.then_some(Coordinates {
        latitude,
        longitude,
        accuracy_km: u32::from(l.accuracy_radius.unwrap_or(0)),
    })
}

/// Builds MaxMind-format databases: `aer gen`'s world and tests' own.
pub mod write {
    use std::collections::BTreeMap;

    use ipnet::IpNet;
    use serde::Serialize;

    /// One network's facts, written in the GeoIP2 field names the service reads.
    #[derive(Debug, Clone, Default, Serialize)]
    pub struct Entry {
        /// Country and coordinates.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub country: Option<CountryEntry>,
        /// Coordinates.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub location: Option<LocationEntry>,
        /// AS number.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub autonomous_system_number: Option<u32>,
        /// AS organisation.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub autonomous_system_organization: Option<String>,
        /// Hosting provider (Anonymous IP field).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub is_hosting_provider: Option<bool>,
        /// VPN (Anonymous IP field).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub is_anonymous_vpn: Option<bool>,
    }

    /// `country` of a City record.
    #[derive(Debug, Clone, Serialize)]
    pub struct CountryEntry {
        /// ISO code.
        pub iso_code: String,
        /// Names by language.
        pub names: BTreeMap<String, String>,
    }

    /// `location` of a City record.
    #[derive(Debug, Clone, Serialize)]
    pub struct LocationEntry {
        /// Degrees north.
        pub latitude: f64,
        /// Degrees east.
        pub longitude: f64,
        /// Kilometres.
        pub accuracy_radius: u16,
    }

    impl Entry {
        /// A place in `country` at (`latitude`, `longitude`).
        pub fn place(country: &str, latitude: f64, longitude: f64) -> Entry {
            Entry {
                country: Some(CountryEntry {
                    iso_code: country.to_owned(),
                    names: BTreeMap::new(),
                }),
                location: Some(LocationEntry {
                    latitude,
                    longitude,
                    accuracy_radius: 20,
                }),
                ..Entry::default()
            }
        }

        /// Announced by AS `asn` of `organisation`.
        pub fn network(mut self, asn: u32, organisation: &str) -> Entry {
            self.autonomous_system_number = Some(asn);
            self.autonomous_system_organization = Some(organisation.to_owned());
            self
        }

        /// Marked a hosting provider's network.
        pub fn hosting(mut self) -> Entry {
            self.is_hosting_provider = Some(true);
            self
        }

        /// Marked a VPN's.
        pub fn vpn(mut self) -> Entry {
            self.is_anonymous_vpn = Some(true);
            self
        }
    }

    /// The bytes of a database holding `entries`; the same entries give the same bytes
    /// (the build date is fixed at the epoch).
    pub fn database<'a>(
        entries: impl IntoIterator<Item = (IpNet, &'a Entry)>,
    ) -> Result<Vec<u8>, mmdb_writer::Error> {
        let mut writer = mmdb_writer::Writer::builder("AER-Geo")
            .build_epoch(std::time::SystemTime::UNIX_EPOCH)
            .build();
        for (net, entry) in entries {
            writer.insert(net, entry)?;
        }
        writer.to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::write::{Entry, database};
    use super::*;

    fn geo(entries: &[(&str, Entry)], hosting_asns: &[u32]) -> (Geo, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("geo.mmdb");
        let nets: Vec<(ipnet::IpNet, Entry)> = entries
            .iter()
            .map(|(n, e)| (n.parse().expect("net"), e.clone()))
            .collect();
        let bytes = database(nets.iter().map(|(n, e)| (*n, e))).expect("database");
        std::fs::write(&path, bytes).expect("write");
        let geo = Geo::open(&[path], hosting_asns.iter().copied()).expect("open");
        (geo, dir)
    }

    #[test]
    fn a_database_answers_country_coordinates_and_network() {
        let (geo, _dir) = geo(
            &[
                (
                    "198.51.100.0/24",
                    Entry::place("DE", 52.52, 13.40).network(64500, "Example Office"),
                ),
                (
                    "203.0.113.0/24",
                    Entry::place("US", 37.77, -122.42).hosting(),
                ),
                (
                    "192.0.2.0/24",
                    Entry::place("FR", 48.85, 2.35).network(16509, "Cloud"),
                ),
                ("2001:db8::/32", Entry::place("JP", 35.68, 139.69)),
            ],
            DEFAULT_HOSTING_ASNS,
        );
        let p = geo.lookup("198.51.100.7");
        assert_eq!(p.country.as_deref(), Some("DE"));
        let c = p.coordinates.expect("coordinates");
        assert!((c.latitude - 52.52).abs() < 1e-9 && (c.longitude - 13.40).abs() < 1e-9);
        let n = p.network.expect("network");
        assert_eq!(
            (n.asn, n.organisation.as_str(), n.hosting),
            (64500, "Example Office", false)
        );
        assert!(geo.lookup("203.0.113.9").network.expect("flagged").hosting);
        assert!(
            geo.lookup("192.0.2.1").network.expect("listed AS").hosting,
            "an AS on the hosting list is hosting"
        );
        assert_eq!(geo.lookup("2001:db8::1").country.as_deref(), Some("JP"));
    }

    #[test]
    fn unknown_addresses_and_no_database_answer_unknown() {
        let (geo, _dir) = geo(&[("198.51.100.0/24", Entry::place("DE", 52.5, 13.4))], &[]);
        for text in [
            "10.0.0.1",
            "not an address",
            "",
            &"1".repeat(100),
            "2001:db9::1",
        ] {
            assert_eq!(geo.lookup(text), Place::default(), "{text}");
        }
        assert_eq!(Geo::none().lookup("198.51.100.7"), Place::default());
    }

    #[test]
    fn impossible_coordinates_and_country_codes_are_dropped() {
        let mut bad = Entry::place("germany", 95.0, 13.4);
        bad.autonomous_system_number = Some(64501);
        let (geo, _dir) = geo(&[("198.51.100.0/24", bad)], &[]);
        let p = geo.lookup("198.51.100.7");
        assert_eq!((p.country, p.coordinates), (None, None));
        assert_eq!(p.network.expect("the AS is still known").asn, 64501);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("junk.mmdb");
        std::fs::write(&path, b"definitely not a MaxMind database").expect("write");
        let e = Geo::open(std::slice::from_ref(&path), []).expect_err("refused");
        assert!(e.to_string().contains("junk.mmdb"), "{e}");
    }

    #[test]
    fn later_databases_fill_what_earlier_ones_do_not_know() {
        let dir = tempfile::tempdir().expect("temp dir");
        let city = dir.path().join("city.mmdb");
        let asn = dir.path().join("asn.mmdb");
        let net: ipnet::IpNet = "198.51.100.0/24".parse().expect("net");
        let place = Entry::place("DE", 52.5, 13.4);
        let owner = Entry {
            autonomous_system_number: Some(64500),
            ..Entry::default()
        };
        std::fs::write(&city, database([(net, &place)]).expect("db")).expect("write");
        std::fs::write(&asn, database([(net, &owner)]).expect("db")).expect("write");
        let geo = Geo::open(&[city, asn], []).expect("open");
        let p = geo.lookup("198.51.100.7");
        assert_eq!(p.country.as_deref(), Some("DE"));
        assert_eq!(p.network.expect("from the second").asn, 64500);
        assert_eq!(geo.describe().len(), 2);
    }
}
