//! Parsing of a standard OpenStack `clouds.yaml` (the file the `openstack` CLI, openstacksdk and
//! Terraform read) into the one cloud entry an object names.
//!
//! Only the keys this operator uses are read; unknown keys are ignored, as openstacksdk does.
//! Secrets are held in [`SecretString`], so `Debug` never prints them.
//!
//! The files an entry names (`cacert`, `cert`, `key`, or `verify` given a CA path) are read from
//! the [`Files`] given: a Secret's keys (the key of that name, or the file name of the path, as
//! the Secret mounted where the openstack CLI reads it has them), or the disk for `export`.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::error::ConfigError;

#[derive(Deserialize)]
struct CloudsFile {
    #[serde(default)]
    clouds: BTreeMap<String, RawCloud>,
}

#[derive(Deserialize)]
struct RawCloud {
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    auth_type: Option<String>,
    #[serde(default)]
    region_name: Option<String>,
    /// The cloud's regions; the first is the default when `region_name` is not given.
    #[serde(default)]
    regions: Vec<RawRegion>,
    #[serde(default)]
    interface: Option<String>,
    /// Older clouds.yaml files say `endpoint_type` for `interface`.
    #[serde(default)]
    endpoint_type: Option<String>,
    /// `false` turns TLS verification off; a path names a CA bundle.
    #[serde(default)]
    verify: Option<RawVerify>,
    /// `true` turns TLS verification off (openstacksdk's older spelling of `verify: false`).
    #[serde(default)]
    insecure: Option<bool>,
    /// Paths of the CA bundle, the client certificate and its key (PEM).
    #[serde(default)]
    cacert: Option<String>,
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    key: Option<String>,
    /// Glance's URL, instead of the catalog's.
    #[serde(default)]
    image_endpoint_override: Option<String>,
    /// Keystone's URL for identity calls (project lists), instead of auth_url.
    #[serde(default)]
    identity_endpoint_override: Option<String>,
}

/// A region as `regions:` lists it: a name, or `{name: ..., values: {...}}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawRegion {
    Name(String),
    Entry { name: String },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawVerify {
    Enabled(bool),
    CaPath(String),
}

/// Where the files a cloud entry names (`cacert`, `cert`, `key`) come from.
pub trait Files {
    /// The content of the file the entry names for `what` (`cacert`, `cert` or `key`) at `path`
    /// (`None` when the entry names none), if there is one here.
    fn named(&self, what: &str, path: Option<&str>) -> Option<Vec<u8>>;
    /// What to do when the entry names `path` for `what` and there is no such file here.
    fn missing(&self, what: &str, path: &str) -> String;
}

/// No files at all.
pub struct NoFiles;

impl Files for NoFiles {
    fn named(&self, _what: &str, _path: Option<&str>) -> Option<Vec<u8>> {
        None
    }

    fn missing(&self, what: &str, path: &str) -> String {
        format!("{what} names the file {path}, and there are no files here")
    }
}

/// A Secret's keys: the file an entry names by path is the key named as the path's file name
/// (what the Secret mounted where the openstack CLI reads the path would show), else the key of
/// its kind (`cacert`, `cert`, `key`); with no path, the key of its kind.
pub struct SecretFiles(pub BTreeMap<String, Vec<u8>>);

impl Files for SecretFiles {
    fn named(&self, what: &str, path: Option<&str>) -> Option<Vec<u8>> {
        path.and_then(|path| self.0.get(file_name(path)))
            .or_else(|| self.0.get(what))
            .cloned()
    }

    fn missing(&self, what: &str, path: &str) -> String {
        format!(
            "{what} names the file {path}, and a Secret has no files: put its PEM content in the Secret under the key {what} (or {})",
            file_name(path)
        )
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[derive(Deserialize, Default)]
struct RawAuth {
    auth_url: Option<String>,
    username: Option<String>,
    user_id: Option<String>,
    password: Option<SecretString>,
    user_domain_name: Option<String>,
    user_domain_id: Option<String>,
    project_name: Option<String>,
    project_id: Option<String>,
    /// Older name of `project_name`.
    tenant_name: Option<String>,
    /// Older name of `project_id`.
    tenant_id: Option<String>,
    project_domain_name: Option<String>,
    project_domain_id: Option<String>,
    /// Default for both user and project domains, as keystoneauth reads it.
    domain_name: Option<String>,
    domain_id: Option<String>,
    application_credential_id: Option<String>,
    application_credential_name: Option<String>,
    application_credential_secret: Option<SecretString>,
    token: Option<SecretString>,
    /// `all`: a token for the whole deployment (a system-scoped admin), instead of a project's.
    system_scope: Option<String>,
}

/// A domain named by ID or by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DomainRef {
    Id(String),
    Name(String),
}

/// A user named by ID, or by name within a domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UserRef {
    Id(String),
    Name { name: String, domain: DomainRef },
}

