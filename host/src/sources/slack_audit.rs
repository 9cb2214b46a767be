//! Slack's Audit Logs API as a pull source: `GET {url}/logs` with the tenant's token
//! (scope `auditlogs:read`), `oldest` and `latest` sent again on every page, `limit`,
//! and `cursor` from the previous page's `response_metadata.next_cursor`. Slack answers
//! newest first; 429 with `Retry-After` when rate limited (about 50 calls a minute per
//! organisation); errors as `{"ok": false, "error": CODE}`.
//!
//! The tenant's settings ([`SlackAuditConfig`]) are checked field by field here; the
//! base URL is checked against the operator's allowlist by the daemon, which keeps the
//! token (never returned by the API, never seen by a plugin).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Entry, Page, PullError, PullSource, Window};
use crate::pipeline::policy::FieldError;

/// The source's name, in the API's paths and in metrics.
pub const NAME: &str = "slack-audit";

/// Slack's largest `limit`.
pub const MAX_PAGE_SIZE: u32 = 9_999;
/// Longest wait a `Retry-After` may ask for; longer is read as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// Longest cursor accepted from an answer.
const MAX_CURSOR: usize = 4_096;
/// The earliest start accepted: 2000-01-01.
const EARLIEST_START: i64 = 946_684_800;
/// How far in the future a start may be: one year.
const LATEST_START_AHEAD: i64 = 366 * 86_400;

/// Error codes Slack answers that only the tenant can fix: retried rarely.
const REFUSALS: [&str; 9] = [
    "invalid_auth",
    "not_authed",
    "missing_scope",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "not_allowed_token_type",
    "feature_not_enabled",
    "invalid_arguments",
];

/// A tenant's Slack Audit Logs source, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackAuditConfig {
    /// The API's base URL (`https://api.slack.com/audit/v1`); among the operator's.
    pub url: String,
    /// The token (`auditlogs:read`).
    pub token: String,
    /// The first second read (the backfill's start), since the epoch.
    pub start: i64,
    /// Entries per page (`limit`), 1..=9999.
    pub page_size: u32,
    /// Seconds between walks once caught up.
    pub interval_seconds: u32,
    /// Seconds below the watermark read again on every walk, for late entries.
    pub overlap_seconds: u32,
    /// Most calls a minute (Slack allows about 50 per organisation).
    pub calls_per_minute: u32,
    /// Whether it is polled.
    pub enabled: bool,
}

/// What `PUT /v1/sources/slack-audit` takes: every field optional, an absent one kept
/// from the stored configuration (or its default).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackAuditInput {
    url: Option<String>,
    token: Option<String>,
    /// Seconds since the epoch, or an RFC 3339 time.
    start: Option<Value>,
    page_size: Option<u32>,
    interval_seconds: Option<u32>,
    overlap_seconds: Option<u32>,
    calls_per_minute: Option<u32>,
    enabled: Option<bool>,
}

impl SlackAuditInput {
    /// Parse a request body; the error names what is wrong.
    pub fn from_json(body: &str) -> Result<Self, Vec<FieldError>> {
        serde_json::from_str(body).map_err(|e| {
            vec![FieldError {
                field: String::new(),
                message: e.to_string(),
            }]
        })
    }

    /// The configuration this input makes of `stored` (none: a new source, which
    /// starts `now` unless told otherwise), with at most `max_calls_per_minute`; every
    /// invalid field named.
    pub fn apply(
        self,
        stored: Option<&SlackAuditConfig>,
        now: i64,
        max_calls_per_minute: u32,
    ) -> Result<SlackAuditConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut bad = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.into(),
                message,
            })
        };
        let url = self
            .url
            .or_else(|| stored.map(|s| s.url.clone()))
            .unwrap_or_else(|| "https://api.slack.com/audit/v1".into());
        let token = match (self.token, stored) {
            (Some(t), _) => t,
            (None, Some(s)) => s.token.clone(),
            (None, None) => String::new(),
        };
        if token.is_empty() {
            bad(
                "token",
                "a token with the auditlogs:read scope is required".into(),
            );
        } else if token.len() > 512 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            bad(
                "token",
                "must be at most 512 printable characters, no spaces".into(),
            );
        }
        let start = match self.start {
            Some(v) => match start_second(&v) {
                Ok(s) if (EARLIEST_START..=now.saturating_add(LATEST_START_AHEAD)).contains(&s) => {
                    s
                }
                Ok(_) => {
                    bad(
                        "start",
                        "must be between 2000-01-01 and a year from now".into(),
                    );
                    now
                }
                Err(message) => {
                    bad("start", message);
                    now
                }
            },
            None => stored.map_or(now, |s| s.start),
        };
        let mut bounded = |field: &str,
                           value: Option<u32>,
                           kept: Option<u32>,
                           default: u32,
                           range: std::ops::RangeInclusive<u32>| {
            let v = value.or(kept).unwrap_or(default);
            if !range.contains(&v) {
                bad(
                    field,
                    format!("must be between {} and {}", range.start(), range.end()),
                );
            }
            v
        };
        let page_size = bounded(
            "page_size",
            self.page_size,
            stored.map(|s| s.page_size),
            1_000,
            1..=MAX_PAGE_SIZE,
        );
        let interval_seconds = bounded(
            "interval_seconds",
            self.interval_seconds,
            stored.map(|s| s.interval_seconds),
            60,
            1..=86_400,
        );
        let overlap_seconds = bounded(
            "overlap_seconds",
            self.overlap_seconds,
            stored.map(|s| s.overlap_seconds),
            600,
            0..=86_400,
        );
        let calls_per_minute = bounded(
            "calls_per_minute",
            self.calls_per_minute,
            stored.map(|s| s.calls_per_minute),
            max_calls_per_minute.min(50),
            1..=max_calls_per_minute.max(1),
        );
        let enabled = self.enabled.or(stored.map(|s| s.enabled)).unwrap_or(true);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(SlackAuditConfig {
            url,
            token,
            start,
            page_size,
            interval_seconds,
            overlap_seconds,
            calls_per_minute,
            enabled,
        })
    }
}

