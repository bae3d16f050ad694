//! A thin Keystone v3 + Glance v2 client: exactly what image memberships need.
//!
//! [`OpenStack`] hands out one [`Session`] per set of credentials (keyed by a digest of the
//! cloud entry, so a rotated Secret gets a new session at once). A session holds the HTTP client
//! for the cloud's TLS settings and the Keystone token with its catalog; [`Glance`] is a session
//! bound to one image endpoint. HTTP codes become [`OpenStackError`]s here and nowhere else.

pub mod clouds;
pub mod error;
mod glance;
mod keystone;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, Url};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;

use crate::metrics::Metrics;
pub use clouds::Cloud;
pub use error::{ConfigError, HttpErrorKind, OpenStackError, Operation};
pub use glance::{Glance, Member};
use keystone::Token;

/// Settings shared by every session.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Limit on each HTTP request, connection included.
    pub request_timeout: Duration,
    /// A token this close to its expiry is replaced before use (keystoneauth uses 2 minutes).
    pub refresh_before_expiry: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            request_timeout: Duration::from_secs(30),
            refresh_before_expiry: Duration::from_secs(120),
        }
    }
}

/// Sessions keyed by credentials. Cheap to clone.
#[derive(Clone)]
pub struct OpenStack {
    sessions: Arc<Mutex<HashMap<[u8; 32], Arc<Session>>>>,
    /// HTTP clients by TLS settings (CA bundle, verify): building one loads the system's root
    /// certificates, and sharing one shares its connection pool, so credential sets with the
    /// same TLS settings share a client.
    clients: Arc<Mutex<HashMap<[u8; 32], reqwest::Client>>>,
    settings: ClientSettings,
    metrics: Arc<Metrics>,
}

/// Past this many sessions, those nobody holds and whose token has expired are dropped.
const SESSION_PRUNE_THRESHOLD: usize = 64;

impl OpenStack {
    pub fn new(settings: ClientSettings, metrics: Arc<Metrics>) -> Self {
        OpenStack {
            sessions: Arc::default(),
            clients: Arc::default(),
            settings,
            metrics,
        }
    }

    /// The session for these credentials, shared with every other caller that has the same.
    pub fn session(&self, cloud: Cloud) -> Result<Arc<Session>, OpenStackError> {
        let key = cloud.cache_key();
        let mut sessions = self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(session) = sessions.get(&key) {
            return Ok(session.clone());
        }
        if sessions.len() >= SESSION_PRUNE_THRESHOLD {
            sessions.retain(|_, s| Arc::strong_count(s) > 1 || s.holds_live_token());
        }
        let http = self.http_client(&cloud)?;
        let session = Arc::new(Session {
            cloud,
            http,
            token: tokio::sync::Mutex::new(None),
            settings: self.settings.clone(),
            metrics: self.metrics.clone(),
        });
        sessions.insert(key, session.clone());
        Ok(session)
    }

