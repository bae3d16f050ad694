//! Leader election on a Lease (kube-lease-manager): standby replicas wait; the leader runs the
//! controller; a leader that loses its Lease stops, so that two never reconcile at once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube_lease_manager::LeaseManagerBuilder;

pub struct Election {
    pub namespace: String,
    pub lease_name: String,
    pub identity: String,
    pub lease_duration_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("leader election on Lease {namespace}/{name} failed: {source}")]
    Lease {
        namespace: String,
        name: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
    #[error("lost the leader Lease; stopping so that only one instance reconciles")]
    Lost,
}

/// Waits for the Lease, then runs `work` until it ends or the Lease is lost. While standing by,
/// `ready` is true (a standby is healthy); once leading, `work` sets it when its cache syncs.
pub async fn run_as_leader<F: Future<Output = ()>>(
    client: kube::Client,
    election: Election,
    ready: Arc<AtomicBool>,
    work: impl FnOnce() -> F,
) -> Result<(), LeaderError> {
    let lease_error = |source| LeaderError::Lease {
        namespace: election.namespace.clone(),
        name: election.lease_name.clone(),
        source,
    };
    // Renew a third of the way before expiry, as client-go's defaults do (15 s lease, 10 s renew).
    let grace = (election.lease_duration_seconds / 3).max(1);
    let manager = LeaseManagerBuilder::new(client, &election.lease_name)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(election.lease_duration_seconds)
        .with_grace(grace)
        .with_field_manager("image-access-operator")
        .build()
        .await
        .map_err(lease_error)?;
    let (mut leading, _task) = manager.watch().await;
    ready.store(true, Ordering::Relaxed);
    tracing::info!(lease = %election.lease_name, identity = %election.identity, "standing by for the leader Lease");
    while !*leading.borrow_and_update() {
        if leading.changed().await.is_err() {
            return Err(LeaderError::Lost);
        }
    }
    tracing::info!(identity = %election.identity, "became the leader");
    ready.store(false, Ordering::Relaxed);
    let lost = async {
        loop {
            if leading.changed().await.is_err() || !*leading.borrow_and_update() {
                return;
            }
        }
    };
    tokio::select! {
        () = work() => Ok(()),   // dropping `leading` releases the Lease for a standby
        () = lost => Err(LeaderError::Lost),
    }
}