/// A start given as seconds since the epoch or as an RFC 3339 time.
fn start_second(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| "must be whole seconds since the epoch".to_owned()),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp())
            .map_err(|e| format!("not an RFC 3339 time: {e}")),
        _ => Err("must be seconds since the epoch or an RFC 3339 time".into()),
    }
}

impl SlackAuditConfig {
    /// The configuration as the API shows it: the token replaced.
    pub fn redacted(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        v["token"] = Value::String("********".into());
        v
    }
}

/// The Audit Logs API of one tenant, over the operator's HTTP client.
pub struct SlackAuditClient<'a> {
    /// The client (the operator's outbound rules: checked addresses, no redirects,
    /// a deadline per request).
    pub agent: &'a ureq::Agent,
    /// The tenant's settings.
    pub config: &'a SlackAuditConfig,
    /// Largest answer read, in bytes.
    pub max_page_bytes: u64,
}

impl PullSource for SlackAuditClient<'_> {
    fn page(&self, window: Window, cursor: Option<&str>) -> Result<Page, PullError> {
        let url = format!("{}/logs", self.config.url.trim_end_matches('/'));
        let mut req = self
            .agent
            .get(&url)
            .header("Authorization", &format!("Bearer {}", self.config.token))
            .query("oldest", window.oldest.to_string())
            .query("latest", window.latest.to_string())
            .query("limit", self.config.page_size.to_string());
        if let Some(c) = cursor {
            req = req.query("cursor", c);
        }
        let mut resp = req.call().map_err(|e| match e {
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                PullError::Refused(crate::config::NOT_ALLOWED.into())
            }
            ureq::Error::Timeout(_) => PullError::Transient("timeout".into()),
            _ => PullError::Transient("request_failed".into()),
        })?;
        let status = resp.status().as_u16();
        if status == 429 {
            return Err(PullError::RateLimited(rate_limit_wait(resp.headers())));
        }
        if status >= 500 {
            return Err(PullError::Transient(format!("http_{status}")));
        }
        // Read whole up to the bound, then parsed: parsing from the stream would report
        // a page over the bound as malformed JSON.
        let body = resp
            .body_mut()
            .with_config()
            .limit(self.max_page_bytes)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => PullError::Refused("page_too_large".into()),
                _ => PullError::Transient("request_failed".into()),
            })?;
        let answer: Value = serde_json::from_slice(&body).map_err(|_| {
            if status == 200 {
                PullError::Transient("bad_answer".into())
            } else {
                PullError::Refused(format!("http_{status}"))
            }
        })?;
        if answer["ok"].as_bool() != Some(true) {
            let code = answer["error"]
                .as_str()
                .and_then(crate::text::error_code)
                .unwrap_or("unknown_error")
                .to_owned();
            return Err(
                if REFUSALS.contains(&code.as_str()) || (400..500).contains(&status) {
                    PullError::Refused(code)
                } else {
                    PullError::Transient(code)
                },
            );
        }
        let entries = match &answer["entries"] {
            Value::Array(items) => items.iter().map(|raw| entry(raw, window)).collect(),
            Value::Null => Vec::new(),
            _ => return Err(PullError::Transient("bad_answer".into())),
        };
        Ok(Page {
            entries,
            next: next_cursor(&answer)?,
        })
    }
}

/// The wait a 429 answer asks for: its `Retry-After` (60 s when it names none), read
/// as at least 1 s and at most [`MAX_RETRY_AFTER`].
fn rate_limit_wait(headers: &axum::http::HeaderMap) -> Duration {
    retry_after(headers)
        .unwrap_or(Duration::from_secs(60))
        .clamp(Duration::from_secs(1), MAX_RETRY_AFTER)
}

/// The cursor of the page after an answer's (none: it was the last); one longer than
/// [`MAX_CURSOR`] is not taken.
fn next_cursor(answer: &Value) -> Result<Option<String>, PullError> {
    match answer["response_metadata"]["next_cursor"].as_str() {
        None | Some("") => Ok(None),
        Some(c) if c.len() > MAX_CURSOR => Err(PullError::Transient("bad_answer".into())),
        Some(c) => Ok(Some(c.to_owned())),
    }
}

