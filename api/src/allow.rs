//! `Allow` on every 405: the methods a path supports, read from the OpenAPI document itself, so
//! the header can never disagree with the routes.

use std::sync::Arc;

use poem::{Endpoint, IntoResponse, Request, Response, http::StatusCode};
use serde_json::Value;

/// One documented path: its segments (`None` for a `{parameter}`) and its `Allow` value.
struct PathMethods {
    segments: Vec<Option<String>>,
    allow: String,
}

/// Every documented path and its methods.
pub struct AllowedMethods(Vec<PathMethods>);

impl AllowedMethods {
    /// Reads `paths` of an OpenAPI document, plus `extra` routes served outside it.
    pub fn from_spec(spec: &Value, extra: &[(&str, &str)]) -> Self {
        let mut paths = Vec::new();
        if let Some(documented) = spec.get("paths").and_then(Value::as_object) {
            for (path, operations) in documented {
                let mut methods: Vec<String> = operations
                    .as_object()
                    .into_iter()
                    .flat_map(|o| o.keys())
                    .map(|m| m.to_ascii_uppercase())
                    .collect();
                // The framework answers HEAD wherever it answers GET.
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".to_owned());
                }
                paths.push(PathMethods::new(path, methods));
            }
        }
        for (path, method) in extra {
            paths.push(PathMethods::new(path, vec![(*method).to_owned()]));
        }
        Self(paths)
    }

    /// The `Allow` value for a request path, if a documented path matches it. A literal segment
    /// wins over a parameter (`/users/me` before `/users/{username}`).
    pub fn for_path(&self, path: &str) -> Option<&str> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.0
            .iter()
            .filter(|p| p.matches(&parts))
            .max_by_key(|p| p.segments.iter().filter(|s| s.is_some()).count())
            .map(|p| p.allow.as_str())
    }
}

impl PathMethods {
    fn new(path: &str, mut methods: Vec<String>) -> Self {
        methods.sort();
        methods.dedup();
        let segments = path
            .trim_end_matches('/')
            .split('/')
            .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
            .collect();
        Self {
            segments,
            allow: methods.join(", "),
        }
    }

    fn matches(&self, parts: &[&str]) -> bool {
        self.segments.len() == parts.len()
            && self
                .segments
                .iter()
                .zip(parts)
                .all(|(s, p)| s.as_deref().is_none_or(|s| s == *p))
    }
}

/// Middleware: adds `Allow` to a 405 answer.
pub async fn add_allow<E: Endpoint>(
    next: Arc<E>,
    allowed: Arc<AllowedMethods>,
    req: Request,
) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let mut resp = next.call(req).await?.into_response();
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = allowed.for_path(&path)
        && let Ok(value) = allow.parse()
    {
        resp.headers_mut().insert(poem::http::header::ALLOW, value);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_path_gets_its_documented_methods_and_literals_win_over_parameters() {
        let spec = json!({"paths": {
            "/api/v1/users/me": {"get": {}, "patch": {}, "delete": {}},
            "/api/v1/users/{username}": {"get": {}},
            "/api/v1/checkout": {"post": {}},
        }});
        let allowed = AllowedMethods::from_spec(&spec, &[("/metrics", "GET")]);
        assert_eq!(
            allowed.for_path("/api/v1/users/me"),
            Some("DELETE, GET, HEAD, PATCH")
        );
        assert_eq!(allowed.for_path("/api/v1/users/alice"), Some("GET, HEAD"));
        assert_eq!(allowed.for_path("/api/v1/checkout/"), Some("POST"));
        assert_eq!(allowed.for_path("/metrics"), Some("GET"));
        assert_eq!(allowed.for_path("/api/v1/nowhere"), None);
    }
}
