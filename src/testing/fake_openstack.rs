//! An in-process HTTP fake of Keystone v3 + Glance v2 image members, for fast unit tests and
//! fault injection. It answers with the codes a real Glance 25 returns
//! (glance-members-api.md): owner, member and admin rights, visibility, the member quota, 409,
//! 413, 401 for an expired token; and it can be told to answer 429/503 or slowly.
//! The end-to-end tests use a real Keystone + Glance instead.

// Handlers answer early with a ready response; its size does not matter in a test fake.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::api::MemberStatus;
use crate::openstack::Member;

pub const REGION: &str = "RegionOne";
/// The Glance endpoint sits under a path prefix, as on clouds behind one gateway.
const GLANCE_PREFIX: &str = "/image";

#[derive(Clone, Debug)]
struct User {
    password: String,
    project_id: String,
    admin: bool,
}

#[derive(Clone, Debug)]
struct TokenInfo {
    project_id: String,
    admin: bool,
    expires_at: jiff::Timestamp,
}

#[derive(Clone, Debug)]
pub struct Image {
    pub owner: String,
    pub visibility: &'static str,
    pub name: String,
    pub tags: Vec<String>,
    pub status: &'static str,
    pub created_at: String,
}

/// A scripted answer for the next matching request.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Matches `"METHOD /path-kind"`, e.g. `"POST members"`, `"GET member"`, `"POST tokens"`.
    pub operation: &'static str,
    pub status: u16,
    pub retry_after: Option<&'static str>,
}

#[derive(Default)]
struct FakeState {
    users: HashMap<String, User>,
    tokens: HashMap<String, TokenInfo>,
    images: HashMap<String, Image>,
    members: HashMap<(String, String), Member>,
    member_quota: usize,
    token_lifetime: Duration,
    faults: VecDeque<Fault>,
    delay: Option<Duration>,
    /// `"METHOD kind"` → count.
    requests: HashMap<String, usize>,
    /// Members created (`true`) and removed (`false`) through the API, in order: (image, member).
    journal: Vec<(bool, String, String)>,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: usize,
    max_in_flight: usize,
    next_token: u64,
    clock_offset_seconds: i64,
    /// The Glance URL the catalog advertises.
    glance_url: String,
    /// Keystone projects by ID: (name, tags).
    projects: BTreeMap<String, (String, Vec<String>)>,
}

/// A running fake. Dropping it stops nothing: the server lives as long as the test runtime.
/// Keystone listens on `addr`; Glance on a listener of its own, which [`FakeOpenStack::move_glance`]
/// replaces (the catalog then names the new one and the old one refuses connections).
#[derive(Clone)]
pub struct FakeOpenStack {
    state: Arc<Mutex<FakeState>>,
    pub addr: SocketAddr,
    router: Router,
    glance_stop: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
}

pub const OWNER_PROJECT: &str = "owner-project";
pub const MEMBER_PROJECT: &str = "member-project";
pub const ADMIN_PROJECT: &str = "admin-project";
/// A project that neither owns the test images nor is a member of them.
pub const OTHER_PROJECT: &str = "other-project";
pub const PASSWORD: &str = "fake-password-123";

