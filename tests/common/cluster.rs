//! The real kube-apiserver of `tests/env/up.sh`, seen through kubectl (as users work) and kube
//! (for precise reads), and the operator binary run out of cluster against it.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use image_access_operator::api::{ImageAccess, Managed};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use super::RealOpenStack;

pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs kubectl with `args` (and `stdin`, if any).
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    run("kubectl", args, stdin)
}

/// Runs `program` (from the repository root, looked up on PATH: source .e2e/env.sh).
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(program)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} on PATH (source .e2e/env.sh, or hack/tools.sh): {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("kubectl ran");
    Output {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(args, stdin);
    assert!(out.success, "kubectl {args:?} failed: {}", out.stderr);
    out.stdout
}

/// kubectl's output, or `None` when it fails: for waits, where "not there yet" is an answer.
pub fn kubectl_try(args: &[&str]) -> Option<String> {
    let out = kubectl(args, None);
    out.success.then_some(out.stdout)
}

pub fn unique(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new().build_hasher().finish();
    format!("{prefix}-{:08x}", bits as u32)
}

pub async fn client() -> Client {
    assert!(
        std::env::var("KUBECONFIG").is_ok(),
        "KUBECONFIG is not set: the end-to-end tests need tests/env/up.sh (run `make test`)"
    );
    Client::try_default().await.expect("kube client from KUBECONFIG")
}

/// A namespace of its own for one test, with the credentials Secret (`openstack-credentials`,
/// clouds `owner`, `member1`, `member2`, `admin`).
pub struct TestNamespace {
    pub name: String,
    pub client: Client,
}

pub const SECRET: &str = "openstack-credentials";

impl TestNamespace {
    pub async fn new(prefix: &str, openstack: &RealOpenStack) -> TestNamespace {
        let client = client().await;
        let name = unique(prefix);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .expect("namespace");
        let ns = TestNamespace { name, client };
        ns.put_secret(&openstack.clouds_yaml()).await;
        ns
    }

    pub fn api(&self) -> Api<ImageAccess> {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Creates or replaces the credentials Secret.
    pub async fn put_secret(&self, clouds_yaml: &str) {
        self.put_secret_with_files(clouds_yaml, &[]).await;
    }

    /// [`TestNamespace::put_secret`] with other keys beside clouds.yaml (`cacert`, `cert`, ...).
    pub async fn put_secret_with_files(&self, clouds_yaml: &str, files: &[(&str, String)]) {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.name);
        let mut data: std::collections::BTreeMap<String, String> =
            [("clouds.yaml".to_string(), clouds_yaml.to_string())].into();
        data.extend(files.iter().map(|(key, value)| (key.to_string(), value.clone())));
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(SECRET.into()),
                ..Default::default()
            },
            string_data: Some(data),
            ..Default::default()
        };
        let params = kube::api::PatchParams::apply("e2e-test").force();
        secrets
            .patch(SECRET, &params, &kube::api::Patch::Apply(&secret))
            .await
            .expect("secret");
    }

    /// Applies each manifest of `cases` and requires admission to refuse it with its message.
    pub fn assert_refused<Y: AsRef<str>>(&self, cases: &[(Y, &str)]) {
        for (yaml, expected) in cases {
            let yaml = yaml.as_ref();
            let out = self.apply(yaml);
            assert!(!out.success, "accepted: {yaml}");
            assert!(
                out.stderr.contains(expected),
                "expected {expected:?} in: {}",
                out.stderr
            );
        }
    }

    /// `kubectl apply` of a manifest in this namespace.
    pub fn apply(&self, manifest: &str) -> Output {
        kubectl(&["apply", "-n", &self.name, "-f", "-"], Some(manifest))
    }

    /// Waits until the namespace's events (of `type_`, such as `Warning`, or of any type) name
    /// every one of `reasons`, and returns the reasons seen: an event follows the write it tells
    /// of by a moment, so one read right after the write may miss it.
    pub async fn wait_events(&self, type_: Option<&str>, reasons: &[&str]) -> String {
        let mut args: Vec<String> = ["get", "events", "-n", &self.name, "-o", "jsonpath={.items[*].reason}"]
            .map(String::from)
            .into();
        if let Some(type_) = type_ {
            args.extend(["--field-selector".to_string(), format!("type={type_}")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        eventually(
            &format!("events {reasons:?} in {}", self.name),
            Duration::from_secs(15),
            || async {
                let seen = kubectl_try(&args)?;
                reasons.iter().all(|reason| seen.contains(reason)).then_some(seen)
            },
        )
        .await
    }

    pub async fn get(&self, name: &str) -> Option<ImageAccess> {
        self.api().get_opt(name).await.expect("get")
    }

    /// An object of any of the operator's kinds.
    pub async fn get_of<K>(&self, name: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::<K>::namespaced(self.client.clone(), &self.name)
            .get_opt(name)
            .await
            .expect("get")
    }

    /// Waits until the object `name` of kind `K` satisfies `check` (a missing object does
    /// not), within `timeout`.
    pub async fn wait_for<K>(&self, name: &str, what: &str, timeout: Duration, check: impl Fn(&K) -> bool) -> K
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api = Api::<K>::namespaced(self.client.clone(), &self.name);
        eventually(&format!("{name}: {what}"), timeout, || async {
            api.get_opt(name).await.ok().flatten().filter(&check)
        })
        .await
    }

    /// Waits until `name` is Ready for its current generation.
    pub async fn wait_ready(&self, name: &str) -> ImageAccess {
        self.wait_ready_within(name, WAIT).await
    }

    pub async fn wait_ready_within(&self, name: &str, timeout: Duration) -> ImageAccess {
        self.wait_for(name, "Ready", timeout, is_ready).await
    }

    /// Waits until `name` has the condition `type_` True for its current generation.
    pub async fn wait_condition(&self, name: &str, type_: &str) -> ImageAccess {
        self.wait_reason(name, type_, None).await
    }

    /// Waits until `name` has the condition `type_` True (with `reason`, if given) for its
    /// current generation.
    pub async fn wait_reason(&self, name: &str, type_: &str, reason: Option<&str>) -> ImageAccess {
        let what = format!("{type_} {reason:?}");
        self.wait_for(name, &what, WAIT, |o: &ImageAccess| {
            has_reason(o, type_, "True", reason)
        })
        .await
    }

    /// Waits until the object `name` of kind `K` no longer exists.
    pub async fn wait_gone_of<K>(&self, name: &str)
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api = Api::<K>::namespaced(self.client.clone(), &self.name);
        eventually(&format!("{name} deleted"), WAIT, || async {
            matches!(api.get_opt(name).await, Ok(None)).then_some(())
        })
        .await
    }

    /// Waits until `name` no longer exists (its finalizer is gone).
    pub async fn wait_gone(&self, name: &str) {
        self.wait_gone_of::<ImageAccess>(name).await
    }
}

