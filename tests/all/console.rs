//! The console's pages over real HTTP: sign-in required, the session cookie's
//! attributes and its end (sign-out, token rotation, the per-tenant cap), the security
//! headers, CSRF and same-origin refusals, text from plugins and events shown as text,
//! and one tenant's session never reaching another tenant's records.

use aer_host::config::ServeConfig;
use aer_tests::{ADMIN, MockSlack, TestDaemon, plugins};
use serde_json::json;

use crate::reviews::{app_tenant, exfiltration, ingest, reviews, wait};

/// An answer: status, the headers the tests read, the body.
pub(crate) struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub csp: Option<String>,
    pub body: String,
}

/// A browser without JavaScript: one session cookie, redirects not followed.
pub(crate) struct Browser {
    base: String,
    agent: ureq::Agent,
    pub cookie: Option<String>,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Browser {
            base: base.to_owned(),
            agent,
            cookie: None,
        }
    }

    fn answer(mut r: ureq::http::Response<ureq::Body>) -> Answer {
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (location, set_cookie, csp) = (
            header("location"),
            header("set-cookie"),
            header("content-security-policy"),
        );
        Answer {
            status: r.status().as_u16(),
            location,
            set_cookie,
            csp,
            body: r.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    pub fn get(&self, path: &str) -> Answer {
        let mut r = self.agent.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            r = r.header("Cookie", c);
        }
        Self::answer(r.call().unwrap())
    }

    /// POST a form with extra request headers.
    pub fn post_with(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Answer {
        let body = serde_html_form_encode(fields);
        let mut r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/x-www-form-urlencoded");
        if let Some(c) = &self.cookie {
            r = r.header("Cookie", c);
        }
        for (name, value) in headers {
            r = r.header(*name, *value);
        }
        Self::answer(r.send(body.as_bytes()).unwrap())
    }

    /// POST `multipart/form-data`: (name, file name if a file, bytes).
    pub fn post_multipart(&self, path: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Answer {
        let boundary = "aer-test-boundary-7d1c";
        let mut body = Vec::new();
        for (name, file, bytes) in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            let disposition = match file {
                Some(f) => format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/wasm\r\n\r\n"
                ),
                None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
            };
            body.extend_from_slice(disposition.as_bytes());
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let mut r = self.agent.post(format!("{}{path}", self.base)).header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        );
        if let Some(c) = &self.cookie {
            r = r.header("Cookie", c);
        }
        Self::answer(r.send(&body[..]).unwrap())
    }

    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        self.post_with(path, fields, &[])
    }

    /// Sign in with `token` as `name`; the answer (the cookie kept when one is set).
    pub fn sign_in(&mut self, token: &str, name: &str) -> Answer {
        let a = self.post("/console/sign-in", &[("token", token), ("name", name)]);
        if let Some(c) = &a.set_cookie {
            self.cookie = Some(c.split(';').next().unwrap().to_owned());
        }
        a
    }

    /// A signed-in browser.
    pub fn signed_in(base: &str, token: &str, name: &str) -> Browser {
        let mut b = Browser::new(base);
        let a = b.sign_in(token, name);
        assert_eq!(a.status, 303, "{}", a.body);
        b
    }

    /// The CSRF secret of a page's forms.
    pub fn csrf(&self, path: &str) -> String {
        let page = self.get(path);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let at = page
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with csrf")
            + 19;
        page.body[at..].split('"').next().unwrap().to_owned()
    }
}

/// `application/x-www-form-urlencoded`.
fn serde_html_form_encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A tenant with an open approval review of a risky app (PDF Helper) whose name is
/// `app_name`; the tenant's token and the review's id.
pub(crate) fn open_review(d: &TestDaemon, slack: &MockSlack, app_name: &str) -> (String, u64) {
    let t = app_tenant(d, slack);
    let mut events = exfiltration("A0EXFIL", "U0ALICE", 0, 30);
    events[0]["entity"]["app"]["name"] = json!(app_name);
    ingest(d, &t, &events);
    let open = wait("an open review", || {
        let r = reviews(d, &t, "?state=open");
        (!r.is_empty()).then_some(r)
    });
    (t, open[0]["id"].as_u64().unwrap())
}

