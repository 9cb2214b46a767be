//! Small pure helpers detectors share for reading audit context: the network an IP
//! address belongs to, a user agent's family without its version numbers, and whether
//! a user agent is a script or a headless browser rather than a person's client.

use std::net::IpAddr;

/// The network of `ip` as text: the first `v4_bits` of an IPv4 address or `v6_bits` of
/// an IPv6 one (`"203.0.113.0/24"`). `None` for text that is not an IP address.
///
/// ```
/// assert_eq!(aer_sdk::signals::network("203.0.113.7", 16, 48).as_deref(), Some("203.0.0.0/16"));
/// assert_eq!(aer_sdk::signals::network("not an ip", 16, 48), None);
/// ```
pub fn network(ip: &str, v4_bits: u8, v6_bits: u8) -> Option<String> {
    match ip.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => {
            let bits = v4_bits.min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            let net = std::net::Ipv4Addr::from(u32::from(a) & mask);
            Some(format!("{net}/{bits}"))
        }
        IpAddr::V6(a) => {
            let bits = v6_bits.min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            let net = std::net::Ipv6Addr::from(u128::from(a) & mask);
            Some(format!("{net}/{bits}"))
        }
    }
}

/// Whether `ip` lies in `cidr` (`"10.0.0.0/8"`, `"2001:db8::/32"`, or a bare address).
pub fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (base, bits) = match cidr.split_once('/') {
        Some((b, n)) => match n.parse::<u8>() {
            Ok(n) => (b, Some(n)),
            Err(_) => return false,
        },
        None => (cidr, None),
    };
    let (Ok(ip), Ok(base)) = (ip.trim().parse::<IpAddr>(), base.trim().parse::<IpAddr>()) else {
        return false;
    };
    match (ip, base) {
        (IpAddr::V4(_), IpAddr::V4(_)) => {
            let bits = bits.unwrap_or(32);
            network(&ip.to_string(), bits, 0) == network(&base.to_string(), bits, 0)
        }
        (IpAddr::V6(_), IpAddr::V6(_)) => {
            let bits = bits.unwrap_or(128);
            network(&ip.to_string(), 0, bits) == network(&base.to_string(), 0, bits)
        }
        _ => false,
    }
}

/// A user agent with its version numbers blanked, so a browser or app update does not
/// look like a new device: `"Chrome/120.0.1 (Mac OS X 10_15)"` becomes
/// `"Chrome/# (Mac OS X #)"`.
pub fn agent_family(user_agent: &str) -> String {
    let mut out = String::with_capacity(user_agent.len());
    let mut in_version = false;
    for c in user_agent.trim().chars() {
        let versionish = c.is_ascii_digit() || (in_version && matches!(c, '.' | '_'));
        if versionish {
            if !in_version {
                out.push('#');
                in_version = true;
            }
        } else {
            in_version = false;
            out.push(c);
        }
    }
    out
}

/// User agents of scripts, HTTP libraries and headless browsers, matched
/// case-insensitively as substrings by [`is_scripted_agent`].
pub const SCRIPTED_AGENTS: &[&str] = &[
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "go-http-client",
    "okhttp",
    "java/",
    "libwww-perl",
    "httpie",
    "postmanruntime",
    "headlesschrome",
    "phantomjs",
    "selenium",
    "puppeteer",
    "playwright",
    "sqlmap",
    "nikto",
    "masscan",
    "zgrab",
];

/// For each byte, the [`SCRIPTED_AGENTS`] starting with it (bit `i`: the `i`th).
const SCRIPTED_FIRST_BYTES: [u32; 256] = {
    assert!(SCRIPTED_AGENTS.len() <= 32);
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < SCRIPTED_AGENTS.len() {
        let first = SCRIPTED_AGENTS[i].as_bytes()[0];
        table[first as usize] |= 1 << i;
        table[first.to_ascii_uppercase() as usize] |= 1 << i;
        i += 1;
    }
    table
};

