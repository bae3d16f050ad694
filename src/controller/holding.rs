//! What an object holds and with what: its credentials ([`Resolved`], from a Secret the
//! operator holds while the object needs it), the claim annotation naming the membership and
//! its holder, and the finalizer.
//!
//! Every write here can be refused for good (RBAC, an admission policy): such a refusal is a
//! [`Problem`] the object's conditions show, not a silent retry.

use std::sync::Arc;

use kube::{Api, ResourceExt};

use super::problem::{Problem, Step};
use super::{Context, Error, Kind, Next};
use crate::api::{CLAIM_ANNOTATION, FINALIZER, Membership};
use crate::credentials::{ReadError, SecretData};
use crate::openstack::{Caller, Cloud, Glance, OpenStackError, Session};
use crate::runtime::patch_metadata;
use crate::runtime::tracker::Fingerprint;

/// An object's credentials, resolved: the session, the cloud entry, who they are to Glance,
/// and the Secret they came from (for messages).
pub struct Resolved {
    pub session: Arc<Session>,
    pub cloud: Cloud,
    pub caller: Caller,
    /// `namespace/secret`.
    pub secret: String,
}

impl Resolved {
    /// Reads the object's Secret and authenticates (the token is cached: no request when one
    /// is fresh). Every failure is a problem that names the Secret.
    pub async fn of<K: Kind>(object: &K, ctx: &Context) -> Result<Resolved, Problem> {
        let (session, cloud) = credentials(object, ctx).await?;
        let secret = secret_label(object);
        let caller = session
            .caller()
            .await
            .map_err(|e| Problem::openstack(&e, Step::ReadCredentials, &unresolved(object), &secret))?;
        Ok(Resolved {
            session,
            cloud,
            caller,
            secret,
        })
    }

    /// The Glance of `region` (the spec's, or else the cloud entry's).
    pub async fn glance(&self, region: Option<&str>) -> Result<Glance, OpenStackError> {
        self.session.glance(region, &self.cloud).await
    }

    /// The membership of `image_id` with `member_id` in the spec's `region` (or the cloud's),
    /// where these credentials reach it (the catalog's endpoint, service and region), held by
    /// them.
    pub async fn locate(
        &self,
        image_id: String,
        member_id: String,
        region: Option<String>,
    ) -> Result<(Membership, Glance), OpenStackError> {
        let region = region.or_else(|| self.cloud.region_name.clone());
        let glance = self.glance(region.as_deref()).await?;
        let place = glance.place();
        let membership = Membership {
            image_id,
            member_id,
            region: place.region.clone().or(region),
            endpoint: Some(place.url.to_string()),
            service: place.service.clone(),
            project: self.caller.project.clone(),
            admin: self.caller.admin,
        };
        Ok((membership, glance))
    }

    /// `record` placed in this cloud's catalog when it was written before places were recorded
    /// (by its region), so that it compares with what the spec names now. Left as it is when
    /// the catalog has no such region any more.
    pub async fn placed(&self, mut record: Membership) -> Membership {
        match record.endpoint.as_deref() {
            None => {
                if let Ok(glance) = self.glance(record.region.as_deref()).await {
                    let place = glance.place();
                    record.endpoint = Some(place.url.to_string());
                    record.service = place.service.clone();
                    record.region = place.region.clone().or(record.region);
                }
            }
            // Recorded before the catalog's service was: found by its URL, on any interface.
            Some(url) if record.service.is_none() => {
                if let Ok(Some(place)) = self.session.place_of(url).await {
                    record.service = place.service;
                    record.region = place.region.or(record.region);
                }
            }
            Some(_) => {}
        }
        record
    }

    /// The Glance `target` lives on, as these credentials reach it. `Err` when their catalog
    /// has no such Glance (the Secret now names another cloud): nothing these credentials say
    /// about it is worth anything.
    pub async fn reach(&self, target: &Membership) -> Result<Glance, Problem> {
        let fail = |e: OpenStackError| Problem::openstack(&e, Step::ObserveMember, target, &self.secret);
        if target.endpoint.is_none() {
            return self.glance(target.region.as_deref()).await.map_err(fail);
        }
        let found = self
            .session
            .glance_where(&self.cloud, |place| {
                let here = Membership {
                    endpoint: Some(place.url.to_string()),
                    service: place.service.clone(),
                    region: place.region.clone(),
                    ..target.clone()
                };
                here.same_glance(target)
            })
            .await
            .map_err(fail)?;
        found.ok_or_else(|| Problem::elsewhere(target, &self.caller, &self.secret))
    }
}

/// What a refused guarded metadata patch of `seen` means. Its `test` operations failing (the
/// object changed since the cache showed it) is answered 422 like an admission policy's refusal,
/// with a message that does not say which: the object read again tells. Changed since: a race,
/// retried; unchanged: refused, a human must act.
pub async fn patch_problem<K>(api: &Api<K>, seen: &kube::api::ObjectMeta, error: kube::Error, what: &str) -> Problem
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if let kube::Error::Api(status) = &error
        && status.code == 422
        && let Some(name) = seen.name.as_deref()
        && let Ok(Some(fresh)) = api.get_metadata_opt(name).await
        && fresh.metadata.resource_version != seen.resource_version
    {
        return Problem::write_race(what);
    }
    Problem::kubernetes_write(&error, what)
}