#[test]
fn every_page_needs_a_session_and_the_cookie_is_locked_down() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let token = d.tenant("acme");
    let mut b = Browser::new(&d.base);

    // Without a session every page sends the browser to the sign-in form, with the
    // security headers on every answer.
    for page in [
        "/console/overview",
        "/console/reviews",
        "/console/findings",
        "/console/tenants",
        "/console/stream",
    ] {
        let a = b.get(page);
        assert_eq!(
            (a.status, a.location.as_deref()),
            (303, Some("/console/sign-in")),
            "{page}"
        );
        let csp = a.csp.unwrap();
        assert!(
            csp.contains("default-src 'none'")
                && csp.contains("script-src 'self'")
                && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
    }
    let form = b.get("/console/sign-in");
    assert_eq!(form.status, 200);
    assert!(form.body.contains("type=\"password\""), "{}", form.body);

    // A wrong token: refused, no cookie, the token not shown back, the name escaped.
    let a = b.sign_in("aer_not-a-token", "<b>Mallory</b>");
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(a.set_cookie.is_none());
    assert!(a.body.contains("that token is not valid"), "{}", a.body);
    assert!(!a.body.contains("aer_not-a-token"));
    assert!(
        a.body.contains("&#60;b&#62;Mallory&#60;/b&#62;") && !a.body.contains("<b>Mallory"),
        "{}",
        a.body
    );
    // A name is required.
    assert_eq!(b.sign_in(&token, "  ").status, 400);

    // The right token: a cookie that scripts cannot read, that no other site's request
    // carries, limited to the console and to the session's lifetime; not `Secure` over
    // plain http, `Secure` when a proxy says the browser came over https.
    let a = b.sign_in(&token, "Ann Analyst");
    assert_eq!(
        (a.status, a.location.as_deref()),
        (303, Some("/console/overview"))
    );
    let cookie = a.set_cookie.unwrap();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
    let mut over_https = Browser::new(&d.base);
    let a = over_https.post_with(
        "/console/sign-in",
        &[("token", &token), ("name", "Ann")],
        &[("X-Forwarded-Proto", "https")],
    );
    assert!(a.set_cookie.unwrap().contains("Secure"));
    over_https.cookie = None;

    let page = b.get("/console/overview");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Ann Analyst") && page.body.contains("acme"));

    // Signed out, the same cookie opens nothing.
    let csrf = b.csrf("/console/overview");
    let a = b.post("/console/sign-out", &[("csrf", &csrf)]);
    assert_eq!(
        (a.status, a.location.as_deref()),
        (303, Some("/console/sign-in"))
    );
    assert!(a.set_cookie.unwrap().contains("Max-Age=0"));
    assert_eq!(b.get("/console/overview").status, 303);
}

#[test]
fn a_session_ends_with_its_token_and_past_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::default();
    config.console.max_sessions = 3;
    let d = TestDaemon::start(dir.path(), config);
    let token = d.tenant("acme");

    // Past the cap, a sign-in ends the oldest session.
    let first = Browser::signed_in(&d.base, &token, "one");
    let others: Vec<Browser> = (0..3)
        .map(|i| Browser::signed_in(&d.base, &token, &format!("n{i}")))
        .collect();
    assert_eq!(
        first.get("/console/overview").status,
        303,
        "the oldest ended"
    );
    for b in &others {
        assert_eq!(b.get("/console/overview").status, 200);
    }

    // Rotating the tenant's token ends every session opened with the old one.
    let (status, body) = d.request(
        "POST",
        "/v1/admin/tenants/acme/token",
        Some(ADMIN),
        None,
        vec![],
    );
    assert_eq!(status, 200, "{body}");
    for b in &others {
        assert_eq!(b.get("/console/overview").status, 303);
    }
    let new_token = body["token"].as_str().unwrap();
    let b = Browser::signed_in(&d.base, new_token, "one");
    assert_eq!(b.get("/console/overview").status, 200);

    // Suspending the tenant ends it too.
    let (status, _) = d.request(
        "POST",
        "/v1/admin/tenants/acme/suspend",
        Some(ADMIN),
        None,
        vec![],
    );
    assert_eq!(status, 200);
    assert_eq!(b.get("/console/overview").status, 303);
    let mut again = Browser::new(&d.base);
    assert_eq!(again.sign_in(new_token, "one").status, 403);
}

