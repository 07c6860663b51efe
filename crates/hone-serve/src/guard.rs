//! Who may talk to the server. Any web page a person opens can send requests to a loopback server,
//! so before anything else every request must be addressed to a host name this server answers to
//! (a page on another site that rebinds its DNS name to 127.0.0.1 still sends its own name as
//! `Host`), and a request that carries an `Origin` must come from this server's own pages (the
//! browser sets `Origin` on cross-site requests and scripts cannot forge it). With an API key,
//! the API and app endpoints also need `Authorization: Bearer KEY`.

use crate::error::ApiError;
use crate::state::Shared;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The host name of a `Host` header or an origin's authority, without the port, lowercased.
pub fn host_name(authority: &str) -> String {
    let a = authority.trim().to_ascii_lowercase();
    if let Some(rest) = a.strip_prefix('[') {
        // [::1]:8080
        return rest.split(']').next().map(|h| format!("[{h}]")).unwrap_or_default();
    }
    a.rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(a.clone(), |(h, _)| h.to_string())
}

/// The host names a server bound to `bind` answers to, plus `extra`.
pub fn allowed_hosts(bind: &str, extra: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "[::1]"].iter().map(|s| s.to_string()).collect();
    let b = host_name(bind);
    let b = if b.contains(':') && !b.starts_with('[') { format!("[{b}]") } else { b };
    if !b.is_empty() && b != "0.0.0.0" && b != "[::]" {
        hosts.push(b);
    }
    hosts.extend(extra.iter().map(|h| host_name(h)));
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Why a request is refused, if it is.
pub fn check(headers: &HeaderMap, path: &str, hosts: &[String], api_key: Option<&str>) -> Result<(), ApiError> {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).map(host_name);
    match host {
        Some(h) if hosts.contains(&h) => {}
        Some(h) => {
            return Err(ApiError::forbidden(format!(
                "This server does not answer to the host name `{h}` (allowed: {}); start it with --allow-host {h} if that is intended.",
                hosts.join(", ")
            )));
        }
        None => return Err(ApiError::forbidden("The request has no Host header.")),
    }
    if let Some(origin) = headers.get("origin") {
        let o = origin.to_str().unwrap_or("").trim();
        let authority = o.strip_prefix("http://").or_else(|| o.strip_prefix("https://"));
        let same = authority.map(host_name).is_some_and(|h| hosts.contains(&h));
        if !same {
            return Err(ApiError::forbidden(format!(
                "Requests from the web origin `{o}` are refused: only this server's own pages may call it."
            )));
        }
    }
    let needs_key = path.starts_with("/v1/") || (path.starts_with("/api/") && path != "/api/info");
    if let (Some(key), true) = (api_key, needs_key) {
        let given = headers.get("authorization").and_then(|h| h.to_str().ok()).and_then(|h| h.strip_prefix("Bearer "));
        if !given.is_some_and(|g| constant_time_eq(g.trim().as_bytes(), key.as_bytes())) {
            return Err(ApiError::unauthorized());
        }
    }
    Ok(())
}

/// Equality that takes the same time wherever the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The middleware: [`check`] on every request.
pub async fn layer(State(st): State<Shared>, req: Request, next: Next) -> Response {
    match check(req.headers(), req.uri().path(), &st.hosts, st.api_key.as_deref()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn hosts_and_origins() {
        let hosts = allowed_hosts("127.0.0.1", &[]);
        assert_eq!(host_name("LOCALHOST:8080"), "localhost");
        assert_eq!(host_name("[::1]:80"), "[::1]");
        assert_eq!(host_name("example.com"), "example.com");
        let ok = |h: &[(&'static str, &str)], path: &str, key: Option<&str>| check(&headers(h), path, &hosts, key);
        assert!(ok(&[("host", "127.0.0.1:8080")], "/v1/models", None).is_ok());
        assert!(ok(&[("host", "localhost:8080"), ("origin", "http://localhost:8080")], "/api/grade", None).is_ok());
        // DNS rebinding: the page's own name arrives as Host.
        assert_eq!(ok(&[("host", "evil.example:8080")], "/v1/models", None).unwrap_err().status.as_u16(), 403);
        // A cross-site page.
        let e = ok(&[("host", "127.0.0.1:8080"), ("origin", "https://evil.example")], "/v1/chat/completions", None);
        assert_eq!(e.unwrap_err().status.as_u16(), 403);
        assert!(ok(&[("host", "127.0.0.1:8080"), ("origin", "null")], "/api/grade", None).is_err());
        assert!(ok(&[], "/", None).is_err());
        // The key.
        assert_eq!(ok(&[("host", "127.0.0.1")], "/v1/models", Some("k")).unwrap_err().status.as_u16(), 401);
        assert!(ok(&[("host", "127.0.0.1"), ("authorization", "Bearer k")], "/v1/models", Some("k")).is_ok());
        assert!(ok(&[("host", "127.0.0.1"), ("authorization", "Bearer kk")], "/v1/models", Some("k")).is_err());
        assert!(ok(&[("host", "127.0.0.1")], "/api/info", Some("k")).is_ok());
        assert!(ok(&[("host", "127.0.0.1")], "/", Some("k")).is_ok());
        // Binding to all interfaces adds no name by itself.
        assert_eq!(allowed_hosts("0.0.0.0", &["box.lan".into()]), vec!["127.0.0.1", "[::1]", "box.lan", "localhost"]);
    }
}
