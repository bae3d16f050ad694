//! Keystone v3: asking for a token (password, application credential or token), and finding
//! the image endpoint in the catalog that comes with it.

use std::time::Duration;

use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::clouds::{Auth, DomainRef, ProjectScope, UserRef};
use super::{OpenStackError, Operation, Session};

/// Where a catalog entry reaches Glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlancePlace {
    pub url: Url,
    /// The image service's id in the catalog (one per Glance, whatever the interface).
    pub service: Option<String>,
    /// The endpoint's region.
    pub region: Option<String>,
}

/// A Keystone token and the catalog it came with.
pub struct Token {
    pub value: SecretString,
    /// When it expires by this machine's clock: the time it was received plus the lifetime
    /// Keystone gave it (so a skewed clock does not shorten or stretch it).
    pub expires_at: jiff::Timestamp,
    /// How long before `expires_at` it is replaced: keystoneauth's margin, or a quarter of the
    /// lifetime for short-lived tokens (a 60 s token would otherwise never be reused).
    refresh_margin: Duration,
    /// The project the token is scoped to.
    pub project_id: Option<String>,
    /// Whether the token carries the `admin` role (Glance's `context_is_admin`): an admin sees
    /// every image and every member.
    pub admin: bool,
    /// When it was obtained: bounds how often a connection failure re-reads the catalog.
    pub obtained: std::time::Instant,
    catalog: Vec<CatalogService>,
}

#[derive(Deserialize, Debug, Clone)]
struct CatalogService {
    /// The service's id in the catalog: the same for every interface and URL of one Glance.
    #[serde(default)]
    id: String,
    #[serde(rename = "type")]
    type_: String,
    #[serde(default)]
    endpoints: Vec<CatalogEndpoint>,
}

#[derive(Deserialize, Debug, Clone)]
struct CatalogEndpoint {
    interface: String,
    url: String,
    #[serde(default)]
    region_id: Option<String>,
    /// Keystone sends both; older deployments only this one.
    #[serde(default)]
    region: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: TokenBody,
}

#[derive(Deserialize)]
struct TokenBody {
    expires_at: String,
    #[serde(default)]
    issued_at: Option<String>,
    #[serde(default)]
    project: Option<ProjectRef>,
    #[serde(default)]
    roles: Vec<RoleRef>,
    #[serde(default)]
    catalog: Vec<CatalogService>,
}

#[derive(Deserialize)]
struct RoleRef {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct ProjectRef {
    id: String,
}

impl Token {
    /// Whether the token can still be used at `now`: it expires later than `margin` (capped
    /// by this token's own share of its lifetime) from now.
    pub fn is_fresh(&self, now: jiff::Timestamp, margin: Duration) -> bool {
        let margin = margin.min(self.refresh_margin);
        let margin = jiff::SignedDuration::try_from(margin).unwrap_or(jiff::SignedDuration::MAX);
        self.expires_at.duration_since(now) > margin
    }

    /// The Glance base URL (without a version suffix) for `interface` in `region`; any
    /// region when none is named.
    pub fn image_endpoint(&self, interface: &str, region: Option<&str>) -> Result<Url, OpenStackError> {
        self.image_place(interface, region).map(|place| place.url)
    }