#[test]
fn forms_need_the_sessions_csrf_secret_and_the_same_origin() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let (t, id) = open_review(&d, &slack, "PDF Helper");
    let b = Browser::signed_in(&d.base, &t, "Ann Analyst");
    let csrf = b.csrf("/console/reviews");
    let id_text = id.to_string();
    let approve = |fields: &[(&str, &str)], headers: &[(&str, &str)]| {
        b.post_with("/console/reviews/approve", fields, headers)
    };

    // No secret, a wrong one, another session's, or a request from another site: 403,
    // and the review stays open.
    let other = Browser::signed_in(&d.base, &t, "Bob");
    let others_csrf = other.csrf("/console/reviews");
    for (fields, headers) in [
        (vec![("only", id_text.as_str())], vec![]),
        (vec![("csrf", "x"), ("only", &id_text)], vec![]),
        (vec![("csrf", &others_csrf), ("only", &id_text)], vec![]),
        (
            vec![("csrf", &csrf), ("only", &id_text)],
            vec![("Origin", "https://evil.example")],
        ),
        (
            vec![("csrf", &csrf), ("only", &id_text)],
            vec![("Sec-Fetch-Site", "cross-site")],
        ),
    ] {
        let a = approve(&fields, &headers);
        assert_eq!(a.status, 403, "{fields:?} {headers:?}: {}", a.body);
        assert_eq!(reviews(&d, &t, "?state=open").len(), 1);
    }
    // Without a session: to the sign-in form, nothing done.
    let a = Browser::new(&d.base).post(
        "/console/reviews/approve",
        &[("csrf", &csrf), ("only", &id_text)],
    );
    assert_eq!(
        (a.status, a.location.as_deref()),
        (303, Some("/console/sign-in"))
    );
    assert_eq!(reviews(&d, &t, "?state=open").len(), 1);

    // With the session's secret, from the console itself: approved, signed with the
    // name the analyst signed in with, and the effects run at Slack.
    let host = d.base.trim_start_matches("http://").to_owned();
    let origin = format!("http://{host}");
    let a = approve(
        &[("csrf", &csrf), ("only", &id_text)],
        &[("Origin", &origin), ("Sec-Fetch-Site", "same-origin")],
    );
    assert_eq!(
        (a.status, a.location.as_deref()),
        (303, Some("/console/reviews?approved=1&skipped=0")),
        "{}",
        a.body
    );
    let done = reviews(&d, &t, "?state=approved");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["resolved_by"], "Ann Analyst");
    wait("the restriction at Slack", || {
        (!slack.calls().of("admin.apps.restrict").is_empty()).then_some(())
    });
    let page = b.get("/console/reviews?approved=1&skipped=0&state=approved");
    assert!(
        page.body.contains("1 approved") && page.body.contains("approved by Ann Analyst"),
        "{}",
        page.body
    );

    // At most 1,000 reviews at once (none is touched past it), and none is no request.
    let many: Vec<String> = (0..1_001).map(|i| i.to_string()).collect();
    let mut fields = vec![("csrf", csrf.as_str())];
    fields.extend(many.iter().map(|i| ("review", i.as_str())));
    let a = approve(&fields, &[]);
    assert!(
        a.status == 400 && a.body.contains("at most 1000"),
        "{}",
        a.body
    );
    assert_eq!(approve(&[("csrf", &csrf)], &[]).status, 400);

    // Approving again is skipped, not done twice.
    let a = approve(&[("csrf", &csrf), ("review", &id_text)], &[]);
    assert_eq!(
        a.location.as_deref(),
        Some("/console/reviews?approved=0&skipped=1")
    );
}

#[test]
fn dismissing_in_bulk_records_the_reason_and_may_suppress() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let (t, id) = open_review(&d, &slack, "PDF Helper");
    let b = Browser::signed_in(&d.base, &t, "Ann");
    let csrf = b.csrf("/console/reviews");
    let id = id.to_string();
    // A reason is required; days must be a number in range.
    let a = b.post(
        "/console/reviews/dismiss",
        &[("csrf", &csrf), ("review", &id)],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    let a = b.post(
        "/console/reviews/dismiss",
        &[
            ("csrf", &csrf),
            ("review", &id),
            ("reason", "false_positive"),
            ("suppress", "on"),
            ("suppress_days", "-3"),
        ],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("1 to 3650 days"), "{}", a.body);
    let a = b.post(
        "/console/reviews/dismiss",
        &[
            ("csrf", &csrf),
            ("review", &id),
            ("reason", "false_positive"),
            ("note", "the <app> is ours"),
            ("suppress", "on"),
            ("suppress_days", "30"),
        ],
    );
    assert_eq!(
        a.location.as_deref(),
        Some("/console/reviews?dismissed=1&skipped=0"),
        "{}",
        a.body
    );
    let dismissed = reviews(&d, &t, "?state=dismissed");
    assert_eq!(dismissed[0]["dismissal"], "false_positive");
    assert_eq!(dismissed[0]["resolved_by"], "Ann");
    let (_, s) = d.request("GET", "/v1/suppressions", Some(&t), None, vec![]);
    let s = &s["items"][0];
    assert_eq!(
        (s["subject"].as_str(), s["rule"].as_str()),
        (Some("A0EXFIL"), Some("risky-app"))
    );
    let days = (s["expires_ms"].as_i64().unwrap()
        - i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap())
        / 86_400_000;
    assert!((29..=30).contains(&days), "{s}");
    assert!(slack.calls().of("admin.apps.restrict").is_empty());
}

