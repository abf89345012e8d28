//! Countries from a real MaxMind-format database: the free `geo-whois-asn-country`, fetched
//! from the npm registry at a fixed version.

use std::net::IpAddr;

use footfall_core::classify::geo::GeoDb;

#[test]
fn addresses_are_located_in_their_countries() {
    let path = footfall_testkit::geo_database(
        &std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("geo"),
    );
    let db = GeoDb::from_bytes(std::fs::read(path).unwrap()).unwrap();
    let country = |ip: &str| db.locate(ip.parse::<IpAddr>().unwrap()).country;
    // Ranges registered to organisations in these countries (the registries' records).
    for (ip, expected) in [
        ("8.8.8.8", "US"),
        ("2001:4860:4860::8888", "US"),
        ("193.99.144.80", "DE"),
        ("133.11.0.1", "JP"),
        ("200.160.2.3", "BR"),
    ] {
        assert_eq!(country(ip).as_deref(), Some(expected), "{ip}");
    }
    // Private and loopback addresses are nowhere.
    for ip in ["127.0.0.1", "10.1.2.3", "192.168.0.1", "::1"] {
        assert_eq!(country(ip), None, "{ip}");
    }
    let place = db.locate("8.8.8.8".parse().unwrap());
    assert_eq!((place.region, place.city), (None, None), "a country database has no cities");
}
