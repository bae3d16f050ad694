//! clouds.yaml as users write it (issue 23), against the real Keystone + Glance: each key the
//! operator reads is checked against the same file read by the `openstack` CLI of the
//! environment (the CLI is the reference: what it accepts, the operator must too), then through
//! the operator on a real kube-apiserver. The client certificate is checked against a TLS
//! Keystone that requires one ([`common::tls::TlsFront`]).
#![cfg(feature = "e2e")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::RealOpenStack;
use common::cluster::{Operator, TestNamespace, has_reason, kubectl_ok, manifest, unique};
use common::tls::TlsFront;
use image_access_operator::api::{ImageAccess, Managed};
use image_access_operator::controller::problem::{Problem, Step};
use image_access_operator::metrics::Metrics;
use image_access_operator::openstack::{ClientSettings, Cloud, OpenStack, OpenStackError, ProjectQuery, SecretFiles};

/// The environment's clouds.yaml with more entries, each trying one key; the TLS front's files
/// named by path, as a user's clouds.yaml names them.
fn clouds_yaml(env: &RealOpenStack, front: &TlsFront) -> String {
    let base: serde_json::Value = serde_saphyr::from_str(&env.clouds_yaml()).expect("clouds.yaml");
    let owner = base["clouds"]["owner"]["auth"].clone();
    let admin = base["clouds"]["admin"]["auth"].clone();
    let without_project = |auth: &serde_json::Value| {
        let mut auth = auth.clone();
        let map = auth.as_object_mut().expect("auth");
        map.remove("project_name");
        map.remove("project_domain_name");
        auth
    };
    let mut system = without_project(&admin);
    system["system_scope"] = "all".into();
    let mut tls = owner.clone();
    tls["auth_url"] = front.auth_url.clone().into();
    let path = |p: &Path| p.to_str().expect("path").to_string();
    let glance = env.glance_url.trim_end_matches('/');
    let clouds = serde_json::json!({ "clouds": {
        // regions as a list (the first is the default), the older endpoint_type spelling.
        "regions-list": { "auth": owner, "regions": ["RegionOne"], "endpoint_type": "publicURL" },
        // Glance and Keystone named outright instead of the catalog's.
        "overrides": {
            "auth": system.clone(),
            "region_name": "RegionOne",
            "image_endpoint_override": format!("{glance}/v2/"),
            "identity_endpoint_override": env.keystone_url,
        },
        // A system-scoped admin.
        "system-admin": { "auth": system, "region_name": "RegionOne", "interface": "public" },
        // A Keystone that requires a client certificate.
        "client-cert": {
            "auth": tls,
            "region_name": "RegionOne",
            "cacert": path(&front.files.ca()),
            "cert": path(&front.files.cert()),
            "key": path(&front.files.key()),
        },
    }});
    serde_json::to_string(&clouds).expect("JSON is YAML")
}

/// The Secret's files as `kubectl create secret --from-file` of the front's folder gives them:
/// each under its file name.
fn secret_files(front: &TlsFront) -> BTreeMap<String, Vec<u8>> {
    ["ca.crt", "client.crt", "client.key"]
        .into_iter()
        .map(|name| {
            let content = std::fs::read(front.files.dir.join(name)).expect("PEM");
            (name.to_string(), content)
        })
        .collect()
}

fn keystone_address(env: &RealOpenStack) -> std::net::SocketAddr {
    let url = reqwest::Url::parse(&env.keystone_url).expect("keystone URL");
    let port = url.port_or_known_default().expect("port");
    format!("{}:{port}", url.host_str().expect("host"))
        .parse()
        .expect("address")
}

