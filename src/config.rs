//! Command-line flags, each also readable from an environment variable (for the Deployment).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::leader::LEASE_DURATION_SECONDS;

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

    /// How often every object is re-checked against Glance (drift detection), e.g. 10m, 30s;
    /// from 1s to 24h.
    #[arg(long, env = "IAO_RESYNC_PERIOD", default_value = "10m", value_parser = RESYNC_PERIOD.parser())]
    pub resync_period: Duration,

    /// How often an object that needs a human (Stalled) is re-checked, e.g. 5m; from 1s to 24h.
    #[arg(long, env = "IAO_STALLED_RECHECK", default_value = "5m", value_parser = STALLED_RECHECK.parser())]
    pub stalled_recheck: Duration,

    /// Longest wait between retries after transient errors; from 1s to 24h.
    #[arg(long, env = "IAO_MAX_BACKOFF", default_value = "5m", value_parser = MAX_BACKOFF.parser())]
    pub max_backoff: Duration,

    /// OpenStack requests in flight at once (the load the operator puts on the cloud); four times
    /// as many objects are at work at once, so that Kubernetes writes overlap OpenStack calls.
    #[arg(long, env = "IAO_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,

    /// Limit on each OpenStack HTTP request; from 1s to 10m.
    #[arg(long, env = "IAO_REQUEST_TIMEOUT", default_value = "30s", value_parser = REQUEST_TIMEOUT.parser())]
    pub request_timeout: Duration,

    /// Let a cloud entry turn TLS verification off (`verify: false`, `insecure: true`). Without
    /// it such an entry is refused (Stalled, saying to put the CA in the Secret's cacert key):
    /// anyone on the way could read the credentials.
    #[arg(long, env = "IAO_ALLOW_INSECURE_TLS", default_value_t = false)]
    pub allow_insecure_tls: bool,

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
    /// Lease and a standby takes over at once. From 3 to 3600 (seconds).
    #[arg(
        long,
        env = "IAO_LEASE_DURATION",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(LEASE_DURATION_SECONDS)
    )]
    pub lease_duration_seconds: u64,

    /// At start, apply this version's CRDs over older ones (never over a newer version's): Helm
    /// upgrades no CRD. Needs get and update on the three CRDs (the chart's crds.upgrade).
    #[arg(long, env = "IAO_UPGRADE_CRDS", default_value_t = false)]
    pub upgrade_crds: bool,

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

/// The values a duration flag accepts, both ends included.
#[derive(Clone, Copy, Debug)]
pub struct DurationRange {
    pub min: Duration,
    pub max: Duration,
}

/// At least 1 s: below it a period is a hot loop against Glance (and shorter than the first
/// retry after a failure, 1 s). At most a day: a longer period no longer finds drift in any
/// useful time, and the bound keeps the requeue arithmetic far from where it fails (tokio's
/// timers end at about two years; `Instant + Duration` and `Duration::mul_f64`, the jitter,
/// panic on overflow).
pub const RESYNC_PERIOD: DurationRange = DurationRange {
    min: Duration::from_secs(1),
    max: Duration::from_secs(24 * 3600),
};

/// As [`RESYNC_PERIOD`]: an object waiting for a human is looked at again at most daily, and
/// never in a loop tighter than the first retry after a failure.
pub const STALLED_RECHECK: DurationRange = RESYNC_PERIOD;

/// At least the first retry after a failure (1 s), which it caps; at most a day.
pub const MAX_BACKOFF: DurationRange = RESYNC_PERIOD;

/// At least 1 s: a Keystone token request on a loaded cloud takes hundreds of milliseconds. At
/// most 10 minutes: a hung request holds one of the `--concurrency` slots all that time.
pub const REQUEST_TIMEOUT: DurationRange = DurationRange {
    min: Duration::from_secs(1),
    max: Duration::from_secs(600),
};

impl DurationRange {
    /// `text` as a duration (as [`parse_duration`] reads it, zero included) within the range;
    /// the error names the range.
    pub fn parse(&self, text: &str) -> Result<Duration, String> {
        let outside = || {
            format!(
                "{:?} is outside the allowed range: from {} to {}",
                text.trim(),
                show(self.min),
                show(self.max)
            )
        };
        match parse_duration_any(text) {
            Ok(duration) if duration < self.min || duration > self.max => Err(outside()),
            Ok(duration) => Ok(duration),
            Err(Unreadable::TooLarge) => Err(outside()),
            Err(Unreadable::Text(message)) => Err(message),
        }
    }

    /// A clap value parser for this range.
    pub fn parser(self) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
        move |text: &str| self.parse(text)
    }
}

/// A duration as a flag would be written: `24h`, `10m`, `1s`, `1500ms`.
fn show(duration: Duration) -> String {
    let millis = duration.as_millis();
    match millis {
        m if m % 3_600_000 == 0 => format!("{}h", m / 3_600_000),
        m if m % 60_000 == 0 => format!("{}m", m / 60_000),
        m if m % 1000 == 0 => format!("{}s", m / 1000),
        m => format!("{m}ms"),
    }
}

/// `90`, `90s`, `15m`, `2h`, `500ms`, greater than zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration_any(text).map_err(|e| match e {
        Unreadable::TooLarge => format!("{:?} is too large", text.trim()),
        Unreadable::Text(message) => message,
    })?;
    if duration.is_zero() {
        return Err("a duration must be greater than zero".into());
    }
    Ok(duration)
}

/// Why a duration could not be read.
enum Unreadable {
    /// A number too large for its unit (a `Duration` holds `u64::MAX` seconds).
    TooLarge,
    Text(String),
}