/// What a token is scoped to: a project, or the whole deployment (`auth.system_scope: all`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProjectScope {
    Id(String),
    Name { name: String, domain: DomainRef },
    System,
}

/// How to obtain a token from Keystone.
#[derive(Clone, Debug)]
pub enum Auth {
    Password {
        user: UserRef,
        password: SecretString,
        scope: Option<ProjectScope>,
    },
    /// An application credential carries its own scope: Keystone refuses a scope next to it.
    ApplicationCredential {
        id: Option<String>,
        name: Option<String>,
        user: Option<UserRef>,
        secret: SecretString,
    },
    Token {
        token: SecretString,
        scope: Option<ProjectScope>,
    },
}

/// One cloud entry: the credentials (which decide the token) and where to find Glance with it
/// (which does not: two entries with the same user and different regions share one token).
#[derive(Clone, Debug)]
pub struct Cloud {
    pub credentials: Credentials,
    /// `region_name`, else the first of `regions`.
    pub region_name: Option<String>,
    /// Whether `region_name` is only the first of `regions` (the entry names no region_name):
    /// then any of `regions` is as much the entry's region.
    pub region_from_list: Option<Vec<String>>,
    /// `public`, `internal` or `admin`.
    pub interface: String,
    /// `image_endpoint_override`: Glance's base URL, used instead of the catalog's.
    pub image_endpoint_override: Option<reqwest::Url>,
}

/// What Keystone needs to issue a token, and the TLS settings to reach it.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Keystone v3 base URL, always ending in `/v3`.
    pub auth_url: String,
    pub auth: Auth,
    /// False only when the entry says `verify: false` or `insecure: true`.
    pub verify_tls: bool,
    /// PEM CA bundle from the Secret's `cacert` key.
    pub ca_cert: Option<Vec<u8>>,
    /// The client certificate and its key (PEM, one after the other), for a Keystone or Glance
    /// that asks for one.
    pub client_identity: Option<SecretString>,
    /// `identity_endpoint_override`: Keystone's v3 URL for identity calls (not authentication).
    pub identity_endpoint_override: Option<String>,
}

impl Cloud {
    /// Parses `clouds_yaml` and returns the entry `cloud_name`, with the files it names from
    /// `files`.
    pub fn from_clouds_yaml(clouds_yaml: &str, cloud_name: &str, files: &dyn Files) -> Result<Cloud, ConfigError> {
        let file: CloudsFile = serde_saphyr::from_str(clouds_yaml).map_err(|e| ConfigError::Malformed {
            // Only the position: a parser's own message may quote the offending value, which
            // can be a password.
            position: e.location().map(|l| (l.line(), l.column())),
        })?;
        let known: Vec<String> = file.clouds.keys().cloned().collect();
        let raw = file
            .clouds
            .into_iter()
            .find_map(|(name, cloud)| (name == cloud_name).then_some(cloud))
            .ok_or_else(|| ConfigError::CloudNotFound {
                cloud: cloud_name.to_string(),
                known,
            })?;
        Cloud::from_raw(raw, cloud_name, files)
    }