/// `openstack --os-cloud CLOUD ARGS` with the clouds.yaml at `file`; its stdout.
fn openstack_cli(file: &Path, cloud: &str, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("openstack")
        .env("OS_CLIENT_CONFIG_FILE", file)
        .env_remove("OS_CLOUD")
        .args(["--os-cloud", cloud])
        .args(args)
        .output()
        .expect("the openstack CLI of the environment");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn our_cloud(
    yaml: &str,
    cloud: &str,
    files: BTreeMap<String, Vec<u8>>,
) -> (Arc<image_access_operator::openstack::Session>, Cloud) {
    let openstack = OpenStack::new(ClientSettings::default(), Arc::new(Metrics::default()));
    let cloud = Cloud::from_clouds_yaml(yaml, cloud, &SecretFiles(files)).expect("the operator reads the entry");
    let session = openstack.session(&cloud.credentials).expect("session");
    (session, cloud)
}

/// Each key, read by the CLI and by the operator's client from the same file.
#[tokio::test]
async fn each_clouds_yaml_key_reaches_the_cloud_as_the_openstack_cli_does() {
    let env = RealOpenStack::from_env();
    let front = TlsFront::start(keystone_address(&env));
    let yaml = clouds_yaml(&env, &front);
    let file = std::env::temp_dir().join(unique("iao-clouds")).with_extension("yaml");
    std::fs::write(&file, &yaml).expect("clouds.yaml");
    let image = env.create_image("shared").await;
    let files = secret_files(&front);

    for cloud in ["regions-list", "overrides", "system-admin", "client-cert"] {
        let listed = openstack_cli(&file, cloud, &["image", "show", &image, "-f", "value", "-c", "id"])
            .unwrap_or_else(|e| panic!("the openstack CLI refuses {cloud}: {e}"));
        assert_eq!(listed.trim(), image, "{cloud}: the CLI");
        let (session, parsed) = our_cloud(&yaml, cloud, files.clone()).await;
        let glance = session
            .glance(parsed.region_name.as_deref(), &parsed)
            .await
            .unwrap_or_else(|e| panic!("{cloud}: {e}"));
        let shown = glance
            .show_image(&image)
            .await
            .unwrap_or_else(|e| panic!("{cloud}: {e}"));
        assert_eq!(shown.id, image, "{cloud}: the operator");
        match cloud {
            "regions-list" => {
                assert_eq!(parsed.region_name.as_deref(), Some("RegionOne"), "the first region");
                assert_eq!(parsed.interface, "public", "publicURL");
            }
            "overrides" => {
                let url = glance.place().url.to_string();
                assert_eq!(
                    url.trim_end_matches('/'),
                    env.glance_url.trim_end_matches('/'),
                    "the override, without /v2"
                );
                // The identity override answers identity calls (a system admin may list projects).
                let projects = session
                    .list_projects(&ProjectQuery::default())
                    .await
                    .expect("projects through the identity override");
                assert!(projects.iter().any(|p| p.id == env.owner_project_id));
            }
            "system-admin" => {
                let caller = session.caller().await.expect("caller");
                assert!(caller.admin && caller.project.is_none(), "system scope: {caller:?}");
            }
            _ => {}
        }
    }

    // The same certificate and key under the keys cert and key (no paths needed).
    let plain = yaml.replace(&front.files.dir.to_string_lossy().to_string(), "/nowhere");
    let keyed: BTreeMap<String, Vec<u8>> = [("cacert", "ca.crt"), ("cert", "client.crt"), ("key", "client.key")]
        .into_iter()
        .map(|(key, name)| (key.to_string(), files[name].clone()))
        .collect();
    let (session, parsed) = our_cloud(&plain, "client-cert", keyed.clone()).await;
    session
        .glance(parsed.region_name.as_deref(), &parsed)
        .await
        .expect("cert and key under their own keys");

    // Without a client certificate, or with one of another CA, Keystone's front refuses: a
    // Stalled problem that says what to put where.
    let mut without = keyed.clone();
    without.remove("cert");
    without.remove("key");
    let mut no_cert: serde_json::Value = serde_json::from_str(&plain).expect("JSON");
    let entry = no_cert["clouds"]["client-cert"].as_object_mut().expect("entry");
    entry.remove("cert");
    entry.remove("key");
    let no_cert = no_cert.to_string();
    let stranger: BTreeMap<String, Vec<u8>> = [
        ("cacert".to_string(), keyed["cacert"].clone()),
        (
            "cert".to_string(),
            std::fs::read(front.files.stranger_cert()).expect("PEM"),
        ),
        (
            "key".to_string(),
            std::fs::read(front.files.stranger_key()).expect("PEM"),
        ),
    ]
    .into();
    for (what, yaml, files) in [
        ("no certificate", &no_cert, without),
        ("another CA's", &plain, stranger),
    ] {
        let (session, parsed) = our_cloud(yaml, "client-cert", files).await;
        let error = session
            .glance(parsed.region_name.as_deref(), &parsed)
            .await
            .expect_err("refused by the front");
        assert!(
            matches!(error, OpenStackError::TlsClientCertificate { .. }),
            "{what}: {error:?}"
        );
        assert!(!error.is_transient(), "{what}: no retry fixes it");
        let target = image_access_operator::api::Membership::named(image.clone(), "m".into(), None);
        let problem = Problem::openstack(&error, Step::ReadCredentials, &target, "ns/creds");
        assert_eq!(problem.reason(), "ClientCertificateRefused", "{what}");
        assert!(
            problem.message().contains("cert and key keys of Secret ns/creds"),
            "{problem:?}"
        );
    }
    let _ = std::fs::remove_file(&file);
}

/// Through the operator: a Secret that holds the clouds.yaml and its files under their file
/// names (a Secret made with `kubectl create secret --from-file` of the folder the CLI reads)
/// reaches a Keystone that requires a client certificate; a system-scoped admin shares an
/// image; an entry that turns verification off, or an unknown auth_type, is Stalled with what
/// to do.
#[tokio::test]
async fn the_operator_uses_each_key_from_its_secret() {
    let env = RealOpenStack::from_env();
    let front = TlsFront::start(keystone_address(&env));
    let ns = TestNamespace::new("clouds-keys", &env).await;
    let mut yaml: serde_json::Value = serde_saphyr::from_str(&clouds_yaml(&env, &front)).expect("YAML");
    let owner = yaml["clouds"]["regions-list"]["auth"].clone();
    yaml["clouds"]["insecure"] = serde_json::json!({"auth": owner, "region_name": "RegionOne", "verify": false});
    yaml["clouds"]["oidc"] =
        serde_json::json!({"auth_type": "v3oidcpassword", "auth": owner, "region_name": "RegionOne"});
    let files: Vec<(&str, String)> = secret_files(&front)
        .into_iter()
        .map(|(name, content)| {
            let name: &str = match name.as_str() {
                "ca.crt" => "ca.crt",
                "client.crt" => "client.crt",
                _ => "client.key",
            };
            (name, String::from_utf8(content).expect("PEM"))
        })
        .collect();
    ns.put_secret_with_files(&serde_json::to_string(&yaml).expect("YAML"), &files)
        .await;
    let _operator = Operator::start(&ns.name, &[]);
    let image = env.create_image("shared").await;
    let (member1, member2) = (env.member1_project_id.clone(), env.member2_project_id.clone());
    let other = env.create_image("shared").await;
    let manifests = [
        manifest("through-tls", &image, &member1, "client-cert", ""),
        manifest("system-admin", &image, &member2, "system-admin", ""),
        manifest("overrides", &other, &member1, "overrides", ""),
        manifest("insecure", &other, &member2, "insecure", ""),
        manifest("oidc", &other, &member2, "oidc", ""),
    ]
    .join("---\n");
    assert!(ns.apply(&manifests).success);
    for name in ["through-tls", "system-admin", "overrides"] {
        ns.wait_ready(name).await;
    }
    assert!(
        env.member(&image, &member1).await.is_some(),
        "made through the TLS front"
    );
    assert!(
        env.member(&image, &member2).await.is_some(),
        "made by the system-scoped admin"
    );
    assert!(
        env.member(&other, &member1).await.is_some(),
        "made through the overrides"
    );
    let insecure = ns
        .wait_for::<ImageAccess>("insecure", "Stalled", common::cluster::WAIT, |o| {
            has_reason(o, "Stalled", "True", Some("InsecureTLSRefused"))
        })
        .await;
    let message = &insecure.condition("Ready").expect("Ready").message;
    assert!(
        message.contains("cacert") && message.contains("--allow-insecure-tls"),
        "{message}"
    );
    let oidc = ns
        .wait_for::<ImageAccess>("oidc", "Stalled", common::cluster::WAIT, |o| {
            has_reason(o, "Stalled", "True", Some("InvalidCloudsYaml"))
        })
        .await;
    let message = &oidc.condition("Ready").expect("Ready").message;
    assert!(
        message.contains("v3oidcpassword")
            && message.contains("password")
            && message.contains("v3applicationcredential")
            && message.contains("token"),
        "lists the supported auth types: {message}"
    );
    assert!(
        env.member(&other, &member2).await.is_none(),
        "nothing made by the refused entries"
    );
    // The evidence must be there: the refusals' events, read (a failed read is no "clean").
    ns.wait_events(Some("Warning"), &["InsecureTLSRefused", "InvalidCloudsYaml"])
        .await;
    let text = kubectl_ok(&["get", "events", "-n", &ns.name, "-o", "yaml"], None);
    assert!(text.contains("InsecureTLSRefused"), "the events were read: {text}");
    assert!(
        !text.contains(&env.user_password) && !text.contains("PRIVATE KEY"),
        "no secret in events"
    );
}