    /// The HTTP client for the cloud's TLS settings, built once per distinct settings.
    fn http_client(&self, cloud: &Cloud) -> Result<reqwest::Client, OpenStackError> {
        let mut material = cloud.ca_cert.clone().unwrap_or_default();
        material.push(u8::from(cloud.verify_tls));
        let digest = ring::digest::digest(&ring::digest::SHA256, &material);
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        let mut clients = self.clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let settings = &self.settings;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("image-access-operator/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &cloud.ca_cert {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| OpenStackError::Tls(format!("the Secret's cacert is not a PEM bundle: {e}")))?;
            if certs.is_empty() {
                return Err(OpenStackError::Tls("the Secret's cacert holds no certificate".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if !cloud.verify_tls {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|e| OpenStackError::Tls(e.to_string()))?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Number of sessions held.
    pub fn session_count(&self) -> usize {
        self.sessions.lock().map(|s| s.len()).unwrap_or_default()
    }
}

/// One set of credentials: its HTTP client and its token.
pub struct Session {
    cloud: Cloud,
    http: reqwest::Client,
    /// Held across a Keystone request, so concurrent callers share one authentication.
    token: tokio::sync::Mutex<Option<Arc<Token>>>,
    settings: ClientSettings,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The cloud's Debug hides its secrets; the token is left out.
        f.debug_struct("Session")
            .field("cloud", &self.cloud)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    fn holds_live_token(&self) -> bool {
        match self.token.try_lock() {
            Ok(slot) => slot.as_ref().is_some_and(|t| t.expires_at > jiff::Timestamp::now()),
            Err(_) => true, // someone is authenticating right now
        }
    }

    /// A token valid for at least `refresh_before_expiry`, from the cache or from Keystone.
    async fn token(&self) -> Result<Arc<Token>, OpenStackError> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref()
            && token.is_fresh(jiff::Timestamp::now(), self.settings.refresh_before_expiry)
        {
            return Ok(token.clone());
        }
        let token = Arc::new(self.authenticate().await?);
        *slot = Some(token.clone());
        Ok(token)
    }

    /// Forgets `rejected` (after a 401), unless another caller already replaced it.
    async fn invalidate(&self, rejected: &Arc<Token>) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|current| Arc::ptr_eq(current, rejected)) {
            *slot = None;
        }
    }

    /// The Glance of this cloud in `region` (or the cloud's own `region_name`).
    pub async fn glance(self: &Arc<Self>, region: Option<&str>) -> Result<Glance, OpenStackError> {
        let region = region.map(str::to_string).or_else(|| self.cloud.region_name.clone());
        let token = self.token().await?;
        let endpoint = token.image_endpoint(&self.cloud.interface, region.as_deref())?;
        Ok(Glance::new(self.clone(), endpoint, region))
    }

    /// Sends one request with a token; on a 401, re-authenticates once and retries once.
    async fn send_authenticated(
        &self,
        operation: Operation,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, OpenStackError> {
        let token = self.token().await?;
        let response = self
            .send(operation, method.clone(), url.clone(), body, Some(&token))
            .await?;
        if response.status != 401 {
            return Ok(response);
        }
        tracing::debug!(
            operation = operation.as_str(),
            "token refused (401): authenticating again"
        );
        self.invalidate(&token).await;
        let token = self.token().await?;
        self.send(operation, method, url, body, Some(&token)).await
    }

    async fn send(
        &self,
        operation: Operation,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        token: Option<&Token>,
    ) -> Result<Response, OpenStackError> {
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(token.value.expose_secret()).map_err(|_| {
                OpenStackError::InvalidResponse {
                    operation: Operation::Authenticate,
                    detail: "Keystone issued a token that is not a valid HTTP header value".into(),
                }
            })?;
            value.set_sensitive(true);
            request = request.header("X-Auth-Token", value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = Instant::now();
        let result = request.send().await;
        let service = operation.service().as_str();
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                self.metrics
                    .observe_request(service, operation.as_str(), None, started.elapsed());
                let timed_out = e.is_timeout();
                let detail = transport_detail(e);
                tracing::debug!(%method, path = url.path(), error = %detail, "request failed");
                return Err(OpenStackError::Transport {
                    operation,
                    timed_out,
                    detail,
                });
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(|e| OpenStackError::Transport {
            operation,
            timed_out: e.is_timeout(),
            detail: transport_detail(e),
        })?;
        self.metrics
            .observe_request(service, operation.as_str(), Some(status), started.elapsed());
        tracing::debug!(%method, path = url.path(), status, elapsed_ms = started.elapsed().as_millis() as u64, "openstack request");
        Ok(Response { status, headers, text })
    }
}

/// reqwest's message without the URL (the log span has it), plus the cause chain, which is
/// where "connection refused" is.
fn transport_detail(error: reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_string();
    }
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A read response.
struct Response {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Response {
    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The typed error for a non-success answer.
    fn error(&self, operation: Operation) -> OpenStackError {
        let retry_after = if matches!(self.status, 429 | 503) {
            self.headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| error::parse_retry_after(v, jiff::Timestamp::now()))
        } else {
            None
        };
        OpenStackError::Http {
            operation,
            status: self.status,
            kind: HttpErrorKind::from_status(self.status),
            message: error::error_message(&self.text),
            retry_after,
        }
    }

    fn json<T: DeserializeOwned>(&self, operation: Operation) -> Result<T, OpenStackError> {
        serde_json::from_str(&self.text).map_err(|e| OpenStackError::InvalidResponse {
            operation,
            detail: e.to_string(),
        })
    }
}