    fn from_raw(raw: RawCloud, cloud: &str, files: &dyn Files) -> Result<Cloud, ConfigError> {
        let missing = |field: &str| ConfigError::MissingField {
            cloud: cloud.to_string(),
            field: field.to_string(),
        };
        let a = raw.auth;
        let auth_url = a
            .auth_url
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| missing("auth.auth_url"))?;
        let auth_url = normalize_auth_url(&auth_url).ok_or_else(|| ConfigError::Invalid {
            cloud: cloud.to_string(),
            detail: "auth.auth_url must be an http:// or https:// URL".into(),
        })?;
        let default_domain = domain(a.domain_id.clone(), a.domain_name.clone());
        let user_domain =
            domain(a.user_domain_id.clone(), a.user_domain_name.clone()).or_else(|| default_domain.clone());
        let project_domain =
            domain(a.project_domain_id.clone(), a.project_domain_name.clone()).or_else(|| default_domain.clone());
        let user = match (a.user_id.clone(), a.username.clone()) {
            (Some(id), _) => Some(UserRef::Id(id)),
            (None, Some(name)) => Some(UserRef::Name {
                name,
                domain: user_domain.ok_or_else(|| missing("auth.user_domain_name (or user_domain_id)"))?,
            }),
            (None, None) => None,
        };
        let project_id = a.project_id.clone().or(a.tenant_id.clone());
        let project_name = a.project_name.clone().or(a.tenant_name.clone());
        let invalid = |detail: String| ConfigError::Invalid {
            cloud: cloud.to_string(),
            detail,
        };
        let scope = match (project_id, project_name, a.system_scope.as_deref()) {
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                return Err(invalid(
                    "auth.system_scope and a project (project_id or project_name) both scope the token: keep one"
                        .into(),
                ));
            }
            (None, None, Some("all")) => Some(ProjectScope::System),
            (None, None, Some(other)) => {
                return Err(invalid(format!(
                    "auth.system_scope {other:?} is not a scope Keystone knows: the only system scope is all"
                )));
            }
            (Some(id), _, None) => Some(ProjectScope::Id(id)),
            (None, Some(name), None) => Some(ProjectScope::Name {
                name,
                domain: project_domain.ok_or_else(|| missing("auth.project_domain_name (or project_domain_id)"))?,
            }),
            (None, None, None) => None,
        };

        let auth_type = raw
            .auth_type
            .as_deref()
            .unwrap_or(if a.application_credential_secret.is_some() {
                "v3applicationcredential"
            } else if a.token.is_some() && a.password.is_none() {
                "token"
            } else {
                "password"
            });
        let auth = match auth_type {
            "password" | "v3password" => Auth::Password {
                user: user.ok_or_else(|| missing("auth.username (or user_id)"))?,
                password: a.password.ok_or_else(|| missing("auth.password"))?,
                scope,
            },
            "v3applicationcredential" | "applicationcredential" => {
                if a.application_credential_id.is_none() && a.application_credential_name.is_none() {
                    return Err(missing(
                        "auth.application_credential_id (or application_credential_name)",
                    ));
                }
                if a.application_credential_id.is_none() && user.is_none() {
                    return Err(missing(
                        "auth.username (an application credential named by name needs its user)",
                    ));
                }
                Auth::ApplicationCredential {
                    id: a.application_credential_id,
                    name: a.application_credential_name,
                    user,
                    secret: a
                        .application_credential_secret
                        .ok_or_else(|| missing("auth.application_credential_secret"))?,
                }
            }
            "token" | "v3token" => Auth::Token {
                token: a.token.ok_or_else(|| missing("auth.token"))?,
                scope,
            },
            other => {
                return Err(invalid(format!(
                    "auth_type {other:?} is not supported; use password (or v3password), v3applicationcredential (or applicationcredential) or token (or v3token)"
                )));
            }
        };
        if matches!(auth, Auth::ApplicationCredential { .. }) && a.system_scope.is_some() {
            return Err(invalid(
                "an application credential carries its own scope: remove auth.system_scope".into(),
            ));
        }
        let interface = raw.interface.or(raw.endpoint_type).unwrap_or_else(|| "public".into());
        // keystoneauth accepts the v2-era spelling "publicURL" too.
        let interface = interface.trim_end_matches("URL").to_ascii_lowercase();
        if !matches!(interface.as_str(), "public" | "internal" | "admin") {
            return Err(ConfigError::Invalid {
                cloud: cloud.to_string(),
                detail: format!("interface {interface:?} must be public, internal or admin"),
            });
        }
        let regions: Vec<String> = raw
            .regions
            .into_iter()
            .map(|region| match region {
                RawRegion::Name(name) | RawRegion::Entry { name } => name,
            })
            .collect();
        let given = raw.region_name.filter(|r| !r.is_empty());
        let region_from_list = (given.is_none() && !regions.is_empty()).then(|| regions.clone());
        let region_name = match given {
            Some(region) if !regions.is_empty() && !regions.contains(&region) => {
                return Err(invalid(format!(
                    "region_name {region:?} is not one of its regions ({})",
                    regions.join(", ")
                )));
            }
            Some(region) => Some(region),
            None => regions.first().cloned(),
        };
        let (verify_tls, ca_path) = match raw.verify {
            Some(RawVerify::Enabled(verify)) => (verify, None),
            Some(RawVerify::CaPath(path)) => (true, Some(path)),
            None => (true, None),
        };
        let verify_tls = verify_tls && raw.insecure != Some(true);
        // A CA path the Secret does not have is no error: the system's roots may do, and if they
        // do not, the untrusted certificate's problem says where the CA goes.
        let ca_cert = named_file(files, cloud, "cacert", raw.cacert.as_deref().or(ca_path.as_deref()))
            .ok()
            .flatten();
        let cert = named_file(files, cloud, "cert", raw.cert.as_deref())?;
        let key = named_file(files, cloud, "key", raw.key.as_deref())?;
        let named_by_entry = raw.cert.is_some() || raw.key.is_some();
        let client_identity = match (cert, key) {
            // A Secret key named `cert` or `key` alone, and an entry that names neither: not a
            // client certificate.
            (Some(_), None) | (None, Some(_)) if !named_by_entry => None,
            (Some(mut cert), Some(key)) => {
                cert.push(b'\n');
                cert.extend_from_slice(&key);
                let pem = String::from_utf8(cert).map_err(|_| invalid("cert and key must be PEM text".into()))?;
                Some(SecretString::from(pem))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "a client certificate (cert) needs its key: give key too (in a Secret, the key key)".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "a client key needs its certificate: give cert too (in a Secret, the key cert)".into(),
                ));
            }
        };
        let override_url = |key: &str, value: Option<String>| -> Result<Option<reqwest::Url>, ConfigError> {
            value
                .filter(|v| !v.is_empty())
                .map(|v| {
                    reqwest::Url::parse(&v)
                        .ok()
                        .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
                        .ok_or_else(|| invalid(format!("{key} must be an http:// or https:// URL")))
                })
                .transpose()
        };
        let image_endpoint_override = override_url("image_endpoint_override", raw.image_endpoint_override)?
            .map(|url| super::keystone::glance_base_url(url.as_str()).unwrap_or(url));
        let identity_endpoint_override = override_url("identity_endpoint_override", raw.identity_endpoint_override)?
            .and_then(|url| normalize_auth_url(url.as_str()));
        Ok(Cloud {
            credentials: Credentials {
                auth_url,
                auth,
                verify_tls,
                ca_cert,
                client_identity,
                identity_endpoint_override,
            },
            region_name,
            region_from_list,
            interface,
            image_endpoint_override,
        })
    }
}

