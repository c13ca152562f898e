//! The public downloads of the admin listener: what a partner's browser and
//! engineers need before they have (or without) an account on it.
//!
//! - `/com/remoteproxy/proxy.pac`: the PAC file (manual: Getting the COM PAC
//!   File Address), as `application/x-ns-proxy-autoconfig`;
//! - `/com/remoteproxy/comgate-chrome-extension.zip`: a Manifest V3 extension
//!   that applies the same PAC in Chrome (manual: Adding Additional PAC
//!   Commands in Chrome);
//! - `/com/remoteproxy/proxytunnel-utility.zip`: the CA certificate and the
//!   ready proxytunnel commands (manual: Download Proxytunnel Utility).
//!
//! These are the only routes that need no login; they hold nothing secret
//! (the proxy address, the domain, a CA certificate). Their bytes are built
//! once at start and served from memory.

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Path of the PAC file, as the manual gives it.
pub const PAC_PATH: &str = "/com/remoteproxy/proxy.pac";
pub const CHROME_EXTENSION_PATH: &str = "/com/remoteproxy/comgate-chrome-extension.zip";
pub const PROXYTUNNEL_UTILITY_PATH: &str = "/com/remoteproxy/proxytunnel-utility.zip";

/// The downloads' contents, built at start from the serve configuration.
#[derive(Debug, Clone)]
pub struct PublicDownloads {
    pub pac: String,
    pub chrome_extension: Vec<u8>,
    pub proxytunnel_utility: Vec<u8>,
}

/// The routes of the public downloads.
pub fn routes(downloads: Arc<PublicDownloads>) -> Router {
    let pac = downloads.clone();
    let ext = downloads.clone();
    let util = downloads;
    Router::new()
        .route(
            PAC_PATH,
            get(move || async move {
                file(
                    pac.pac.clone().into_bytes(),
                    "application/x-ns-proxy-autoconfig",
                    None,
                )
            }),
        )
        .route(
            CHROME_EXTENSION_PATH,
            get(move || async move {
                file(
                    ext.chrome_extension.clone(),
                    "application/zip",
                    Some("comgate-chrome-extension.zip"),
                )
            }),
        )
        .route(
            PROXYTUNNEL_UTILITY_PATH,
            get(move || async move {
                file(
                    util.proxytunnel_utility.clone(),
                    "application/zip",
                    Some("proxytunnel-utility.zip"),
                )
            }),
        )
}

fn file(body: Vec<u8>, content_type: &'static str, attachment: Option<&str>) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Browsers re-read a PAC at start-up; a few minutes of caching spares the
    // listener without leaving a changed PAC unseen for long.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(name) = attachment {
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    response
}
