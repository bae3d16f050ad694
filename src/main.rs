//! The operator binary: wires configuration, logging, the Kubernetes client, the HTTP endpoints
//! and the controller. Everything else lives in the library.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Parser;
use image_access_operator::api::{ImageAccess, ImageAccessAccept, ImageShare};
use image_access_operator::config::{Command, Config};
use image_access_operator::controller::{self, Context, Settings};
use image_access_operator::credentials::hold_finalizer;
use image_access_operator::leader::{Election, run_as_leader};
use image_access_operator::metrics::Metrics;
use image_access_operator::openstack::{ClientSettings, OpenStack};
use image_access_operator::runtime::WatchScope;
use image_access_operator::{server, telemetry};
use kube::runtime::events::Reporter;
use kube::{Api, CustomResourceExt};

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(Command::Export(args)) = &config.command {
        return export(&runtime, args);
    }
    telemetry::init(config.log_format);
    match runtime.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Display, not Debug: the message is written for a person.
            tracing::error!("{e}");
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let client = kube::Client::try_default().await.map_err(|e| {
        format!("cannot reach Kubernetes ({e}): run in a pod with a service account, or set KUBECONFIG")
    })?;
    if config.upgrade_crds {
        image_access_operator::crd_upgrade::upgrade_crds(&client).await?;
    }
    if !crd_installed::<ImageAccess>(&client, &config.watch_namespaces).await? {
        return Err(not_installed::<ImageAccess>().into());
    }
    // Helm installs the CRDs of its crds/ folder on install only: after a `helm upgrade` from a
    // version without ImageAccessAccept, its CRD is missing until applied by hand. ImageAccess
    // objects are served meanwhile (with no CRD there are no accept objects to miss).
    let skip_accepts = !crd_installed::<ImageAccessAccept>(&client, &config.watch_namespaces).await?;
    if skip_accepts {
        tracing::warn!(
            "ImageAccessAccept objects are not served: {}; restart the operator once it is",
            not_installed::<ImageAccessAccept>()
        );
    }
    let skip_shares = !crd_installed::<ImageShare>(&client, &config.watch_namespaces).await?;
    if skip_shares {
        tracing::warn!(
            "ImageShare objects are not served: {}; restart the operator once it is",
            not_installed::<ImageShare>()
        );
    }

    let metrics = Arc::new(Metrics::default());
    let openstack = OpenStack::new(
        ClientSettings {
            request_timeout: config.request_timeout,
            max_in_flight: usize::from(config.concurrency),
            allow_insecure_tls: config.allow_insecure_tls,
            ..Default::default()
        },
        metrics.clone(),
    );
    let settings = Settings {
        resync_period: config.resync_period,
        stalled_recheck: config.stalled_recheck,
        backoff_max: config.max_backoff,
        concurrency: config.concurrency,
        ..Default::default()
    };
    let reporter = Reporter {
        controller: "image-access-operator".into(),
        instance: config.instance.clone(),
    };
    let hold = hold_finalizer(config.label_selector.as_deref());
    let ctx = Arc::new(Context::new(
        client,
        openstack,
        metrics.clone(),
        settings,
        reporter,
        hold,
    ));
    let ready = Arc::new(AtomicBool::new(false));

    let health = tokio::spawn(server::serve(config.health_addr, server::health_router(ready.clone())));
    let metrics_server = tokio::spawn(server::serve(config.metrics_addr, server::metrics_router(metrics)));
    tracing::info!(
        namespaces = if config.watch_namespaces.is_empty() { "(all)".to_string() } else { config.watch_namespaces.join(",") },
        selector = config.label_selector.as_deref().unwrap_or("(none)"),
        resync = ?config.resync_period,
        concurrency = config.concurrency,
        "starting"
    );
    let scope = WatchScope {
        namespaces: config.watch_namespaces.clone(),
        label_selector: config.label_selector.clone(),
        skip_accepts,
        skip_shares,
    };
    let client = ctx.client.clone();
    // One signal, seen by whoever is waiting: the standby loop, or the controllers.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping: finishing the reconciles in flight");
        let _ = stop.send(true);
    });
    let stopped = move || {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    };
    let work_ready = ready.clone();
    let work_stopped = stopped.clone();
    let work = move || controller::run(ctx, scope, work_ready, work_stopped());
    let operator = async {
        if config.leader_elect {
            let election = Election {
                namespace: config.leader_election_namespace.clone(),
                lease_name: config.leader_election_id.clone(),
                identity: config.instance.clone().unwrap_or_else(default_identity),
                lease_duration: Duration::from_secs(config.lease_duration_seconds),
            };
            run_as_leader(client, election, ready, stopped(), work).await
        } else {
            work().await;
            Ok(())
        }
    };
    tokio::select! {
        result = operator => result?,
        result = health => return Err(format!("health server stopped: {}", flatten(result)).into()),
        result = metrics_server => return Err(format!("metrics server stopped: {}", flatten(result)).into()),
    }
    tracing::info!("stopped");
    Ok(())
}

/// `image-access-operator export`: manifests on stdout, what was skipped and why on stderr.
fn export(
    runtime: &tokio::runtime::Runtime,
    args: &image_access_operator::export::ExportArgs,
) -> std::process::ExitCode {
    match runtime.block_on(image_access_operator::export::run(args)) {
        Ok(exported) => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout
                .write_all(exported.manifests.as_bytes())
                .and_then(|()| stdout.flush())
            {
                eprintln!("error: cannot write the manifests: {e}");
                return std::process::ExitCode::FAILURE;
            }
            for note in exported.notes {
                eprintln!("{note}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A server task's end, as one sentence.
fn flatten(result: Result<std::io::Result<()>, tokio::task::JoinError>) -> String {
    match result {
        Ok(Ok(())) => "it ended".into(),
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    }
}

/// Whether the CRD of kind `K` is installed (the operator never installs it); any other failure
/// is an error that says what to check. Lists in every namespace the operator will watch, so
/// namespace-scoped rights suffice and a namespace without them is named at start-up.
async fn crd_installed<K>(client: &kube::Client, namespaces: &[String]) -> Result<bool, Box<dyn std::error::Error>>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let apis: Vec<Api<K>> = if namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        namespaces
            .iter()
            .map(|namespace| Api::namespaced(client.clone(), namespace))
            .collect()
    };
    let kind = K::kind(&());
    for api in apis {
        match api.list(&kube::api::ListParams::default().limit(1)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
            Err(kube::Error::Api(status)) if status.code == 403 => {
                return Err(format!(
                    "the operator may not list {kind} objects ({}): check its RBAC (the Helm chart grants it)",
                    status.message
                )
                .into());
            }
            Err(e) => return Err(format!("cannot list {kind} objects: {e}").into()),
        }
    }
    Ok(true)
}

/// What to do about a missing CRD.
fn not_installed<K: CustomResourceExt>() -> String {
    format!(
        "the CRD {} is not installed: kubectl apply --server-side -f crds/ (the Helm chart installs it too)",
        K::crd_name()
    )
}

/// A unique identity when no pod name is given: host name and process ID.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
