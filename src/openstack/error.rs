//! The errors of the OpenStack client. HTTP status codes are mapped here, once, to a typed
//! error; the controller asks `is_transient()` and never looks at a number again.

use std::time::Duration;

/// A problem with the clouds.yaml itself: a human must fix the Secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("clouds.yaml is not valid YAML for a clouds file{}", position_text(*.position))]
    Malformed { position: Option<(u64, u64)> },
    #[error("clouds.yaml has no cloud named {cloud:?} (it has: {})", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    CloudNotFound { cloud: String, known: Vec<String> },
    #[error("cloud {cloud:?} in clouds.yaml has no {field}")]
    MissingField { cloud: String, field: String },
    #[error("cloud {cloud:?} in clouds.yaml: {detail}")]
    Invalid { cloud: String, detail: String },
    #[error(
        "the cloud entry turns TLS verification off (verify: false or insecure: true), so anyone on the way could read the credentials: put the cloud's CA bundle in the Secret's cacert key and drop verify/insecure, or start the operator with --allow-insecure-tls (Helm: allowInsecureTLS: true)"
    )]
    InsecureRefused,
}

fn position_text(position: Option<(u64, u64)>) -> String {
    match position {
        Some((line, column)) => format!(" (at line {line}, column {column})"),
        None => String::new(),
    }
}

/// Which OpenStack service answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Identity,
    Image,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Identity => "identity",
            Service::Image => "image",
        }
    }
}

/// The call that failed; also the `operation` label of the request metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Authenticate,
    ShowMember,
    CreateMember,
    SetMemberStatus,
    DeleteMember,
    ListMembers,
    ShowImage,
    ListImages,
    ListProjects,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Authenticate => "authenticate",
            Operation::ShowMember => "show_member",
            Operation::CreateMember => "create_member",
            Operation::SetMemberStatus => "set_member_status",
            Operation::DeleteMember => "delete_member",
            Operation::ListMembers => "list_members",
            Operation::ShowImage => "show_image",
            Operation::ListImages => "list_images",
            Operation::ListProjects => "list_projects",
        }
    }

    pub fn service(self) -> Service {
        match self {
            Operation::Authenticate | Operation::ListProjects => Service::Identity,
            _ => Service::Image,
        }
    }
}

/// What an HTTP error status means for us (codes from glance-members-api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpErrorKind {
    /// 400: the request is malformed (a bad member ID or status value).
    BadRequest,
    /// 401: the credentials (or the token, after one re-authentication) were refused.
    Unauthorized,
    /// 403: not allowed (image not shared, not the owner, owner setting a status).
    Forbidden,
    /// 404: the image or the member does not exist, or the caller cannot see it.
    NotFound,
    /// 409: the member already exists.
    Conflict,
    /// 413: the image has as many members as `image_member_quota` allows.
    QuotaExceeded,
    /// 429: a proxy in front of the service limits the rate.
    TooManyRequests,
    /// 5xx: the service failed; trying again may work.
    ServerError,
    /// Anything else.
    Other,
}

impl HttpErrorKind {
    pub fn from_status(status: u16) -> Self {
        match status {
            400 => HttpErrorKind::BadRequest,
            401 => HttpErrorKind::Unauthorized,
            403 => HttpErrorKind::Forbidden,
            404 => HttpErrorKind::NotFound,
            409 => HttpErrorKind::Conflict,
            413 => HttpErrorKind::QuotaExceeded,
            429 => HttpErrorKind::TooManyRequests,
            500..=599 => HttpErrorKind::ServerError,
            _ => HttpErrorKind::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpenStackError {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("{} {} failed: {detail}", .operation.service().as_str(), .operation.as_str())]
    Transport {
        operation: Operation,
        detail: String,
        timed_out: bool,
        /// No connection could be made (refused, unreachable, name not resolved): the endpoint
        /// may have moved, so the catalog is worth reading again.
        connect: bool,
    },

    /// The server's certificate is not trusted (unknown CA, wrong host name, expired): no retry
    /// fixes that, the Secret's `cacert` (or the endpoint) must change.
    #[error("{} {} failed: the server's TLS certificate is not trusted ({detail})", .operation.service().as_str(), .operation.as_str())]
    TlsTrust { operation: Operation, detail: String },

    /// The server asked for a client certificate and refused the one given, or that none was:
    /// the Secret's `cert` and `key` must change.
    #[error("{} {} failed: the server refused the TLS handshake for want of a client certificate it trusts ({detail})", .operation.service().as_str(), .operation.as_str())]
    TlsClientCertificate { operation: Operation, detail: String },

    #[error("{} {} answered {status}: {message}", .operation.service().as_str(), .operation.as_str())]
    Http {
        operation: Operation,
        status: u16,
        kind: HttpErrorKind,
        /// The service's own message, cleaned of HTML and cut short.
        message: String,
        /// From `Retry-After` on a 429 or 503.
        retry_after: Option<Duration>,
    },

    #[error("the service catalog has no image (Glance) endpoint for interface {interface:?}{}; it has: {}",
        .region.as_ref().map(|r| format!(" in region {r:?}")).unwrap_or_default(),
        if .available.is_empty() { "no image endpoints (is the token scoped to a project?)".to_string() } else { .available.join(", ") })]
    NoEndpoint {
        interface: String,
        region: Option<String>,
        available: Vec<String>,
    },