/// The file an entry names for `what` (`cacert`, `cert`, `key`) at `path`; an error that says
/// where to put it when the entry names a path `files` does not have.
fn named_file(files: &dyn Files, cloud: &str, what: &str, path: Option<&str>) -> Result<Option<Vec<u8>>, ConfigError> {
    let path = path.filter(|p| !p.is_empty());
    match (files.named(what, path), path) {
        (Some(content), _) => Ok(Some(content)),
        (None, None) => Ok(None),
        (None, Some(path)) => Err(ConfigError::Invalid {
            cloud: cloud.to_string(),
            detail: files.missing(what, path),
        }),
    }
}

impl Cloud {
    /// How Glance is reached: the interface, or the override URL (two entries that differ only
    /// in it may be two Glances: what one reads is not the other's).
    pub fn reached_by(&self) -> String {
        match &self.image_endpoint_override {
            Some(url) => format!("{} via {url}", self.interface),
            None => self.interface.clone(),
        }
    }
}

impl Credentials {
    /// A digest of everything that decides which token these credentials get: the session
    /// cache key. A rotated password or another project gives another key, so the change takes
    /// effect at once; the digest (not the secret) is what stays in memory as the key. Region
    /// and interface are not in it: they choose an endpoint per call, not a token.
    pub fn cache_key(&self) -> [u8; 32] {
        let mut material = Vec::new();
        let mut put = |s: &str| {
            material.extend_from_slice(&(s.len() as u64).to_le_bytes());
            material.extend_from_slice(s.as_bytes());
        };
        put(&self.auth_url);
        put(&format!("{}", self.verify_tls));
        put(&String::from_utf8_lossy(self.ca_cert.as_deref().unwrap_or_default()));
        put(self.client_identity.as_ref().map_or("", |pem| pem.expose_secret()));
        put(self.identity_endpoint_override.as_deref().unwrap_or_default());
        match &self.auth {
            Auth::Password { user, password, scope } => {
                put("password");
                put(&format!("{user:?}"));
                put(password.expose_secret());
                put(&format!("{scope:?}"));
            }
            Auth::ApplicationCredential { id, name, user, secret } => {
                put("appcred");
                put(&format!("{id:?}{name:?}{user:?}"));
                put(secret.expose_secret());
            }
            Auth::Token { token, scope } => {
                put("token");
                put(token.expose_secret());
                put(&format!("{scope:?}"));
            }
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &material);
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        key
    }
}

