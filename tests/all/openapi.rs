//! The HTTP API's OpenAPI document (`GET /v1/openapi.json`): generated from the
//! handlers, it describes every route the daemon serves, and the daemon serves every
//! route it describes.

use aer_host::config::ServeConfig;
use aer_tests::{ADMIN, TestDaemon, repo_root};
use serde_json::Value;

/// The operations the document describes: (method, path, security scheme).
fn operations(doc: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let scheme = op["security"][0]
                .as_object()
                .and_then(|s| s.keys().next().cloned())
                .unwrap_or_default();
            out.push((method.to_uppercase(), path.clone(), scheme));
        }
    }
    out.sort();
    out
}

#[test]
fn the_openapi_document_describes_every_route_and_every_route_it_describes_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), ServeConfig::default());
    let token = d.tenant("acme");
    // Served without a token.
    let (status, doc) = d.request("GET", "/v1/openapi.json", None, None, vec![]);
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);
    let paths: Vec<&str> = ops.iter().map(|(_, p, _)| p.as_str()).collect();
    for want in [
        "/v1/events",
        "/v1/plugins/{name}/config",
        "/v1/policy",
        "/v1/findings",
        "/v1/decisions",
        "/v1/actions",
        "/v1/dead-letters/{seq}/replay",
        "/v1/admin/tenants/{name}/token",
        "/metrics",
        "/v1/openapi.json",
    ] {
        assert!(paths.contains(&want), "{want} in {paths:?}");
    }
    assert!(ops.len() >= 28, "{ops:?}");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for (_, _, scheme) in &ops {
        assert!(
            scheme.is_empty() || schemes.contains_key(scheme),
            "{scheme}"
        );
    }

    // Every operation described is served: none falls through to "no such route" or
    // answers 405 (the live stream is left out: it never ends).
    for (method, path, scheme) in ops.iter().filter(|(_, p, _)| p != "/v1/stream") {
        let url = path.replace("{name}", "nobody").replace("{seq}", "0");
        let token = match scheme.as_str() {
            "admin_token" | "metrics_token" => Some(ADMIN),
            "tenant_token" => Some(token.as_str()),
            _ => None,
        };
        let (status, body) = d.request(method, &url, token, None, vec![]);
        assert_ne!(status, 405, "{method} {url}: {body}");
        assert!(
            !(status == 404 && body["error"] == "no such route"),
            "{method} {url} is described but not served"
        );
    }
    // The router has no route outside the document: every one goes through `routes!`.
    let src = std::fs::read_to_string(repo_root().join("host/src/api.rs")).unwrap();
    for bypass in [".route(", ".route_service(", ".nest(", ".merge("] {
        assert!(
            !src.contains(bypass),
            "host/src/api.rs registers a route with {bypass}"
        );
    }
    let (status, body) = d.request("GET", "/v1/no-such-route", Some(&token), None, vec![]);
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("no such route"))
    );
}
