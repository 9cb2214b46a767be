//! `aer reviews`, `aer review approve|dismiss|show` and `aer suppressions`: a tenant's
//! human review on a running daemon (escalations, and effects held for approval).

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::Io;
use super::client::{Client, ClientArgs, pretty};

/// `aer reviews`: list reviews.
#[derive(Debug, Args)]
pub struct ReviewsCommand {
    /// Only reviews in this state (`open`, `approved`, `dismissed`).
    #[arg(long)]
    state: Option<String>,
    /// Only reviews of this kind (`escalation`, `approval`).
    #[arg(long)]
    kind: Option<String>,
    /// Only about this subject.
    #[arg(long)]
    subject: Option<String>,
    /// Go on after this review id (a page's `next`).
    #[arg(long)]
    after: Option<u64>,
    /// Most reviews.
    #[arg(long)]
    limit: Option<u32>,
    #[command(flatten)]
    client: ClientArgs,
}

impl ReviewsCommand {
    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        let mut query = Vec::new();
        for (k, v) in [
            ("state", self.state),
            ("kind", self.kind),
            ("subject", self.subject),
            ("after", self.after.map(|a| a.to_string())),
            ("limit", self.limit.map(|l| l.to_string())),
        ] {
            if let Some(v) = v {
                query.push(format!("{k}={}", urlencode(&v)));
            }
        }
        let path = if query.is_empty() {
            "/v1/reviews".to_owned()
        } else {
            format!("/v1/reviews?{}", query.join("&"))
        };
        let v = Client::new(&self.client).call("GET", &path, None)?;
        pretty(io, &v)
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `aer review ...`: act on one review.
#[derive(Debug, Args)]
pub struct ReviewCommand {
    #[command(subcommand)]
    action: ReviewAction,
    #[command(flatten)]
    client: ClientArgs,
}

/// Why a review is dismissed.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Reason {
    /// The finding was wrong.
    FalsePositive,
    /// Right, but nothing to act on.
    Benign,
    /// Another review covers it.
    Duplicate,
}

#[derive(Debug, Subcommand)]
enum ReviewAction {
    /// Print one review with its effects.
    Show {
        /// The review id.
        id: u64,
    },
    /// Approve: its held effects run (an escalation's responders run).
    Approve {
        /// The review id.
        id: u64,
        /// Who approves (default: `$USER`).
        #[arg(long)]
        by: Option<String>,
    },
    /// Dismiss: nothing is done; a false positive may suppress what follows.
    Dismiss {
        /// The review id.
        id: u64,
        /// Why.
        #[arg(long, value_enum)]
        reason: Reason,
        /// A note kept with the review.
        #[arg(long, default_value = "")]
        note: String,
        /// Suppress later findings of the rule about the subject (false positives).
        #[arg(long)]
        suppress: bool,
        /// With `--suppress`: for this many days of event time from now (default: for
        /// good).
        #[arg(long, requires = "suppress")]
        suppress_days: Option<u32>,
        /// Who dismisses (default: `$USER`).
        #[arg(long)]
        by: Option<String>,
    },
}

/// Who acts: `--by`, else the login name.
fn signer(by: Option<String>) -> anyhow::Result<String> {
    by.or_else(|| std::env::var("USER").ok())
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| anyhow::anyhow!("say who decides with --by"))
}

impl ReviewCommand {
    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        let c = Client::new(&self.client);
        let post = |path: String, body: Value| {
            c.call(
                "POST",
                &path,
                Some(("application/json", serde_json::to_vec(&body)?)),
            )
        };
        let v = match self.action {
            ReviewAction::Show { id } => c.call("GET", &format!("/v1/reviews/{id}"), None)?,
            ReviewAction::Approve { id, by } => post(
                format!("/v1/reviews/{id}/approve"),
                json!({ "by": signer(by)? }),
            )?,
            ReviewAction::Dismiss {
                id,
                reason,
                note,
                suppress,
                suppress_days,
                by,
            } => {
                let reason = match reason {
                    Reason::FalsePositive => "false_positive",
                    Reason::Benign => "benign",
                    Reason::Duplicate => "duplicate",
                };
                let mut body = json!({"by": signer(by)?, "reason": reason, "note": note});
                if suppress {
                    let now_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                    let expires = suppress_days.map(|d| now_ms + i64::from(d) * 86_400_000);
                    body["suppress"] = json!({ "expires_ms": expires });
                }
                post(format!("/v1/reviews/{id}/dismiss"), body)?
            }
        };
        pretty(io, &v)
    }
}

/// `aer suppressions [remove ID]`: the tenant's suppressions.
#[derive(Debug, Args)]
pub struct SuppressionsCommand {
    #[command(subcommand)]
    action: Option<SuppressionsAction>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum SuppressionsAction {
    /// Remove one: later findings are decided as before.
    Remove {
        /// The suppression id.
        id: u64,
    },
}

impl SuppressionsCommand {
    /// Run it.
    pub fn run(self, io: &mut Io<'_>) -> anyhow::Result<u8> {
        let c = Client::new(&self.client);
        let v = match self.action {
            None => c.call("GET", "/v1/suppressions", None)?,
            Some(SuppressionsAction::Remove { id }) => {
                c.call("DELETE", &format!("/v1/suppressions/{id}"), None)?;
                json!({ "removed": id })
            }
        };
        pretty(io, &v)
    }
}