impl FakeOpenStack {
    /// Starts the fake on a free loopback port with four users: `owner` (project
    /// [`OWNER_PROJECT`]), `member` ([`MEMBER_PROJECT`]), `other` ([`OTHER_PROJECT`]) and
    /// `admin` ([`ADMIN_PROJECT`], admin).
    pub async fn start() -> FakeOpenStack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake openstack");
        let addr = listener.local_addr().expect("local addr");
        let glance_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake glance");
        let glance_addr = glance_listener.local_addr().expect("local addr");
        let mut users = HashMap::new();
        for (name, project, admin) in [
            ("owner", OWNER_PROJECT, false),
            ("member", MEMBER_PROJECT, false),
            ("other", OTHER_PROJECT, false),
            ("admin", ADMIN_PROJECT, true),
            // The owner project's admin: may list Keystone projects (memberSelector).
            ("owner-admin", OWNER_PROJECT, true),
        ] {
            let user = User {
                password: PASSWORD.into(),
                project_id: project.into(),
                admin,
            };
            users.insert(name.to_string(), user);
        }
        let state = Arc::new(Mutex::new(FakeState {
            users,
            member_quota: 128,
            token_lifetime: Duration::from_secs(3600),
            glance_url: format!("http://{glance_addr}{GLANCE_PREFIX}"),
            ..Default::default()
        }));
        let router = Router::new()
            .route("/v3/auth/tokens", post(issue_token))
            .route("/v3/projects", get(list_projects))
            .route("/_fake/requests", get(request_counts))
            .route(
                &format!("{GLANCE_PREFIX}/v2/images/{{image}}/members"),
                post(create_member).get(list_members),
            )
            .route(
                &format!("{GLANCE_PREFIX}/v2/images/{{image}}/members/{{member}}"),
                get(show_member).put(set_status).delete(delete_member),
            )
            .route(&format!("{GLANCE_PREFIX}/v2/images/{{image}}"), get(show_image))
            .route(&format!("{GLANCE_PREFIX}/v2/images"), get(list_images))
            .with_state(state.clone());
        let keystone = router.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, keystone).await;
        });
        let fake = FakeOpenStack {
            state,
            addr,
            router,
            glance_stop: Arc::default(),
        };
        fake.serve_glance(glance_listener);
        fake
    }

    /// Serves Glance on `listener` until the next move.
    fn serve_glance(&self, listener: tokio::net::TcpListener) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = self.router.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        *self.glance_stop.lock().unwrap_or_else(|p| p.into_inner()) = Some(stop);
    }

    /// Glance moves to a new address: the catalog of new tokens names it, and the old address
    /// stops accepting connections (tokens issued before still name it).
    pub async fn move_glance(&self) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake glance");
        let moved = listener.local_addr().expect("local addr");
        if let Some(stop) = self.glance_stop.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = stop.send(());
        }
        self.lock().glance_url = format!("http://{moved}{GLANCE_PREFIX}");
        self.serve_glance(listener);
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn auth_url(&self) -> String {
        format!("http://{}/v3", self.addr)
    }

    /// A clouds.yaml with one cloud per user: `owner`, `member`, `other`, `admin`, plus `wrong`
    /// (a bad password).
    pub fn clouds_yaml(&self) -> String {
        let mut out = String::from("clouds:\n");
        for (cloud, user, password) in [
            ("owner", "owner", PASSWORD),
            ("member", "member", PASSWORD),
            ("other", "other", PASSWORD),
            ("admin", "admin", PASSWORD),
            ("owner-admin", "owner-admin", PASSWORD),
            ("wrong", "owner", "not-the-password"),
        ] {
            out.push_str(&format!(
                "  {cloud}:\n    auth:\n      auth_url: {}\n      username: {user}\n      password: {password}\n      project_name: {user}-project\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: {REGION}\n",
                self.auth_url()
            ));
        }
        out
    }

    pub fn add_image(&self, id: &str, owner: &str, visibility: &'static str) {
        self.lock().images.insert(
            id.into(),
            Image {
                owner: owner.into(),
                visibility,
                name: format!("image-{id}"),
                tags: Vec::new(),
                status: "active",
                created_at: "2026-01-01T00:00:00Z".into(),
            },
        );
    }

    /// A shared, active image of the owner project named `name`, tagged `tags`, created at
    /// `created_at`: a build of a golden image.
    pub fn add_build(&self, id: &str, name: &str, tags: &[&str], created_at: &str) {
        self.lock().images.insert(
            id.into(),
            Image {
                owner: OWNER_PROJECT.into(),
                visibility: "shared",
                name: name.into(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                status: "active",
                created_at: created_at.into(),
            },
        );
    }

    pub fn set_tags(&self, id: &str, tags: &[&str]) {
        if let Some(image) = self.lock().images.get_mut(id) {
            image.tags = tags.iter().map(|t| t.to_string()).collect();
        }
    }

    /// A Keystone project (only admins may list them, as Keystone's default policy says).
    pub fn add_project(&self, id: &str, name: &str, tags: &[&str]) {
        self.lock()
            .projects
            .insert(id.into(), (name.into(), tags.iter().map(|t| t.to_string()).collect()));
    }

    pub fn set_visibility(&self, id: &str, visibility: &'static str) {
        if let Some(image) = self.lock().images.get_mut(id) {
            image.visibility = visibility;
        }
    }

    /// Gives the image to another project, as an admin's `openstack image set --project` does
    /// (its members stay).
    pub fn set_owner(&self, id: &str, owner: &str) {
        if let Some(image) = self.lock().images.get_mut(id) {
            image.owner = owner.into();
        }
    }

    pub fn set_member_quota(&self, quota: usize) {
        self.lock().member_quota = quota;
    }

    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().token_lifetime = lifetime;
    }

    /// Makes every issued token expire now (as if an hour had passed).
    pub fn expire_all_tokens(&self) {
        for token in self.lock().tokens.values_mut() {
            token.expires_at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
        }
    }

    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub fn set_delay(&self, delay: Option<Duration>) {
        self.lock().delay = delay;
    }

    /// The most requests that were ever being answered at once (meaningful with a delay).
    pub fn max_in_flight(&self) -> usize {
        self.lock().max_in_flight
    }

    /// Requests seen of one kind, e.g. `"POST tokens"`, `"GET member"`, `"PUT member"`.
    pub fn requests(&self, kind: &str) -> usize {
        self.lock().requests.get(kind).copied().unwrap_or(0)
    }

    /// The members created (`true`) and removed (`false`) through the API since the last call.
    pub fn take_journal(&self) -> Vec<(bool, String, String)> {
        std::mem::take(&mut self.lock().journal)
    }

    pub fn member(&self, image: &str, member: &str) -> Option<Member> {
        self.lock()
            .members
            .get(&(image.to_string(), member.to_string()))
            .cloned()
    }

    /// Adds or changes a member directly, as someone with the openstack CLI would.
    pub fn put_member(&self, image: &str, member: &str, status: MemberStatus) {
        let now = timestamp(&self.lock());
        let entry = Member {
            member_id: member.into(),
            image_id: image.into(),
            status,
            created_at: now.clone(),
            updated_at: now,
            schema: Some("/v2/schemas/member".into()),
        };
        self.lock().members.insert((image.into(), member.into()), entry);
    }

    /// Deletes an image (and so its members), as `openstack image delete` would.
    pub fn remove_image(&self, id: &str) {
        let mut state = self.lock();
        state.images.remove(id);
        state.members.retain(|(image, _), _| image != id);
    }

    pub fn remove_member(&self, image: &str, member: &str) {
        self.lock().members.remove(&(image.to_string(), member.to_string()));
    }

    /// Moves the fake's clock (for `updated_at`).
    pub fn advance_clock(&self, seconds: i64) {
        self.lock().clock_offset_seconds += seconds;
    }
}