/// Whether `user_agent` names a script, HTTP library or headless browser
/// ([`SCRIPTED_AGENTS`], or any of `extra`), ignoring ASCII case.
///
/// One pass over the agent: at each byte, only the known agents starting with it are
/// compared (the detectors call this for every event they see).
pub fn is_scripted_agent(user_agent: &str, extra: &[String]) -> bool {
    let ua = user_agent.as_bytes();
    let at = |i: usize, p: &[u8]| {
        ua.get(i..i + p.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(p))
    };
    let known = ua.iter().enumerate().any(|(i, b)| {
        let mut starting = SCRIPTED_FIRST_BYTES[*b as usize];
        while starting != 0 {
            let p = starting.trailing_zeros() as usize;
            if at(i, SCRIPTED_AGENTS[p].as_bytes()) {
                return true;
            }
            starting &= starting - 1;
        }
        false
    });
    known
        || extra
            .iter()
            .any(|p| !p.is_empty() && (0..ua.len()).any(|i| at(i, p.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_of_both_families() {
        assert_eq!(network("198.51.100.77", 24, 48).unwrap(), "198.51.100.0/24");
        assert_eq!(network("198.51.100.77", 0, 48).unwrap(), "0.0.0.0/0");
        assert_eq!(
            network("2001:db8:1234:5678::1", 16, 48).unwrap(),
            "2001:db8:1234::/48"
        );
        assert_eq!(network("", 16, 48), None);
    }

    #[test]
    fn cidr_membership() {
        assert!(in_cidr("10.1.2.3", "10.0.0.0/8"));
        assert!(!in_cidr("11.1.2.3", "10.0.0.0/8"));
        assert!(in_cidr("185.220.101.4", "185.220.101.4"));
        assert!(!in_cidr("185.220.101.5", "185.220.101.4"));
        assert!(in_cidr("2001:db8::1", "2001:db8::/32"));
        assert!(!in_cidr("10.1.2.3", "2001:db8::/32"));
        assert!(!in_cidr("10.1.2.3", "10.0.0.0/x"));
    }

    #[test]
    fn agent_families_ignore_versions() {
        let a =
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/120.0.6099.109 Safari/537.36";
        let b =
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/121.0.6167.85 Safari/537.36";
        assert_eq!(agent_family(a), agent_family(b));
        assert_ne!(
            agent_family(a),
            agent_family("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0 Safari/537.36")
        );
        assert_eq!(
            agent_family("Slack/4.41.105 (Electron)"),
            "Slack/# (Electron)"
        );
    }

    /// The plain definition: lower-case both, then look for each as a substring.
    fn scripted_by_definition(user_agent: &str, extra: &[String]) -> bool {
        let ua = user_agent.to_ascii_lowercase();
        SCRIPTED_AGENTS.iter().any(|p| ua.contains(p))
            || extra
                .iter()
                .any(|p| !p.is_empty() && ua.contains(&p.to_ascii_lowercase()))
    }

    #[test]
    fn scripted_agents_match_the_plain_definition() {
        // Agents built from pieces of the known ones, in any case, cut anywhere, with
        // other bytes between (a small deterministic generator: no extra dependency).
        let pieces: Vec<&str> = SCRIPTED_AGENTS
            .iter()
            .copied()
            .chain([
                "Mozilla/5.0 ",
                "Go-HTTP",
                "cURL",
                "/",
                "é",
                "PYTHON",
                "x",
                "",
            ])
            .collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let extra = ["AcmeBot".to_owned(), "É-agent".to_owned()];
        let (mut matched, mut total) = (0, 0);
        for _ in 0..20_000 {
            let mut ua = String::new();
            for _ in 0..next(4) {
                let piece = pieces[next(pieces.len())];
                let cut = piece.char_indices().map(|(i, _)| i).collect::<Vec<_>>();
                let (from, to) = if cut.is_empty() || next(3) > 0 {
                    (0, piece.len())
                } else {
                    (cut[next(cut.len())], piece.len())
                };
                let piece = &piece[from..to];
                ua.push_str(&if next(2) == 0 {
                    piece.to_ascii_uppercase()
                } else {
                    piece.to_owned()
                });
            }
            for extra in [&[][..], &extra[..]] {
                let want = scripted_by_definition(&ua, extra);
                assert_eq!(is_scripted_agent(&ua, extra), want, "{ua:?} with {extra:?}");
                matched += usize::from(want);
                total += 1;
            }
        }
        // Both answers are well represented.
        assert!(
            matched > total / 10 && matched < total * 9 / 10,
            "{matched} of {total}"
        );
    }

    #[test]
    fn scripted_agents() {
        assert!(is_scripted_agent("python-requests/2.31.0", &[]));
        assert!(is_scripted_agent("Mozilla/5.0 HeadlessChrome/120.0", &[]));
        assert!(!is_scripted_agent("Slack/4.41.105 (Electron)", &[]));
        assert!(is_scripted_agent("AcmeBot/1.0", &["acmebot".into()]));
        assert!(!is_scripted_agent("AcmeBot/1.0", &[String::new()]));
    }
}
