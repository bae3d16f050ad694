//! A Helm release of the operator on the environment's nodes, installed from the chart `make
//! image` published to the environment's registry, and Glance's own request log: shared by the
//! tests that run the operator as pods (tests/pods.rs, tests/upgrade.rs).

use std::time::Instant;

use super::cluster::{WAIT, eventually, kubectl, kubectl_ok, kubectl_try, metric_value, run};

pub const VALUES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/env/pod-values.yaml");
pub const RELEASE: &str = "iao";
pub const DEPLOYMENT: &str = "iao-image-access-operator";

/// A release published to the environment's registry: its chart (oci://...), version and image
/// repository.
#[derive(Debug, Clone)]
pub struct Published {
    pub chart: String,
    pub version: String,
    pub image: String,
    /// The image index's digest, as published and signed.
    pub image_digest: String,
}

impl Published {
    /// What `make image` published from the current sources (tests/env/publish-image.sh,
    /// sourced from release.env by env.sh).
    pub fn current() -> Self {
        Self::from_env("IAO_RELEASE", "tests/env/publish-image.sh")
    }

    /// The newest release of hack/releases.tsv, rebuilt from its commit
    /// (tests/env/publish-previous.sh, sourced from previous.env by env.sh).
    pub fn previous() -> Self {
        Self::from_env("IAO_PREVIOUS", "tests/env/publish-previous.sh")
    }

    fn from_env(prefix: &str, script: &str) -> Self {
        let var = |name: &str| {
            let name = format!("{prefix}_{name}");
            std::env::var(&name)
                .unwrap_or_else(|_| panic!("{name} is not set: run `make image` ({script}) and source .e2e/env.sh"))
        };
        Self {
            chart: var("CHART"),
            version: var("VERSION"),
            image: var("IMAGE"),
            image_digest: var("IMAGE_DIGEST"),
        }
    }
}

/// The folder `make image` built the current release into (tests/env/publish-image.sh).
pub fn release_dist() -> std::path::PathBuf {
    std::env::var("IAO_RELEASE_DIST")
        .map(std::path::PathBuf::from)
        .expect("IAO_RELEASE_DIST: run `make image` and source .e2e/env.sh")
}

