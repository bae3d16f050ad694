//! A thin Keystone v3 + Glance v2 client: exactly what image memberships need.
//!
//! [`OpenStack`] hands out one [`Session`] per set of credentials (keyed by a digest of them,
//! so a rotated Secret gets a new session at once). A session holds the HTTP client for the
//! credentials' TLS settings and the Keystone token with its catalog; [`Glance`] is a session
//! aimed at the image endpoint of one region and interface, which every caller names itself
//! (two clouds with the same user and different regions share the token, not the region).
//! HTTP codes become [`OpenStackError`]s here and nowhere else.

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
pub use clouds::{Cloud, Credentials, Files, NoFiles, SecretFiles};
pub use error::{ConfigError, HttpErrorKind, OpenStackError, Operation};
pub use glance::{Glance, Image, ImageQuery, Member};

pub use keystone::GlancePlace;
use keystone::Token;

/// Settings shared by every session.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Limit on each HTTP request, connection included.
    pub request_timeout: Duration,
    /// A token this close to its expiry is replaced before use (keystoneauth uses 2 minutes).
    /// Short-lived tokens use a quarter of their lifetime instead, when that is less.
    pub refresh_before_expiry: Duration,
    /// After a connection failure, the catalog is read again (a new token) if the token is at
    /// least this old: an endpoint may have moved, and this bounds the re-authentications.
    pub catalog_refresh_after: Duration,
    /// OpenStack requests in flight at once, over every session: the load the operator may put
    /// on the cloud.
    pub max_in_flight: usize,
    /// Whether a cloud entry may turn TLS verification off (`verify: false`, `insecure: true`):
    /// refused unless the operator is started with `--allow-insecure-tls`.
    pub allow_insecure_tls: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            request_timeout: Duration::from_secs(30),
            refresh_before_expiry: Duration::from_secs(120),
            catalog_refresh_after: Duration::from_secs(10),
            max_in_flight: 8,
            allow_insecure_tls: false,
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
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// Past this many sessions, those nobody holds and whose token has expired are dropped.
const SESSION_PRUNE_THRESHOLD: usize = 64;

impl OpenStack {
    pub fn new(settings: ClientSettings, metrics: Arc<Metrics>) -> Self {
        OpenStack {
            sessions: Arc::default(),
            clients: Arc::default(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(settings.max_in_flight.max(1))),
            settings,
            metrics,
        }
    }

    /// The session for these credentials, shared with every other caller that has the same.
    pub fn session(&self, credentials: &Credentials) -> Result<Arc<Session>, OpenStackError> {
        let key = credentials.cache_key();
        let mut sessions = self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(session) = sessions.get(&key) {
            return Ok(session.clone());
        }
        if sessions.len() >= SESSION_PRUNE_THRESHOLD {
            sessions.retain(|_, s| Arc::strong_count(s) > 1 || s.holds_live_token());
        }
        let http = self.http_client(credentials)?;
        let session = Arc::new(Session {
            key,
            credentials: credentials.clone(),
            http,
            token: tokio::sync::Mutex::new(None),
            settings: self.settings.clone(),
            metrics: self.metrics.clone(),
            in_flight: self.in_flight.clone(),
        });
        sessions.insert(key, session.clone());
        Ok(session)
    }