/// `90`, `90s`, `15m`, `2h`, `500ms`, zero included; a number too large for its unit is an
/// error, never an overflow.
fn parse_duration_any(text: &str) -> Result<Duration, Unreadable> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = match number.parse() {
        Ok(value) => value,
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => return Err(Unreadable::TooLarge),
        Err(_) => {
            return Err(Unreadable::Text(format!(
                "{text:?} is not a duration like 30s, 10m or 1h"
            )));
        }
    };
    let seconds = |per_unit: u64| {
        value
            .checked_mul(per_unit)
            .map(Duration::from_secs)
            .ok_or(Unreadable::TooLarge)
    };
    match unit {
        "" | "s" => Ok(Duration::from_secs(value)),
        "ms" => Ok(Duration::from_millis(value)),
        "m" => seconds(60),
        "h" => seconds(3600),
        _ => Err(Unreadable::Text(format!("{text:?}: unit must be ms, s, m or h"))),
    }
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
    fn huge_durations_are_an_error_not_an_overflow() {
        for text in [
            "18446744073709551615h",
            "18446744073709551615m",
            "5124095576030432h",
            "307445734561825861m",
            "18446744073709551616",
            "99999999999999999999999s",
        ] {
            let refused = parse_duration(text).expect_err(text);
            assert!(refused.contains("too large"), "{text}: {refused}");
        }
        assert_eq!(
            parse_duration("18446744073709551615s"),
            Ok(Duration::from_secs(u64::MAX)),
            "the largest number of seconds is still a duration (the ranges refuse it)"
        );
    }

    /// `flag value` parsed alone: the flag's value, or clap's error message.
    fn parse_flag(flag: &str, value: &str) -> Result<Config, String> {
        Config::try_parse_from(["image-access-operator", flag, value]).map_err(|e| e.to_string())
    }

    #[test]
    fn every_duration_flag_is_bounded_and_says_so() {
        // (flag, the edges it accepts, values just outside, the range as the message names it)
        let flags = [
            (
                "--resync-period",
                RESYNC_PERIOD,
                ["1s", "24h"],
                ["0", "999ms", "86401s", "18446744073709551615h"],
                "from 1s to 24h",
            ),
            (
                "--stalled-recheck",
                STALLED_RECHECK,
                ["1000ms", "1440m"],
                ["0s", "999ms", "25h", "99999999999999999999"],
                "from 1s to 24h",
            ),
            (
                "--max-backoff",
                MAX_BACKOFF,
                ["1", "86400"],
                ["0ms", "999ms", "86401", "307445734561825861m"],
                "from 1s to 24h",
            ),
            (
                "--request-timeout",
                REQUEST_TIMEOUT,
                ["1s", "10m"],
                ["0", "999ms", "601s", "18446744073709551616ms"],
                "from 1s to 10m",
            ),
        ];
        let value = |config: &Config, flag: &str| match flag {
            "--resync-period" => config.resync_period,
            "--stalled-recheck" => config.stalled_recheck,
            "--max-backoff" => config.max_backoff,
            "--request-timeout" => config.request_timeout,
            other => unreachable!("{other}"),
        };
        for (flag, range, edges, outside, named) in flags {
            let [low, high] = edges;
            let config = parse_flag(flag, low).unwrap_or_else(|e| panic!("{flag} {low}: {e}"));
            assert_eq!(value(&config, flag), range.min, "{flag} {low}");
            let config = parse_flag(flag, high).unwrap_or_else(|e| panic!("{flag} {high}: {e}"));
            assert_eq!(value(&config, flag), range.max, "{flag} {high}");
            for text in outside {
                let refused = parse_flag(flag, text).expect_err(&format!("{flag} {text} accepted"));
                assert!(refused.contains(flag), "{flag} {text}: names the flag: {refused}");
                assert!(refused.contains(named), "{flag} {text}: names the range: {refused}");
            }
        }
    }

    #[test]
    fn the_lease_duration_is_bounded_and_says_so() {
        for (value, expected) in [("3", 3), ("15", 15), ("3600", 3600)] {
            let config = parse_flag("--lease-duration-seconds", value).expect(value);
            assert_eq!(config.lease_duration_seconds, expected);
        }
        for value in ["0", "2", "3601", "2147483648", "18446744073709551615"] {
            let refused = parse_flag("--lease-duration-seconds", value).expect_err(value);
            assert!(refused.contains("--lease-duration-seconds"), "{value}: {refused}");
            assert!(refused.contains("3..=3600"), "{value}: names the range: {refused}");
        }
        for value in ["-1", "18446744073709551616", "15s"] {
            parse_flag("--lease-duration-seconds", value).expect_err(value);
        }
        // What the leader derives from the accepted ends fits the Lease and never is zero.
        for seconds in [3, 3600] {
            let election = crate::leader::Election {
                namespace: "ns".into(),
                lease_name: "lease".into(),
                identity: "me".into(),
                lease_duration: Duration::from_secs(seconds),
            };
            election.check().expect("accepted by the leader too");
            assert!(!election.retry_period().is_zero() && election.retry_period() < election.renew_deadline());
        }
    }

    #[test]
    fn flags_have_sensible_defaults() {
        let config = Config::try_parse_from(["image-access-operator"]).expect("defaults");
        assert_eq!(config.resync_period, Duration::from_secs(600));
        assert_eq!(config.stalled_recheck, Duration::from_secs(300));
        assert_eq!(config.max_backoff, Duration::from_secs(300));
        assert_eq!(config.request_timeout, Duration::from_secs(30));
        assert_eq!(config.lease_duration_seconds, 15);
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
