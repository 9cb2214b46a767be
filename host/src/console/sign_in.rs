//! Signing in (a token and a name) and out. A failed sign-in counts against the
//! client address like a failed API authentication (`http.auth_failures_per_minute`).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::guard::{Posted, Signed, cleared_cookie, same_origin, session_cookie};
use super::{PageError, blocking, render};
use crate::daemon::Daemon;
use crate::daemon::sessions::{Principal, SignInError};

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage<'a> {
    /// What went wrong with the last attempt.
    error: &'a str,
    /// The name entered (the token is never shown back).
    name: &'a str,
}

/// Where a session lands after signing in.
fn home(principal: &Principal) -> &'static str {
    match principal {
        Principal::Tenant(_) => "/console/overview",
        Principal::Operator => "/console/tenants",
    }
}

/// `GET /console/sign-in`: the form (or home, when signed in already).
pub(super) async fn form(signed: Option<Signed>) -> Response {
    match signed {
        Some(Signed(s)) => Redirect::to(home(&s.principal)).into_response(),
        None => render(&SignInPage {
            error: "",
            name: "",
        }),
    }
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    name: String,
}

/// `POST /console/sign-in`: open a session and set its cookie.
pub(super) async fn submit(
    State(daemon): State<Arc<Daemon>>,
    request: Request,
) -> Result<Response, PageError> {
    let (mut parts, body) = request.into_parts();
    same_origin(&parts)?;
    if let Some(wait) = crate::web::auth_blocked(&daemon, &parts.extensions) {
        return Err(PageError::Status(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed sign-ins from this address; try again in {} s",
                wait.as_secs() + 1
            ),
        ));
    }
    let bytes = axum::body::to_bytes(body, daemon.config.http.max_body_bytes)
        .await
        .map_err(|e| PageError::bad_request(format!("cannot read the form: {e}")))?;
    let form: SignInForm = serde_html_form::from_bytes(&bytes)
        .map_err(|e| PageError::bad_request(format!("invalid form: {e}")))?;
    let headers: HeaderMap = std::mem::take(&mut parts.headers);
    let signing = daemon.clone();
    let token = form.token.trim().to_owned();
    let name = form.name.clone();
    let opened = blocking(move || Ok(signing.sign_in(&token, &name))).await?;
    let session = match opened {
        Ok(s) => s,
        Err(e) => {
            let status = match &e {
                SignInError::BadName => StatusCode::BAD_REQUEST,
                SignInError::Suspended(_) => StatusCode::FORBIDDEN,
                SignInError::BadToken => {
                    crate::web::auth_failed(
                        &daemon,
                        &parts.extensions,
                        parts.uri.path(),
                        "unknown token at the console's sign-in",
                    );
                    StatusCode::UNAUTHORIZED
                }
                SignInError::Daemon(_) => return Err(PageError::internal(e)),
            };
            let page = SignInPage {
                error: &e.to_string(),
                name: &form.name,
            };
            return Ok((status, render(&page)).into_response());
        }
    };
    tracing::info!(principal = ?session.principal, "console sign-in");
    let cookie = session_cookie(&daemon, &headers, &session);
    let mut r = Redirect::to(home(&session.principal)).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        cookie.parse().map_err(PageError::internal)?,
    );
    Ok(r)
}

#[derive(Deserialize)]
pub(super) struct NoFields {}

/// `POST /console/sign-out`: end the session and forget its cookie.
pub(super) async fn sign_out(
    State(daemon): State<Arc<Daemon>>,
    posted: Posted<NoFields>,
) -> Result<Response, PageError> {
    let session = posted.session;
    blocking(move || daemon.sign_out(&session).map_err(PageError::internal)).await?;
    let mut r = Redirect::to("/console/sign-in").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        cleared_cookie().parse().map_err(PageError::internal)?,
    );
    Ok(r)
}