#[test]
fn plugin_and_event_text_is_shown_as_text() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let hostile =
        "<script>alert(1)</script><img src=x onerror=alert(2)> <@U0ALICE|a> \"quoted\" 'single'";
    let (t, _) = open_review(&d, &slack, hostile);
    let b = Browser::signed_in(&d.base, &t, "Ann");
    let page = wait("the install's finding on the page", || {
        let p = b.get("/console/findings");
        p.body.contains("installed app A0EXFIL").then_some(p)
    });
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains("<script>alert") && !page.body.contains("<img src=x"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("&#60;script&#62;alert(1)&#60;/script&#62;&#60;img src=x onerror=alert(2)&#62; &#60;@U0ALICE|a&#62; &#34;quoted&#34; &#39;single&#39;"),
        "{}",
        page.body
    );
    // The only scripts on any page are the console's own files.
    for path in ["/console/findings", "/console/reviews", "/console/overview"] {
        let body = b.get(path).body;
        let scripts: Vec<&str> = body.split("<script").skip(1).collect();
        assert_eq!(scripts.len(), 3, "{path}");
        assert!(
            scripts
                .iter()
                .all(|s| s.trim_start().starts_with("src=\"/console/assets/")),
            "{path}"
        );
    }
}

#[test]
fn one_tenants_session_never_reaches_another_tenants_records() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let (a_token, a_review) = open_review(&d, &slack, "PDF Helper");
    wait("acme's findings", || {
        let (_, f) = d.request("GET", "/v1/findings", Some(&a_token), None, vec![]);
        (!f["items"].as_array().unwrap().is_empty()).then_some(())
    });
    let b_token = d.tenant("globex");
    let b = Browser::signed_in(&d.base, &b_token, "Bea");
    for path in [
        "/console/findings",
        "/console/reviews?state=all",
        "/console/overview",
    ] {
        let page = b.get(path);
        assert_eq!(page.status, 200, "{path}");
        assert!(page.body.contains("globex"), "{path}");
        assert!(
            !page.body.contains("A0EXFIL") && !page.body.contains("acme"),
            "{path}: {}",
            page.body
        );
    }
    // Each tenant's overview counts its own events (acme streamed 31).
    let events = |body: &str| {
        body.split("<div class=\"n\">")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap()
            .to_owned()
    };
    let acme = Browser::signed_in(&d.base, &a_token, "Ann").get("/console/overview");
    assert!(
        acme.body.contains("events accepted, last hour"),
        "{}",
        acme.body
    );
    assert_eq!(events(&acme.body), "31");
    assert_eq!(events(&b.get("/console/overview").body), "0");
    // Approving acme's review by its id through globex's session: nothing found,
    // nothing done.
    let csrf = b.csrf("/console/reviews");
    let a = b.post(
        "/console/reviews/approve",
        &[("csrf", &csrf), ("review", &a_review.to_string())],
    );
    assert_eq!(
        a.location.as_deref(),
        Some("/console/reviews?approved=0&skipped=1")
    );
    assert_eq!(reviews(&d, &a_token, "?state=open").len(), 1);
    // A tenant's session is not the operator's, and the operator's not a tenant's.
    assert_eq!(b.get("/console/tenants").status, 403);
    let op = Browser::signed_in(&d.base, ADMIN, "Olga Operator");
    let tenants = op.get("/console/tenants");
    assert!(
        tenants.body.contains("acme") && tenants.body.contains("globex"),
        "{}",
        tenants.body
    );
    assert_eq!(op.get("/console/findings").status, 403);
}