/// How long the end-to-end tests wait for the operator.
pub const WAIT: Duration = Duration::from_secs(60);

/// An ImageAccess manifest as a user writes it.
pub fn manifest(name: &str, image: &str, member: &str, cloud: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageAccess\nmetadata:\n  name: {name}\nspec:\n  imageId: {image}\n  memberId: {member}\n  cloudCredentialsRef:\n    secretName: {SECRET}\n    cloudName: {cloud}\n{extra_spec}"
    )
}

/// `manifest` with `labels` (YAML flow-map entries, e.g. `shard: a`) on the object.
pub fn with_labels(manifest: &str, labels: &str) -> String {
    if labels.is_empty() {
        return manifest.to_string();
    }
    manifest.replacen("metadata:\n", &format!("metadata:\n  labels: {{{labels}}}\n"), 1)
}

/// Polls `check` every 200 ms until it returns Some, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn condition(object: &impl Managed, type_: &str) -> Option<(String, String, String)> {
    object
        .condition(type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn is_ready(object: &impl Managed) -> bool {
    has_reason(object, "Ready", "True", None)
}

/// Whether `object`'s status is for its current generation and has condition `type_` with
/// `status` (and `reason`, if given).
pub fn has_reason(object: &impl Managed, type_: &str, status: &str, reason: Option<&str>) -> bool {
    object
        .condition(type_)
        .is_some_and(|c| c.status == status && reason.is_none_or(|r| c.reason == r))
        && object.membership_status().and_then(|s| s.observed_generation) == object.meta().generation
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The operator binary, run out of cluster with the test kubeconfig. Killed on drop.
pub struct Operator {
    child: Child,
    pub metrics_port: u16,
    pub health_port: u16,
    pub log_path: std::path::PathBuf,
}

impl Operator {
    /// Watches `namespace` only (so tests running side by side do not meet), with the
    /// production defaults (resync 10 min, stalled re-check 5 min): only events and backoff can
    /// make a test pass in time.
    pub fn start(namespace: &str, extra: &[&str]) -> Operator {
        let mut args = vec!["--watch-namespaces", namespace];
        args.extend_from_slice(extra);
        Operator::spawn(&args, None)
    }

    /// Like [`Operator::start`], with short periods (resync 4 s, stalled re-check 3 s): for the
    /// tests of the periodic re-check itself (drift repair, no hot loop when stalled).
    pub fn start_fast(namespace: &str, extra: &[&str]) -> Operator {
        let mut args = vec![
            "--watch-namespaces",
            namespace,
            "--resync-period",
            "4s",
            "--stalled-recheck",
            "3s",
            "--max-backoff",
            "3s",
        ];
        args.extend_from_slice(extra);
        Operator::spawn(&args, None)
    }

    /// The operator with `args`, as the identity of `kubeconfig` (default: the admin's, from
    /// KUBECONFIG).
    pub fn spawn(args: &[&str], kubeconfig: Option<&std::path::Path>) -> Operator {
        Self::spawn_binary(&[env!("CARGO_BIN_EXE_image-access-operator")], args, kubeconfig)
    }

    /// An operator binary other than this build's: `program` is the command that runs it (an
    /// emulator and a path, for another platform's binary).
    pub fn spawn_binary(program: &[&str], args: &[&str], kubeconfig: Option<&std::path::Path>) -> Operator {
        let metrics_port = free_port();
        let health_port = free_port();
        let state = std::env::var("IAO_E2E_STATE").unwrap_or_else(|_| "/tmp".into());
        let log_dir = std::path::Path::new(&state).join("logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let log_path = log_dir.join(format!("{}.log", unique("operator")));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut all_args: Vec<String> = vec![
            "--metrics-addr".into(),
            format!("127.0.0.1:{metrics_port}"),
            "--health-addr".into(),
            format!("127.0.0.1:{health_port}"),
        ];
        all_args.extend(args.iter().map(|s| s.to_string()));
        let mut command = Command::new(program[0]);
        command
            .args(&program[1..])
            .args(&all_args)
            .env("RUST_LOG", "info,image_access_operator=debug")
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if let Some(path) = kubeconfig {
            command.env("KUBECONFIG", path);
        }
        let child = command.spawn().expect("start the operator");
        Operator {
            child,
            metrics_port,
            health_port,
            log_path,
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` (`TERM`, `KILL`, `STOP`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits up to `timeout` for the process to exit; its exit status, if it did.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if started.elapsed() > timeout {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get(&self, port: u16, path: &str) -> Option<(u16, String)> {
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .ok()?
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// /metrics as the operator serves it now. A page that does not answer 200 fails the test:
    /// an empty page would read as zeros, and pass every "nothing happened" check.
    pub async fn metrics(&self) -> String {
        match self.get(self.metrics_port, "/metrics").await {
            Some((200, body)) => body,
            other => panic!(
                "the operator's /metrics (127.0.0.1:{}) did not answer 200: {other:?}\n{}",
                self.metrics_port,
                self.log_for_message()
            ),
        }
    }

    /// /metrics, or None while it does not answer 200: for waits, where "not yet" is an answer.
    pub async fn try_metrics(&self) -> Option<String> {
        self.get(self.metrics_port, "/metrics")
            .await
            .filter(|(code, _)| *code == 200)
            .map(|(_, body)| body)
    }

    /// The value of one sample line of /metrics, e.g.
    /// `controller_runtime_reconcile_total{controller="imageaccess",result="success"}` (see
    /// [`metric_value`]).
    pub async fn metric(&self, sample: &str) -> f64 {
        metric_value(&self.metrics().await, sample)
    }

    /// [`Operator::metric`], or None while /metrics does not answer: for waits.
    pub async fn try_metric(&self, sample: &str) -> Option<f64> {
        self.try_metrics().await.map(|text| metric_value(&text, sample))
    }

    pub async fn wait_ready(&self) {
        let port = self.health_port;
        eventually("operator /readyz", Duration::from_secs(30), || async move {
            self.get(port, "/readyz").await.filter(|(code, _)| *code == 200)
        })
        .await;
    }

    /// The operator's log. A missing or unreadable log fails the test: read as empty, it would
    /// pass every check of what the log lacks.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path)
            .unwrap_or_else(|e| panic!("the operator's log {}: {e}", self.log_path.display()))
    }

    /// The operator's log, which must show a reconcile of `object` (the `reconcile` span of the
    /// text format names it): evidence that it is the operator's log and covers the object's
    /// lifecycle, so that a check of what it lacks means something.
    pub fn log_covering(&self, object: &str) -> String {
        let log = self.log();
        let span = format!("object={object}");
        let shown = log.match_indices(&span).any(|(at, _)| {
            log[at + span.len()..]
                .chars()
                .next()
                .is_some_and(|c| c == '}' || c == ' ' || c == ',')
        });
        assert!(
            shown,
            "the operator's log {} shows no reconcile of {object} ({span}): not the log of the run?\n{log}",
            self.log_path.display()
        );
        log
    }

    /// The log for an assertion's message: never panics (a failed read is said in its place),
    /// so that the assertion's own message is not lost. Never use it for a check.
    pub fn log_for_message(&self) -> String {
        std::fs::read_to_string(&self.log_path)
            .unwrap_or_else(|e| format!("(the operator's log {} cannot be read: {e})", self.log_path.display()))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The metrics the operator registers (their names are quoted in src/metrics.rs).
const OPERATOR_METRICS: &str = include_str!("../../src/metrics.rs");

/// The value of one sample of a /metrics page. A labelled sample appears on first use (and
/// prometheus-client declares a family only once it has one), so an absent one is 0, but only
/// on an OpenMetrics page (it ends with `# EOF`) and for a metric the page declares or the
/// operator registers: a misspelled sample, or a page that is not the operator's, fails the
/// test instead of reading as zero.
pub fn metric_value(text: &str, sample: &str) -> f64 {
    let name = sample.split('{').next().unwrap_or(sample).trim();
    let families: Vec<&str> = ["_total", "_count", "_sum", "_bucket", "_created", ""]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .collect();
    let declared = families.iter().any(|family| {
        let declaration = format!("# TYPE {family} ");
        text.lines().any(|line| line.starts_with(&declaration))
    });
    let registered = families
        .iter()
        .any(|family| OPERATOR_METRICS.contains(&format!("\"{family}\"")));
    let openmetrics = text.trim_end().ends_with("# EOF");
    assert!(
        openmetrics && (declared || registered),
        "/metrics neither declares nor is known to register {name} (sample {sample}): a misspelled sample, or not the operator's page?\n{text}"
    );
    text.lines()
        .find_map(|line| {
            line.strip_prefix(sample)
                .and_then(|rest| rest.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// A kubeconfig file that authenticates with a token of service account `namespace/name`
/// (from the TokenRequest API), against the test apiserver.
pub fn service_account_kubeconfig(namespace: &str, name: &str) -> std::path::PathBuf {
    let token = kubectl_ok(&["create", "token", name, "-n", namespace, "--duration=1h"], None);
    let server = kubectl_ok(
        &[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
        None,
    );
    let ca = kubectl_ok(
        &[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority}",
        ],
        None,
    );
    let state = std::env::var("IAO_E2E_STATE").unwrap_or_else(|_| "/tmp".into());
    let path = std::path::Path::new(&state).join(format!("{}.kubeconfig", unique(name)));
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: sa\n  user:\n    token: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: sa}}\ncurrent-context: c\n",
        token.trim()
    );
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

/// A TCP proxy on loopback in front of `target` that a test can cut: every connection through
/// it is dropped and new ones are refused, as when a node loses the network.
pub struct Proxy {
    pub port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let (cut, watching) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let mut stop = watching.clone();
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stop.wait_for(|cut| *cut) => return, // dropping the listener refuses
                };
                let Ok((mut inbound, _)) = accepted else { continue };
                let mut stop = watching.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = stop.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Proxy { port, cut }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }
}

/// A kubeconfig like the admin's, whose server is `127.0.0.1:port` (a [`Proxy`]).
pub fn kubeconfig_through(port: u16) -> std::path::PathBuf {
    let original = std::env::var("KUBECONFIG").expect("KUBECONFIG");
    let text = std::fs::read_to_string(&original).expect("kubeconfig");
    let api_port = std::env::var("IAO_APISERVER_PORT").unwrap_or_else(|_| "16443".into());
    let text = text.replace(
        &format!("https://127.0.0.1:{api_port}"),
        &format!("https://127.0.0.1:{port}"),
    );
    let state = std::env::var("IAO_E2E_STATE").unwrap_or_else(|_| "/tmp".into());
    let path = std::path::Path::new(&state).join(format!("{}.kubeconfig", unique("proxied")));
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}
