//! Prometheus metrics. Reconcile metrics carry controller-runtime's names, so dashboards made
//! for Go operators work unchanged. No label ever holds an object name or a project ID.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub controller: &'static str,
    /// success, error, requeue_after (controller-runtime's values).
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub service: &'static str,
    pub operation: &'static str,
    /// The HTTP status, or `error` when no answer came.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub service: &'static str,
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    /// success or failure.
    pub result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

pub struct Metrics {
    registry: Registry,
    pub reconcile_total: Family<ReconcileLabels, Counter>,
    pub reconcile_errors_total: Family<ControllerLabels, Counter>,
    pub reconcile_time_seconds: HistogramFamily<ControllerLabels>,
    pub active_workers: Family<ControllerLabels, Gauge>,
    pub max_concurrent_reconciles: Family<ControllerLabels, Gauge>,
    pub openstack_requests_total: Family<RequestLabels, Counter>,
    pub openstack_request_duration_seconds: HistogramFamily<OperationLabels>,
    pub keystone_authentications_total: Family<AuthLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let reconcile_total = Family::default();
        registry.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            Clone::clone(&reconcile_total),
        );
        let reconcile_errors_total = Family::default();
        registry.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            Clone::clone(&reconcile_errors_total),
        );
        let reconcile_time_seconds = HistogramFamily::<ControllerLabels>::new_with_constructor(latency_histogram);
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            Clone::clone(&reconcile_time_seconds),
        );
        let active_workers = Family::default();
        registry.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            Clone::clone(&active_workers),
        );
        let max_concurrent_reconciles = Family::default();
        registry.register(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            Clone::clone(&max_concurrent_reconciles),
        );
        let openstack_requests_total = Family::default();
        registry.register(
            "image_access_operator_openstack_requests",
            "OpenStack API requests by service, operation and HTTP status",
            Clone::clone(&openstack_requests_total),
        );
        let openstack_request_duration_seconds =
            HistogramFamily::<OperationLabels>::new_with_constructor(latency_histogram);
        registry.register(
            "image_access_operator_openstack_request_duration_seconds",
            "Latency of OpenStack API requests by service and operation",
            Clone::clone(&openstack_request_duration_seconds),
        );
        let keystone_authentications_total = Family::default();
        registry.register(
            "image_access_operator_keystone_authentications",
            "Keystone token requests by result",
            Clone::clone(&keystone_authentications_total),
        );
        Metrics {
            registry,
            reconcile_total,
            reconcile_errors_total,
            reconcile_time_seconds,
            active_workers,
            max_concurrent_reconciles,
            openstack_requests_total,
            openstack_request_duration_seconds,
            keystone_authentications_total,
        }
    }
}

impl Metrics {
    /// The text exposition format served on `/metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn observe_request(
        &self,
        service: &'static str,
        operation: &'static str,
        code: Option<u16>,
        elapsed: Duration,
    ) {
        let code = code.map_or_else(|| "error".to_string(), |c| c.to_string());
        self.openstack_requests_total
            .get_or_create(&RequestLabels {
                service,
                operation,
                code,
            })
            .inc();
        self.openstack_request_duration_seconds
            .get_or_create(&OperationLabels { service, operation })
            .observe(elapsed.as_secs_f64());
    }

    pub fn observe_authentication(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.keystone_authentications_total
            .get_or_create(&AuthLabels { result })
            .inc();
    }

    /// The labels of one controller's metrics (`imageaccess`, `imageaccessaccept`).
    pub fn controller_labels(controller: &'static str) -> ControllerLabels {
        ControllerLabels { controller }
    }
}