#[test]
fn a_case_walks_from_the_event_to_the_effects_and_triage_is_set_in_bulk() {
    let slack = MockSlack::start(0);
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let (t, id) = open_review(&d, &slack, "PDF Helper");
    let (status, _) = d.request(
        "POST",
        &format!("/v1/reviews/{id}/approve"),
        Some(&t),
        Some("application/json"),
        br#"{"by": "Ann"}"#.to_vec(),
    );
    assert_eq!(status, 200);
    wait("the restriction done", || {
        let (_, r) = d.request("GET", &format!("/v1/reviews/{id}"), Some(&t), None, vec![]);
        r["effects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "restrict-app" && e["status"] == "done")
            .then_some(())
    });
    let (_, findings) = d.request("GET", "/v1/findings", Some(&t), None, vec![]);
    let install = findings["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["output"].as_str().unwrap().contains("installed app"))
        .unwrap()
        .clone();
    let finding_seq = install["seq"].as_u64().unwrap();
    let b = Browser::signed_in(&d.base, &t, "Ann");

    // The decisions page links the case; the case walks event -> finding -> decision
    // -> review -> effects, from the decision or from the finding alike.
    let list = b.get("/console/decisions?outcome=respond");
    assert!(
        list.body
            .contains(&format!("href=\"/console/decisions/{id}\"")),
        "{}",
        list.body
    );
    for path in [
        format!("/console/decisions/{id}"),
        format!("/console/findings/{finding_seq}"),
    ] {
        let page = b.get(&path);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        for needle in [
            "app_installed",
            "user · U0ALICE",
            "installed app A0EXFIL (PDF Helper)",
            "respond: risky-app (score 0.60)",
            "approval review, approved by Ann",
            "restrict-app</strong> A0EXFIL",
            "approved by Ann",
        ] {
            assert!(
                page.body.contains(needle),
                "{path}: {needle:?} in {}",
                page.body
            );
        }
        let walk = [
            "1. The event",
            "2. The finding",
            "3. The decision",
            "4. The effects",
        ]
        .map(|h| page.body.find(h).unwrap());
        assert!(walk.windows(2).all(|w| w[0] < w[1]));
    }
    assert_eq!(b.get("/console/decisions/999999").status, 404);
    // Filter values that cannot be meant are refused by name; a page size not offered
    // falls back to the default.
    for (path, needle) in [
        (
            "/console/findings?since=yesterday",
            "`since` must be a date and time",
        ),
        ("/console/decisions?outcome=launch", "no outcome"),
        ("/console/findings?severity=apocalyptic", "no severity"),
        ("/console/decisions?triage=maybe", "no triage status"),
        (
            "/console/findings?outcome=respond",
            "findings have no outcome",
        ),
    ] {
        let a = b.get(path);
        assert!(
            a.status == 400 && a.body.contains(needle),
            "{path}: {}",
            a.body
        );
    }
    let big = b.get("/console/findings?size=1000000");
    assert!(
        big.body.contains("<option value=\"100\" selected>"),
        "{}",
        big.body
    );
    // The action log, filtered by effect; a cursor it did not give out is refused.
    let actions = b.get("/console/actions?action=restrict-app");
    assert!(
        actions.body.contains("restrict-app</strong> A0EXFIL")
            && actions.body.contains("approved by Ann"),
        "{}",
        actions.body
    );
    assert!(
        !actions.body.contains("uninstall-app</strong>"),
        "{}",
        actions.body
    );
    assert_eq!(b.get("/console/actions?after=not-a-cursor").status, 400);

    // Triage in bulk: closing needs a reason; an unknown item sets nothing; then both
    // are closed, signed by the analyst.
    let csrf = b.csrf("/console/findings");
    let (f, x) = (finding_seq.to_string(), id.to_string());
    let a = b.post(
        "/console/triage",
        &[
            ("csrf", &csrf),
            ("finding", &f),
            ("decision", &x),
            ("status", "closed"),
        ],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    let a = b.post(
        "/console/triage",
        &[
            ("csrf", &csrf),
            ("finding", &f),
            ("finding", "424242"),
            ("status", "acknowledged"),
        ],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    let a = b.post(
        "/console/triage",
        &[
            ("csrf", &csrf),
            ("finding", &f),
            ("decision", &x),
            ("status", "closed"),
            ("reason", "resolved"),
            ("note", "app removed"),
            ("back", "findings"),
        ],
    );
    assert_eq!(
        a.location.as_deref(),
        Some("/console/findings?triaged=2"),
        "{}",
        a.body
    );
    let (_, after) = d.request("GET", "/v1/findings", Some(&t), None, vec![]);
    let triage = &after["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["seq"] == finding_seq)
        .unwrap()["triage"];
    assert_eq!(
        (
            triage["status"].as_str(),
            triage["reason"].as_str(),
            triage["by"].as_str()
        ),
        (Some("closed"), Some("resolved"), Some("Ann"))
    );
    assert!(
        b.get("/console/findings?triage=closed")
            .body
            .contains(&format!("/console/findings/{finding_seq}\""))
    );
    assert!(
        !b.get("/console/findings?triage=open")
            .body
            .contains(&format!("/console/findings/{finding_seq}\""))
    );

    // Another tenant's session finds neither the case nor the items to triage.
    let other = Browser::signed_in(&d.base, &d.tenant("globex"), "Bea");
    assert_eq!(other.get(&format!("/console/decisions/{id}")).status, 404);
    assert_eq!(
        other
            .get(&format!("/console/findings/{finding_seq}"))
            .status,
        404
    );
    let csrf = other.csrf("/console/findings");
    let a = other.post(
        "/console/triage",
        &[("csrf", &csrf), ("finding", &f), ("status", "acknowledged")],
    );
    assert_eq!(a.status, 400);
}

#[test]
fn plugins_are_uploaded_configured_switched_and_deleted_from_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = d.tenant("acme");
    let b = Browser::signed_in(&d.base, &t, "Ann");
    let csrf = b.csrf("/console/plugins");
    let component = std::fs::read(plugins::EXCESSIVE_DOWNLOADS).unwrap();

    // Without the session's secret, or with bytes that are no component: refused.
    let a = b.post_multipart(
        "/console/upload",
        &[("component", Some("x.wasm"), &component)],
    );
    assert_eq!(a.status, 403, "{}", a.body);
    let a = b.post_multipart(
        "/console/upload",
        &[
            ("csrf", None, csrf.as_bytes()),
            ("component", Some("x.wasm"), b"\0asm not really"),
        ],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("the upload was refused"), "{}", a.body);

    // Uploaded: validated, compiled, kept disabled; its schema beside the editor.
    let a = b.post_multipart(
        "/console/upload",
        &[
            ("csrf", None, csrf.as_bytes()),
            ("component", Some("ed.wasm"), &component),
        ],
    );
    assert_eq!(
        a.location.as_deref(),
        Some("/console/plugins/excessive-downloads?done=uploaded"),
        "{}",
        a.body
    );
    let page = b.get("/console/plugins/excessive-downloads?done=uploaded");
    assert!(
        page.body.contains("<dd id=\"status\">disabled</dd>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("threshold"),
        "the schema names its fields: {}",
        page.body
    );

    // A configuration the plugin refuses comes back with its words and what was sent;
    // one it takes is saved.
    let path = "/console/plugins/excessive-downloads/config";
    let a = b.post(
        path,
        &[("csrf", &csrf), ("config", "{\"threshold\": \"many\"}")],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.body.contains("the plugin refused it") && a.body.contains("&#34;many&#34;"),
        "{}",
        a.body
    );
    let a = b.post(path, &[("csrf", &csrf), ("config", "{not json")]);
    assert!(a.status == 400 && a.body.contains("not JSON"), "{}", a.body);
    let a = b.post(path, &[("csrf", &csrf), ("config", "{\"threshold\": 40}")]);
    assert_eq!(a.status, 303, "{}", a.body);
    let (_, rec) = d.request(
        "GET",
        "/v1/plugins/excessive-downloads",
        Some(&t),
        None,
        vec![],
    );
    assert_eq!(rec["config"], "{\"threshold\": 40}");

    // Enable, disable; no earlier version to roll back to; deleting needs the name.
    let act = "/console/plugins/excessive-downloads/action";
    assert_eq!(
        b.post(act, &[("csrf", &csrf), ("action", "enable")]).status,
        303
    );
    let (_, rec) = d.request(
        "GET",
        "/v1/plugins/excessive-downloads",
        Some(&t),
        None,
        vec![],
    );
    assert_eq!(rec["status"], "enabled");
    assert_eq!(
        b.post(act, &[("csrf", &csrf), ("action", "disable")])
            .status,
        303
    );
    let (_, rec) = d.request(
        "GET",
        "/v1/plugins/excessive-downloads",
        Some(&t),
        None,
        vec![],
    );
    assert_eq!(rec["status"], "disabled");
    let a = b.post(act, &[("csrf", &csrf), ("action", "rollback")]);
    assert!(
        a.status == 400 && a.body.contains("no earlier version"),
        "{}",
        a.body
    );
    let a = b.post(
        act,
        &[
            ("csrf", &csrf),
            ("action", "delete"),
            ("confirm", "excessive"),
        ],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    let a = b.post(
        act,
        &[
            ("csrf", &csrf),
            ("action", "delete"),
            ("confirm", "excessive-downloads"),
        ],
    );
    assert_eq!(a.location.as_deref(), Some("/console/plugins?done=deleted"));
    let (status, _) = d.request(
        "GET",
        "/v1/plugins/excessive-downloads",
        Some(&t),
        None,
        vec![],
    );
    assert_eq!(status, 404);
    // Another tenant's plugin is nobody's here.
    assert_eq!(
        Browser::signed_in(&d.base, &d.tenant("globex"), "Bea")
            .get("/console/plugins/excessive-downloads")
            .status,
        404
    );
}

#[test]
fn the_policy_is_edited_with_field_errors_and_switched_after_a_confirmation() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let t = d.tenant("acme");
    let policy = json!({"mode": "dry-run", "allowlist": {"users": ["W04DAVE"]},
        "responses": {"slack_token": "xoxp-the-secret", "slack_api_url": "https://slack.com/api"}});
    let (status, body) = d.request(
        "PUT",
        "/v1/policy",
        Some(&t),
        Some("application/json"),
        policy.to_string().into_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let stored_token = || d.daemon.policy("acme").unwrap().responses.slack_token;
    let b = Browser::signed_in(&d.base, &t, "Ann");
    let page = b.get("/console/policy");
    assert!(
        page.body.contains("********") && !page.body.contains("xoxp-the-secret"),
        "{}",
        page.body
    );
    assert!(page.body.contains("user W04DAVE"));
    let csrf = b.csrf("/console/policy");

    // Wrong fields: refused, each named, the text kept in the editor.
    let bad = r#"{"mode": "dry-run", "min_score": 7, "cooldown_minutes": -5}"#;
    let a = b.post("/console/policy", &[("csrf", &csrf), ("policy", bad)]);
    assert_eq!(a.status, 400, "{}", a.body);
    for field in ["<code>min_score</code>", "<code>cooldown_minutes</code>"] {
        assert!(a.body.contains(field), "{field} in {}", a.body);
    }
    assert!(a.body.contains("&#34;min_score&#34;: 7"), "{}", a.body);
    assert_eq!(
        d.daemon.policy("acme").unwrap().min_score,
        0.5,
        "nothing saved"
    );

    // The page's own text, edited and saved: the redacted token keeps the stored one.
    let mut edited: serde_json::Value = serde_json::from_str(
        &serde_json::to_string(&d.daemon.policy("acme").unwrap().redacted()).unwrap(),
    )
    .unwrap();
    edited["min_score"] = json!(0.7);
    let a = b.post(
        "/console/policy",
        &[("csrf", &csrf), ("policy", &edited.to_string())],
    );
    assert_eq!(
        a.location.as_deref(),
        Some("/console/policy?done=saved"),
        "{}",
        a.body
    );
    assert_eq!(d.daemon.policy("acme").unwrap().min_score, 0.7);
    assert_eq!(stored_token().as_deref(), Some("xoxp-the-secret"));
    // So does the API's read-edit-write round trip.
    let (_, read) = d.request("GET", "/v1/policy", Some(&t), None, vec![]);
    let (status, _) = d.request(
        "PUT",
        "/v1/policy",
        Some(&t),
        Some("application/json"),
        read.to_string().into_bytes(),
    );
    assert_eq!(status, 200);
    assert_eq!(stored_token().as_deref(), Some("xoxp-the-secret"));

    // The switch to enforce first says what will change, and changes nothing.
    let a = b.post(
        "/console/policy/mode",
        &[("csrf", &csrf), ("mode", "enforce")],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body
            .contains("run their responders&#39; effects for real"),
        "{}",
        a.body
    );
    assert_eq!(
        d.daemon.policy("acme").unwrap().mode,
        aer_host::pipeline::policy::Mode::DryRun
    );
    let a = b.post(
        "/console/policy/mode",
        &[("csrf", &csrf), ("mode", "enforce"), ("confirm", "yes")],
    );
    assert_eq!(a.location.as_deref(), Some("/console/policy?done=enforce"));
    assert_eq!(
        d.daemon.policy("acme").unwrap().mode,
        aer_host::pipeline::policy::Mode::Enforce
    );
    assert_eq!(stored_token().as_deref(), Some("xoxp-the-secret"));
}

#[test]
fn slack_is_connected_from_the_console_and_its_token_never_shown_back() {
    use aer_host::loopback::audit_log::AuditLog;
    let token = "xoxp-audit-token-0123456789";
    let log = AuditLog::new(token);
    log.add(crate::sources::entries("c", 30, 60));
    let slack = aer_tests::Served::start(log.router());
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), crate::sources::config());
    let t = d.tenant("acme");
    let b = Browser::signed_in(&d.base, &t, "Ann");
    assert!(b.get("/console/slack").body.contains("Not connected"));
    let csrf = b.csrf("/console/slack");
    let url = format!("{}/audit/v1", slack.base);

    // Field errors by name: a page size that is no number, a URL the operator does not
    // allow; nothing is set.
    let a = b.post(
        "/console/slack",
        &[
            ("csrf", &csrf),
            ("url", &url),
            ("token", token),
            ("page_size", "many"),
            ("enabled", "on"),
        ],
    );
    assert!(
        a.status == 400 && a.body.contains("<code>page_size</code>"),
        "{}",
        a.body
    );
    let a = b.post(
        "/console/slack",
        &[
            ("csrf", &csrf),
            ("url", "https://audit.evil.example/v1"),
            ("token", token),
            ("enabled", "on"),
        ],
    );
    assert!(
        a.status == 400 && a.body.contains("<code>url</code>"),
        "{}",
        a.body
    );
    assert!(
        !a.body.contains(token),
        "the token is not sent back: {}",
        a.body
    );
    assert_eq!(
        d.request("GET", "/v1/sources/slack-audit", Some(&t), None, vec![])
            .0,
        404
    );

    // A wrong token shows in the status; the right one, alone, starts the backfill
    // from its start; the token is never on the page.
    let a = b.post(
        "/console/slack",
        &[
            ("csrf", &csrf),
            ("url", &url),
            ("token", "xoxp-wrong"),
            ("start", "2026-11-01T00:00"),
            ("calls_per_minute", "60000"),
            ("enabled", "on"),
        ],
    );
    assert_eq!(
        a.location.as_deref(),
        Some("/console/slack?done=saved"),
        "{}",
        a.body
    );
    wait("the refusal on the page", || {
        b.get("/console/slack")
            .body
            .contains("invalid_auth")
            .then_some(())
    });
    let a = b.post(
        "/console/slack",
        &[("csrf", &csrf), ("token", token), ("enabled", "on")],
    );
    assert_eq!(a.status, 303, "{}", a.body);
    let page = wait("caught up", || {
        let p = b.get("/console/slack");
        p.body.contains("caught_up").then_some(p)
    });
    assert_eq!(aer_tests::inbox_events(&d.daemon, "acme").len(), 30);
    assert!(
        !page.body.contains(token) && !page.body.contains("xoxp-wrong"),
        "{}",
        page.body
    );
    assert!(page.body.contains("set (never shown)"));

    let a = b.post(
        "/console/slack",
        &[("csrf", &csrf), ("action", "disconnect")],
    );
    assert_eq!(
        a.location.as_deref(),
        Some("/console/slack?done=disconnected")
    );
    assert_eq!(
        d.request("GET", "/v1/sources/slack-audit", Some(&t), None, vec![])
            .0,
        404
    );
}

#[test]
fn sign_in_guessing_is_limited_per_client_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::default();
    config.http.auth_failures_per_minute = 3;
    let d = TestDaemon::start(dir.path(), config);
    let token = d.tenant("acme");
    let mut b = Browser::new(&d.base);
    for _ in 0..3 {
        assert_eq!(b.sign_in("aer_guess", "Mallory").status, 401);
    }
    // Past the limit even the right token is answered 429 until the minute is over;
    // the API's bearer tokens share the count.
    let a = b.sign_in(&token, "Mallory");
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(a.set_cookie.is_none());
    assert_eq!(
        d.request("GET", "/v1/policy", Some(&token), None, vec![]).0,
        429
    );
}

#[test]
fn a_plugins_page_shows_its_recent_log_lines_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    // 100,000 log calls take longer than the default deadline in a debug build.
    let mut config = ServeConfig::default();
    config.limits.deadline_ms = 20_000;
    let d = TestDaemon::start(dir.path(), config);
    let t = d.tenant("acme");
    d.install(&t, plugins::HOSTILE, r#"{"mode": "log-flood"}"#);
    ingest(
        &d,
        &t,
        &[crate::reviews::entry(
            "h1",
            "hostile",
            "U0ALICE",
            0,
            json!({}),
        )],
    );
    let b = Browser::signed_in(&d.base, &t, "Ann");
    // 100,000 lines logged in one call: the call keeps its first 100, the page shows
    // the last 100 kept, newest first.
    let page = wait("the log lines", || {
        let p = b.get("/console/plugins/hostile");
        p.body.contains("flood 99<").then_some(p)
    });
    let log = page
        .body
        .split("<table id=\"log\">")
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    assert_eq!(log.matches("<tr><td>").count(), 100, "{log}");
    assert!(
        log.find("flood 99<").unwrap() < log.find("flood 0<").unwrap(),
        "newest first"
    );
    assert!(!log.contains("flood 100<"));
}