    /// The HTTP client for the credentials' TLS settings, built once per distinct settings.
    fn http_client(&self, credentials: &Credentials) -> Result<reqwest::Client, OpenStackError> {
        if !credentials.verify_tls && !self.settings.allow_insecure_tls {
            return Err(OpenStackError::Config(ConfigError::InsecureRefused));
        }
        let mut material = Vec::new();
        let mut put = |part: &[u8]| {
            material.extend_from_slice(&(part.len() as u64).to_le_bytes());
            material.extend_from_slice(part);
        };
        put(credentials.ca_cert.as_deref().unwrap_or_default());
        put(&[u8::from(credentials.verify_tls)]);
        put(credentials
            .client_identity
            .as_ref()
            .map_or(&b""[..], |identity| identity.expose_secret().as_bytes()));
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
        if let Some(pem) = &credentials.ca_cert {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| OpenStackError::Tls(format!("the Secret's cacert is not a PEM bundle: {e}")))?;
            if certs.is_empty() {
                return Err(OpenStackError::Tls("the Secret's cacert holds no certificate".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(identity) = &credentials.client_identity {
            let identity = reqwest::Identity::from_pem(identity.expose_secret().as_bytes()).map_err(|_| {
                // Not the parser's words: they could quote the key.
                OpenStackError::Tls(
                    "the client certificate (cert) and key are not a PEM certificate and its private key".into(),
                )
            })?;
            builder = builder.identity(identity);
        }
        if !credentials.verify_tls {
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

/// Who a set of credentials is to Glance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The project the token is scoped to.
    pub project: Option<String>,
    /// Whether the token carries the admin role.
    pub admin: bool,
}

impl Caller {
    /// Whether these are the credentials of `project`.
    pub fn is(&self, project: &str) -> bool {
        self.project.as_deref() == Some(project)
    }
}

/// What a member selector asks Keystone for: projects with every tag of `tags`, one of
/// `tags_any`, in `domain`, under `parent`.
#[derive(Debug, Clone, Default)]
pub struct ProjectQuery<'a> {
    pub name: Option<&'a str>,
    pub tags: Vec<&'a str>,
    pub tags_any: Vec<&'a str>,
    pub domain: Option<&'a str>,
    pub parent: Option<&'a str>,
}

/// What the operator reads of a Keystone project.
#[derive(serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub domain_id: Option<String>,
}

#[derive(serde::Deserialize)]
struct ProjectList {
    projects: Vec<Project>,
    /// Keystone's `list_limit` cut the list short.
    #[serde(default)]
    truncated: bool,
}

/// One set of credentials: its HTTP client and its token.
pub struct Session {
    /// The digest of the credentials (see [`Credentials::cache_key`]).
    key: [u8; 32],
    credentials: Credentials,
    http: reqwest::Client,
    /// Held across a Keystone request, so concurrent callers share one authentication.
    token: tokio::sync::Mutex<Option<Arc<Token>>>,
    settings: ClientSettings,
    metrics: Arc<Metrics>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credentials' Debug hides their secrets; the token is left out.
        f.debug_struct("Session")
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Identifies the credentials (a digest, not a secret): equal for every caller sharing them.
    pub fn key(&self) -> [u8; 32] {
        self.key
    }

    fn holds_live_token(&self) -> bool {
        match self.token.try_lock() {
            Ok(slot) => slot.as_ref().is_some_and(|t| t.expires_at > jiff::Timestamp::now()),
            Err(_) => true, // someone is authenticating right now
        }
    }

    /// A token that is not about to expire, from the cache or from Keystone.
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

    /// Forgets `rejected` (after a 401, or to read the catalog again), unless another caller
    /// already replaced it.
    async fn invalidate(&self, rejected: &Arc<Token>) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|current| Arc::ptr_eq(current, rejected)) {
            *slot = None;
        }
    }

    /// The project the credentials are scoped to, as Keystone says (for messages).
    pub async fn project_id(&self) -> Result<Option<String>, OpenStackError> {
        Ok(self.token().await?.project_id.clone())
    }

    /// Who these credentials are to Glance: their project and whether they are an admin.
    pub async fn caller(&self) -> Result<Caller, OpenStackError> {
        let token = self.token().await?;
        Ok(Caller {
            project: token.project_id.clone(),
            admin: token.admin,
        })
    }

    /// The Glance of `region` (any region when none) on `interface` (`public`, `internal`,
    /// `admin`). Authenticates if needed, so a bad password or a missing endpoint shows here.
    /// With the cloud's `image_endpoint_override`, that URL instead of the catalog's.
    pub async fn glance(self: &Arc<Self>, region: Option<&str>, cloud: &Cloud) -> Result<Glance, OpenStackError> {
        // The override is one Glance, the entry's region's: another region would be recorded as
        // one Glance while the requests go to another.
        if let (Some(_), Some(asked), Some(own)) =
            (&cloud.image_endpoint_override, region, cloud.region_name.as_deref())
            && asked != own
        {
            return Err(OpenStackError::Config(ConfigError::Invalid {
                cloud: "(this cloud)".into(),
                detail: format!(
                    "image_endpoint_override is the Glance of its region {own}, and region {asked} is asked (spec.region): drop spec.region, or use a cloud entry of region {asked}"
                ),
            }));
        }
        self.glance_on(region, &cloud.interface, cloud.image_endpoint_override.as_ref())
            .await
    }

    async fn glance_on(
        self: &Arc<Self>,
        region: Option<&str>,
        interface: &str,
        endpoint_override: Option<&Url>,
    ) -> Result<Glance, OpenStackError> {
        let token = self.token().await?;
        let place = match endpoint_override {
            // The override only says how to reach Glance: the membership's identity stays the
            // catalog's image service of the region when the catalog has one (adding or dropping
            // the override is the same Glance), else the override's URL.
            Some(url) => token.image_place(interface, region).unwrap_or_else(|_| GlancePlace {
                url: url.clone(),
                service: None,
                region: region.map(str::to_string),
            }),
            None => token.image_place(interface, region)?,
        };
        Ok(Glance::new(
            self.clone(),
            region.map(str::to_string),
            interface.to_string(),
            place,
            endpoint_override.cloned(),
        ))
    }

    /// The Glance whose catalog entry `matches`, on `interface` if it has one there, else on
    /// another interface of the catalog; `None` when the catalog has no such entry.
    pub async fn glance_where(
        self: &Arc<Self>,
        cloud: &Cloud,
        matches: impl Fn(&GlancePlace) -> bool,
    ) -> Result<Option<Glance>, OpenStackError> {
        if cloud.image_endpoint_override.is_some() {
            // The one Glance these credentials use.
            let glance = self.glance(cloud.region_name.as_deref(), cloud).await?;
            return Ok(matches(glance.place()).then_some(glance));
        }
        let token = self.token().await?;
        match token.image_places(&cloud.interface, matches).into_iter().next() {
            Some((found_on, place)) => self.glance_on(place.region.as_deref(), &found_on, None).await.map(Some),
            None => Ok(None),
        }
    }

    /// The catalog entry (any interface) whose URL is `url`.
    pub async fn place_of(&self, url: &str) -> Result<Option<GlancePlace>, OpenStackError> {
        let token = self.token().await?;
        Ok(token
            .image_places("", |place| place.url.as_str() == url)
            .into_iter()
            .next()
            .map(|(_, place)| place))
    }

    /// `GET /v3/projects` on the Keystone of the credentials' `auth_url`, filtered by Keystone
    /// (`tags`, `tags-any`, `domain_id`, `parent_id`). Keystone does not page project lists.
    pub async fn list_projects(&self, query: &ProjectQuery<'_>) -> Result<Vec<Project>, OpenStackError> {
        let operation = Operation::ListProjects;
        let url = |_: &Token| {
            let keystone =
                (self.credentials.identity_endpoint_override.as_deref()).unwrap_or(&self.credentials.auth_url);
            let base = format!("{keystone}/projects");
            let mut url = Url::parse(&base).map_err(|e| OpenStackError::InvalidResponse {
                operation,
                detail: format!("the auth_url does not make a URL: {e}"),
            })?;
            let mut pairs = url.query_pairs_mut();
            if let Some(name) = query.name {
                pairs.append_pair("name", name);
            }
            if !query.tags.is_empty() {
                pairs.append_pair("tags", &query.tags.join(","));
            }
            if !query.tags_any.is_empty() {
                pairs.append_pair("tags-any", &query.tags_any.join(","));
            }
            if let Some(domain) = query.domain {
                pairs.append_pair("domain_id", domain);
            }
            if let Some(parent) = query.parent {
                pairs.append_pair("parent_id", parent);
            }
            drop(pairs);
            Ok(url)
        };
        let response = self.send_authenticated(operation, Method::GET, url, None).await?;
        if !response.is_success() {
            return Err(response.error(operation));
        }
        let list: ProjectList = response.json(operation)?;
        if list.truncated {
            // A part of the list read as the whole would drop the projects left out.
            return Err(OpenStackError::Incomplete {
                operation,
                detail: "Keystone truncated the project list at its list_limit".into(),
            });
        }
        Ok(list.projects)
    }

    /// Sends one request to the endpoint `endpoint_of` picks from the token's catalog. On a
    /// 401, authenticates again once and retries once; when the endpoint cannot be reached
    /// and the catalog is older than `catalog_refresh_after`, reads the catalog again and, if
    /// the endpoint moved, retries once there.
    async fn send_authenticated(
        &self,
        operation: Operation,
        method: Method,
        endpoint_of: impl Fn(&Token) -> Result<Url, OpenStackError>,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, OpenStackError> {
        let mut token = self.token().await?;
        let (mut reauthenticated, mut catalog_refreshed) = (false, false);
        loop {
            let url = endpoint_of(&token)?;
            match self
                .send(operation, method.clone(), url.clone(), body, Some(&token))
                .await
            {
                Ok(response) if response.status == 401 && !reauthenticated => {
                    tracing::debug!(
                        operation = operation.as_str(),
                        "token refused (401): authenticating again"
                    );
                    reauthenticated = true;
                    self.invalidate(&token).await;
                    token = self.token().await?;
                }
                Err(OpenStackError::Transport { connect: true, .. })
                    if !catalog_refreshed && token.obtained.elapsed() >= self.settings.catalog_refresh_after =>
                {
                    catalog_refreshed = true;
                    self.invalidate(&token).await;
                    let fresh = self.token().await?;
                    let moved = endpoint_of(&fresh)? != url;
                    tracing::info!(
                        operation = operation.as_str(),
                        moved,
                        "endpoint unreachable: read the catalog again"
                    );
                    token = fresh;
                    if !moved {
                        return self.send(operation, method, url, body, Some(&token)).await;
                    }
                }
                other => return other,
            }
        }
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
        // The semaphore is never closed.
        let _in_flight = self.in_flight.acquire().await.ok();
        let started = Instant::now();
        let result = request.send().await;
        let service = operation.service().as_str();
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                self.metrics
                    .observe_request(service, operation.as_str(), None, started.elapsed());
                let error = transport_error(operation, e);
                tracing::debug!(%method, path = url.path(), error = %error, "request failed");
                return Err(error);
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(|e| transport_error(operation, e))?;
        self.metrics
            .observe_request(service, operation.as_str(), Some(status), started.elapsed());
        tracing::debug!(%method, path = url.path(), status, elapsed_ms = started.elapsed().as_millis() as u64, "openstack request");
        Ok(Response { status, headers, text })
    }
}

/// A failed request as a typed error: an untrusted certificate (which no retry fixes), or a
/// transport failure (which a retry may).
fn transport_error(operation: Operation, error: reqwest::Error) -> OpenStackError {
    match certificate_problem(&error) {
        Some(Refused::ServerCertificate(detail)) => return OpenStackError::TlsTrust { operation, detail },
        Some(Refused::ClientCertificate(detail)) => {
            return OpenStackError::TlsClientCertificate { operation, detail };
        }
        None => {}
    }
    OpenStackError::Transport {
        operation,
        timed_out: error.is_timeout(),
        connect: error.is_connect(),
        detail: transport_detail(error),
    }
}

/// Whose certificate the TLS handshake refused.
enum Refused {
    /// We do not trust the server's.
    ServerCertificate(String),
    /// The server wants one from us, or does not trust ours.
    ClientCertificate(String),
}

/// The TLS library's verdict on a certificate, if that is why the request failed. rustls
/// reports it as a typed error inside `io::Error`s (nested: hyper wraps the one tokio-rustls
/// made), whose `source()` skips the error they carry, so each `io::Error` is opened with
/// `get_ref`.
fn certificate_problem(error: &reqwest::Error) -> Option<Refused> {
    fn find(error: &(dyn std::error::Error + 'static)) -> Option<Refused> {
        use rustls::AlertDescription::{BadCertificate, CertificateRequired, HandshakeFailure, UnknownCA};
        match error.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidCertificate(problem)) => {
                return Some(Refused::ServerCertificate(format!("{problem:?}")));
            }
            Some(rustls::Error::AlertReceived(
                alert @ (CertificateRequired | BadCertificate | UnknownCA | HandshakeFailure),
            )) => {
                // TLS 1.2 servers say HandshakeFailure for a missing certificate, and for a
                // version or cipher they do not share too: the detail says both.
                let detail = match alert {
                    HandshakeFailure => "the server's alert: HandshakeFailure (a client certificate it wants, or no TLS version or cipher in common)".to_string(),
                    other => format!("the server's alert: {other:?}"),
                };
                return Some(Refused::ClientCertificate(detail));
            }
            _ => {}
        }
        if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            return find(inner);
        }
        error.source().and_then(find)
    }
    find(error)
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
