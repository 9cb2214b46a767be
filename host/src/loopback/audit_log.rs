//! A mock of Slack's Audit Logs API (`GET /audit/v1/logs`) as Slack documents it:
//! bearer token, `oldest`/`latest` (seconds, both included), `limit` (1..=9999),
//! `cursor` paging through `response_metadata.next_cursor`, newest first, errors as
//! `{"ok": false, "error": CODE}` (`invalid_auth` for a wrong token,
//! `invalid_arguments` for a bad limit), 429 with `Retry-After` when told to. Entries
//! can be added while it runs, also at a given call (an entry arriving mid-walk), and
//! every call is recorded, so tests and `aer demo` can check what a source asked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One call the mock received.
#[derive(Debug, Clone)]
pub struct AuditCall {
    /// Its query parameters.
    pub query: HashMap<String, String>,
    /// Whether it carried the expected token.
    pub authorized: bool,
}

#[derive(Default)]
struct AuditState {
    token: String,
    entries: Vec<Value>,
    calls: Vec<AuditCall>,
    failures: Vec<(usize, u16)>,
    arrivals: Vec<(usize, Vec<Value>)>,
    delay: Duration,
}

/// The mock's entries and behaviour, shared with its handler.
#[derive(Clone, Default)]
pub struct AuditLog {
    state: Arc<Mutex<AuditState>>,
}

impl AuditLog {
    /// A mock answering the bearer `token`.
    pub fn new(token: &str) -> Self {
        let log = AuditLog::default();
        log.lock().token = token.to_owned();
        log
    }

    fn lock(&self) -> MutexGuard<'_, AuditState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add entries (each with `id` and `date_create`).
    pub fn add(&self, entries: impl IntoIterator<Item = Value>) {
        self.lock().entries.extend(entries);
    }

    /// Add `entries` just before answering call number `call` (1 is the first).
    pub fn add_at_call(&self, call: usize, entries: Vec<Value>) {
        self.lock().arrivals.push((call, entries));
    }

    /// Answer these calls (by number, 1 the first) with these HTTP statuses (429
    /// with `Retry-After: 1`).
    pub fn fail_at(&self, calls: &[(usize, u16)]) {
        self.lock().failures.extend(calls);
    }

    /// Wait this long before answering each call.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<AuditCall> {
        self.lock().calls.clone()
    }

    /// The router serving `GET /audit/v1/logs`.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route("/audit/v1/logs", axum::routing::get(logs))
            .with_state(self.clone())
    }
}

async fn logs(
    State(log): State<AuditLog>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let delay = log.lock().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = log.lock();
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {}", s.token));
    s.calls.push(AuditCall {
        query: query.clone(),
        authorized,
    });
    let call = s.calls.len();
    let arrived: Vec<Value> = s
        .arrivals
        .iter()
        .filter(|(at, _)| *at == call)
        .flat_map(|(_, e)| e.clone())
        .collect();
    s.entries.extend(arrived);
    if let Some(&(_, status)) = s.failures.iter().find(|(at, _)| *at == call) {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (
            code,
            [("Retry-After", "1")],
            axum::Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response();
    }
    let answer = |error: &str| axum::Json(json!({"ok": false, "error": error})).into_response();
    if !authorized {
        return answer("invalid_auth");
    }
    let num = |k: &str| query.get(k).map(|v| v.parse::<i64>());
    let (oldest, latest, limit) = match (num("oldest"), num("latest"), num("limit")) {
        (Some(Err(_)), ..) | (_, Some(Err(_)), _) | (.., Some(Err(_))) => {
            return answer("invalid_arguments");
        }
        (o, l, n) => (
            o.and_then(Result::ok).unwrap_or(i64::MIN),
            l.and_then(Result::ok).unwrap_or(i64::MAX),
            n.and_then(Result::ok).unwrap_or(100),
        ),
    };
    if !(1..=9_999).contains(&limit) {
        return answer("invalid_arguments");
    }
    let from: usize = match query.get("cursor") {
        None => 0,
        Some(c) => match c.strip_prefix("o:").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return answer("invalid_cursor"),
        },
    };
    let second = |e: &Value| e["date_create"].as_i64().unwrap_or(0);
    let mut matching: Vec<&Value> = s
        .entries
        .iter()
        .filter(|e| (oldest..=latest).contains(&second(e)))
        .collect();
    matching.sort_by(|a, b| {
        second(b)
            .cmp(&second(a))
            .then_with(|| b["id"].as_str().cmp(&a["id"].as_str()))
    });
    let to = (from + limit as usize).min(matching.len());
    let page: Vec<&Value> = matching.get(from..to).unwrap_or_default().to_vec();
    let next = if to < matching.len() {
        format!("o:{to}")
    } else {
        String::new()
    };
    axum::Json(json!({
        "ok": true,
        "entries": page,
        "response_metadata": {"next_cursor": next},
    }))
    .into_response()
}

/// An audit log entry as Slack writes one: `action` by user `user` at `second`.
pub fn entry(id: &str, second: i64, action: &str, user: &str) -> Value {
    json!({
        "id": id,
        "date_create": second,
        "action": action,
        "actor": {"type": "user", "user": {
            "id": user, "name": user.to_lowercase(),
            "email": format!("{}@acme.example", user.to_lowercase()), "team": "T0ACME"
        }},
        "entity": {"type": "user", "user": {"id": user, "name": user.to_lowercase()}},
        "context": {
            "location": {"type": "enterprise", "id": "E0ACME", "name": "Acme", "domain": "acme"},
            "ua": "Mozilla/5.0", "ip_address": "203.0.113.7", "session_id": 7_001
        }
    })
}