fn domain(id: Option<String>, name: Option<String>) -> Option<DomainRef> {
    match (id, name) {
        (Some(id), _) => Some(DomainRef::Id(id)),
        (None, Some(name)) => Some(DomainRef::Name(name)),
        (None, None) => None,
    }
}

/// Keystone's v3 base URL from an `auth_url` that may or may not end in `/v3`.
fn normalize_auth_url(url: &str) -> Option<String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return None;
    }
    let base = url.trim_end_matches('/');
    Some(if base.ends_with("/v3") {
        base.to_string()
    } else {
        format!("{base}/v3")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Cloud, ConfigError> {
        Cloud::from_clouds_yaml(yaml, "mycloud", &NoFiles)
    }

    #[test]
    fn password_auth_with_domains_by_name() {
        let cloud = parse(
            "clouds:\n  mycloud:\n    auth:\n      auth_url: https://keystone.example.com:5000\n      username: alice\n      password: s3cret\n      project_name: demo\n      user_domain_name: Default\n      project_domain_id: default\n    region_name: RegionOne\n    interface: internal\n",
        )
        .expect("valid cloud");
        assert_eq!(cloud.credentials.auth_url, "https://keystone.example.com:5000/v3");
        assert_eq!(cloud.region_name.as_deref(), Some("RegionOne"));
        assert_eq!(cloud.interface, "internal");
        match cloud.credentials.auth {
            Auth::Password { user, scope, .. } => {
                assert_eq!(
                    user,
                    UserRef::Name {
                        name: "alice".into(),
                        domain: DomainRef::Name("Default".into())
                    }
                );
                assert_eq!(
                    scope,
                    Some(ProjectScope::Name {
                        name: "demo".into(),
                        domain: DomainRef::Id("default".into())
                    })
                );
            }
            other => panic!("expected password auth, got {other:?}"),
        }
    }

    #[test]
    fn application_credential_is_detected_without_auth_type() {
        let cloud = parse(
            "clouds:\n  mycloud:\n    auth:\n      auth_url: http://ks/v3/\n      application_credential_id: abc\n      application_credential_secret: xyz\n",
        )
        .expect("valid cloud");
        assert_eq!(cloud.credentials.auth_url, "http://ks/v3");
        assert!(matches!(cloud.credentials.auth, Auth::ApplicationCredential { id: Some(ref id), .. } if id == "abc"));
    }

    #[test]
    fn token_auth_and_legacy_interface_spelling() {
        let cloud = parse(
            "clouds:\n  mycloud:\n    auth_type: token\n    auth:\n      auth_url: http://ks\n      token: tok\n      project_id: p1\n    endpoint_type: publicURL\n    verify: false\n",
        )
        .expect("valid cloud");
        assert_eq!(cloud.interface, "public");
        assert!(!cloud.credentials.verify_tls);
        assert!(
            matches!(cloud.credentials.auth, Auth::Token { scope: Some(ProjectScope::Id(ref p)), .. } if p == "p1")
        );
    }

    #[test]
    fn unknown_cloud_names_the_clouds_that_exist() {
        let err = Cloud::from_clouds_yaml(
            "clouds:\n  a:\n    auth: {auth_url: http://ks}\n  b:\n    auth: {auth_url: http://ks}\n",
            "c",
            &NoFiles,
        )
        .expect_err("cloud c is missing");
        let msg = err.to_string();
        assert!(msg.contains("\"c\"") && msg.contains("a, b"), "{msg}");
    }

    #[test]
    fn malformed_yaml_is_an_error_not_a_panic() {
        let err = parse("clouds: [this is: not: valid").expect_err("malformed");
        assert!(matches!(err, ConfigError::Malformed { .. }), "{err:?}");
    }

    #[test]
    fn missing_password_names_the_field() {
        let err = parse("clouds:\n  mycloud:\n    auth:\n      auth_url: http://ks\n      username: u\n      user_domain_name: Default\n")
            .expect_err("no password");
        assert!(err.to_string().contains("auth.password"), "{err}");
    }

    #[test]
    fn username_without_domain_is_refused() {
        let err =
            parse("clouds:\n  mycloud:\n    auth:\n      auth_url: http://ks\n      username: u\n      password: p\n")
                .expect_err("no domain");
        assert!(err.to_string().contains("user_domain_name"), "{err}");
    }

    #[test]
    fn unsupported_auth_type_says_which_are_supported() {
        let err = parse("clouds:\n  mycloud:\n    auth_type: v3oidcpassword\n    auth:\n      auth_url: http://ks\n")
            .expect_err("oidc");
        assert!(err.to_string().contains("v3applicationcredential"), "{err}");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let cloud = parse(
            "clouds:\n  mycloud:\n    auth:\n      auth_url: http://ks\n      username: u\n      password: hunter2-password\n      domain_name: Default\n",
        )
        .expect("valid");
        assert!(!format!("{cloud:?}").contains("hunter2"));
    }

    #[test]
    fn cache_key_changes_when_the_password_rotates() {
        let with = |pw: &str| {
            parse(&format!(
                "clouds:\n  mycloud:\n    auth:\n      auth_url: http://ks\n      username: u\n      password: {pw}\n      domain_name: Default\n"
            ))
            .expect("valid")
            .credentials
            .cache_key()
        };
        assert_eq!(with("one"), with("one"));
        assert_ne!(with("one"), with("two"));
    }

    #[test]
    fn region_and_interface_do_not_change_the_cache_key() {
        let with = |region: &str, interface: &str| {
            parse(&format!(
                "clouds:\n  mycloud:\n    auth:\n      auth_url: http://ks\n      username: u\n      password: p\n      domain_name: Default\n    region_name: {region}\n    interface: {interface}\n"
            ))
            .expect("valid")
        };
        let (one, two) = (with("R1", "public"), with("R2", "internal"));
        assert_eq!(one.credentials.cache_key(), two.credentials.cache_key());
        assert_eq!(two.region_name.as_deref(), Some("R2"));
        assert_eq!(two.interface, "internal");
    }

    const AUTH: &str =
        "    auth:\n      auth_url: http://ks\n      username: u\n      password: p\n      domain_name: Default\n";

    fn entry(extra: &str) -> Result<Cloud, ConfigError> {
        parse(&format!("clouds:\n  mycloud:\n{AUTH}{extra}"))
    }

    /// Issue 23: `regions` as a list, its first the default; a region_name outside it refused.
    #[test]
    fn regions_as_a_list() {
        let cloud = entry("    regions:\n      - R1\n      - name: R2\n        values: {}\n").expect("valid");
        assert_eq!(cloud.region_name.as_deref(), Some("R1"));
        let cloud = entry("    regions: [R1, R2]\n    region_name: R2\n").expect("valid");
        assert_eq!(cloud.region_name.as_deref(), Some("R2"));
        let err = entry("    regions: [R1, R2]\n    region_name: R3\n").expect_err("not one of them");
        assert!(err.to_string().contains("R1, R2"), "{err}");
    }

    #[test]
    fn system_scope_is_all_and_alone() {
        let cloud = parse("clouds:\n  mycloud:\n    auth:\n      auth_url: http://ks\n      username: u\n      password: p\n      domain_name: Default\n      system_scope: all\n").expect("valid");
        assert!(matches!(
            cloud.credentials.auth,
            Auth::Password {
                scope: Some(ProjectScope::System),
                ..
            }
        ));
        let both = parse(
            "clouds:\n  mycloud:\n    auth:\n      auth_url: http://ks\n      username: u\n      password: p\n      domain_name: Default\n      project_name: x\n      system_scope: all\n",
        );
        assert!(both.expect_err("both").to_string().contains("keep one"));
        let other = parse(
            "clouds:\n  mycloud:\n    auth:\n      auth_url: http://ks\n      username: u\n      password: p\n      domain_name: Default\n      system_scope: domain\n",
        );
        assert!(
            other
                .expect_err("not a scope")
                .to_string()
                .contains("the only system scope is all")
        );
    }

    #[test]
    fn insecure_and_verify_false_turn_verification_off() {
        assert!(!entry("    insecure: true\n").expect("valid").credentials.verify_tls);
        assert!(!entry("    verify: false\n").expect("valid").credentials.verify_tls);
        assert!(entry("    insecure: false\n").expect("valid").credentials.verify_tls);
    }

    /// The files an entry names come from a Secret's keys: the key of their kind, else the path's
    /// file name; a path the Secret does not have says where to put it.
    #[test]
    fn files_come_from_the_secret_by_kind_or_file_name() {
        let files = |pairs: &[(&str, &str)]| {
            SecretFiles(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                    .collect(),
            )
        };
        let yaml = format!(
            "clouds:\n  mycloud:\n{AUTH}    verify: /etc/openstack/ca.pem\n    cert: /etc/openstack/client.crt\n    key: /etc/openstack/client.key\n"
        );
        let cloud = Cloud::from_clouds_yaml(
            &yaml,
            "mycloud",
            &files(&[("ca.pem", "CA"), ("client.crt", "CERT"), ("key", "KEY")]),
        )
        .expect("valid");
        assert_eq!(
            cloud.credentials.ca_cert.as_deref(),
            Some(&b"CA"[..]),
            "verify as a CA path"
        );
        assert!(cloud.credentials.verify_tls);
        let identity = cloud.credentials.client_identity.expect("identity");
        assert_eq!(identity.expose_secret(), "CERT\nKEY");
        let err = Cloud::from_clouds_yaml(&yaml, "mycloud", &files(&[("ca.pem", "CA")])).expect_err("no cert");
        assert!(err.to_string().contains("under the key cert (or client.crt)"), "{err}");
        let plain = format!("clouds:\n  mycloud:\n{AUTH}");
        let stray = Cloud::from_clouds_yaml(&plain, "mycloud", &files(&[("key", "something else")])).expect("valid");
        assert!(
            stray.credentials.client_identity.is_none(),
            "a stray key key is no certificate"
        );
        let half = format!("clouds:\n  mycloud:\n{AUTH}    cert: /etc/openstack/client.crt\n");
        let err = Cloud::from_clouds_yaml(&half, "mycloud", &files(&[("client.crt", "CERT")])).expect_err("no key");
        assert!(err.to_string().contains("needs its key"), "{err}");
        // A CA path the Secret lacks falls back to the system's roots.
        let ca = format!("clouds:\n  mycloud:\n{AUTH}    cacert: /etc/openstack/ca.pem\n");
        assert!(
            Cloud::from_clouds_yaml(&ca, "mycloud", &files(&[]))
                .expect("valid")
                .credentials
                .ca_cert
                .is_none()
        );
        // A path's file name wins over the key of its kind (two clouds, two CAs in one Secret).
        let both =
            Cloud::from_clouds_yaml(&ca, "mycloud", &files(&[("cacert", "OTHER"), ("ca.pem", "MINE")])).expect("valid");
        assert_eq!(both.credentials.ca_cert.as_deref(), Some(&b"MINE"[..]));
    }

    #[test]
    fn endpoint_overrides_are_urls_and_lose_the_version() {
        let cloud = entry("    image_endpoint_override: https://glance.example:9292/v2/\n    identity_endpoint_override: https://ks.example:5000\n").expect("valid");
        assert_eq!(
            cloud.image_endpoint_override.map(|u| u.to_string()).as_deref(),
            Some("https://glance.example:9292/")
        );
        assert_eq!(
            cloud.credentials.identity_endpoint_override.as_deref(),
            Some("https://ks.example:5000/v3")
        );
        let err = entry("    image_endpoint_override: glance:9292\n").expect_err("not a URL");
        assert!(
            err.to_string().contains("image_endpoint_override must be an http"),
            "{err}"
        );
    }
}
