//! Leader election on a Lease, as client-go's leaderelection does it: standby replicas wait;
//! the leader runs the controllers and renews the Lease; a leader that could not renew for the
//! renew deadline (shorter than the lease) stops before a standby may take over, so two never
//! reconcile at once; a leader that stops on purpose releases the Lease so a standby takes over
//! at once instead of waiting the lease out.
//!
//! Expiry is judged by this process's own clock from the moment it saw the record change
//! (client-go's observedTime), never by comparing another host's timestamps with ours.

use std::future::Future;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

use crate::runtime::FIELD_MANAGER;

/// The lease durations [`run_as_leader`] accepts, in seconds (`--lease-duration-seconds`). At
/// 3 s the renew deadline is 2 s and the retry period 400 ms: a few renewals fit in the
/// deadline; below it one slow API round trip would cost the leadership. At most an hour: the
/// longest a standby waits after a leader died without releasing the Lease. Both ends fit the
/// Lease's `leaseDurationSeconds` (an int32).
pub const LEASE_DURATION_SECONDS: RangeInclusive<u64> = 3..=3600;

pub struct Election {
    pub namespace: String,
    pub lease_name: String,
    pub identity: String,
    /// How long a Lease stays valid without renewal: a standby waits this long after the
    /// leader's last renewal.
    pub lease_duration: Duration,
}

impl Election {
    /// The leader gives up if it could not renew for this long: two thirds of the lease, as
    /// client-go's defaults (15 s lease, 10 s deadline). Divided first, so that no lease
    /// duration overflows.
    pub fn renew_deadline(&self) -> Duration {
        self.lease_duration / 3 * 2
    }

    /// How often the leader renews and a standby tries (client-go: 2 s of a 15 s lease).
    pub fn retry_period(&self) -> Duration {
        (self.lease_duration / 15 * 2).max(Duration::from_millis(200))
    }

