//! Command-line flags, each also readable from an environment variable (for the Deployment).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Manages OpenStack Glance image memberships declared as ImageAccess objects.
#[derive(Parser, Debug, Clone)]
#[command(name = "image-access-operator", version)]
pub struct Config {
    /// Without a command, the operator runs.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// How often every object is re-checked against Glance (drift detection), e.g. 10m, 30s.
    #[arg(long, env = "IAO_RESYNC_PERIOD", default_value = "10m", value_parser = parse_duration)]
    pub resync_period: Duration,

    /// How often an object that needs a human (Stalled) is re-checked, e.g. 5m.
    #[arg(long, env = "IAO_STALLED_RECHECK", default_value = "5m", value_parser = parse_duration)]
    pub stalled_recheck: Duration,

    /// Longest wait between retries after transient errors.
    #[arg(long, env = "IAO_MAX_BACKOFF", default_value = "5m", value_parser = parse_duration)]
    pub max_backoff: Duration,

    /// OpenStack requests in flight at once (the load the operator puts on the cloud); four times
    /// as many objects are at work at once, so that Kubernetes writes overlap OpenStack calls.
    #[arg(long, env = "IAO_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,

    /// Limit on each OpenStack HTTP request.
    #[arg(long, env = "IAO_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Only watch these namespaces, comma-separated (default: all namespaces). With a list the
    /// operator needs rights in those namespaces only.
    #[arg(long, env = "IAO_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,

    /// Only handle objects matching this label selector, e.g. `shard=a` (to split objects
    /// across several operator instances).
    #[arg(long, env = "IAO_LABEL_SELECTOR")]
    pub label_selector: Option<String>,

    /// Address of /healthz and /readyz.
    #[arg(long, env = "IAO_HEALTH_ADDR", default_value = "0.0.0.0:8081")]
    pub health_addr: SocketAddr,

    /// Address of /metrics.
    #[arg(long, env = "IAO_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Log format; filter with RUST_LOG (default info).
    #[arg(long, env = "IAO_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Run only while holding a Lease, so that standby replicas take over when the leader stops.
    #[arg(long, env = "IAO_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,

    /// Namespace of the leader-election Lease (the release namespace in a Deployment).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub leader_election_namespace: String,

    /// Name of the leader-election Lease; instances that shard by selector or namespace need
    /// one each.
    #[arg(long, env = "IAO_LEADER_ELECTION_ID", default_value = "image-access-operator")]
    pub leader_election_id: String,

    /// Seconds a leader's Lease stays valid without renewal: how long a standby waits after the
    /// leader dies. A leader that cannot renew for two thirds of it stops reconciling (and
    /// exits), so it never acts after a standby may have taken over; on SIGTERM it releases the
    /// Lease and a standby takes over at once.
    #[arg(long, env = "IAO_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration_seconds: u64,

    /// Name of this instance in events and in the Lease (the pod name in a Deployment).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Print manifests (YAML, on stdout) for image memberships that exist already, from Glance
    /// or from a Terraform/OpenTofu state; the operator adopts them without changing Glance.
    Export(crate::export::ExportArgs),
}

/// `90`, `90s`, `15m`, `2h`, `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 10m or 1h"))?;
    let duration = match unit {
        "" | "s" => Duration::from_secs(value),
        "ms" => Duration::from_millis(value),
        "m" => Duration::from_secs(value * 60),
        "h" => Duration::from_secs(value * 3600),
        _ => return Err(format!("{text:?}: unit must be ms, s, m or h")),
    };
    if duration.is_zero() {
        return Err("a duration must be greater than zero".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten minutes").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn flags_have_sensible_defaults() {
        let config = Config::try_parse_from(["image-access-operator"]).expect("defaults");
        assert_eq!(config.resync_period, Duration::from_secs(600));
        assert_eq!(config.concurrency, 8);
        assert_eq!(config.health_addr.port(), 8081);
        assert_eq!(config.metrics_addr.port(), 8080);
        let config =
            Config::try_parse_from(["x", "--label-selector", "shard=a", "--log-format", "json"]).expect("flags");
        assert_eq!(config.label_selector.as_deref(), Some("shard=a"));
        assert_eq!(config.log_format, LogFormat::Json);
        let config = Config::try_parse_from(["x", "--watch-namespaces", "a,b"]).expect("flags");
        assert_eq!(config.watch_namespaces, vec!["a".to_string(), "b".to_string()]);
    }
}
