//! What the host's `geo` service says of an address (`aer:plugin@0.1.2`), shared by the
//! host, which answers it from the operator's databases, and the SDK, which hands it to
//! plugins.
//!
//! Every field may be unknown: without a database, for a private address, or for one the
//! database lacks. A detector should then judge nothing rather than guess.

/// A point on Earth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coordinates {
    /// Degrees north (negative: south).
    pub latitude: f64,
    /// Degrees east (negative: west).
    pub longitude: f64,
    /// Kilometres around the point within which the address likely is (0: not said).
    pub accuracy_km: u32,
}

/// Mean radius of the Earth in kilometres.
const EARTH_RADIUS_KM: f64 = 6371.0;

impl Coordinates {
    /// A point without a stated accuracy.
    pub fn new(latitude: f64, longitude: f64) -> Self {
        Coordinates {
            latitude,
            longitude,
            accuracy_km: 0,
        }
    }

    /// Great-circle distance to `other` in kilometres (haversine).
    pub fn distance_km(&self, other: &Coordinates) -> f64 {
        let (la1, la2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let dla = la2 - la1;
        let dlo = (other.longitude - self.longitude).to_radians();
        let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
    }

    /// The distance to `other` less both points' accuracy radii (never below zero):
    /// how far apart the two addresses surely are.
    pub fn least_distance_km(&self, other: &Coordinates) -> f64 {
        let slack = f64::from(self.accuracy_km) + f64::from(other.accuracy_km);
        (self.distance_km(other) - slack).max(0.0)
    }
}

/// Who announces an address's network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    /// Autonomous system number (0: not said).
    pub asn: u32,
    /// The autonomous system's organisation (empty: not said).
    pub organisation: String,
    /// A hosting or cloud provider's network (a datacenter).
    pub hosting: bool,
    /// A known VPN, Tor exit or public proxy.
    pub anonymous: bool,
}

/// What the operator's databases say of an address; `None` is unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Place {
    /// ISO 3166-1 alpha-2 country code, e.g. `DE`.
    pub country: Option<String>,
    /// Where the address is.
    pub coordinates: Option<Coordinates>,
    /// Who announces it.
    pub network: Option<Network>,
}

impl Place {
    /// A place in `country` at (`latitude`, `longitude`) (for tests).
    pub fn at(country: &str, latitude: f64, longitude: f64) -> Self {
        Place {
            country: Some(country.to_owned()),
            coordinates: Some(Coordinates::new(latitude, longitude)),
            network: None,
        }
    }

    /// This place announced by AS `asn` of `organisation` (for tests).
    pub fn network(mut self, asn: u32, organisation: &str) -> Self {
        self.network = Some(Network {
            asn,
            organisation: organisation.to_owned(),
            ..self.network.unwrap_or_default()
        });
        self
    }

    /// This place on a hosting provider's network (for tests).
    pub fn hosting(mut self) -> Self {
        let mut n = self.network.unwrap_or_default();
        n.hosting = true;
        self.network = Some(n);
        self
    }

    /// This place behind a VPN, Tor exit or public proxy (for tests).
    pub fn anonymous(mut self) -> Self {
        let mut n = self.network.unwrap_or_default();
        n.anonymous = true;
        self.network = Some(n);
        self
    }

    /// Whether nothing is known.
    pub fn is_unknown(&self) -> bool {
        self.country.is_none() && self.coordinates.is_none() && self.network.is_none()
    }

    /// Whether the address is a hosting provider's (false when unknown).
    pub fn is_hosting(&self) -> bool {
        self.network.as_ref().is_some_and(|n| n.hosting)
    }

    /// Bytes of text the place carries (what a lookup copies to a plugin).
    pub fn text_bytes(&self) -> usize {
        self.country.as_ref().map_or(0, String::len)
            + self.network.as_ref().map_or(0, |n| n.organisation.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_are_great_circle_kilometres() {
        let berlin = Coordinates::new(52.52, 13.405);
        let new_york = Coordinates::new(40.7128, -74.006);
        let d = berlin.distance_km(&new_york);
        assert!((6370.0..6400.0).contains(&d), "{d}");
        assert!(berlin.distance_km(&berlin).abs() < 1e-9);
        let mut vague = new_york;
        vague.accuracy_km = 1000;
        assert!((berlin.least_distance_km(&vague) - (d - 1000.0)).abs() < 1e-6);
        assert_eq!(
            berlin.least_distance_km(&Coordinates {
                accuracy_km: 9000,
                ..berlin
            }),
            0.0
        );
    }
}
