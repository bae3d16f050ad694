//! Turning a failure into what the user sees: transient (retry with backoff) or stalled
//! (a human must change something), with a CamelCase reason and a message that says what to
//! change. One place, so every condition and event speaks the same way.

use std::time::Duration;

use crate::api::{ImageAccess, MemberStatus, Membership};
use crate::controller::status::{MANAGED_ELSEWHERE, STATUS_CONFLICT, WAITING_FOR_SHARE};
use crate::openstack::{Caller, ConfigError, HttpErrorKind, OpenStackError, Operation};

/// What was being done when the failure happened: the same 403 means different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    ReadCredentials,
    ObserveMember,
    CreateMember,
    SetStatus(MemberStatus),
    RemovePreviousMember,
    RemoveMember,
}

/// The reason of a membership that credentials which cannot see it were asked about.
const HIDDEN: &str = "MembershipHidden";
/// The reason of a membership on an image that is not shared now.
const NO_LONGER_SHARED: &str = "ImageNoLongerShared";
/// A metadata write lost to a change of the object made meanwhile (the cache the look started
/// from was behind): not the object's problem. Never a condition: the look ends without a
/// status write, and the newer version is looked at again.
const WRITE_RACE: &str = "WriteRace";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Trying again later may work: network, timeouts, 5xx, 429, a Kubernetes API hiccup.
    Transient {
        reason: &'static str,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Progress needs a human: the message says what to change.
    Stalled { reason: &'static str, message: String },
    /// Progress needs something that is not a fault and needs nobody here: another party's
    /// step (the owner shares the image). Looked at again with backoff.
    Waiting { reason: &'static str, message: String },
}

impl Problem {
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::Transient { reason, .. } | Problem::Stalled { reason, .. } | Problem::Waiting { reason, .. } => {
                reason
            }
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Problem::Transient { message, .. }
            | Problem::Stalled { message, .. }
            | Problem::Waiting { message, .. } => message,
        }
    }

    /// Whether a Stalled problem of this reason is looked at again with backoff rather than at
    /// the stalled re-check: a membership that is hidden or on an image not shared now keeps a
    /// deletion, and what ends it (credentials back, the image shared again) happens in Glance.
    pub fn rechecked_with_backoff(reason: &str) -> bool {
        matches!(reason, HIDDEN | NO_LONGER_SHARED)
    }

    /// See [`WRITE_RACE`].
    pub fn write_race(what: &str) -> Problem {
        Problem::Transient {
            reason: WRITE_RACE,
            message: format!("{what} changed while the operator wrote it; looking again"),
            retry_after: None,
        }
    }

    /// A lost race whose look still has something true to record: it was lost on another object
    /// than the one looked at, or after the look let a membership go (the status must stop naming
    /// it). An ordinary transient failure of this look, with a status.
    pub fn reported(self) -> Problem {
        match self {
            Problem::Transient {
                reason: WRITE_RACE,
                message,
                retry_after,
            } => Problem::Transient {
                reason: "KubernetesAPIError",
                message,
                retry_after,
            },
            other => other,
        }
    }

    pub fn is_write_race(&self) -> bool {
        matches!(self, Problem::Transient { reason: WRITE_RACE, .. })
    }

    pub fn is_stalled(&self) -> bool {
        matches!(self, Problem::Stalled { .. })
    }

    fn stalled(reason: &'static str, message: impl Into<String>) -> Problem {
        Problem::Stalled {
            reason,
            message: message.into(),
        }
    }

    /// The credentials Secret is missing.
    pub fn secret_not_found(namespace: &str, secret: &str) -> Problem {
        Problem::stalled(
            "CredentialsSecretNotFound",
            format!(
                "Secret {namespace}/{secret} named by spec.cloudCredentialsRef.secretName does not exist: create it with a clouds.yaml under the key clouds.yaml"
            ),
        )
    }

    /// The Secret has no `clouds.yaml` key (or it is not text).
    pub fn secret_key_missing(namespace: &str, secret: &str, detail: &str) -> Problem {
        Problem::stalled(
            "CredentialsKeyMissing",
            format!("Secret {namespace}/{secret} {detail}: put a standard clouds.yaml under the key clouds.yaml"),
        )
    }

    /// Another object manages the membership (one manager per membership).
    pub fn managed_elsewhere(manager: &ImageAccess, membership: &Membership) -> Problem {
        let other = format!(
            "{}/{}",
            manager.metadata.namespace.as_deref().unwrap_or_default(),
            manager.metadata.name.as_deref().unwrap_or_default()
        );
        Problem::stalled(
            MANAGED_ELSEWHERE,
            format!(
                "ImageAccess {other} already manages the membership ({membership}); one object manages a membership, so this one changes nothing in Glance and takes over when {other} is deleted. Delete one of the two, or point this one at another image or member"
            ),
        )
    }

    /// No spec.memberId, and the credentials are not scoped to a project that could be it.
    pub fn member_unknown(secret: &str) -> Problem {
        Problem::stalled(
            "MemberUnknown",
            format!(
                "spec.memberId is not set and the credentials in Secret {secret} are not scoped to a project: set spec.memberId, or scope the cloud entry to the member project (project_id or project_name)"
            ),
        )
    }

    /// The member project's credentials, where the owner's are needed (an ImageAccess that
    /// adopts a membership it could never remove).
    pub fn member_credentials(target: &Membership, secret: &str) -> Problem {
        Problem::stalled(
            "NotTheOwner",
            format!(
                "the credentials in Secret {secret} belong to project {}, the member of this membership: an ImageAccess is managed with the credentials of the project that owns image {} (the member accepts with an ImageAccessAccept). Put the owner project's credentials in the Secret",
                target.member_id, target.image_id
            ),
        )
    }

    /// Credentials of the project that owns the image, where the member's are needed.
    pub fn owner_credentials(target: &Membership, caller: &str, secret: &str) -> Problem {
        Problem::stalled(
            "NotTheMember",
            format!(
                "the credentials in Secret {secret} belong to project {caller}, which owns image {}: an ImageAccessAccept needs the credentials of the member project the image is shared with (the owner shares it with an ImageAccess). Put the member project's credentials in the Secret",
                target.image_id
            ),
        )
    }

    /// The image's visibility is not `shared`: it has no members, so nothing to accept.
    pub fn no_members_to_accept(target: &Membership, said: &str) -> Problem {
        Problem::stalled(
            "ImageNotShared",
            format!(
                "image {} is not a shared image {said}, so it has no members to accept or reject: there is nothing to do until its owner makes it shared (openstack image set --shared {}) and shares it with member {}",
                target.image_id, target.image_id, target.member_id
            ),
        )
    }

    /// The image is not shared with the member (yet): the owner's step comes first.
    pub fn waiting_for_share(membership: &Membership) -> Problem {
        Problem::Waiting {
            reason: WAITING_FOR_SHARE,
            message: format!(
                "image {} is not shared with member {} yet (Glance shows no such membership to the member): waiting for the image's owner to share it (an ImageAccess, or openstack image add project {} {}); looking again with backoff",
                membership.image_id, membership.member_id, membership.image_id, membership.member_id
            ),
        }
    }

    /// Another object sets the status of the same membership and came first: two objects
    /// setting one status would undo each other's writes at every resync.
    pub fn status_conflict(other: &str, membership: &Membership) -> Problem {
        Problem::stalled(
            STATUS_CONFLICT,
            format!(
                "{other} already sets the member status of the membership ({membership}) to another value; two objects setting one status would undo each other, so this one leaves the status alone until {other} is deleted or stops setting it. Delete one of the two, or remove spec.status from the ImageAccess"
            ),
        )
    }

    /// Glance refused a status change by credentials that are not the member project's.
    pub fn not_the_member(target: &Membership, caller_project: Option<&str>, secret: &str, said: &str) -> Problem {
        let whose = caller_project.map_or_else(
            || "are not the member project's".to_string(),
            |p| format!("belong to project {p}, not to member {}", target.member_id),
        );
        Problem::stalled(
            "NotTheMember",
            format!(
                "Glance refused or hid the membership of member {} of image {} {said}: only the member project (or an admin) may see and set it, and the credentials in Secret {secret} {whose}. Put the member project's credentials in the Secret",
                target.member_id, target.image_id
            ),
        )
    }

    /// Glance refused to remove a membership that still grants access: these credentials
    /// may not remove members of the image.
    pub fn removal_forbidden(
        target: &Membership,
        image_owner: Option<&str>,
        caller_project: Option<&str>,
        secret: &str,
    ) -> Problem {
        let owner = image_owner.map_or_else(|| "its owner".to_string(), |p| format!("owner project {p}"));
        let caller = caller_project.map_or_else(String::new, |p| format!(" (project {p})"));
        Problem::stalled(
            "MemberRemovalForbidden",
            format!(
                "Glance refused to remove the membership ({target}) and the image is still shared, so the member keeps access: the credentials in Secret {secret}{caller} may not remove members of this image. Put the credentials of the image's {owner} (or an admin's) in the Secret, or set spec.deletionPolicy to Orphan to leave the membership in place"
            ),
        )
    }

    /// A write to Kubernetes (`what`) failed: refused for good (RBAC, validation, an admission
    /// policy: a human must act), or worth a retry.
    pub fn kubernetes_write(error: &kube::Error, what: &str) -> Problem {
        if let kube::Error::Api(status) = error {
            match status.code {
                401 | 403 => {
                    return Problem::stalled(
                        "KubernetesWriteForbidden",
                        format!(
                            "the API server refused to let the operator write {what} ({}): grant its service account patch on that resource in its namespace (the Helm chart does)",
                            status.message
                        ),
                    );
                }
                400 | 422 => {
                    return Problem::stalled(
                        "KubernetesWriteRefused",
                        format!(
                            "the API server refused the operator's write of {what} ({}): an admission webhook or policy of this cluster refuses it; exempt the operator's writes from it",
                            status.message
                        ),
                    );
                }
                _ => {}
            }
        }
        Problem::Transient {
            reason: "KubernetesAPIError",
            message: format!("writing {what} failed: {error}; retrying with backoff"),
            retry_after: None,
        }
    }

    /// An object that only observes, and credentials that see the image's members, found no
    /// `target`.
    pub fn observed_absent(target: &Membership) -> Problem {
        Problem::stalled(
            "MemberNotFound",
            format!(
                "Glance has no membership {target}, and managementPolicy is Observe, so the operator does not create it: create it outside Kubernetes (openstack image add project), or set spec.managementPolicy to Managed and the operator creates it"
            ),
        )
    }

    /// An object that only observes, with credentials that cannot see whether `target` exists:
    /// names whose could.
    pub fn cannot_observe(target: &Membership, caller: &Caller, image_owner: Option<&str>, secret: &str) -> Problem {
        let asked = who_asked(caller);
        let whose = image_owner.map_or_else(
            || "the image's owner project".to_string(),
            |owner| format!("project {owner}, the image's owner"),
        );
        Problem::stalled(
            HIDDEN,
            format!(
                "the credentials in Secret {secret} ({asked}) cannot see whether the membership ({target}) exists: Glance shows an image's members only to its owner, an admin, and each member its own. Put the credentials of {whose} (or an admin's, or the member's) in the Secret"
            ),
        )
    }

    /// A "not found" from credentials that may not see `target`: it may still exist and
    /// grant access, so nothing is concluded. Names who made it, who asked, and both ways out.
    pub fn hidden(target: &Membership, caller: &Caller, image_owner: Option<&str>, secret: &str) -> Problem {
        let asked = who_asked(caller);
        let made = target
            .project
            .as_deref()
            .map_or_else(|| "the project that made it".to_string(), |p| format!("project {p}"));
        let maker_asked = caller.project.is_some() && caller.project == target.project;
        let image = &target.image_id;
        let message = match image_owner {
            None if maker_asked => format!(
                "Glance shows no image {image} to {made}, which made the membership ({target}), so the credentials in Secret {secret} cannot tell whether it still exists: either the image was deleted, and nothing is left to remove (set spec.deletionPolicy to Orphan to finish), or an admin gave it to another project, and the member still has access (put that project's or an admin's credentials in the Secret and the operator removes it)"
            ),
            Some(owner) => format!(
                "the credentials in Secret {secret} ({asked}) cannot tell whether the membership ({target}), made by {made}, still exists: image {image} belongs to project {owner}, and Glance shows its members only to their owner. Put the credentials of project {owner} (or an admin's) in the Secret and the operator finishes; or, to leave the membership as it is, set spec.deletionPolicy to Orphan"
            ),
            None => format!(
                "the credentials in Secret {secret} ({asked}) cannot tell whether the membership ({target}), made by {made}, still exists: Glance shows them no image {image} (they are not the credentials of {made}, or the image was deleted or given to another project). Put the credentials of {made} (or an admin's) back in the Secret and the operator finishes; or, to leave the membership as it is, set spec.deletionPolicy to Orphan"
            ),
        };
        Problem::stalled(HIDDEN, message)
    }

    /// The credentials reach another Glance than the one `target` lives on (the Secret now names
    /// another cloud): they can tell nothing about it.
    pub fn elsewhere(target: &Membership, caller: &Caller, secret: &str) -> Problem {
        let asked = caller.project.as_deref().map_or_else(
            || "credentials without a project".to_string(),
            |p| format!("project {p}"),
        );
        let made = target
            .project
            .as_deref()
            .map_or_else(|| "the project that made it".to_string(), |p| format!("project {p}"));
        let endpoint = target.endpoint.as_deref().unwrap_or("its Glance");
        Problem::stalled(
            HIDDEN,
            format!(
                "the membership ({target}) lives on the Glance at {endpoint}, which the catalog of the credentials in Secret {secret} ({asked}) does not have: they reach another cloud. Put the credentials of {made} on that cloud (or an admin's there) back in the Secret and the operator finishes; or, to leave the membership as it is, set spec.deletionPolicy to Orphan"
            ),
        )
    }

    /// Glance refuses member calls on an image that is not shared now, but keeps its member
    /// rows: they grant access again when it is shared again. Nothing can be undone until then.
    pub fn no_longer_shared(target: &Membership, visibility: &str, secret: &str) -> Problem {
        let image = &target.image_id;
        Problem::stalled(
            NO_LONGER_SHARED,
            format!(
                "image {image} is {visibility} now, not shared: Glance refuses to change its members but keeps them, and the membership ({target}) grants access again as soon as the image is shared again. Make it shared again (openstack image set --shared {image}) and the operator finishes with the credentials in Secret {secret}; or, to leave the membership as it is, set spec.deletionPolicy to Orphan"
            ),
        )
    }

    /// Reading `other` again (before leaving a member status to it) failed.
    pub fn kubernetes_read(error: &kube::Error, other: &str) -> Problem {
        if let kube::Error::Api(status) = error
            && matches!(status.code, 401 | 403)
        {
            return Problem::stalled(
                "KubernetesReadForbidden",
                format!(
                    "the operator may not read {other} ({}): grant its service account get on that kind in its namespace (the Helm chart does: imageaccesses, imageaccessaccepts, imageshares)",
                    status.message
                ),
            );
        }
        Problem::Transient {
            reason: "KubernetesAPIError",
            message: format!("reading {other} failed: {error}; retrying with backoff"),
            retry_after: None,
        }
    }

    /// Reading the Secret failed for another reason.
    pub fn kubernetes(error: &kube::Error) -> Problem {
        if let kube::Error::Api(status) = error
            && status.code == 403
        {
            return Problem::stalled(
                "CredentialsSecretForbidden",
                format!(
                    "the operator may not read the credentials Secret ({}): grant its service account get on secrets in this namespace",
                    status.message
                ),
            );
        }
        Problem::Transient {
            reason: "KubernetesAPIError",
            message: format!("reading the credentials Secret failed: {error}; retrying with backoff"),
            retry_after: None,
        }
    }

    /// Classifies an OpenStack failure during `step` on `target`; `secret` names the Secret for
    /// messages about credentials.
    pub fn openstack(error: &OpenStackError, step: Step, target: &Membership, secret: &str) -> Problem {
        if error.is_transient() {
            return Problem::Transient {
                reason: "OpenStackUnavailable",
                message: format!("{error}; retrying with backoff"),
                retry_after: error.retry_after(),
            };
        }
        let image = &target.image_id;
        let member = &target.member_id;
        match error {
            OpenStackError::Config(config) => {
                let reason = match config {
                    ConfigError::CloudNotFound { .. } => "CloudNotFound",
                    ConfigError::InsecureRefused => "InsecureTLSRefused",
                    _ => "InvalidCloudsYaml",
                };
                Problem::stalled(reason, format!("{config}: fix the clouds.yaml in Secret {secret}"))
            }
            OpenStackError::Tls(detail) => Problem::stalled(
                "InvalidTLSConfig",
                format!("{detail}: fix the TLS files of the cloud entry (cacert, cert, key) in Secret {secret}"),
            ),
            OpenStackError::TlsClientCertificate { .. } => Problem::stalled(
                "ClientCertificateRefused",
                format!(
                    "{error}: put the PEM client certificate and its key in the cert and key keys of Secret {secret} (a cloud entry's cert and key paths name them too), signed by a CA the server trusts"
                ),
            ),
            OpenStackError::TlsTrust { .. } => Problem::stalled(
                "TLSCertificateNotTrusted",
                format!(
                    "{error}: put the PEM bundle of the CA that signed the {} certificate in the cacert key of Secret {secret} (and check that the host name in auth_url, or in the catalog, is the one the certificate names)",
                    error.operation().map_or("server", |o| {
                        if o.service() == crate::openstack::error::Service::Identity {
                            "Keystone"
                        } else {
                            "Glance"
                        }
                    })
                ),
            ),
            OpenStackError::NoEndpoint { .. } => Problem::stalled(
                "EndpointNotFound",
                format!(
                    "{error}: set spec.region, or region_name and interface in the cloud entry of Secret {secret}, to one the catalog has"
                ),
            ),
            OpenStackError::Http {
                kind,
                status,
                message,
                operation,
                ..
            } => {
                let said = format!("({status}: {message})");
                match (kind, operation, step) {
                    (
                        HttpErrorKind::Unauthorized | HttpErrorKind::Forbidden | HttpErrorKind::NotFound,
                        Operation::Authenticate,
                        _,
                    ) => Problem::stalled(
                        "AuthenticationFailed",
                        format!(
                            "Keystone refused the credentials in Secret {secret} {said}: check the user, password or application credential and the project; the operator uses the updated Secret at its next check"
                        ),
                    ),
                    (HttpErrorKind::Unauthorized, _, _) => Problem::stalled(
                        "Unauthorized",
                        format!(
                            "Glance refused a fresh Keystone token {said}: check that the credentials in Secret {secret} have a role on the project"
                        ),
                    ),
                    (HttpErrorKind::Forbidden, _, Step::SetStatus(to)) => Problem::stalled(
                        "StatusChangeForbidden",
                        format!(
                            "Glance refused to set the status of member {member} of image {image} to {to} {said}: only an admin or the member project may change it, not the image owner. Use admin or member-project credentials in spec.cloudCredentialsRef, or remove spec.status"
                        ),
                    ),
                    (HttpErrorKind::Forbidden, _, _) => Problem::stalled(
                        "ImageNotShared",
                        format!(
                            "Glance refused to manage the members of image {image} {said}: the image must have visibility shared (openstack image set --shared {image}) and the credentials must belong to its owner project or an admin"
                        ),
                    ),
                    (HttpErrorKind::NotFound, _, _) => Problem::stalled(
                        "ImageNotFound",
                        format!(
                            "Glance has no image {image} that these credentials can see {said}: check spec.imageId, spec.region and that the credentials belong to the image's owner project"
                        ),
                    ),
                    (HttpErrorKind::QuotaExceeded, _, _) => Problem::stalled(
                        "MemberQuotaExceeded",
                        format!(
                            "image {image} already has as many members as Glance allows (image_member_quota) {said}: remove a member from the image or ask the cloud's operators to raise the quota"
                        ),
                    ),
                    (HttpErrorKind::BadRequest, _, _) => Problem::stalled(
                        "InvalidRequest",
                        format!("Glance refused the request as invalid {said}: check spec.memberId and spec.status"),
                    ),
                    _ => Problem::stalled(
                        "OpenStackError",
                        format!("{error}: this answer is unexpected; check the cloud and the Glance logs"),
                    ),
                }
            }
            OpenStackError::Transport { .. } | OpenStackError::InvalidResponse { .. } => Problem::Transient {
                reason: "OpenStackUnavailable",
                message: format!("{error}; retrying with backoff"),
                retry_after: None,
            },
            OpenStackError::Incomplete { .. } => Problem::stalled(
                "OpenStackListIncomplete",
                format!("{error}: nothing is concluded from a part of a list; check the proxy in front of the service"),
            ),
        }
    }
}

