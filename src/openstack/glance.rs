//! Glance v2 image members: show, create, set status, delete, list.

use std::sync::Arc;

use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{OpenStackError, Operation, Session};
use crate::api::MemberStatus;

/// A member as Glance returns it.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    pub image_id: String,
    pub status: MemberStatus,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub schema: Option<String>,
}

#[derive(Deserialize)]
struct MemberList {
    members: Vec<Member>,
}

/// A session bound to one Glance endpoint.
#[derive(Clone)]
pub struct Glance {
    session: Arc<Session>,
    endpoint: Url,
    /// For `Debug`: which region's endpoint this is.
    region: Option<String>,
}

impl std::fmt::Debug for Glance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Glance")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Glance {
    pub(super) fn new(session: Arc<Session>, endpoint: Url, region: Option<String>) -> Self {
        Glance {
            session,
            endpoint,
            region,
        }
    }

    /// `GET /v2/images/{image}/members/{member}`; a 404 means no such member (or image).
    pub async fn show_member(&self, image_id: &str, member_id: &str) -> Result<Member, OpenStackError> {
        self.call(
            Operation::ShowMember,
            Method::GET,
            &[image_id, "members", member_id],
            None,
        )
        .await
    }

    /// `POST /v2/images/{image}/members`: 200 with a `pending` member; 409 if it exists.
    pub async fn create_member(&self, image_id: &str, member_id: &str) -> Result<Member, OpenStackError> {
        let body = json!({ "member": member_id });
        self.call(
            Operation::CreateMember,
            Method::POST,
            &[image_id, "members"],
            Some(&body),
        )
        .await
    }

    /// `PUT /v2/images/{image}/members/{member}`; only the member or an admin may.
    pub async fn set_member_status(
        &self,
        image_id: &str,
        member_id: &str,
        status: MemberStatus,
    ) -> Result<Member, OpenStackError> {
        let body = json!({ "status": status.as_str() });
        self.call(
            Operation::SetMemberStatus,
            Method::PUT,
            &[image_id, "members", member_id],
            Some(&body),
        )
        .await
    }

    /// `DELETE /v2/images/{image}/members/{member}`: 204, then 404.
    pub async fn delete_member(&self, image_id: &str, member_id: &str) -> Result<(), OpenStackError> {
        let operation = Operation::DeleteMember;
        let url = self.url(&[image_id, "members", member_id]);
        let response = self
            .session
            .send_authenticated(operation, Method::DELETE, url, None)
            .await?;
        if response.is_success() {
            Ok(())
        } else {
            Err(response.error(operation))
        }
    }

    /// `GET /v2/images/{image}/members` (one page: Glance does not paginate members).
    pub async fn list_members(&self, image_id: &str) -> Result<Vec<Member>, OpenStackError> {
        let list: MemberList = self
            .call(Operation::ListMembers, Method::GET, &[image_id, "members"], None)
            .await?;
        Ok(list.members)
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        operation: Operation,
        method: Method,
        path: &[&str],
        body: Option<&serde_json::Value>,
    ) -> Result<T, OpenStackError> {
        let url = self.url(path);
        let response = self.session.send_authenticated(operation, method, url, body).await?;
        if !response.is_success() {
            return Err(response.error(operation));
        }
        response.json(operation)
    }

    /// `{endpoint}/v2/images/{path...}`, each part percent-encoded.
    fn url(&self, path: &[&str]) -> Url {
        let mut url = self.endpoint.clone();
        // `cannot_be_a_base` was ruled out when the endpoint was read from the catalog.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["v2", "images"]).extend(path);
        }
        url
    }
}
