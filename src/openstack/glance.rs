//! Glance v2 image members: show, create, set status, delete, list; and the image itself
//! (visibility and owner), to tell "no longer shared" from "not allowed".

use std::sync::Arc;

use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{GlancePlace, OpenStackError, Operation, Session, Token};
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

#[derive(Deserialize)]
struct ImagePage {
    images: Vec<Image>,
    /// Present while there are more pages.
    #[serde(default)]
    next: Option<String>,
}

/// What the operator reads of an image.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    /// `public`, `community`, `shared` or `private`: only `shared` images have members that
    /// grant access.
    pub visibility: String,
    /// The owner project.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    /// `active`, `queued`, `saving`, `killed`, `deleted`, ...
    #[serde(default)]
    pub status: Option<String>,
}

/// What an image selector or an image name asks Glance for: the images of `owner` (or, with
/// `shared_with_me`, those shared with the caller, whatever their member status) in `status`,
/// matching `name`, every tag of `tags` and every property of `properties`, newest first (ties
/// by ID).
#[derive(Debug, Clone, Default)]
pub struct ImageQuery<'a> {
    pub owner: Option<&'a str>,
    pub shared_with_me: bool,
    pub status: Option<&'a str>,
    pub name: Option<&'a str>,
    pub tags: Vec<&'a str>,
    pub properties: Vec<(&'a str, &'a str)>,
}

/// A listing whose pages do not add up (a proxy that drops the query string, say).
fn paging_failed(detail: &str) -> OpenStackError {
    OpenStackError::Incomplete {
        operation: Operation::ListImages,
        detail: format!("{detail}: the `marker` query parameter seems not to reach Glance"),
    }
}

/// A session aimed at the image endpoint of one region and interface. The endpoint is read
/// from the current token's catalog at every call, so a re-read catalog takes effect at once.
#[derive(Clone)]
pub struct Glance {
    session: Arc<Session>,
    region: Option<String>,
    interface: String,
    /// The catalog entry this was made for: where the memberships it touches live (their
    /// identity), whatever region name picked it.
    place: GlancePlace,
    /// The cloud entry's `image_endpoint_override`: used instead of the catalog's URL.
    endpoint_override: Option<Url>,
}

impl std::fmt::Debug for Glance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Glance")
            .field("region", &self.region)
            .field("interface", &self.interface)
            .finish_non_exhaustive()
    }
}

impl Glance {
    pub(super) fn new(
        session: Arc<Session>,
        region: Option<String>,
        interface: String,
        place: GlancePlace,
        endpoint_override: Option<Url>,
    ) -> Self {
        Glance {
            session,
            region,
            interface,
            place,
            endpoint_override,
        }
    }

    /// The catalog entry (URL, service, region) this talks to.
    pub fn place(&self) -> &GlancePlace {
        &self.place
    }