/// Whose credentials asked, for messages.
fn who_asked(caller: &Caller) -> String {
    caller.project.as_deref().map_or_else(
        || "credentials that are not scoped to a project".to_string(),
        |p| format!("project {p}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(operation: Operation, status: u16) -> OpenStackError {
        OpenStackError::Http {
            operation,
            status,
            kind: HttpErrorKind::from_status(status),
            message: "msg".into(),
            retry_after: None,
        }
    }

    #[test]
    fn each_error_class_gets_its_reason() {
        let target = Membership {
            image_id: "img".into(),
            member_id: "mem".into(),
            region: None,
            ..Membership::default()
        };
        let cases: Vec<(OpenStackError, Step, &str, bool)> = vec![
            (
                http(Operation::Authenticate, 401),
                Step::ObserveMember,
                "AuthenticationFailed",
                true,
            ),
            (
                http(Operation::CreateMember, 403),
                Step::CreateMember,
                "ImageNotShared",
                true,
            ),
            (
                http(Operation::SetMemberStatus, 403),
                Step::SetStatus(MemberStatus::Accepted),
                "StatusChangeForbidden",
                true,
            ),
            (
                http(Operation::CreateMember, 404),
                Step::CreateMember,
                "ImageNotFound",
                true,
            ),
            (
                http(Operation::CreateMember, 413),
                Step::CreateMember,
                "MemberQuotaExceeded",
                true,
            ),
            (
                http(Operation::CreateMember, 400),
                Step::CreateMember,
                "InvalidRequest",
                true,
            ),
            (
                http(Operation::ShowMember, 401),
                Step::ObserveMember,
                "Unauthorized",
                true,
            ),
            (
                http(Operation::ShowMember, 503),
                Step::ObserveMember,
                "OpenStackUnavailable",
                false,
            ),
            (
                http(Operation::CreateMember, 429),
                Step::CreateMember,
                "OpenStackUnavailable",
                false,
            ),
            (
                OpenStackError::Transport {
                    operation: Operation::ShowMember,
                    detail: "refused".into(),
                    timed_out: false,
                    connect: true,
                },
                Step::ObserveMember,
                "OpenStackUnavailable",
                false,
            ),
            (
                OpenStackError::TlsTrust {
                    operation: Operation::Authenticate,
                    detail: "UnknownIssuer".into(),
                },
                Step::ReadCredentials,
                "TLSCertificateNotTrusted",
                true,
            ),
            (
                OpenStackError::Config(ConfigError::CloudNotFound {
                    cloud: "x".into(),
                    known: vec![],
                }),
                Step::ReadCredentials,
                "CloudNotFound",
                true,
            ),
            (
                OpenStackError::NoEndpoint {
                    interface: "public".into(),
                    region: Some("R9".into()),
                    available: vec![],
                },
                Step::ObserveMember,
                "EndpointNotFound",
                true,
            ),
        ];
        for (error, step, reason, stalled) in cases {
            let problem = Problem::openstack(&error, step, &target, "ns/creds");
            assert_eq!(problem.reason(), reason, "{error}");
            assert_eq!(problem.is_stalled(), stalled, "{error}");
            assert!(!problem.message().is_empty());
        }
    }

    #[test]
    fn stalled_messages_say_what_to_change() {
        let target = Membership {
            image_id: "img".into(),
            member_id: "mem".into(),
            region: None,
            ..Membership::default()
        };
        let owner_sets_status = Problem::openstack(
            &http(Operation::SetMemberStatus, 403),
            Step::SetStatus(MemberStatus::Accepted),
            &target,
            "ns/creds",
        );
        assert!(
            owner_sets_status.message().contains("remove spec.status"),
            "{owner_sets_status:?}"
        );
        let private = Problem::openstack(
            &http(Operation::CreateMember, 403),
            Step::CreateMember,
            &target,
            "ns/creds",
        );
        assert!(
            private.message().contains("openstack image set --shared img"),
            "{private:?}"
        );
        let auth = Problem::openstack(
            &http(Operation::Authenticate, 401),
            Step::ObserveMember,
            &target,
            "ns/creds",
        );
        assert!(auth.message().contains("Secret ns/creds"), "{auth:?}");
    }
}