fn timestamp(state: &FakeState) -> String {
    let now = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(state.clock_offset_seconds);
    jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", now).unwrap_or_default()
}

fn error(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let title = code.canonical_reason().unwrap_or("Error");
    let body = json!({ "message": format!("{message}<br /><br />\n\n\n"), "code": format!("{status} {title}"), "title": title });
    (code, axum::Json(body)).into_response()
}

type Shared = State<Arc<Mutex<FakeState>>>;

/// Counts the request, applies the delay and a scripted fault if one matches.
async fn prelude(state: &Arc<Mutex<FakeState>>, kind: &str) -> Option<Response> {
    let (delay, fault) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        *s.requests.entry(kind.to_string()).or_insert(0) += 1;
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        let position = s.faults.iter().position(|f| f.operation == kind);
        (s.delay, position.and_then(|i| s.faults.remove(i)))
    };
    // The answer's latency is where requests overlap; that is when they count as in flight.
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    state.lock().unwrap_or_else(|p| p.into_inner()).in_flight -= 1;
    fault.map(|f| {
        let mut response = error(f.status, "injected fault");
        if let Some(value) = f.retry_after {
            response
                .headers_mut()
                .insert("Retry-After", HeaderValue::from_static(value));
        }
        response
    })
}

fn caller(state: &FakeState, headers: &HeaderMap) -> Result<TokenInfo, Response> {
    let token = headers
        .get("X-Auth-Token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match state.tokens.get(token) {
        Some(info) if info.expires_at > jiff::Timestamp::now() => Ok(info.clone()),
        _ => Err(error(401, "The request you have made requires authentication.")),
    }
}