    /// `GET /v2/images/{image}`: what the caller may see of the image; 404 when it may not.
    pub async fn show_image(&self, image_id: &str) -> Result<Image, OpenStackError> {
        self.call(Operation::ShowImage, Method::GET, &[image_id], None).await
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
        let response = self
            .session
            .send_authenticated(
                operation,
                Method::DELETE,
                |token| self.url(token, &[image_id, "members", member_id]),
                None,
            )
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

    /// `GET /v2/images?owner=…&visibility=…`, every page (Glance pages by `marker`, and says
    /// `next` while there are more).
    pub async fn list_images(&self, owner: &str, visibility: &str) -> Result<Vec<Image>, OpenStackError> {
        let mut images: Vec<Image> = Vec::new();
        let pairs = [("owner", owner), ("visibility", visibility), ("limit", "100")];
        // 100,000 images: far more than a project has; a server that pages forever stops here.
        for _ in 0..1000 {
            let marker = images.last().map(|image| image.id.clone());
            let page = self.image_page(&pairs, marker.as_deref()).await?;
            if marker.is_some() && page.images.last().map(|image| &image.id) == marker.as_ref() {
                return Err(paging_failed("a page ended where the one before it did"));
            }
            let last_page = page.next.is_none() || page.images.is_empty();
            images.extend(page.images);
            if last_page {
                return Ok(images);
            }
        }
        Err(paging_failed("more than 1,000 pages of images"))
    }

    /// At most `limit` images matching `query`, newest first (by created_at, then ID), filtered
    /// and sorted by Glance: one page, unless this Glance caps pages below `limit`
    /// (`api_limit_max`); then the following pages by `marker`. (Glance says `next` whenever a
    /// page is full: whether there are more than wanted is told by asking for one more.)
    pub async fn select_images(&self, query: &ImageQuery<'_>, limit: usize) -> Result<Vec<Image>, OpenStackError> {
        let mut images: Vec<Image> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // A Glance whose pages hold 10 images at least reaches any limit asked here.
        for _ in 0..20 {
            let marker = images.last().map(|image| image.id.clone());
            let page = self.select_page(query, limit - images.len(), marker.as_deref()).await?;
            if page.images.iter().any(|image| !seen.insert(image.id.clone())) {
                return Err(paging_failed("an image came twice"));
            }
            let last_page = page.next.is_none() || page.images.is_empty();
            images.extend(page.images);
            if last_page || images.len() >= limit {
                images.truncate(limit);
                return Ok(images);
            }
        }
        Err(paging_failed("more than 20 pages for one selection"))
    }

    async fn select_page(
        &self,
        query: &ImageQuery<'_>,
        limit: usize,
        marker: Option<&str>,
    ) -> Result<ImagePage, OpenStackError> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if let Some(owner) = query.owner {
            pairs.push(("owner", owner));
        }
        if query.shared_with_me {
            pairs.extend([("visibility", "shared"), ("member_status", "all")]);
        }
        if let Some(status) = query.status {
            pairs.push(("status", status));
        }
        if let Some(name) = query.name {
            pairs.push(("name", name));
        }
        pairs.extend(query.tags.iter().map(|tag| ("tag", *tag)));
        pairs.extend(query.properties.iter().copied());
        pairs.extend([
            ("sort_key", "created_at"),
            ("sort_dir", "desc"),
            ("sort_key", "id"),
            ("sort_dir", "desc"),
        ]);
        let limit = limit.to_string();
        pairs.push(("limit", &limit));
        self.image_page(&pairs, marker).await
    }

    /// One `GET /v2/images` page with the query `pairs`, then `marker`.
    async fn image_page(&self, pairs: &[(&str, &str)], marker: Option<&str>) -> Result<ImagePage, OpenStackError> {
        let operation = Operation::ListImages;
        let url = |token: &Token| {
            let mut url = self.url(token, &[])?;
            let mut query = url.query_pairs_mut();
            query.extend_pairs(pairs);
            if let Some(marker) = marker {
                query.append_pair("marker", marker);
            }
            drop(query);
            Ok(url)
        };
        let response = self
            .session
            .send_authenticated(operation, Method::GET, url, None)
            .await?;
        if !response.is_success() {
            return Err(response.error(operation));
        }
        response.json(operation)
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        operation: Operation,
        method: Method,
        path: &[&str],
        body: Option<&serde_json::Value>,
    ) -> Result<T, OpenStackError> {
        let response = self
            .session
            .send_authenticated(operation, method, |token| self.url(token, path), body)
            .await?;
        if !response.is_success() {
            return Err(response.error(operation));
        }
        response.json(operation)
    }

    /// `{endpoint}/v2/images/{path...}` with the endpoint from `token`'s catalog, each part
    /// percent-encoded.
    fn url(&self, token: &Token, path: &[&str]) -> Result<Url, OpenStackError> {
        let mut url = match &self.endpoint_override {
            Some(url) => url.clone(),
            None => token.image_endpoint(&self.interface, self.region.as_deref())?,
        };
        // `cannot_be_a_base` was ruled out when the endpoint was read from the catalog.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["v2", "images"]).extend(path);
        }
        Ok(url)
    }
}