/// The release's image archive (an OCI layout) unpacked into a new temporary folder named after
/// `purpose`: its index.json and blobs/.
pub fn unpack_release_image(purpose: &str) -> std::path::PathBuf {
    let archive = std::fs::read_dir(release_dist())
        .expect("the release folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".oci.tar"))
        .expect("the image archive");
    let work = std::env::temp_dir().join(format!("iao-{purpose}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("a work folder");
    let out = run(
        "tar",
        &[
            "-xf",
            archive.to_str().expect("path"),
            "-C",
            work.to_str().expect("path"),
        ],
        None,
    );
    assert!(out.success, "unpacking {archive:?}: {}", out.stderr);
    work
}

/// A port free on both nodes' addresses (hostNetwork pods listen on their node's address).
pub fn free_port_on_both_nodes() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        if std::net::TcpListener::bind(("127.0.0.2", port)).is_ok() {
            return port;
        }
    }
}

/// A Helm release of the chart in `ns`, watching only `ns`.
pub struct Release {
    pub namespace: String,
    pub metrics_port: u16,
    pub health_port: u16,
}

impl Release {
    pub fn args(&self, verb: &str, release: &Published, sets: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            verb,
            RELEASE,
            &release.chart,
            "--version",
            &release.version,
            "--plain-http",
            "--set",
            &format!("image.repository={}", release.image),
            // The tag and the digest published under it: a node that pulled an earlier build of
            // a `-dev` version must not run it again.
            "--set",
            &format!("image.tag={}@{}", release.version, release.image_digest),
            "--namespace",
            &self.namespace,
            "-f",
            VALUES,
            "--wait",
            "--timeout",
            "120s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Ok(port) = std::env::var("IAO_APISERVER_PORT") {
            // Another API server port than pod-values.yaml's: a values file of our own after it.
            let state = std::env::var("IAO_E2E_STATE").unwrap_or_else(|_| "/tmp".into());
            let path = format!("{state}/pod-values-{port}.yaml");
            let text = format!(
                "extraEnv:\n  - {{name: KUBERNETES_SERVICE_HOST, value: \"127.0.0.1\"}}\n  - {{name: KUBERNETES_SERVICE_PORT, value: \"{port}\"}}\n"
            );
            std::fs::write(&path, text).expect("values file");
            args.extend(["-f".into(), path]);
        }
        for set in [
            format!("watchNamespaces={{{}}}", self.namespace),
            format!("metrics.port={}", self.metrics_port),
            format!("health.port={}", self.health_port),
        ] {
            args.extend(["--set".into(), set]);
        }
        for set in sets {
            args.extend(["--set".into(), set.to_string()]);
        }
        args
    }

    /// `helm VERB` (install, upgrade) of the current sources' release.
    pub fn helm(&self, verb: &str, sets: &[&str]) -> (bool, String) {
        self.helm_with(verb, &Published::current(), sets)
    }

    pub fn helm_with(&self, verb: &str, release: &Published, sets: &[&str]) -> (bool, String) {
        let args = self.args(verb, release, sets);
        let out = run("helm", &args.iter().map(String::as_str).collect::<Vec<_>>(), None);
        (out.success, format!("{}{}", out.stdout, out.stderr))
    }

    /// `helm install --wait` of the current sources' release.
    pub fn install(namespace: &str, sets: &[&str]) -> Release {
        Self::install_from(&Published::current(), namespace, sets)
    }

    pub fn install_from(published: &Published, namespace: &str, sets: &[&str]) -> Release {
        let release = Release {
            namespace: namespace.to_string(),
            metrics_port: free_port_on_both_nodes(),
            health_port: free_port_on_both_nodes(),
        };
        let started = Instant::now();
        let (ok, out) = release.helm_with("install", published, sets);
        assert!(ok, "helm install --wait: {out}\n{}", release.describe());
        eprintln!("helm install --wait took {:?}", started.elapsed());
        release
    }

    pub fn describe(&self) -> String {
        let pods = kubectl(&["describe", "pods", "-n", &self.namespace], None);
        let logs = kubectl(
            &[
                "logs",
                "-n",
                &self.namespace,
                &format!("deploy/{DEPLOYMENT}"),
                "--tail=30",
            ],
            None,
        );
        // "untolerated taint(s)" in the pods' events says which nodes but not why.
        let taints = kubectl(
            &[
                "get",
                "nodes",
                "-o",
                "custom-columns=NODE:.metadata.name,TAINTS:.spec.taints[*].key",
            ],
            None,
        );
        format!("{}\n{}\n{}", pods.stdout, logs.stdout, taints.stdout)
    }

    /// (name, node, pod IP, ready) of the release's pods that are not being deleted. A failed
    /// kubectl fails the test (it is no empty list).
    pub fn pods(&self) -> Vec<(String, String, String, bool)> {
        self.try_pods()
            .unwrap_or_else(|| panic!("kubectl get pods -n {} failed", self.namespace))
    }

    /// [`Release::pods`], or None when kubectl fails: for waits, where that is "not yet" (and
    /// never "no pods").
    pub fn try_pods(&self) -> Option<Vec<(String, String, String, bool)>> {
        let out = kubectl_try(&[
            "get",
            "pods",
            "-n",
            &self.namespace,
            "-l",
            "app.kubernetes.io/name=image-access-operator",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}|{.spec.nodeName} {.status.podIP} {.status.containerStatuses[0].ready}{\"\\n\"}{end}",
        ])?;
        let pods = out
            .lines()
            .filter_map(|line| {
                let (head, tail) = line.split_once('|')?;
                let mut head = head.split_whitespace();
                let name = head.next()?.to_string();
                if head.next().is_some() {
                    return None; // being deleted
                }
                let mut parts = tail.split_whitespace();
                Some((
                    name,
                    parts.next().unwrap_or_default().to_string(),
                    parts.next().unwrap_or_default().to_string(),
                    parts.next() == Some("true"),
                ))
            })
            .collect();
        Some(pods)
    }

    pub fn leader(&self) -> String {
        kubectl_try(&[
            "get",
            "lease",
            DEPLOYMENT,
            "-n",
            &self.namespace,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .unwrap_or_default()
    }

    /// /metrics of the pod at `pod_ip`, or None while it does not answer 200: for waits.
    pub async fn try_metrics(&self, pod_ip: &str) -> Option<String> {
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .ok()?
            .get(format!("http://{pod_ip}:{}/metrics", self.metrics_port))
            .send()
            .await
            .ok()?;
        if response.status() != 200 {
            return None;
        }
        response.text().await.ok()
    }

    /// Waits until the pod that holds the Lease (a pod of this release) has reconciled
    /// `objects` ImageAccess objects and has none at work: the look a new leader takes at every
    /// object is done. The leader's name.
    pub async fn wait_leader_looked_at(&self, objects: usize) -> String {
        let done = r#"controller_runtime_reconcile_total{controller="imageaccess",result="success"}"#;
        let active = r#"controller_runtime_active_workers{controller="imageaccess"}"#;
        let what = format!("the leading pod has looked at the {objects} objects, none at work");
        eventually(&what, WAIT, || async {
            let leader = self.leader();
            let (_, _, ip, _) = self.try_pods()?.into_iter().find(|pod| pod.0 == leader)?;
            let text = self.try_metrics(&ip).await?;
            let looked = metric_value(&text, done) >= objects as f64 && metric_value(&text, active) == 0.0;
            looked.then_some(leader)
        })
        .await
    }

    pub async fn metrics(&self, pod_ip: &str) -> String {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("http")
            .get(format!("http://{pod_ip}:{}/metrics", self.metrics_port))
            .send()
            .await
            .expect("/metrics answers")
            .text()
            .await
            .expect("body")
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = run("helm", &["uninstall", RELEASE, "-n", &self.namespace, "--wait"], None);
    }
}

/// The host process of a pod's container: its /proc entry, found through the node's containerd.
pub fn container_process(namespace: &str, pod: &str) -> std::path::PathBuf {
    let id = kubectl_ok(
        &[
            "get",
            "pod",
            pod,
            "-n",
            namespace,
            "-o",
            "jsonpath={.status.containerStatuses[0].containerID}",
        ],
        None,
    );
    let id = id.trim_start_matches("containerd://").to_string();
    let node = kubectl_ok(
        &["get", "pod", pod, "-n", namespace, "-o", "jsonpath={.spec.nodeName}"],
        None,
    );
    let state = std::env::var("IAO_E2E_STATE").expect("IAO_E2E_STATE");
    let socket = format!("{state}/{}/containerd/containerd.sock", node.trim_start_matches("iao-"));
    let tasks = run("ctr", &["-a", &socket, "-n", "k8s.io", "tasks", "ls"], None).stdout;
    let pid = tasks
        .lines()
        .find(|line| line.starts_with(&id))
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("task {id} on {node}: {tasks}"));
    std::path::PathBuf::from(format!("/proc/{pid}"))
}

/// Glance's own request log (uwsgi's, written by tests/env/openstack-up.sh). A missing or
/// unreadable log fails the test, naming the path: read as empty, it would show no write.
pub fn glance_log() -> String {
    let state = std::env::var("OSL_STATE_DIR").expect("OSL_STATE_DIR (source .e2e/env.sh)");
    let path = format!("{state}/log/glance-uwsgi.log");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("Glance's request log {path}: {e}"))
}