/// The wait a 429 answer asks for (`Retry-After` in whole seconds), if it says.
pub fn retry_after(headers: &axum::http::HeaderMap) -> Option<Duration> {
    headers
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// An entry of a page: its `id` (an entry without one is known by a hash of its text,
/// so it still comes in once) and its second (`date_create`; an entry whose time does
/// not parse is placed at the window's end, and ingest then reports it).
fn entry(raw: &Value, window: Window) -> Entry {
    let id = match raw["id"].as_str() {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            use sha2::Digest;
            format!(
                "sha256:{}",
                hex::encode(sha2::Sha256::digest(raw.to_string()))
            )
        }
    };
    let second = raw["date_create"].as_i64().unwrap_or_else(|| {
        crate::ingest::parse_value(raw.clone())
            .map_or(window.latest, |e| e.time_ms.div_euclid(1_000))
    });
    Entry {
        id,
        second,
        raw: raw.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000;

    fn apply(
        body: &str,
        stored: Option<&SlackAuditConfig>,
    ) -> Result<SlackAuditConfig, Vec<FieldError>> {
        SlackAuditInput::from_json(body)?.apply(stored, NOW, 50)
    }

    #[test]
    fn a_new_source_needs_a_token_and_takes_defaults() {
        let errors = apply("{}", None).unwrap_err();
        assert_eq!(errors[0].field, "token");
        let c = apply(r#"{"token": "xoxp-1"}"#, None).unwrap();
        assert_eq!(
            (
                c.start,
                c.page_size,
                c.interval_seconds,
                c.overlap_seconds,
                c.calls_per_minute,
                c.enabled
            ),
            (NOW, 1_000, 60, 600, 50, true)
        );
        assert_eq!(c.url, "https://api.slack.com/audit/v1");
    }

    #[test]
    fn every_bad_field_is_named() {
        let errors = apply(
            r#"{"token": "a b", "start": "yesterday", "page_size": 0, "interval_seconds": 0,
                "overlap_seconds": 100000, "calls_per_minute": 51}"#,
            None,
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "token",
                "start",
                "page_size",
                "interval_seconds",
                "overlap_seconds",
                "calls_per_minute"
            ]
        );
        assert_eq!(
            apply(r#"{"token": "t", "start": 1}"#, None).unwrap_err()[0].field,
            "start"
        );
        assert_eq!(
            apply(r#"{"token": "t", "start": 9223372036854775807}"#, None).unwrap_err()[0].field,
            "start"
        );
        assert!(apply(r#"{"token": "t", "surprise": 1}"#, None).is_err());
    }

    #[test]
    fn an_update_keeps_what_it_does_not_name() {
        let stored = apply(
            r#"{"token": "xoxp-1", "start": "2026-01-01T00:00:00Z"}"#,
            None,
        )
        .unwrap();
        assert_eq!(stored.start, 1_767_225_600);
        let c = apply(r#"{"enabled": false}"#, Some(&stored)).unwrap();
        assert_eq!(c.token, "xoxp-1");
        assert_eq!(c.start, stored.start);
        assert!(!c.enabled);
        assert_eq!(c.redacted()["token"], "********");
    }

    #[test]
    fn a_rate_limit_waits_what_slack_asks_within_bounds() {
        let wait = |value: Option<&str>| {
            let mut h = axum::http::HeaderMap::new();
            if let Some(v) = value {
                h.insert("Retry-After", v.parse().unwrap());
            }
            rate_limit_wait(&h).as_secs()
        };
        assert_eq!(wait(Some("7")), 7);
        assert_eq!(wait(Some("0")), 1);
        assert_eq!(wait(Some("99999999")), 600);
        assert_eq!(wait(Some("soon")), 60);
        assert_eq!(wait(None), 60);
    }

    #[test]
    fn a_cursor_is_taken_up_to_its_bound() {
        let answer = |c: &str| serde_json::json!({"response_metadata": {"next_cursor": c}});
        assert_eq!(next_cursor(&answer("")), Ok(None));
        assert_eq!(next_cursor(&serde_json::json!({})), Ok(None));
        assert_eq!(
            next_cursor(&answer("dXNlcjpV")),
            Ok(Some("dXNlcjpV".into()))
        );
        let long = "c".repeat(MAX_CURSOR + 1);
        assert_eq!(
            next_cursor(&answer(&long)),
            Err(PullError::Transient("bad_answer".into()))
        );
        assert!(next_cursor(&answer(&long[1..])).is_ok());
    }

    #[test]
    fn an_entry_is_known_by_its_id_or_else_by_its_text() {
        let w = Window {
            oldest: 0,
            latest: 99,
        };
        let e = entry(
            &serde_json::json!({"id": "x", "date_create": 5, "action": "user_login"}),
            w,
        );
        assert_eq!((e.id.as_str(), e.second), ("x", 5));
        let a = entry(&serde_json::json!({"date_create": "nonsense"}), w);
        let b = entry(&serde_json::json!({"date_create": "nonsense"}), w);
        assert_eq!(a.id, b.id);
        assert!(a.id.starts_with("sha256:"));
        assert_eq!(a.second, 99);
    }
}
