//! `aer:plugin/geo`: where an address is and who announces it, from the operator's
//! databases ([`crate::geo::Geo`]).

use crate::bindings::host::aer::plugin::geo::{Coordinates, Host, Network, Place};
use crate::host_api::HostState;

impl Host for HostState {
    fn lookup(&mut self, address: String) -> wasmtime::Result<Place> {
        let place = self.geo.lookup(&address);
        // The answer's text is copied into the guest: it counts as read.
        self.charge_read(place.text_bytes())?;
        Ok(Place {
            country: place.country,
            coordinates: place.coordinates.map(|c| Coordinates {
                latitude: c.latitude,
                longitude: c.longitude,
                accuracy_km: c.accuracy_km,
            }),
            network: place.network.map(|n| Network {
                asn: n.asn,
                organisation: n.organisation,
                hosting: n.hosting,
                anonymous: n.anonymous,
            }),
        })
    }
}
