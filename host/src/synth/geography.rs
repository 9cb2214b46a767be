//! Where the generated organisation's networks are, and who announces them: the
//! regions its people live in (each with an office, home broadband and a mobile
//! carrier), the places travellers and attackers come from, and the world's
//! geolocation database (`aer gen --geo`, `aer replay --geo`).
//!
//! The attacker networks of the scenarios that predate the `geo` service
//! ([`super::population::ATTACKERS`], the Tor exits) are not in the database, as
//! addresses a real database lacks: the detectors that read places judge the
//! scenarios written for them, whose attackers are placed ([`FAR_AWAY`], [`CLOUD`]).

use ipnet::IpNet;

use crate::geo::write::{Entry, database};

/// A home region of the organisation's people.
#[derive(Debug)]
pub(crate) struct Region {
    /// Country code.
    pub country: &'static str,
    /// City centre.
    pub lat: f64,
    /// See `lat`.
    pub lon: f64,
    /// Office network (/24).
    pub office: &'static str,
    /// Home broadband providers' /16 networks, with their AS.
    pub isps: &'static [(&'static str, u32, &'static str)],
    /// The mobile carrier's /16 network and AS.
    pub carrier: (&'static str, u32, &'static str),
    /// A cloud desktop service's /24 network in the region (Microsoft's AS, hosting).
    pub cloud_desktop: &'static str,
}

/// The regions, by the time zones their people keep (see [`region_of`]).
pub(crate) const REGIONS: &[Region] = &[
    Region {
        country: "US",
        lat: 37.77,
        lon: -122.42,
        office: "198.51.100",
        isps: &[("73.162", 7922, "Comcast"), ("98.207", 7922, "Comcast")],
        carrier: ("172.58", 21928, "T-Mobile USA"),
        cloud_desktop: "20.59.8",
    },
    Region {
        country: "US",
        lat: 40.71,
        lon: -74.01,
        office: "203.0.113",
        isps: &[("24.15", 7843, "Charter"), ("67.180", 701, "Verizon")],
        carrier: ("174.204", 22394, "Verizon Wireless"),
        cloud_desktop: "20.62.8",
    },
    Region {
        country: "GB",
        lat: 51.51,
        lon: -0.13,
        office: "192.0.2",
        isps: &[
            ("81.2", 2856, "BT"),
            ("86.147", 5607, "Sky"),
            ("90.84", 5607, "Sky"),
            ("151.21", 5089, "Virgin Media"),
        ],
        carrier: ("100.36", 25135, "Vodafone UK"),
        cloud_desktop: "20.68.8",
    },
    Region {
        country: "DE",
        lat: 52.52,
        lon: 13.40,
        office: "198.18.0",
        isps: &[
            ("2.28", 3320, "Deutsche Telekom"),
            ("109.190", 3209, "Vodafone DE"),
            ("176.24", 6805, "Telefonica DE"),
            ("84.112", 3209, "Vodafone DE"),
        ],
        carrier: ("37.166", 3320, "Deutsche Telekom"),
        cloud_desktop: "20.79.8",
    },
];

/// The region of a person who keeps UTC offset `tz_hours`.
pub(crate) fn region_of(tz_hours: i64) -> usize {
    match tz_hours {
        ..=-7 => 0,
        -6..=-3 => 1,
        0 => 2,
        _ => 3,
    }
}

/// The AS that announces the cloud desktops (Microsoft: a hosting network).
pub(crate) const CLOUD_DESKTOP_AS: (u32, &str) = (8075, "Microsoft");

/// Hotel and conference networks a traveller meets: /16, country, city.
pub(crate) const TRAVEL: &[(&str, &str, f64, f64)] = &[
    ("212.23", "FR", 48.86, 2.35),
    ("80.239", "ES", 40.42, -3.70),
    ("62.40", "NL", 52.37, 4.90),
    ("193.41", "JP", 35.68, 139.69),
    ("46.229", "SG", 1.35, 103.82),
    ("5.148", "BR", -23.55, -46.63),
];

/// Consumer networks far from every region, where stolen passwords are used from.
pub(crate) const FAR_AWAY: &[(&str, &str, f64, f64, u32, &str)] = &[
    ("41.58", "NG", 6.52, 3.38, 36873, "Airtel NG"),
    ("190.24", "CO", 4.71, -74.07, 3816, "Colombia Movil"),
    ("36.71", "ID", -6.21, 106.85, 7713, "Telkomnet"),
    ("113.190", "VN", 21.03, 105.85, 7552, "Viettel"),
];