/// A request Glance served about one of the images a test follows.
#[derive(Debug, Clone)]
pub struct GlanceRequest {
    pub method: String,
    pub code: u16,
    pub image: String,
}

/// Requests Glance served for `images`, in order, from its own request log.
pub fn glance_requests(images: &[String]) -> Vec<GlanceRequest> {
    glance_log()
        .lines()
        .filter_map(|line| {
            let image = images.iter().find(|image| line.contains(image.as_str()))?;
            // "... [Sun Nov 29 16:09:05 2026] GET /v2/images/... => ... (HTTP/1.1 200) ..."
            let before_path = &line[..line.find(" /v2/images/")?];
            let method = before_path.rsplit(' ').next()?.to_string();
            let code = line.rsplit("(HTTP/1.1 ").next()?.get(..3)?.parse().ok()?;
            Some(GlanceRequest {
                method,
                code,
                image: image.clone(),
            })
        })
        .collect()
}

/// The requests for `images` after the first `before` (an earlier [`glance_requests`]), once
/// they hold a read of every image. The reads are the evidence that the log is Glance's, that
/// it is parsed right, and that it covers the look taken since: without them, "no write"
/// would also pass on a log that shows nothing.
pub async fn glance_requests_since(images: &[String], before: usize) -> Vec<GlanceRequest> {
    let what = format!("Glance's log shows a read of each of {images:?} since the change");
    eventually(&what, WAIT, || async {
        let mut all = glance_requests(images);
        assert!(
            all.len() >= before,
            "Glance's log lost lines ({} now, {before} before): restarted or rotated?",
            all.len()
        );
        let since = all.split_off(before);
        let read = |image: &String| {
            since
                .iter()
                .any(|r| r.method == "GET" && r.code < 300 && r.image == *image)
        };
        images.iter().all(read).then_some(since)
    })
    .await
}

pub fn writes(requests: &[GlanceRequest]) -> usize {
    requests.iter().filter(|r| r.method != "GET").count()
}
