//! What a browser passes to `FindProxyForURL` for a URL.
//!
//! Chromium (and Firefox by default) strip the path and query of `https://`
//! and `wss://` URLs before calling the PAC, drop credentials and fragments,
//! and pass the host lower-cased without IPv6 brackets. `comgate pac test`
//! does the same so that its answers are the browser's answers.

use crate::error::PacError;

/// `(url, host)` as a browser passes them to `FindProxyForURL`.
pub fn browser_arguments(url: &str) -> Result<(String, String), PacError> {
    let invalid = |reason: String| PacError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let mut parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| invalid("it has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    // Setting these cannot fail for a URL with a host.
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    parsed.set_fragment(None);
    if matches!(parsed.scheme(), "https" | "wss") {
        parsed.set_path("/");
        parsed.set_query(None);
    }
    Ok((parsed.to_string(), host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_urls_lose_path_query_and_credentials() {
        assert_eq!(
            browser_arguments("https://u:p@12345-Sys.MAINT.example.com:7071/login?x=1#top")
                .unwrap(),
            (
                "https://12345-sys.maint.example.com:7071/".to_owned(),
                "12345-sys.maint.example.com".to_owned()
            )
        );
    }

    #[test]
    fn http_urls_keep_path_and_query() {
        assert_eq!(
            browser_arguments("http://Intranet/a/b?c=d#e").unwrap(),
            ("http://intranet/a/b?c=d".to_owned(), "intranet".to_owned())
        );
        assert_eq!(browser_arguments("http://[::1]:8080/").unwrap().1, "::1");
    }

    #[test]
    fn not_a_url_is_an_error() {
        assert!(matches!(
            browser_arguments("example.com"),
            Err(PacError::InvalidUrl { .. })
        ));
        assert!(matches!(
            browser_arguments("mailto:a@b"),
            Err(PacError::InvalidUrl { .. })
        ));
    }
}
