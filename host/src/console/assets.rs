//! The console's static files, compiled into the binary: its style sheet, icon and
//! script, and htmx
//! 2.0.11 with its server-sent-events extension 2.2.4 (vendored from npm, 0BSD; see
//! `assets/LICENSE-htmx`), so the console needs nothing from any other site.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::PageError;

/// (name, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/console.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("assets/favicon.svg"),
    ),
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/htmx-2.0.11.min.js"),
    ),
    (
        "htmx-ext-sse.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/htmx-ext-sse-2.2.4.js"),
    ),
];

/// `GET /console/assets/{file}`.
pub(super) async fn serve(Path(file): Path<String>) -> Result<Response, PageError> {
    let (_, content_type, bytes) = FILES
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| PageError::not_found("no such file"))?;
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        *bytes,
    )
        .into_response())
}