async fn issue_token(State(state): Shared, body: Bytes) -> Response {
    if let Some(fault) = prelude(&state, "POST tokens").await {
        return fault;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let identity = &body["auth"]["identity"];
    let unauthorized = || {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}})),
        )
            .into_response()
    };
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let user_name = identity["password"]["user"]["name"].as_str().unwrap_or_default();
    let password = identity["password"]["user"]["password"].as_str().unwrap_or_default();
    let Some(user) = s.users.get(user_name).filter(|u| u.password == password).cloned() else {
        return unauthorized();
    };
    let scoped_project = body["auth"]["scope"]["project"]["name"].as_str().unwrap_or_default();
    if scoped_project != format!("{user_name}-project") {
        return unauthorized();
    }
    s.next_token += 1;
    let token = format!("fake-token-{}", s.next_token);
    let expires_at = jiff::Timestamp::now() + jiff::SignedDuration::try_from(s.token_lifetime).unwrap_or_default();
    s.tokens.insert(
        token.clone(),
        TokenInfo {
            project_id: user.project_id.clone(),
            admin: user.admin,
            expires_at,
        },
    );
    let glance = s.glance_url.clone();
    let issued_at = jiff::Timestamp::now();
    drop(s);
    let catalog = json!([
        {"type": "image", "name": "glance", "id": "fake-glance-service", "endpoints": [
            {"interface": "public", "region_id": REGION, "region": REGION, "url": glance},
            {"interface": "internal", "region_id": REGION, "region": REGION, "url": glance},
            {"interface": "public", "region_id": "RegionTwo", "region": "RegionTwo", "url": glance}
        ]}
    ]);
    let mut response = (
        StatusCode::CREATED,
        axum::Json(json!({"token": {
            "expires_at": jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S.%6fZ", expires_at).unwrap_or_default(),
            "issued_at": jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S.%6fZ", issued_at).unwrap_or_default(),
            "project": {"id": user.project_id, "name": format!("{user_name}-project")},
            "roles": if user.admin { json!([{"id": "r-admin", "name": "admin"}, {"id": "r-member", "name": "member"}]) } else { json!([{"id": "r-member", "name": "member"}]) },
            "catalog": catalog
        }})),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&token) {
        response.headers_mut().insert("X-Subject-Token", value);
    }
    response
}

/// The caller and a shared image it may see; the error answer Glance gives otherwise (401, 404
/// for an image it cannot see, 403 for one that is not shared).
fn shared_image(state: &FakeState, headers: &HeaderMap, image_id: &str) -> Result<(TokenInfo, Image), Response> {
    let who = caller(state, headers)?;
    let image = visible_image(state, &who, image_id)?;
    if image.visibility != "shared" {
        return Err(error(403, "Only shared images have members."));
    }
    Ok((who, image))
}

/// What the caller may see of an image: 404 when it may not (as Glance does).
fn visible_image(state: &FakeState, who: &TokenInfo, image_id: &str) -> Result<Image, Response> {
    let image = state
        .images
        .get(image_id)
        .cloned()
        .ok_or_else(|| error(404, &format!("No image found with ID {image_id}")))?;
    let is_member = state
        .members
        .contains_key(&(image_id.to_string(), who.project_id.clone()));
    if who.admin
        || image.owner == who.project_id
        || image.visibility == "public"
        || image.visibility == "community"
        || is_member
    {
        Ok(image)
    } else {
        Err(error(404, &format!("No image found with ID {image_id}")))
    }
}