    /// Where `interface` in `region` (any region when none is named) reaches Glance: the URL,
    /// the catalog's service id and the endpoint's region.
    pub fn image_place(&self, interface: &str, region: Option<&str>) -> Result<GlancePlace, OpenStackError> {
        let endpoints: Vec<(&CatalogService, &CatalogEndpoint)> = self
            .catalog
            .iter()
            .filter(|s| s.type_ == "image")
            .flat_map(|s| s.endpoints.iter().map(move |e| (s, e)))
            .collect();
        let region_of = |e: &CatalogEndpoint| e.region_id.clone().or_else(|| e.region.clone());
        let found = endpoints
            .iter()
            .find(|(_, e)| e.interface == interface && region.is_none_or(|r| region_of(e).as_deref() == Some(r)));
        let Some((service, endpoint)) = found else {
            return Err(OpenStackError::NoEndpoint {
                interface: interface.to_string(),
                region: region.map(str::to_string),
                available: endpoints
                    .iter()
                    .map(|(_, e)| {
                        format!(
                            "{} in {}",
                            e.interface,
                            region_of(e).unwrap_or_else(|| "no region".into())
                        )
                    })
                    .collect(),
            });
        };
        let url = glance_base_url(&endpoint.url).ok_or_else(|| OpenStackError::InvalidResponse {
            operation: Operation::Authenticate,
            detail: format!("the catalog's image endpoint {:?} is not a URL", endpoint.url),
        })?;
        Ok(GlancePlace {
            url,
            service: Some(service.id.clone()).filter(|id| !id.is_empty()),
            region: region_of(endpoint),
        })
    }

    /// The catalog's image endpoints that `matches`, with their interface: those on
    /// `interface` first, then the others, each in catalog order.
    pub fn image_places(&self, interface: &str, matches: impl Fn(&GlancePlace) -> bool) -> Vec<(String, GlancePlace)> {
        let region_of = |e: &CatalogEndpoint| e.region_id.clone().or_else(|| e.region.clone());
        let mut found: Vec<(String, GlancePlace)> = self
            .catalog
            .iter()
            .filter(|s| s.type_ == "image")
            .flat_map(|s| s.endpoints.iter().map(move |e| (s, e)))
            .filter_map(|(s, e)| {
                let place = GlancePlace {
                    url: glance_base_url(&e.url)?,
                    service: Some(s.id.clone()).filter(|id| !id.is_empty()),
                    region: region_of(e),
                };
                matches(&place).then(|| (e.interface.clone(), place))
            })
            .collect();
        found.sort_by_key(|(found_on, _)| found_on != interface);
        found
    }

