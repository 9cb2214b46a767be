//! What every page's frame shows, and the small formatting rules pages share.

use crate::daemon::sessions::Session;

/// The frame around a tenant's page: whose console it is, who is signed in, the CSRF
/// secret for the sign-out form, and which page is current (for the navigation).
pub struct Chrome {
    /// The tenant (empty on the operator's pages).
    pub tenant: String,
    /// The person signed in.
    pub name: String,
    /// The session's CSRF secret.
    pub csrf: String,
    /// The current page's path.
    pub current: &'static str,
}

/// The navigation of a tenant's pages: (path, label).
pub const NAV: &[(&str, &str)] = &[
    ("/console/overview", "Overview"),
    ("/console/reviews", "Reviews"),
    ("/console/findings", "Findings"),
    ("/console/decisions", "Decisions"),
    ("/console/actions", "Actions"),
    ("/console/plugins", "Plugins"),
    ("/console/policy", "Policy"),
    ("/console/slack", "Slack"),
];

impl Chrome {
    /// The frame of `tenant`'s page `current` for `session`.
    pub fn new(tenant: &str, session: &Session, current: &'static str) -> Chrome {
        Chrome {
            tenant: tenant.to_owned(),
            name: session.name.clone(),
            csrf: session.csrf.clone(),
            current,
        }
    }

    /// The frame of the operator's page `current`.
    pub fn operator(session: &Session, current: &'static str) -> Chrome {
        Chrome::new("", session, current)
    }

    /// The navigation: a tenant's pages, or the operator's.
    pub fn nav(&self) -> &'static [(&'static str, &'static str)] {
        if self.tenant.is_empty() {
            &[("/console/tenants", "Tenants")]
        } else {
            NAV
        }
    }
}

/// A time (ms since the epoch) as `2026-01-05 14:04:05` (UTC).
pub fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// A severity as one of the style classes (anything else is `info`).
pub fn severity_class(severity: &str) -> &'static str {
    match severity {
        "critical" => "critical",
        "high" => "high",
        "medium" => "medium",
        "low" => "low",
        _ => "info",
    }
}