async fn show_image(State(state): Shared, Path(image_id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(fault) = prelude(&state, "GET image").await {
        return fault;
    }
    let s = state.lock().unwrap_or_else(|p| p.into_inner());
    let who = match caller(&s, &headers) {
        Ok(who) => who,
        Err(response) => return response,
    };
    match visible_image(&s, &who, &image_id) {
        Ok(image) => axum::Json(json!({
            "id": image_id,
            "visibility": image.visibility,
            "owner": image.owner,
            "name": format!("image-{image_id}"),
            "status": "active",
        }))
        .into_response(),
        Err(response) => response,
    }
}

/// `GET /v2/images?owner=&visibility=&limit=&marker=`: the images the caller may see, by ID,
/// a page at a time with `next` while more follow (as Glance pages).
async fn list_images(State(state): Shared, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    if let Some(fault) = prelude(&state, "GET images").await {
        return fault;
    }
    let s = state.lock().unwrap_or_else(|p| p.into_inner());
    let who = match caller(&s, &headers) {
        Ok(who) => who,
        Err(response) => return response,
    };
    let query_text = query;
    let parsed = reqwest::Url::parse(&format!("http://fake/?{}", query_text.clone().unwrap_or_default()));
    let pairs: HashMap<String, String> = parsed
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let limit: usize = pairs.get("limit").and_then(|l| l.parse().ok()).unwrap_or(25).max(1);
    // Repeated `tag`: every one must match (as Glance).
    let tags: Vec<String> = parsed_tags(query_text.as_deref());
    let mut ids: Vec<&String> = s
        .images
        .iter()
        .filter(|(id, image)| {
            visible_image(&s, &who, id).is_ok()
                && pairs.get("owner").is_none_or(|owner| *owner == image.owner)
                && pairs.get("visibility").is_none_or(|v| v == image.visibility)
                && pairs.get("status").is_none_or(|v| v == image.status)
                && pairs.get("name").is_none_or(|v| *v == image.name)
                && tags.iter().all(|tag| image.tags.contains(tag))
        })
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    if pairs.contains_key("sort_key") {
        // The operator's only sort: created_at, then ID, newest first.
        ids.sort_by(|a, b| {
            let (ia, ib) = (&s.images[*a], &s.images[*b]);
            (ib.created_at.as_str(), *b).cmp(&(ia.created_at.as_str(), *a))
        });
    }
    let start = match pairs.get("marker") {
        None => 0,
        Some(marker) => match ids.iter().position(|id| *id == marker) {
            Some(i) => i + 1,
            None => return error(400, &format!("marker not found: {marker}")),
        },
    };
    let page: Vec<Value> = ids
        .iter()
        .skip(start)
        .take(limit)
        .map(|id| {
            let image = &s.images[*id];
            json!({"id": id, "name": image.name, "owner": image.owner, "visibility": image.visibility,
                "status": image.status, "tags": image.tags, "created_at": image.created_at})
        })
        .collect();
    let mut body = json!({"images": page, "first": "/v2/images"});
    // As Glance: `next` after every full page, even when nothing follows (the next page is
    // then empty).
    if page.len() == limit
        && let Some(last) = ids.get(start + limit - 1)
    {
        body["next"] = json!(format!("/v2/images?marker={last}&limit={limit}"));
    }
    axum::Json(body).into_response()
}

async fn show_member(
    State(state): Shared,
    Path((image_id, member_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(fault) = prelude(&state, "GET member").await {
        return fault;
    }
    let s = state.lock().unwrap_or_else(|p| p.into_inner());
    let (who, image) = match shared_image(&s, &headers, &image_id) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let is_owner = who.admin || image.owner == who.project_id;
    match s.members.get(&(image_id.clone(), member_id.clone())) {
        Some(member) if is_owner || member_id == who.project_id => axum::Json(member.clone()).into_response(),
        _ => error(404, &format!("{member_id} is not a member of image {image_id}")),
    }
}

async fn list_members(State(state): Shared, Path(image_id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(fault) = prelude(&state, "GET members").await {
        return fault;
    }
    let s = state.lock().unwrap_or_else(|p| p.into_inner());
    let (who, image) = match shared_image(&s, &headers, &image_id) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let is_owner = who.admin || image.owner == who.project_id;
    let members: Vec<&Member> = s
        .members
        .iter()
        .filter(|((image, member), _)| *image == image_id && (is_owner || *member == who.project_id))
        .map(|(_, m)| m)
        .collect();
    axum::Json(json!({"members": members, "schema": "/v2/schemas/members"})).into_response()
}

async fn create_member(
    State(state): Shared,
    Path(image_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(fault) = prelude(&state, "POST members").await {
        return fault;
    }
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let (who, image) = match shared_image(&s, &headers, &image_id) {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !(who.admin || image.owner == who.project_id) {
        return error(403, "You are not permitted to create image members for the image.");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(member_id) = body["member"].as_str().filter(|m| !m.is_empty()).map(str::to_string) else {
        return error(400, "Member to be added not specified");
    };
    // Glance checks the quota before duplicates (seen on Glance 25).
    let count = s.members.keys().filter(|(image, _)| *image == image_id).count();
    if count >= s.member_quota {
        return error(
            413,
            "The request returned a 413 Request Entity Too Large. Maximum image members exceeded.",
        );
    }
    if s.members.contains_key(&(image_id.clone(), member_id.clone())) {
        return error(
            409,
            &format!("Member {member_id} already associated with image {image_id}"),
        );
    }
    let now = timestamp(&s);
    let member = Member {
        member_id: member_id.clone(),
        image_id: image_id.clone(),
        status: MemberStatus::Pending,
        created_at: now.clone(),
        updated_at: now,
        schema: Some("/v2/schemas/member".into()),
    };
    s.journal.push((true, image_id.clone(), member_id.clone()));
    s.members.insert((image_id, member_id), member.clone());
    axum::Json(member).into_response()
}

async fn set_status(
    State(state): Shared,
    Path((image_id, member_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(fault) = prelude(&state, "PUT member").await {
        return fault;
    }
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let who = match shared_image(&s, &headers, &image_id) {
        Ok((who, _)) => who,
        Err(response) => return response,
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let status: Option<MemberStatus> = serde_json::from_value(body["status"].clone()).ok();
    let Some(status) = status else {
        return error(400, "Invalid status");
    };
    if !(who.admin || who.project_id == member_id) {
        return error(403, "You are not permitted to modify 'status' on this image member.");
    }
    let now = timestamp(&s);
    match s.members.get_mut(&(image_id.clone(), member_id.clone())) {
        Some(member) => {
            member.status = status;
            member.updated_at = now;
            axum::Json(member.clone()).into_response()
        }
        None => error(404, &format!("{member_id} is not a member of image {image_id}")),
    }
}

async fn delete_member(
    State(state): Shared,
    Path((image_id, member_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(fault) = prelude(&state, "DELETE member").await {
        return fault;
    }
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let (who, image) = match shared_image(&s, &headers, &image_id) {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !(who.admin || image.owner == who.project_id) {
        return error(403, "You are not permitted to delete image members for the image.");
    }
    match s.members.remove(&(image_id.clone(), member_id.clone())) {
        Some(_) => {
            s.journal.push((false, image_id, member_id));
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(404, &format!("{member_id} is not a member of image {image_id}")),
    }
}

fn parsed_tags(query: Option<&str>) -> Vec<String> {
    reqwest::Url::parse(&format!("http://fake/?{}", query.unwrap_or_default()))
        .map(|url| {
            url.query_pairs()
                .filter(|(key, _)| key == "tag")
                .map(|(_, value)| value.into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `GET /v3/projects?tags=&tags-any=`: admins only (Keystone's default policy for a
/// project-scoped token).
async fn list_projects(State(state): Shared, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    if let Some(fault) = prelude(&state, "GET projects").await {
        return fault;
    }
    let s = state.lock().unwrap_or_else(|p| p.into_inner());
    let who = match caller(&s, &headers) {
        Ok(who) => who,
        Err(response) => return response,
    };
    if !who.admin {
        return error(
            403,
            "You are not authorized to perform the requested action: identity:list_projects.",
        );
    }
    let pairs: HashMap<String, String> = reqwest::Url::parse(&format!("http://fake/?{}", query.unwrap_or_default()))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let list = |key: &str| -> Vec<String> {
        pairs
            .get(key)
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let (all, any) = (list("tags"), list("tags-any"));
    let projects: Vec<Value> = s
        .projects
        .iter()
        .filter(|(_, (_, tags))| {
            all.iter().all(|t| tags.contains(t)) && (any.is_empty() || any.iter().any(|t| tags.contains(t)))
        })
        .map(|(id, (name, tags))| json!({"id": id, "name": name, "tags": tags, "domain_id": "default"}))
        .collect();
    axum::Json(json!({"projects": projects, "links": {"next": null}})).into_response()
}

/// The requests answered so far by kind (`"GET images"`: count), for the benchmark.
async fn request_counts(State(state): Shared) -> Response {
    let s = state.lock().unwrap_or_else(|p| p.into_inner());
    axum::Json(json!(s.requests)).into_response()
}
