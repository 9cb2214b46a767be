//! Where responders' effects may go, as the operator configured (`[outbound]`), never as
//! a tenant's policy alone says: Slack API base URLs from the operator's allowlist,
//! webhooks over https (unless the operator allows http), and every address a name
//! resolves to checked before connecting, so neither a URL nor a DNS answer can reach
//! loopback, private, link-local (cloud metadata) or other internal ranges the
//! operator did not allow. Redirects are not followed, answers are read up to a cap,
//! and a tenant sees an error code, never a receiver's answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use axum::http::Uri;
use ipnet::IpNet;
use ureq::config::Config;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::config::OutboundConfig;
use crate::pipeline::policy::{FieldError, Policy};

pub use crate::config::NOT_ALLOWED;

/// The operator's outbound rules and the HTTP client that keeps them.
pub struct Outbound {
    config: OutboundConfig,
    agent: ureq::Agent,
}

impl Outbound {
    /// The client for `config`: no redirects, answers capped, addresses checked.
    pub fn new(config: OutboundConfig) -> Self {
        let ureq_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_millis(config.timeout_ms)))
            .build();
        let resolver = CheckedResolver {
            allow: Arc::new(config.allow_ranges.clone()),
        };
        let agent = ureq::Agent::with_parts(ureq_config, DefaultConnector::default(), resolver);
        Outbound { config, agent }
    }

    /// The client (one per daemon, so connections are kept and reused).
    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// Largest answer read, in bytes.
    pub fn max_response_bytes(&self) -> u64 {
        self.config.max_response_bytes
    }

    /// Why `url` may not be used as a Slack API base URL, if it may not.
    pub fn check_slack_url(&self, url: &str) -> Result<(), String> {
        allowed(&self.config.slack_api_urls, url, "Slack API URLs")
    }

    /// Why `url` may not be used as a Slack Audit Logs API base URL, if it may not.
    pub fn check_slack_audit_url(&self, url: &str) -> Result<(), String> {
        allowed(
            &self.config.slack_audit_urls,
            url,
            "Slack Audit Logs API URLs",
        )
    }

    /// Why `url` may not be used as a webhook, if it may not.
    pub fn check_webhook(&self, url: &str) -> Result<(), String> {
        let u = parse(url)?;
        if u.scheme_str() != Some("https") && !self.config.allow_http_webhooks {
            return Err("must be an https URL".into());
        }
        Ok(())
    }

    /// Field errors of `policy`'s destinations against these rules.
    pub fn check_policy(&self, policy: &Policy) -> Vec<FieldError> {
        let r = &policy.responses;
        let mut errors = Vec::new();
        for (field, url) in [
            ("responses.slack_api_url", &r.slack_api_url),
            ("responses.scim_api_url", &r.scim_api_url),
        ] {
            if let Err(message) = self.check_slack_url(url) {
                errors.push(FieldError {
                    field: field.into(),
                    message,
                });
            }
        }
        for (name, url) in &r.webhooks {
            if let Err(message) = self.check_webhook(url) {
                errors.push(FieldError {
                    field: format!("responses.webhooks.{name}"),
                    message,
                });
            }
        }
        errors
    }
}

/// Why `url` falls under none of the allowlist `entries` (`what` names the list).
fn allowed(entries: &[String], url: &str, what: &str) -> Result<(), String> {
    let u = parse(url)?;
    if entries
        .iter()
        .filter_map(|entry| entry.parse::<Uri>().ok())
        .any(|entry| matches(&entry, &u))
    {
        Ok(())
    } else {
        Err(format!(
            "not among the operator's {what} ({})",
            entries.join(", ")
        ))
    }
}

fn parse(url: &str) -> Result<Uri, String> {
    let u: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(u.scheme_str(), Some("http" | "https")) || u.host().is_none() {
        return Err("must be an http(s) URL with a host".into());
    }
    if u.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("must not carry user information".into());
    }
    Ok(u)
}

