//! Property tests of the input parsers and the policy parser: no input makes them
//! panic, nothing is dropped silently, and valid Slack entries keep every field. Run
//! longer with `PROPTEST_CASES=100000 cargo test -p aer-host --lib properties`.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Position, parse, parse_ndjson};
use crate::pipeline::policy::Policy;

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(256),
        ..ProptestConfig::default()
    }
}

/// A Slack entry with the quirks real entries show.
fn slack_entry() -> impl Strategy<Value = (Value, String, i64, String, String)> {
    (
        "[a-f0-9-]{1,36}",
        0i64..4_000_000_000,
        prop::sample::select(vec![
            "user_login",
            "file_downloaded",
            "anomaly",
            "pref.sso_setting_changed",
            "brand_new_action",
        ]),
        "[A-Z0-9]{1,11}",
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            "[a-z0-9]{0,12}".prop_map(Value::from)
        ],
        any::<bool>(),
        "\\PC{0,40}",
    )
        .prop_map(|(id, secs, action, user, session, date_as_string, ua)| {
            let date = if date_as_string {
                json!(secs.to_string())
            } else {
                json!(secs)
            };
            let session_text = match &session {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let entry = json!({
                "id": id, "date_create": date, "action": action,
                "actor": {"type": "user", "user": {"id": user, "name": "n", "email": "e@x"}},
                "context": {"ua": ua, "ip_address": "1.23.45.678", "session_id": session},
                "details": {"reason": ["tor", "asn"]},
            });
            (entry, id, secs * 1000, user, session_text)
        })
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn arbitrary_text_never_panics_and_every_line_is_accounted_for(text in "\\PC{0,400}(\n\\PC{0,200}){0,8}") {
        let parsed = parse_ndjson(&text);
        let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
        prop_assert_eq!(parsed.events.len() + parsed.errors.len(), lines);
        for e in &parsed.errors {
            prop_assert!(matches!(e.position, Position::Line(n) if n >= 1));
            prop_assert!(!e.reason.is_empty());
        }
        let _ = parse(&text);
    }

    #[test]
    fn arbitrary_json_values_never_panic(v in any_json()) {
        let text = v.to_string();
        let _ = parse(&text);
        let _ = Policy::from_json(&text);
        let wrapped = json!({"entries": [v]}).to_string();
        let parsed = parse(&wrapped);
        prop_assert_eq!(parsed.events.len() + parsed.errors.len(), 1);
    }

    #[test]
    fn valid_slack_entries_keep_their_fields(entries in prop::collection::vec(slack_entry(), 1..20)) {
        let ndjson: String = entries.iter().map(|(e, ..)| format!("{e}\n")).collect();
        let envelope = json!({"ok": true, "entries": entries.iter().map(|(e, ..)| e.clone()).collect::<Vec<_>>()}).to_string();
        for text in [ndjson, envelope] {
            let parsed = parse(&text);
            prop_assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
            prop_assert_eq!(parsed.events.len(), entries.len());
            for (event, (_, id, ms, user, session)) in parsed.events.iter().zip(&entries) {
                prop_assert_eq!(&event.id, id);
                prop_assert_eq!(event.time_ms, *ms);
                prop_assert_eq!(&event.actor.id, user);
                prop_assert_eq!(&event.context.session_id, session);
                prop_assert_eq!(event.context.ip.as_str(), "1.23.45.678");
                prop_assert_eq!(event.detail("reason"), Some(r#"["tor","asn"]"#));
            }
        }
    }

    #[test]
    fn the_stored_encoding_is_what_the_event_encodes_to(
        entries in prop::collection::vec(slack_entry(), 0..10),
        other in any_json(),
    ) {
        let mut text: String = entries.iter().map(|(e, ..)| format!("{e}\n")).collect();
        for fixed in [
            json!({"id": "x", "date_create": "1521214343", "action": "anomaly",
                "actor": {"type": "app", "app": {"id": "A1", "name": "Bot"}, "account_type": "bot"},
                "entity": {"type": "file", "file": {"id": "F1", "title": "plan.pdf", "filetype": "pdf"}},
                "context": {"ua": "", "ip_address": null, "session_id": 7, "app": {"id": "A1"},
                    "location": {"type": "workspace", "id": "T1", "name": "Acme", "domain": "acme"}},
                "details": {"reason": ["tor", "asn"], "note": null, "esc\"aped": "a\nb"},
                "brand_new_field": {"a": 1}}),
            json!({"id": "m-1", "time": "2026-01-05T09:00:00Z", "action": "message",
                "actor": {"id": "U1", "email": "a@x"}, "target": {"kind": "channel", "id": "C1"},
                "context": {"ip": "10.0.0.1", "session_id": 7,
                    "location": {"kind": "workspace", "id": "T1"}},
                "details": {"chars": 120}, "source": "events-api"}),
            other,
        ] {
            text.push_str(&format!("{fixed}\n"));
        }
        let events = super::parse_bytes(text.as_bytes());
        let encoded = super::parse_encoded(text.as_bytes());
        prop_assert_eq!(&events.errors, &encoded.errors);
        prop_assert_eq!(events.events.len(), encoded.events.len());
        prop_assert!(events.events.len() >= entries.len() + 2);
        for (event, stored) in events.events.iter().zip(&encoded.events) {
            let mut bytes = Vec::new();
            aer_wire::encode_event(event, &mut bytes);
            prop_assert_eq!(&stored.bytes, &bytes);
            prop_assert_eq!(stored.time_ms, event.time_ms);
            prop_assert_eq!(stored.id(), event.id.as_str());
        }
    }

    #[test]
    fn policies_within_range_validate_and_out_of_range_name_the_field(
        min_score in -1.0f32..2.0,
        findings in 0u32..5,
        detectors in 0u32..5,
        cap in 0u32..100,
    ) {
        let json = json!({
            "min_score": min_score,
            "corroboration": {"min_findings": findings, "min_detectors": detectors, "window_minutes": 10},
            "max_responses_per_hour": cap,
        })
        .to_string();
        let valid = (0.0..=1.0).contains(&min_score) && findings >= 1 && detectors >= 1 && detectors <= findings && cap >= 1;
        match Policy::from_json(&json) {
            Ok(_) => prop_assert!(valid),
            Err(errors) => {
                prop_assert!(!valid);
                prop_assert!(errors.iter().all(|e| !e.field.is_empty() && !e.message.is_empty()));
            }
        }
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
        prop::sample::select(vec![
            "id",
            "date_create",
            "action",
            "actor",
            "time",
            "entries"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "id",
                    "date_create",
                    "action",
                    "actor",
                    "entity",
                    "context",
                    "details",
                    "time",
                    "time_ms",
                    "user",
                    "type",
                    "x"
                ])
                .prop_map(str::to_owned),
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
