//! The console: the pages a tenant's security analysts (and the operator) use in a
//! browser, served by the daemon at `/console` over the same daemon calls as the API.
//! Pages are rendered on the server (askama templates, every value escaped); the few
//! scripts (htmx and its server-sent-events extension, vendored) only refresh parts of
//! a page, so a page that displays works without them.
//!
//! Sign-in opens a server-side session ([`crate::daemon::sessions`]) behind an
//! `HttpOnly`, `SameSite=Strict` cookie (`Secure` over https); every state-changing
//! form is same-origin and carries the session's CSRF secret ([`guard::Posted`]); every
//! answer carries a strict Content-Security-Policy ([`guard::CSP`]).

mod actions;
mod assets;
mod cases;
mod decisions;
mod filter;
mod findings;
mod guard;
mod overview;
mod plugins;
mod policy;
mod reviews;
mod sign_in;
mod slack;
mod tenants;
mod view;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::daemon::Daemon;

pub use guard::{COOKIE, CSP};

/// Why a page cannot be shown.
#[derive(Debug)]
pub enum PageError {
    /// No live session: to the sign-in page.
    SignIn,
    /// An error page with this status.
    Status(StatusCode, String),
}

impl PageError {
    /// 400.
    pub fn bad_request(message: impl std::fmt::Display) -> Self {
        PageError::Status(StatusCode::BAD_REQUEST, message.to_string())
    }

    /// 403.
    pub fn forbidden(message: impl std::fmt::Display) -> Self {
        PageError::Status(StatusCode::FORBIDDEN, message.to_string())
    }

    /// 404.
    pub fn not_found(message: impl std::fmt::Display) -> Self {
        PageError::Status(StatusCode::NOT_FOUND, message.to_string())
    }

    /// 500; the details go to the log, not to the page.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("console: internal error: {e}");
        PageError::Status(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn => {
                let mut r = Redirect::to("/console/sign-in").into_response();
                // htmx follows a redirect inside the part it refreshes: send the whole
                // page to the sign-in form instead.
                r.headers_mut().insert(
                    "hx-redirect",
                    header::HeaderValue::from_static("/console/sign-in"),
                );
                r
            }
            PageError::Status(status, message) => {
                let page = ErrorPage {
                    status: status.as_u16(),
                    title: status.canonical_reason().unwrap_or("Error"),
                    message: &message,
                };
                (status, render(&page)).into_response()
            }
        }
    }
}

/// A template rendered, or a plain error page if it cannot be.
pub(crate) fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!("console: cannot render a page: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// Run blocking daemon work (database reads, approvals) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PageError> + Send + 'static,
) -> Result<T, PageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(PageError::internal)?
}

/// Add the console's routes to the daemon's `router` (unless `console.enabled` is
/// off).
pub fn mount(router: Router<Arc<Daemon>>, daemon: &Daemon) -> Router<Arc<Daemon>> {
    if !daemon.config.console.enabled {
        return router;
    }
    let console = Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/overview") }),
        )
        .route(
            "/console/",
            get(|| async { Redirect::to("/console/overview") }),
        )
        .route("/console/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/overview", get(overview::page))
        .route("/console/reviews", get(reviews::page))
        .route("/console/reviews/approve", post(reviews::approve))
        .route("/console/reviews/dismiss", post(reviews::dismiss))
        .route("/console/findings", get(findings::page))
        .route("/console/findings/{seq}", get(cases::finding))
        .route("/console/decisions", get(decisions::page))
        .route("/console/decisions/{seq}", get(cases::decision))
        .route("/console/triage", post(decisions::triage))
        .route("/console/plugins", get(plugins::page))
        .route("/console/upload", post(plugins::upload))
        .route("/console/plugins/{name}", get(plugins::show))
        .route("/console/plugins/{name}/config", post(plugins::configure))
        .route("/console/plugins/{name}/action", post(plugins::act))
        .route("/console/plugins/{name}/replay", post(plugins::replay))
        .route("/console/policy", get(policy::page).post(policy::save))
        .route("/console/policy/mode", post(policy::mode))
        .route("/console/policy/unsuppress", post(policy::unsuppress))
        .route("/console/slack", get(slack::page).post(slack::save))
        .route("/console/actions", get(actions::page))
        .route("/console/stream", get(overview::stream))
        .route("/console/tenants", get(tenants::page))
        .route("/console/assets/{file}", get(assets::serve))
        .layer(axum::middleware::from_fn(guard::headers));
    router.merge(console)
}