/// Hosting networks stolen credentials are replayed from: /16, country, city, AS
/// (each on the hosting list, so an ASN database alone marks it).
pub(crate) const CLOUD: &[(&str, &str, f64, f64, u32, &str)] = &[
    ("52.14", "US", 39.04, -77.49, 16509, "Amazon"),
    ("159.89", "DE", 50.11, 8.68, 14061, "DigitalOcean"),
    ("51.38", "FR", 50.69, 3.17, 16276, "OVH"),
    ("95.216", "FI", 60.17, 24.94, 24940, "Hetzner"),
];

/// Where the service accounts run (Google Cloud, a hosting network).
pub(crate) const SERVICE_NETWORK: (&str, u32, &str) = ("34.120", 396982, "Google Cloud");

/// Commercial VPN exits (anonymous networks): /16, country, city.
pub(crate) const VPN: &[(&str, &str, f64, f64)] = &[
    ("185.159", "CH", 47.37, 8.54),
    ("89.187", "NL", 52.37, 4.90),
];

fn net(prefix: &str) -> IpNet {
    let parts = prefix.split('.').count();
    let zeros = ".0".repeat(4 - parts);
    format!("{prefix}{zeros}/{}", parts * 8)
        .parse()
        .expect("a well-formed prefix")
}

/// The world's networks and what the database says of each.
pub(crate) fn entries() -> Vec<(IpNet, Entry)> {
    let mut out = Vec::new();
    for r in REGIONS {
        let here = || Entry::place(r.country, r.lat, r.lon);
        out.push((net(r.office), here().network(64_512, "Acme Corp")));
        for (isp, asn, org) in r.isps {
            out.push((net(isp), here().network(*asn, org)));
        }
        let (carrier, asn, org) = r.carrier;
        let mut mobile = here().network(asn, org);
        if let Some(l) = mobile.location.as_mut() {
            l.accuracy_radius = 200;
        }
        out.push((net(carrier), mobile));
        let (asn, org) = CLOUD_DESKTOP_AS;
        out.push((net(r.cloud_desktop), here().network(asn, org).hosting()));
    }
    for (prefix, cc, lat, lon) in TRAVEL {
        out.push((net(prefix), Entry::place(cc, *lat, *lon)));
    }
    for (prefix, cc, lat, lon, asn, org) in FAR_AWAY {
        out.push((net(prefix), Entry::place(cc, *lat, *lon).network(*asn, org)));
    }
    for (prefix, cc, lat, lon, asn, org) in CLOUD {
        out.push((net(prefix), Entry::place(cc, *lat, *lon).network(*asn, org)));
    }
    let (prefix, asn, org) = SERVICE_NETWORK;
    out.push((
        net(prefix),
        Entry::place("US", 33.75, -84.39).network(asn, org),
    ));
    for (prefix, cc, lat, lon) in VPN {
        out.push((
            net(prefix),
            Entry::place(cc, *lat, *lon).network(9009, "M247").vpn(),
        ));
    }
    out
}

/// The world's geolocation database (MaxMind format).
pub fn geo_database() -> Vec<u8> {
    let entries = entries();
    database(entries.iter().map(|(n, e)| (*n, e))).expect("the world's networks do not overlap")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_places_every_region_and_marks_hosting_and_vpns() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("world.mmdb");
        std::fs::write(&path, geo_database()).expect("write");
        let geo = crate::geo::Geo::open(&[path], crate::geo::DEFAULT_HOSTING_ASNS.iter().copied())
            .expect("open");
        for r in REGIONS {
            let home = geo.lookup(&format!("{}.7.9", r.isps[0].0));
            assert_eq!(home.country.as_deref(), Some(r.country));
            assert!(!home.network.expect("ISP").hosting);
            assert!(
                geo.lookup(&format!("{}.9", r.cloud_desktop))
                    .network
                    .expect("VDI")
                    .hosting
            );
        }
        for (prefix, ..) in CLOUD {
            assert!(
                geo.lookup(&format!("{prefix}.1.2"))
                    .network
                    .expect("cloud")
                    .hosting
            );
        }
        assert!(geo.lookup("185.159.3.4").network.expect("VPN").anonymous);
        assert_eq!(
            geo.lookup("45.134.1.1"),
            crate::geo::Place::default(),
            "unplaced"
        );
    }
}
