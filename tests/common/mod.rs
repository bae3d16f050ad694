//! Shared by the tests that use real parts: the real Keystone + Glance started by
//! `tests/env/up.sh`, described by the variables of its env file (`.e2e/env.sh`).
//! A run that asked for these tests (feature `e2e`) fails when the environment is missing:
//! it never passes by skipping.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};

pub struct RealOpenStack {
    pub keystone_url: String,
    pub glance_url: String,
    pub user_password: String,
    pub admin_password: String,
    pub owner_project_id: String,
    pub member1_project_id: String,
    pub member2_project_id: String,
    pub owner_user_id: String,
    pub member_quota: usize,
    http: reqwest::Client,
}

pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the tests with real parts need the environment of tests/env/up.sh \
             (run `make test`, or `make env-up` and `source .e2e/env.sh`)"
        )
    })
}

impl RealOpenStack {
    pub fn from_env() -> RealOpenStack {
        RealOpenStack {
            keystone_url: var("OSL_KEYSTONE_URL"),
            glance_url: var("OSL_GLANCE_URL"),
            user_password: var("OSL_USER_PASSWORD"),
            admin_password: var("OSL_ADMIN_PASSWORD"),
            owner_project_id: var("OSL_OWNER_PROJECT_ID"),
            member1_project_id: var("OSL_MEMBER1_PROJECT_ID"),
            member2_project_id: var("OSL_MEMBER2_PROJECT_ID"),
            owner_user_id: var("OSL_OWNER_USER_ID"),
            member_quota: var("OSL_IMAGE_MEMBER_QUOTA").parse().expect("quota is a number"),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
        }
    }