    /// A lease outside [`LEASE_DURATION_SECONDS`] is refused: with a zero renew deadline every
    /// attempt would time out at once, and the instance would stand by for ever while
    /// reporting ready.
    pub fn check(&self) -> Result<(), LeaderError> {
        let whole_seconds = self.lease_duration.subsec_nanos() == 0;
        if whole_seconds && LEASE_DURATION_SECONDS.contains(&self.lease_duration.as_secs()) {
            return Ok(());
        }
        Err(LeaderError::LeaseDuration {
            duration: self.lease_duration,
            min: *LEASE_DURATION_SECONDS.start(),
            max: *LEASE_DURATION_SECONDS.end(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "could not renew the leader Lease {namespace}/{name} for {deadline:?}; stopping before a standby may take over, so that only one instance reconciles"
    )]
    Lost {
        namespace: String,
        name: String,
        deadline: Duration,
    },
    #[error("the leader Lease duration {duration:?} must be whole seconds from {min} to {max}")]
    LeaseDuration { duration: Duration, min: u64, max: u64 },
}

/// What a standby saw of the Lease last, and when (by its own clock).
struct Observed {
    record: Option<(Option<String>, Option<MicroTime>)>,
    at: Instant,
}

struct Elector {
    api: Api<Lease>,
    election: Election,
    observed: Observed,
}

impl Elector {
    fn spec(&self, previous: Option<&LeaseSpec>) -> LeaseSpec {
        lease_spec(
            &self.election.identity,
            self.election.lease_duration,
            previous,
            MicroTime(jiff::Timestamp::now()),
        )
    }

    /// Takes or renews the Lease if it is ours, free or expired. `Ok(false)`: someone else
    /// holds it.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let name = self.election.lease_name.clone();
        let Some(mut lease) = self.api.get_opt(&name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: Some(self.election.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(None)),
            };
            return match self.api.create(&self.post_params(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = Some((holder.clone(), spec.renew_time.clone()));
        if record != self.observed.record {
            self.observed = Observed {
                record,
                at: Instant::now(),
            };
        }
        let duration = Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0));
        let expired = self.observed.at.elapsed() >= duration;
        let mine = holder.as_deref() == Some(self.election.identity.as_str());
        if holder.is_some() && !mine && !expired {
            return Ok(false);
        }
        lease.spec = Some(self.spec(Some(&spec)));
        match self
            .api
            .replace(&self.election.lease_name, &self.post_params(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            // Someone else wrote it first.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up (holder cleared, 1 s duration, as client-go's ReleaseOnCancel).
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.election.lease_name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.election.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        lease.spec = Some(spec);
        self.api
            .replace(&self.election.lease_name, &self.post_params(), &lease)
            .await
            .map(|_| ())
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        }
    }
}

/// The Lease's spec when `identity` takes or renews it at `now`. Whatever another holder wrote
/// (`previous`) neither overflows nor wraps: the transitions count saturates.
fn lease_spec(identity: &str, lease_duration: Duration, previous: Option<&LeaseSpec>, now: MicroTime) -> LeaseSpec {
    let mine = previous.and_then(|p| p.holder_identity.as_deref()) == Some(identity);
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(lease_duration_seconds(lease_duration)),
        acquire_time: if mine {
            previous.and_then(|p| p.acquire_time.clone())
        } else {
            Some(now.clone())
        },
        renew_time: Some(now),
        lease_transitions: Some(
            previous
                .and_then(|p| p.lease_transitions)
                .unwrap_or(0)
                .saturating_add(i32::from(!mine && previous.is_some())),
        ),
        ..Default::default()
    }
}

/// `leaseDurationSeconds` (an int32) for `duration`: at least 1, at most `i32::MAX`, never
/// wrapped to a negative number.
fn lease_duration_seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// Waits for the Lease (or for `shutdown`), then runs `work` while renewing it. `work` must end
/// when `shutdown` resolves (graceful: in-flight reconciles finish); the Lease is then released.
/// If the Lease cannot be renewed for the renew deadline, `work` is dropped at once and
/// [`LeaderError::Lost`] returned. A lease duration outside [`LEASE_DURATION_SECONDS`] is
/// refused at once ([`LeaderError::LeaseDuration`]). While standing by, `ready` is true (a
/// standby is healthy); once leading, `work` sets it when its caches sync.
pub async fn run_as_leader<F: Future<Output = ()>>(
    client: kube::Client,
    election: Election,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()>,
    work: impl FnOnce() -> F,
) -> Result<(), LeaderError> {
    election.check()?;
    let retry = election.retry_period();
    let deadline = election.renew_deadline();
    let lost = LeaderError::Lost {
        namespace: election.namespace.clone(),
        name: election.lease_name.clone(),
        deadline,
    };
    let mut elector = Elector {
        api: Api::namespaced(client, &election.namespace),
        observed: Observed {
            record: None,
            at: Instant::now(),
        },
        election,
    };
    ready.store(true, Ordering::Relaxed);
    tracing::info!(lease = %elector.election.lease_name, identity = %elector.election.identity, "standing by for the leader Lease");
    tokio::pin!(shutdown);
    // A standby watches the Lease: when the leader releases it (a graceful stop), it tries at
    // once, before a replacement pod has even started, instead of at its next retry.
    let mut changes = kube::runtime::WatchStreamExt::default_backoff(kube::runtime::watcher::watch_object(
        elector.api.clone(),
        &elector.election.lease_name,
    ))
    .boxed();
    let mut acquired_at;
    loop {
        // The API server writes renewTime when the request arrives: the Lease runs from the
        // moment the attempt began, not from when the answer came back.
        acquired_at = Instant::now();
        let attempt = tokio::time::timeout(deadline, elector.try_acquire_or_renew());
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            result = attempt => match result {
                Ok(Ok(true)) => break,
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "leader election: could not read or take the Lease"),
                Err(_) => tracing::warn!("leader election: the API server did not answer in time"),
            },
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(retry) => {}
            changed = changes.next() => {
                if changed.is_none() {
                    // The watch ended: polling on the retry period still works.
                    changes = futures::stream::pending().boxed();
                }
            }
        }
    }
    tracing::info!(identity = %elector.election.identity, "became the leader");
    ready.store(false, Ordering::Relaxed);

    let mut last_renewed = acquired_at;
    let renewing = async {
        loop {
            tokio::time::sleep(retry).await;
            // Each attempt is bounded by what is left of the deadline, and counts from when it
            // began (see above).
            let left = deadline.saturating_sub(last_renewed.elapsed());
            let began = Instant::now();
            match tokio::time::timeout(left, elector.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_renewed = began,
                Ok(Ok(false)) => {
                    tracing::error!("another instance holds the leader Lease");
                    return;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "could not renew the leader Lease"),
                Err(_) => {}
            }
            if last_renewed.elapsed() >= deadline {
                return;
            }
        }
    };
    let outcome = {
        let work = work();
        tokio::pin!(work);
        tokio::pin!(renewing);
        tokio::select! {
            () = &mut work => Ok(()),
            () = &mut renewing => Err(lost),
        }
    };
    match &outcome {
        Ok(()) => match tokio::time::timeout(Duration::from_secs(5), elector.release()).await {
            Ok(Ok(())) => tracing::info!("released the leader Lease"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not release the leader Lease; a standby waits for it to expire")
            }
            Err(_) => tracing::warn!("releasing the leader Lease timed out; a standby waits for it to expire"),
        },
        Err(e) => tracing::error!("{e}"),
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_gives_up_well_before_a_standby_may_take_over() {
        let election = Election {
            namespace: "ns".into(),
            lease_name: "l".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(15),
        };
        assert_eq!(election.renew_deadline(), Duration::from_secs(10));
        assert_eq!(election.retry_period(), Duration::from_secs(2));
        assert!(election.renew_deadline() + election.retry_period() < election.lease_duration);
    }

    fn election(lease_duration: Duration) -> Election {
        Election {
            namespace: "ns".into(),
            lease_name: "l".into(),
            identity: "me".into(),
            lease_duration,
        }
    }

    #[test]
    fn every_accepted_lease_has_a_deadline_and_a_retry_period_that_fit_in_it() {
        for seconds in [*LEASE_DURATION_SECONDS.start(), 4, 15, *LEASE_DURATION_SECONDS.end()] {
            let election = election(Duration::from_secs(seconds));
            election.check().expect("accepted");
            let (deadline, retry) = (election.renew_deadline(), election.retry_period());
            assert!(retry >= Duration::from_millis(200), "{seconds} s: retry {retry:?}");
            // Several renewals fit in the deadline, and the leader gives up before a standby
            // may take over.
            assert!(
                retry * 4 <= deadline,
                "{seconds} s: retry {retry:?}, deadline {deadline:?}"
            );
            assert!(deadline + retry < election.lease_duration, "{seconds} s");
            assert_eq!(lease_duration_seconds(election.lease_duration), seconds as i32);
        }
        let shortest = election(Duration::from_secs(3));
        assert_eq!(shortest.renew_deadline(), Duration::from_secs(2));
        assert_eq!(shortest.retry_period(), Duration::from_millis(400));
    }

    #[test]
    fn a_lease_outside_the_range_is_refused_before_standing_by() {
        for duration in [
            Duration::ZERO,
            Duration::from_secs(2),
            Duration::from_millis(3500),
            Duration::from_secs(3601),
            Duration::MAX,
        ] {
            let refused = election(duration).check().expect_err("refused");
            assert!(refused.to_string().contains("from 3 to 3600"), "{refused}");
        }
    }

    #[test]
    fn no_lease_duration_overflows_the_derived_periods_or_the_int32() {
        let huge = election(Duration::MAX);
        assert!(huge.renew_deadline() < Duration::MAX && !huge.renew_deadline().is_zero());
        assert!(huge.retry_period() < huge.renew_deadline());
        assert_eq!(lease_duration_seconds(Duration::MAX), i32::MAX);
        assert_eq!(
            lease_duration_seconds(Duration::from_secs(u64::from(u32::MAX))),
            i32::MAX
        );
        assert_eq!(lease_duration_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn the_lease_spec_counts_transitions_without_overflowing() {
        let now = || MicroTime(jiff::Timestamp::UNIX_EPOCH);
        let taken = lease_spec("me", Duration::from_secs(15), None, now());
        assert_eq!(taken.lease_duration_seconds, Some(15));
        assert_eq!(taken.lease_transitions, Some(0));
        assert_eq!(taken.holder_identity.as_deref(), Some("me"));
        let theirs = LeaseSpec {
            holder_identity: Some("them".into()),
            lease_transitions: Some(i32::MAX),
            ..Default::default()
        };
        let taken_over = lease_spec("me", Duration::from_secs(15), Some(&theirs), now());
        assert_eq!(taken_over.lease_transitions, Some(i32::MAX), "saturates, never wraps");
        let renewed = lease_spec("me", Duration::from_secs(15), Some(&taken), now());
        assert_eq!(renewed.lease_transitions, Some(0), "a renewal is no transition");
        assert_eq!(renewed.acquire_time, taken.acquire_time);
    }
}