/// Whether `url` falls under the allowlist `entry`: same scheme and host, the entry's
/// port if it names one, and a path under the entry's.
fn matches(entry: &Uri, url: &Uri) -> bool {
    let path = |u: &Uri| u.path().trim_end_matches('/').to_owned();
    let (entry_path, url_path) = (path(entry), path(url));
    entry.scheme_str() == url.scheme_str()
        && entry
            .host()
            .zip(url.host())
            .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
        && entry.port_u16().is_none_or(|p| url.port_u16() == Some(p))
        && (url_path == entry_path || url_path.starts_with(&format!("{entry_path}/")))
}

/// Whether `ip` is internal: loopback, private, link-local (cloud metadata at
/// 169.254.169.254), shared, unspecified, multicast, broadcast, documentation, or an
/// IPv6 form of one of them.
pub fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) // AWS metadata
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || a >= 240 // reserved
}

/// Resolves as usual, then keeps only addresses that are not internal (or that the
/// operator allowed): the connection goes to an address checked here, so a DNS answer
/// that changes between a check and the connection cannot slip past it.
#[derive(Debug)]
struct CheckedResolver {
    allow: Arc<Vec<IpNet>>,
}

impl Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let resolved = DefaultResolver::default().resolve(uri, config, timeout)?;
        let mut kept = self.empty();
        for addr in resolved.iter().copied() {
            let ip = addr.ip();
            if !internal(ip) || self.allow.iter().any(|n| n.contains(&ip)) {
                kept.push(addr);
            }
        }
        if kept.is_empty() {
            return Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                NOT_ALLOWED,
            )));
        }
        Ok(kept)
    }
}

/// The error code of a failed request: [`NOT_ALLOWED`] for an address refused,
/// `timeout`, `unreachable` otherwise (the details stay in the host's log).
pub fn error_code(e: &ureq::Error) -> &'static str {
    match e {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => NOT_ALLOWED,
        ureq::Error::Timeout(_) => "timeout",
        _ => "unreachable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(config: OutboundConfig) -> Outbound {
        Outbound::new(config)
    }

    // Regression: a tenant's `slack_api_url` and webhook URLs reached 127.0.0.1
    // services and the link-local metadata address.
    #[test]
    fn internal_addresses_are_recognised_in_every_form() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
        ] {
            assert!(internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["34.1.2.3", "2606:4700::1111", "8.8.8.8"] {
            assert!(!internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn slack_urls_come_from_the_operators_list() {
        let o = outbound(OutboundConfig::default());
        assert!(o.check_slack_url("https://slack.com/api").is_ok());
        assert!(o.check_slack_url("https://slack.com/api/").is_ok());
        for bad in [
            "http://slack.com/api",
            "https://slack.com.evil.example/api",
            "https://evil.example/api",
            "https://slack.com/apix",
            "https://user@slack.com/api",
            "http://127.0.0.1:9000/api",
            "https://169.254.169.254/api",
            "file:///etc/passwd",
        ] {
            assert!(o.check_slack_url(bad).is_err(), "{bad}");
        }
        let o = outbound(OutboundConfig {
            slack_api_urls: vec!["http://127.0.0.1".into()],
            ..Default::default()
        });
        assert!(o.check_slack_url("http://127.0.0.1:9000/api").is_ok());
    }

    #[test]
    fn webhooks_are_https_unless_the_operator_allows_http() {
        let o = outbound(OutboundConfig::default());
        assert!(o.check_webhook("https://hooks.example/x").is_ok());
        assert!(o.check_webhook("http://hooks.example/x").is_err());
        let o = outbound(OutboundConfig {
            allow_http_webhooks: true,
            ..Default::default()
        });
        assert!(o.check_webhook("http://hooks.example/x").is_ok());
    }

    #[test]
    fn a_request_to_an_internal_address_is_refused_before_connecting() {
        // Something listens there, so only the check can stop the request.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let o = outbound(OutboundConfig::default());
        let err = o.agent().post(&url).send("x").unwrap_err();
        assert_eq!(error_code(&err), NOT_ALLOWED, "{err}");
        let localhost = url.replace("127.0.0.1", "localhost");
        let err = o.agent().post(&localhost).send("x").unwrap_err();
        assert_eq!(error_code(&err), NOT_ALLOWED, "{err}");
    }
}