    /// The clouds.yaml tests/env/up.sh wrote: clouds `owner`, `member1`, `member2`, `admin`.
    pub fn clouds_yaml(&self) -> String {
        let path = var("IAO_CLOUDS_YAML");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A project-scoped token for `owner`, `member1`, `member2` or `admin`.
    pub async fn token(&self, who: &str) -> String {
        let (user, password, project) = match who {
            "admin" => ("admin".to_string(), self.admin_password.clone(), "admin".to_string()),
            other => (format!("{other}-user"), self.user_password.clone(), other.to_string()),
        };
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
        let response = self
            .http
            .post(format!("{}/auth/tokens", self.keystone_url))
            .json(&body)
            .send()
            .await
            .expect("keystone");
        assert!(response.status().is_success(), "token for {who}: {}", response.status());
        response.headers()["X-Subject-Token"]
            .to_str()
            .expect("token")
            .to_string()
    }

    /// Creates an image (no data: members do not need any) owned by the owner project.
    pub async fn create_image(&self, visibility: &str) -> String {
        let token = self.token("owner").await;
        let body = json!({"name": format!("iao-test-{visibility}"), "visibility": visibility, "disk_format": "raw", "container_format": "bare"});
        let response = self
            .http
            .post(format!("{}/v2/images", self.glance_url))
            .header("X-Auth-Token", token)
            .json(&body)
            .send()
            .await
            .expect("glance");
        assert_eq!(response.status().as_u16(), 201, "create image");
        let image: Value = response.json().await.expect("image json");
        image["id"].as_str().expect("image id").to_string()
    }

    /// A build of a golden image, as an image pipeline makes one: a shared image of `who`'s
    /// project named `name`, tagged `tags`, with `property` set, its data uploaded when `active`
    /// (otherwise it stays `queued`, as a build still uploading). Returns its ID.
    pub async fn create_build(&self, who: &str, name: &str, tags: &[&str], active: bool) -> String {
        let token = self.token(who).await;
        let body = json!({"name": name, "visibility": "shared", "disk_format": "raw", "container_format": "bare",
            "tags": tags, "iao_build": "test"});
        let response = self
            .http
            .post(format!("{}/v2/images", self.glance_url))
            .header("X-Auth-Token", &token)
            .json(&body)
            .send()
            .await
            .expect("glance");
        assert_eq!(response.status().as_u16(), 201, "create build");
        let image: Value = response.json().await.expect("image json");
        let id = image["id"].as_str().expect("image id").to_string();
        if active {
            let response = self
                .http
                .put(format!("{}/v2/images/{id}/file", self.glance_url))
                .header("X-Auth-Token", &token)
                .header("Content-Type", "application/octet-stream")
                .body(vec![0u8; 16])
                .send()
                .await
                .expect("glance");
            assert_eq!(response.status().as_u16(), 204, "upload build");
        }
        id
    }

    /// Adds (`on`) or removes a tag of one of `who`'s images.
    pub async fn tag_image(&self, who: &str, image_id: &str, tag: &str, on: bool) {
        let token = self.token(who).await;
        let url = format!("{}/v2/images/{image_id}/tags/{tag}", self.glance_url);
        let request = if on { self.http.put(url) } else { self.http.delete(url) };
        let response = request.header("X-Auth-Token", token).send().await.expect("glance");
        assert_eq!(response.status().as_u16(), 204, "tag image");
    }

    /// Creates a Keystone project in the Default domain (as the admin) tagged `tags`.
    pub async fn create_project(&self, name: &str, tags: &[&str]) -> String {
        self.create_project_in("default", name, tags).await
    }

    /// Creates a Keystone domain (as the admin); returns its ID.
    pub async fn create_domain(&self, name: &str) -> String {
        let token = self.token("admin").await;
        let response = self
            .http
            .post(format!("{}/domains", self.keystone_url))
            .header("X-Auth-Token", token)
            .json(&json!({"domain": {"name": name, "enabled": true}}))
            .send()
            .await
            .expect("keystone");
        assert_eq!(response.status().as_u16(), 201, "create domain");
        let body: Value = response.json().await.expect("json");
        body["domain"]["id"].as_str().expect("domain id").to_string()
    }

    /// Creates a Keystone project in domain `domain_id` (as the admin) tagged `tags`.
    pub async fn create_project_in(&self, domain_id: &str, name: &str, tags: &[&str]) -> String {
        let token = self.token("admin").await;
        let response = self
            .http
            .post(format!("{}/projects", self.keystone_url))
            .header("X-Auth-Token", token)
            .json(&json!({"project": {"name": name, "domain_id": domain_id, "enabled": true, "tags": tags}}))
            .send()
            .await
            .expect("keystone");
        assert_eq!(response.status().as_u16(), 201, "create project");
        let body: Value = response.json().await.expect("json");
        body["project"]["id"].as_str().expect("project id").to_string()
    }

    /// Adds (`on`) or removes a tag of a Keystone project (as the admin).
    pub async fn tag_project(&self, project_id: &str, tag: &str, on: bool) {
        let token = self.token("admin").await;
        let url = format!("{}/projects/{project_id}/tags/{tag}", self.keystone_url);
        let request = if on { self.http.put(url) } else { self.http.delete(url) };
        let response = request.header("X-Auth-Token", token).send().await.expect("keystone");
        assert!(response.status().is_success(), "tag project: {}", response.status());
    }

    /// The members of `image` as `who` (its owner, or an admin) lists them; an error when Glance
    /// does not answer 200 with a member list (never an empty list in its place: a "not
    /// there" check would pass on it).
    pub async fn members_of(&self, who: &str, image: &str) -> Result<std::collections::BTreeSet<String>, String> {
        let token = self.token(who).await;
        let response = self
            .http
            .get(format!("{}/v2/images/{image}/members", self.glance_url))
            .header("X-Auth-Token", token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| format!("{status}: {e}"))?;
        if !status.is_success() {
            return Err(format!("Glance answered {status}: {body}"));
        }
        let members = body["members"]
            .as_array()
            .ok_or_else(|| format!("no member list in {body}"))?;
        Ok(members
            .iter()
            .filter_map(|m| m["member_id"].as_str().map(str::to_string))
            .collect())
    }

    /// Sets an image's visibility (as its owner).
    pub async fn set_visibility(&self, image_id: &str, visibility: &str) {
        let token = self.token("owner").await;
        let patch = json!([{"op": "replace", "path": "/visibility", "value": visibility}]);
        let response = self
            .http
            .patch(format!("{}/v2/images/{image_id}", self.glance_url))
            .header("X-Auth-Token", token)
            .header("Content-Type", "application/openstack-images-v2.1-json-patch")
            .body(patch.to_string())
            .send()
            .await
            .expect("glance");
        assert_eq!(response.status().as_u16(), 200, "set visibility");
    }

    /// The member as Glance reports it to the owner, or None on 404.
    pub async fn member(&self, image_id: &str, member_id: &str) -> Option<Value> {
        self.try_member(image_id, member_id)
            .await
            .unwrap_or_else(|e| panic!("show member: {e}"))
    }

    /// Like [`RealOpenStack::member`], with a failed look as an error: inside a wait, "Glance
    /// did not answer" is "not yet", never "not there".
    pub async fn try_member(&self, image_id: &str, member_id: &str) -> Result<Option<Value>, String> {
        let token = self.token("owner").await;
        let response = self
            .http
            .get(format!("{}/v2/images/{image_id}/members/{member_id}", self.glance_url))
            .header("X-Auth-Token", token)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match response.status().as_u16() {
            200 => response.json().await.map(Some).map_err(|e| e.to_string()),
            404 => Ok(None),
            other => Err(format!("Glance answered {other}")),
        }
    }

    /// The IDs in `who`'s default image list (`GET /v2/images`): its own images, public ones
    /// and those shared with it that it accepted.
    pub async fn image_list(&self, who: &str) -> Vec<String> {
        let token = self.token(who).await;
        let response = self
            .http
            .get(format!("{}/v2/images?limit=1000", self.glance_url))
            .header("X-Auth-Token", token)
            .header("Accept", "application/json")
            .send()
            .await
            .expect("glance");
        assert_eq!(response.status().as_u16(), 200, "image list");
        let list: Value = response.json().await.expect("json");
        // No list is an error, never an empty list: "not in the list" checks would pass on it.
        list["images"]
            .as_array()
            .unwrap_or_else(|| panic!("no image list in Glance's answer: {list}"))
            .iter()
            .filter_map(|i| i["id"].as_str().map(str::to_string))
            .collect()
    }

    /// Adds, changes or removes a member directly in Glance, as a person with the CLI would.
    pub async fn raw(&self, who: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> u16 {
        let token = self.token(who).await;
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.glance_url))
            .header("X-Auth-Token", token)
            .header("Accept", "application/json");
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("glance").status().as_u16()
    }

    /// Creates an application credential for the owner user: (id, secret).
    pub async fn application_credential(&self, name: &str) -> (String, String) {
        let token = self.token("owner").await;
        let response = self
            .http
            .post(format!(
                "{}/users/{}/application_credentials",
                self.keystone_url, self.owner_user_id
            ))
            .header("X-Auth-Token", token)
            .json(&json!({"application_credential": {"name": name}}))
            .send()
            .await
            .expect("keystone");
        assert_eq!(response.status().as_u16(), 201, "create application credential");
        let body: Value = response.json().await.expect("json");
        let credential = &body["application_credential"];
        (
            credential["id"].as_str().expect("id").into(),
            credential["secret"].as_str().expect("secret").into(),
        )
    }
}
pub mod cluster;
pub mod helm;
pub mod tls;
