//! What every console request passes: the security headers on every answer, the
//! session cookie ([`Signed`], [`Analyst`], [`OperatorSession`]), and for every
//! state-changing request ([`Posted`]) a same-origin check and the session's CSRF
//! secret in the form.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::PageError;
use crate::daemon::Daemon;
use crate::daemon::sessions::{Principal, Session};

/// The session cookie's name.
pub const COOKIE: &str = "aer_console";

/// The console's Content-Security-Policy: scripts, styles, images and connections from
/// the daemon only, no inline script or style, no framing, forms posted only to the
/// daemon.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
base-uri 'none'";

/// Add the console's security headers to every answer: the CSP, no sniffing, no
/// framing, no caching of pages (assets say their own), and no referrer leaving the
/// daemon.
pub(super) async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name, value| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::CACHE_CONTROL, "no-store");
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// The session cookie's value in a request, if any.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
}

/// Whether the request reached the daemon over https (its public URL says so, or the
/// proxy in front of it does): the session cookie is then `Secure`.
pub(super) fn over_https(daemon: &Daemon, headers: &HeaderMap) -> bool {
    daemon
        .config
        .http
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The `Set-Cookie` value that gives the browser `session`.
pub(super) fn session_cookie(daemon: &Daemon, headers: &HeaderMap, session: &Session) -> String {
    let minutes = daemon.config.console.session_minutes;
    cookie::Cookie::build((COOKIE, session.cookie_value().to_owned()))
        .path("/console")
        .http_only(true)
        .secure(over_https(daemon, headers))
        .same_site(cookie::SameSite::Strict)
        .max_age(cookie::time::Duration::minutes(
            i64::try_from(minutes).unwrap_or(i64::MAX),
        ))
        .build()
        .to_string()
}

/// The `Set-Cookie` value that makes the browser forget its session.
pub(super) fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Refuse a state-changing request another site's page may have sent: the browser's
/// `Sec-Fetch-Site` must say same-origin when it is given, and `Origin`, when given,
/// must be this host.
pub(super) fn same_origin(parts: &Parts) -> Result<(), PageError> {
    let h = &parts.headers;
    if let Some(site) = h.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return Err(PageError::forbidden("a request from another site"));
    }
    if let Some(origin) = h.get(header::ORIGIN) {
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, host)| host);
        if host.is_none() || origin_host != host {
            return Err(PageError::forbidden("a request from another site"));
        }
    }
    Ok(())
}

/// A request with a live console session (any principal).
pub struct Signed(pub Session);

impl FromRequestParts<Arc<Daemon>> for Signed {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        daemon: &Arc<Daemon>,
    ) -> Result<Self, PageError> {
        let Some(value) = cookie(&parts.headers) else {
            return Err(PageError::SignIn);
        };
        match daemon.session(&value) {
            Ok(Some(session)) => Ok(Signed(session)),
            Ok(None) => Err(PageError::SignIn),
            Err(e) => Err(PageError::internal(e)),
        }
    }
}

/// A request with or without a live session (the sign-in form's).
impl axum::extract::OptionalFromRequestParts<Arc<Daemon>> for Signed {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        daemon: &Arc<Daemon>,
    ) -> Result<Option<Self>, PageError> {
        match <Signed as FromRequestParts<Arc<Daemon>>>::from_request_parts(parts, daemon).await {
            Ok(s) => Ok(Some(s)),
            Err(PageError::SignIn) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A request with a tenant analyst's session: the tenant's pages.
pub struct Analyst {
    /// The session's tenant.
    pub tenant: String,
    /// The session.
    pub session: Session,
}

impl Analyst {
    /// The tenant analyst of `session`; an operator's session is refused.
    pub fn of(session: Session) -> Result<Analyst, PageError> {
        match &session.principal {
            Principal::Tenant(t) => Ok(Analyst {
                tenant: t.clone(),
                session,
            }),
            Principal::Operator => Err(PageError::forbidden(
                "the operator's session shows the tenants page only; sign in with a tenant's token for its pages",
            )),
        }
    }
}

impl FromRequestParts<Arc<Daemon>> for Analyst {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        daemon: &Arc<Daemon>,
    ) -> Result<Self, PageError> {
        let Signed(session) = Signed::from_request_parts(parts, daemon).await?;
        Analyst::of(session)
    }
}

/// A request with the operator's session.
pub struct OperatorSession(pub Session);

impl FromRequestParts<Arc<Daemon>> for OperatorSession {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        daemon: &Arc<Daemon>,
    ) -> Result<Self, PageError> {
        let Signed(session) = Signed::from_request_parts(parts, daemon).await?;
        match session.principal {
            Principal::Operator => Ok(OperatorSession(session)),
            Principal::Tenant(_) => Err(PageError::forbidden(
                "the tenants page is the operator's; sign in with the admin token",
            )),
        }
    }
}

/// Refuse a form whose CSRF secret is not `session`'s.
pub(super) fn csrf_checked(session: &Session, csrf: &str) -> Result<(), PageError> {
    if session.csrf_matches(csrf) {
        Ok(())
    } else {
        Err(PageError::forbidden(
            "this form is out of date or was not sent by the console: reload the page and try again",
        ))
    }
}

#[derive(Deserialize)]
struct Csrf {
    #[serde(default)]
    csrf: String,
}

/// A state-changing request: same-origin, a live session, and a form (URL-encoded,
/// repeated keys for lists) that carries the session's CSRF secret as `csrf`.
pub struct Posted<T> {
    /// The session.
    pub session: Session,
    /// The form.
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<Arc<Daemon>> for Posted<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, daemon: &Arc<Daemon>) -> Result<Self, PageError> {
        let (mut parts, body) = request.into_parts();
        same_origin(&parts)?;
        let Signed(session) = Signed::from_request_parts(&mut parts, daemon).await?;
        let bytes = axum::body::to_bytes(body, daemon.config.http.max_body_bytes)
            .await
            .map_err(|e| PageError::bad_request(format!("cannot read the form: {e}")))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| PageError::bad_request("the form is not UTF-8"))?;
        let Csrf { csrf } = serde_html_form::from_str(text)
            .map_err(|e| PageError::bad_request(format!("invalid form: {e}")))?;
        csrf_checked(&session, &csrf)?;
        let form = serde_html_form::from_str(text)
            .map_err(|e| PageError::bad_request(format!("invalid form: {e}")))?;
        Ok(Posted { session, form })
    }
}