/// The membership the object names before its credentials are read (for messages about them).
pub fn unresolved<K: Kind>(object: &K) -> Membership {
    object
        .named()
        .unwrap_or_else(|| Membership::named(object.image_id(), String::new(), None))
}

/// Makes sure the object carries the finalizer and claims `record` before Glance is touched,
/// and that its Secret is held while it does. Writes only what is missing; returns the object
/// as written, when it wrote (a later metadata write in the same reconcile must start from it).
pub async fn claim<K: Kind>(
    api: &Api<K>,
    object: &K,
    record: &Membership,
    ctx: &Context,
) -> Result<Option<K>, Problem> {
    let namespace = object.namespace().unwrap_or_default();
    let secret = &object.credentials_ref().secret_name;
    let held = ctx.secrets.hold(&namespace, secret).await;
    ctx.secrets_changed_meanwhile();
    held.map_err(|e| {
        Problem::kubernetes_write(&e, &format!("the operator's finalizer on Secret {namespace}/{secret}"))
    })?;
    if object.has_finalizer() && object.claim().as_ref() == Some(record) {
        return Ok(None);
    }
    let mut finalizers = object.finalizers().to_vec();
    if !object.has_finalizer() {
        finalizers.push(FINALIZER.to_string());
    }
    let claim = serde_json::to_string(record).ok();
    let written: K = match patch_metadata(api, object.meta(), &finalizers, &[(CLAIM_ANNOTATION, claim)]).await {
        Ok(written) => written,
        Err(e) => {
            let what = "the finalizer and the claim annotation on this object";
            return Err(patch_problem(api, object.meta(), e, what).await);
        }
    };
    // What the echo looks like if nothing but our write happened. Not the API's answer: that
    // may already carry a spec edited meanwhile, which must not pass for handled.
    let mut expected = object.meta().clone();
    expected.finalizers = Some(finalizers);
    let uid = object.uid().unwrap_or_default();
    ctx.tracker.note_written(&uid, Fingerprint::of(&expected, FINALIZER));
    // A refused claim remembered for this object is forgotten once it claims another membership.
    let mut refused = ctx.refused_claims();
    if refused.get(&uid).is_some_and(|r| !r.same(record)) {
        refused.remove(&uid);
    }
    drop(refused);
    Ok(Some(written))
}

/// Drops the claim annotation (the finalizer stays; with nothing held, deletion is immediate).
/// The fingerprint does not change, so its echo passes for handled.
pub async fn release_claim<K: Kind>(api: &Api<K>, object: &K) -> Result<K, Error> {
    patch_metadata(api, object.meta(), object.finalizers(), &[(CLAIM_ANNOTATION, None)])
        .await
        .map_err(Error::Kube)
}

/// Removes the finalizer once the deletion is done in Glance. Keeping the claim it saw tests
/// it: one handed over meanwhile fails this, and is cleaned up on the next look.
pub async fn let_go_finalizer<K: Kind>(api: &Api<K>, object: &K) -> Result<Next, Error> {
    let finalizers: Vec<String> = object
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let claim = object.annotations().get(CLAIM_ANNOTATION).cloned();
    match patch_metadata::<K>(api, object.meta(), &finalizers, &[(CLAIM_ANNOTATION, claim)]).await {
        Ok(_) => Ok(Next::Gone),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Next::Gone),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// `namespace/secret` for messages.
pub fn secret_label<K: Kind>(object: &K) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.credentials_ref().secret_name
    )
}

/// The Secret `namespace/name`'s data; a failure is the problem that names the Secret.
pub async fn read_secret(ctx: &Context, namespace: &str, name: &str) -> Result<Arc<SecretData>, Problem> {
    match ctx.secrets.read(namespace, name).await {
        Ok(data) => Ok(data),
        Err(ReadError::NotFound) => Err(Problem::secret_not_found(namespace, name)),
        Err(ReadError::BadKey(detail)) => Err(Problem::secret_key_missing(namespace, name, detail)),
        Err(ReadError::Kubernetes(e)) => Err(Problem::kubernetes(&e)),
    }
}

/// Reads the Secret the object names and returns the session for its credentials, with the
/// cloud entry (its region and interface). No OpenStack request.
pub async fn credentials<K: Kind>(object: &K, ctx: &Context) -> Result<(Arc<Session>, Cloud), Problem> {
    let namespace = object.namespace().unwrap_or_default();
    let reference = object.credentials_ref();
    let data = read_secret(ctx, &namespace, &reference.secret_name).await?;
    // What goes wrong here is in the Secret: the messages name it, not the membership.
    let target = unresolved(object);
    let secret_label = secret_label(object);
    let config_problem = |e: OpenStackError| Problem::openstack(&e, Step::ReadCredentials, &target, &secret_label);
    let cloud = data
        .cloud(&reference.cloud_name)
        .map_err(|e| config_problem(OpenStackError::Config(e)))?;
    let session = ctx.openstack.session(&cloud.credentials).map_err(config_problem)?;
    Ok((session, cloud))
}