    #[error("{} {} returned a response we could not read: {detail}", .operation.service().as_str(), .operation.as_str())]
    InvalidResponse { operation: Operation, detail: String },

    #[error("the TLS settings of the cloud are unusable: {0}")]
    Tls(String),

    /// A list that is not whole (Keystone's `list_limit` cut it, or pages do not add up): read
    /// as whole it would drop what it left out, and asking again gets the same.
    #[error("{} {} returned an incomplete list: {detail}", .operation.service().as_str(), .operation.as_str())]
    Incomplete { operation: Operation, detail: String },
}

impl OpenStackError {
    /// Transient: network failures, timeouts, 5xx and 429. Trying again later may work; anything
    /// else needs a human to change something.
    pub fn is_transient(&self) -> bool {
        match self {
            OpenStackError::Transport { .. } => true,
            OpenStackError::Http { kind, .. } => {
                matches!(kind, HttpErrorKind::ServerError | HttpErrorKind::TooManyRequests)
            }
            // A half-written answer is most often a proxy or a restart in the middle.
            OpenStackError::InvalidResponse { .. } => true,
            OpenStackError::Incomplete { .. } => false,
            OpenStackError::Config(_)
            | OpenStackError::NoEndpoint { .. }
            | OpenStackError::Tls(_)
            | OpenStackError::TlsTrust { .. }
            | OpenStackError::TlsClientCertificate { .. } => false,
        }
    }

    pub fn http_kind(&self) -> Option<HttpErrorKind> {
        match self {
            OpenStackError::Http { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.http_kind() == Some(HttpErrorKind::NotFound)
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            OpenStackError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn operation(&self) -> Option<Operation> {
        match self {
            OpenStackError::Transport { operation, .. }
            | OpenStackError::TlsTrust { operation, .. }
            | OpenStackError::TlsClientCertificate { operation, .. }
            | OpenStackError::Http { operation, .. }
            | OpenStackError::InvalidResponse { operation, .. }
            | OpenStackError::Incomplete { operation, .. } => Some(*operation),
            _ => None,
        }
    }
}

/// The human part of an OpenStack error body: `{"message": ...}` from Glance,
/// `{"error": {"message": ...}}` from Keystone, or plain text; HTML line breaks and tags removed,
/// whitespace collapsed, at most 300 characters.
pub fn error_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let raw = parsed
        .as_ref()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("error").and_then(|e| e.get("message")))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.to_string());
    let mut text = String::with_capacity(raw.len());
    let mut in_tag = false;
    for c in raw.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > 300 {
        let cut: String = collapsed.chars().take(297).collect();
        format!("{cut}...")
    } else {
        collapsed
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = when.duration_since(now);
    Some(Duration::from_secs(wait.as_secs().max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_map_to_kinds_and_transience() {
        let cases = [
            (400, HttpErrorKind::BadRequest, false),
            (401, HttpErrorKind::Unauthorized, false),
            (403, HttpErrorKind::Forbidden, false),
            (404, HttpErrorKind::NotFound, false),
            (409, HttpErrorKind::Conflict, false),
            (413, HttpErrorKind::QuotaExceeded, false),
            (429, HttpErrorKind::TooManyRequests, true),
            (500, HttpErrorKind::ServerError, true),
            (502, HttpErrorKind::ServerError, true),
            (503, HttpErrorKind::ServerError, true),
            (418, HttpErrorKind::Other, false),
        ];
        for (status, kind, transient) in cases {
            let err = OpenStackError::Http {
                operation: Operation::CreateMember,
                status,
                kind: HttpErrorKind::from_status(status),
                message: String::new(),
                retry_after: None,
            };
            assert_eq!(err.http_kind(), Some(kind), "{status}");
            assert_eq!(err.is_transient(), transient, "{status}");
        }
        let timeout = OpenStackError::Transport {
            operation: Operation::ShowMember,
            detail: "timed out".into(),
            timed_out: true,
            connect: false,
        };
        assert!(timeout.is_transient());
        assert!(!OpenStackError::Config(ConfigError::Malformed { position: None }).is_transient());
    }

    #[test]
    fn glance_messages_lose_their_html_line_breaks() {
        let body = r#"{"message": "Only shared images have members.<br /><br />\n\n\n", "code": "403 Forbidden", "title": "Forbidden"}"#;
        assert_eq!(error_message(body), "Only shared images have members.");
        let keystone = r#"{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}"#;
        assert_eq!(
            error_message(keystone),
            "The request you have made requires authentication."
        );
        assert_eq!(
            error_message("<html><body><h1>503 Service Unavailable</h1></body></html>"),
            "503 Service Unavailable"
        );
        assert_eq!(error_message(&"x".repeat(1000)).len(), 300);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now: jiff::Timestamp = "2026-11-28T13:00:00Z".parse().expect("timestamp");
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 13:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 12:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