    #[cfg(test)]
    fn with_catalog(catalog: Value) -> Token {
        Token {
            value: SecretString::from("t"),
            expires_at: jiff::Timestamp::now(),
            refresh_margin: Duration::MAX,
            project_id: None,
            admin: false,
            obtained: std::time::Instant::now(),
            catalog: serde_json::from_value(catalog).expect("catalog"),
        }
    }
}

/// Some clouds register Glance with its version (`.../v2`) in the catalog: the member paths
/// add their own, so it is removed. A path prefix (`https://cloud/image`) is kept.
pub(super) fn glance_base_url(raw: &str) -> Option<Url> {
    let mut url = Url::parse(raw).ok()?;
    if url.cannot_be_a_base() {
        return None;
    }
    let path = url.path().trim_end_matches('/').to_string();
    let trimmed = match path.rsplit_once('/') {
        Some((head, last)) if last == "v2" || last.starts_with("v2.") => head.to_string(),
        _ => path,
    };
    url.set_path(&trimmed);
    Some(url)
}

fn domain_json(domain: &DomainRef) -> Value {
    match domain {
        DomainRef::Id(id) => json!({ "id": id }),
        DomainRef::Name(name) => json!({ "name": name }),
    }
}

fn user_json(user: &UserRef) -> Value {
    match user {
        UserRef::Id(id) => json!({ "id": id }),
        UserRef::Name { name, domain } => json!({ "name": name, "domain": domain_json(domain) }),
    }
}

fn scope_json(scope: &Option<ProjectScope>) -> Option<Value> {
    scope.as_ref().map(|scope| match scope {
        ProjectScope::Id(id) => json!({ "project": { "id": id } }),
        ProjectScope::Name { name, domain } => json!({ "project": { "name": name, "domain": domain_json(domain) } }),
        ProjectScope::System => json!({ "system": { "all": true } }),
    })
}

/// The body of `POST /v3/auth/tokens`. It holds secrets: it is never logged.
fn auth_request(auth: &Auth) -> Value {
    let (identity, scope) = match auth {
        Auth::Password { user, password, scope } => {
            let mut user = user_json(user);
            user["password"] = json!(password.expose_secret());
            (
                json!({ "methods": ["password"], "password": { "user": user } }),
                scope_json(scope),
            )
        }
        // Keystone refuses a scope next to an application credential: it carries its own.
        Auth::ApplicationCredential { id, name, user, secret } => {
            let mut credential = json!({ "secret": secret.expose_secret() });
            if let Some(id) = id {
                credential["id"] = json!(id);
            } else {
                credential["name"] = json!(name);
                if let Some(user) = user {
                    credential["user"] = user_json(user);
                }
            }
            (
                json!({ "methods": ["application_credential"], "application_credential": credential }),
                None,
            )
        }
        Auth::Token { token, scope } => (
            json!({ "methods": ["token"], "token": { "id": token.expose_secret() } }),
            scope_json(scope),
        ),
    };
    let mut body = json!({ "auth": { "identity": identity } });
    if let Some(scope) = scope {
        body["auth"]["scope"] = scope;
    }
    body
}

impl Session {
    pub(super) async fn authenticate(&self) -> Result<Token, OpenStackError> {
        let operation = Operation::Authenticate;
        let url = Url::parse(&format!("{}/auth/tokens", self.credentials.auth_url)).map_err(|e| {
            OpenStackError::Config(super::ConfigError::Invalid {
                cloud: "(this cloud)".into(),
                detail: format!("auth.auth_url is not a URL: {e}"),
            })
        })?;
        let body = auth_request(&self.credentials.auth);
        let result = self.send(operation, Method::POST, url, Some(&body), None).await;
        let response = match result {
            Ok(response) if response.is_success() => response,
            Ok(response) => {
                self.metrics.observe_authentication(false);
                return Err(response.error(operation));
            }
            Err(e) => {
                self.metrics.observe_authentication(false);
                return Err(e);
            }
        };
        let token = response
            .headers
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(|v| SecretString::from(v.to_string()));
        let Some(value) = token else {
            self.metrics.observe_authentication(false);
            return Err(OpenStackError::InvalidResponse {
                operation,
                detail: "Keystone answered without an X-Subject-Token header".into(),
            });
        };
        let body: TokenResponse = response.json(operation)?;
        let timestamp = |text: &str, field: &str| {
            text.parse::<jiff::Timestamp>()
                .map_err(|e| OpenStackError::InvalidResponse {
                    operation,
                    detail: format!("token {field} {text:?}: {e}"),
                })
        };
        let server_expiry = timestamp(&body.token.expires_at, "expires_at")?;
        let now = jiff::Timestamp::now();
        let lifetime = match body.token.issued_at.as_deref() {
            Some(issued) => server_expiry.duration_since(timestamp(issued, "issued_at")?),
            None => server_expiry.duration_since(now),
        };
        let lifetime = Duration::try_from(lifetime).unwrap_or_default();
        let expires_at = now
            .checked_add(jiff::SignedDuration::try_from(lifetime).unwrap_or_default())
            .unwrap_or(server_expiry);
        self.metrics.observe_authentication(true);
        tracing::debug!(%expires_at, lifetime_s = lifetime.as_secs(), "keystone token issued");
        Ok(Token {
            value,
            expires_at,
            refresh_margin: lifetime / 4,
            project_id: body.token.project.map(|p| p.id),
            admin: body.token.roles.iter().any(|role| role.name == "admin"),
            obtained: std::time::Instant::now(),
            catalog: body.token.catalog,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Value {
        json!([
            {"type": "identity", "endpoints": [{"interface": "public", "url": "http://ks/v3", "region_id": "R1"}]},
            {"type": "image", "endpoints": [
                {"interface": "public", "url": "https://cloud.example.com/image/v2/", "region_id": "R1", "region": "R1"},
                {"interface": "internal", "url": "http://glance.r1:9292", "region_id": "R1"},
                {"interface": "public", "url": "http://glance.r2:9292", "region": "R2"}
            ]}
        ])
    }

    #[test]
    fn endpoint_is_chosen_by_interface_and_region_and_keeps_its_path_prefix() {
        let token = Token::with_catalog(catalog());
        let public_r1 = token.image_endpoint("public", Some("R1")).expect("public R1");
        assert_eq!(public_r1.as_str(), "https://cloud.example.com/image");
        let internal = token.image_endpoint("internal", Some("R1")).expect("internal R1");
        assert_eq!(internal.as_str(), "http://glance.r1:9292/");
        let r2 = token
            .image_endpoint("public", Some("R2"))
            .expect("R2 via legacy region field");
        assert_eq!(r2.host_str(), Some("glance.r2"));
        let any = token.image_endpoint("public", None).expect("any region");
        assert_eq!(any.host_str(), Some("cloud.example.com"));
    }

    #[test]
    fn missing_endpoint_lists_what_the_catalog_has() {
        let token = Token::with_catalog(catalog());
        let err = token.image_endpoint("admin", Some("R3")).expect_err("none");
        let msg = err.to_string();
        assert!(
            msg.contains("\"admin\"") && msg.contains("\"R3\"") && msg.contains("public in R2"),
            "{msg}"
        );
        let empty = Token::with_catalog(json!([]));
        let msg = empty.image_endpoint("public", None).expect_err("none").to_string();
        assert!(msg.contains("scoped to a project"), "{msg}");
    }

    #[test]
    fn application_credentials_are_sent_without_a_scope() {
        let body = auth_request(&Auth::ApplicationCredential {
            id: Some("ac".into()),
            name: None,
            user: None,
            secret: SecretString::from("s"),
        });
        assert!(body["auth"].get("scope").is_none());
        assert_eq!(body["auth"]["identity"]["application_credential"]["id"], "ac");
    }

    #[test]
    fn password_auth_scopes_to_the_project_by_name_and_domain() {
        let body = auth_request(&Auth::Password {
            user: UserRef::Name {
                name: "u".into(),
                domain: DomainRef::Name("Default".into()),
            },
            password: SecretString::from("p"),
            scope: Some(ProjectScope::Name {
                name: "demo".into(),
                domain: DomainRef::Id("default".into()),
            }),
        });
        assert_eq!(
            body["auth"]["identity"]["password"]["user"]["domain"]["name"],
            "Default"
        );
        assert_eq!(body["auth"]["scope"]["project"]["domain"]["id"], "default");
    }

    #[test]
    fn a_token_is_refreshed_two_minutes_before_it_expires() {
        let now = jiff::Timestamp::now();
        let mut token = Token::with_catalog(json!([]));
        token.refresh_margin = Duration::from_secs(3600 / 4);
        token.expires_at = now + jiff::SignedDuration::from_secs(121);
        assert!(token.is_fresh(now, Duration::from_secs(120)));
        token.expires_at = now + jiff::SignedDuration::from_secs(119);
        assert!(!token.is_fresh(now, Duration::from_secs(120)));
    }

    #[test]
    fn a_short_lived_token_is_reused_for_most_of_its_life() {
        // A 60 s token: the 120 s margin would make every request authenticate first.
        let now = jiff::Timestamp::now();
        let mut token = Token::with_catalog(json!([]));
        token.refresh_margin = Duration::from_secs(60) / 4;
        token.expires_at = now + jiff::SignedDuration::from_secs(60);
        assert!(token.is_fresh(now, Duration::from_secs(120)));
        token.expires_at = now + jiff::SignedDuration::from_secs(16);
        assert!(token.is_fresh(now, Duration::from_secs(120)));
        token.expires_at = now + jiff::SignedDuration::from_secs(14);
        assert!(!token.is_fresh(now, Duration::from_secs(120)));
    }
}
