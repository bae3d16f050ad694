//! End to end: the operator binary against a real kube-apiserver and a real Keystone + Glance,
//! driven with kubectl as users do. Each test has its own namespace and its own operator
//! (watching only that namespace), so tests run side by side. `make test` runs them.
#![cfg(feature = "e2e")]

mod common;

use std::time::{Duration, Instant};

use common::RealOpenStack;
use common::cluster::{Operator, TestNamespace, WAIT, condition, eventually, is_ready, kubectl, kubectl_ok, manifest};
use image_access_operator::api::MemberStatus;

#[tokio::test]
async fn admission_refuses_bad_manifests_with_readable_messages() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("admission", &env).await;
    let image = "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10";
    let long_member = "m".repeat(256);
    let expected_form = format!("lowercase with dashes: {image}");
    let cases: Vec<(String, &str)> = vec![
        (
            "apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageAccess\nmetadata:\n  name: no-image\nspec:\n  memberId: abc\n  cloudCredentialsRef: {secretName: s, cloudName: c}\n".into(),
            "give exactly one of imageId (the image by ID) and imageRef (the image by name)",
        ),
        (manifest("bad-uuid", "not-a-uuid", "abc", "owner", ""), "imageId must be a Glance image ID"),
        // Issue 7, C12: spellings Glance would answer 404 for, refused with the form to use.
        (manifest("upper", &image.to_uppercase(), "abc", "owner", ""), &expected_form),
        (manifest("no-dashes", &image.replace('-', ""), "abc", "owner", ""), &expected_form),
        (manifest("bad-status", image, "abc", "owner", "  status: approved\n"), "spec.status: Unsupported value: \"approved\""),
        (manifest("long-member", image, &long_member, "owner", ""), "spec.memberId: Too long"),
        (manifest("bad-policy", image, "abc", "owner", "  deletionPolicy: Keep\n"), "spec.deletionPolicy: Unsupported value: \"Keep\""),
        (manifest("slash", image, "a/b", "owner", ""), "memberId must not contain '/'"),
        // Issue 23: a resync below a minute, or not a duration, is refused with what to write.
        (manifest("fast-resync", image, "abc", "owner", "  resyncPeriod: 30s\n"), "resyncPeriod must be a duration from 1m to 24h"),
        (manifest("bare-resync", image, "abc", "owner", "  resyncPeriod: \"5\"\n"), "resyncPeriod must be a duration from 1m to 24h"),
        (manifest("slow-resync", image, "abc", "owner", "  resyncPeriod: 25h\n"), "resyncPeriod must be a duration from 1m to 24h"),
        // Digits CEL's duration() would overflow on: the rule's message, not an evaluation error.
        (manifest("huge-resync", image, "abc", "owner", "  resyncPeriod: 99999999999h\n"), "resyncPeriod must be a duration from 1m to 24h"),
        // Issue 23: an Observe object never creates, so onCreate beside it makes no sense.
        (manifest("observe-adopt", image, "abc", "owner", "  managementPolicy: Observe\n  onCreate: Adopt\n"), "onCreate has no effect with managementPolicy: Observe"),
        (manifest("bad-mode", image, "abc", "owner", "  managementPolicy: Unmanaged\n"), "spec.managementPolicy: Unsupported value: \"Unmanaged\""),
    ];
    ns.assert_refused(&cases);
    let out = ns.apply(&manifest(
        "valid",
        image,
        "abc",
        "owner",
        "  status: accepted\n  region: RegionOne\n  deletionPolicy: Orphan\n  resyncPeriod: 1m\n  managementPolicy: Observe\n",
    ));
    assert!(out.success, "{}", out.stderr);

    let wide = kubectl_ok(&["get", "ia", "-n", &ns.name, "-o", "wide"], None);
    let header = wide.lines().next().unwrap_or_default();
    for column in ["NAME", "IMAGE", "MEMBER", "MEMBER-STATUS", "READY", "REASON", "AGE"] {
        assert!(header.contains(column), "{column} missing from {header}");
    }
    let narrow = kubectl_ok(&["get", "imageaccesses", "-n", &ns.name], None);
    // The header must be there (an empty output has no REASON column either).
    let narrow_header = narrow
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no table printed: {narrow:?}"));
    assert!(
        narrow_header.contains("NAME") && narrow_header.contains("READY"),
        "a table header: {narrow}"
    );
    assert!(
        !narrow_header.contains("REASON"),
        "Reason is wide only: {narrow_header}"
    );
    let by_category = kubectl_ok(&["get", "openstack", "-n", &ns.name], None);
    assert!(by_category.contains("valid"), "{by_category}");

    let explain = kubectl_ok(&["explain", "imageaccess.spec"], None);
    assert!(
        explain.contains("ID of the Glance image to share, as Glance shows it"),
        "{explain}"
    );
    assert!(explain.contains("deletionPolicy"), "{explain}");
    let explain_status = kubectl_ok(&["explain", "imageaccess.status.applied"], None);
    assert!(
        explain_status.contains("under this object's management"),
        "{explain_status}"
    );
}

#[tokio::test]
async fn lifecycle_with_kubectl_create_accept_replace_delete() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("lifecycle", &env).await;
    let operator = Operator::start(&ns.name, &[]);
    let image = env.create_image("shared").await;
    let member = env.member1_project_id.clone();

    // Apply → Ready, pending in Glance, Glance's timestamps in the status.
    let out = ns.apply(&manifest("share", &image, &member, "owner", ""));
    assert!(out.success, "{}", out.stderr);
    let wait = kubectl(
        &[
            "wait",
            "-n",
            &ns.name,
            "--for=condition=Ready",
            "--timeout=60s",
            "ia/share",
        ],
        None,
    );
    assert!(
        wait.success,
        "kubectl wait: {} {}",
        wait.stderr,
        operator.log_for_message()
    );
    let object = ns.get("share").await.expect("object");
    let glance = env.member(&image, &member).await.expect("member in Glance");
    assert_eq!(glance["status"], "pending");
    let status = object.status.clone().expect("status");
    assert_eq!(status.member_status, Some(MemberStatus::Pending));
    assert_eq!(status.created_at.as_deref(), glance["created_at"].as_str());
    assert_eq!(status.updated_at.as_deref(), glance["updated_at"].as_str());
    assert_eq!(status.schema.as_deref(), glance["schema"].as_str());
    assert!(
        object
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"glance.viettelidc.com.vn/cleanup".to_string())
    );
    let printed = kubectl_ok(&["get", "ia", "share", "-n", &ns.name], None);
    assert!(printed.contains("pending") && printed.contains("True"), "{printed}");

    // status: accepted with admin credentials → Glance says accepted.
    let out = ns.apply(&manifest("share", &image, &member, "admin", "  status: accepted\n"));
    assert!(out.success, "{}", out.stderr);
    eventually("accepted in Glance", WAIT, || async {
        env.try_member(&image, &member)
            .await
            .ok()
            .flatten()
            .filter(|m| m["status"] == "accepted")
    })
    .await;
    let object = ns.wait_ready("share").await;
    assert_eq!(
        object.status.and_then(|s| s.member_status),
        Some(MemberStatus::Accepted)
    );

    // Change imageId → the old membership is gone, the new one present.
    let next_image = env.create_image("shared").await;
    let out = ns.apply(&manifest(
        "share",
        &next_image,
        &member,
        "admin",
        "  status: accepted\n",
    ));
    assert!(out.success, "{}", out.stderr);
    eventually("replaced", WAIT, || async {
        let old_gone = matches!(env.try_member(&image, &member).await, Ok(None));
        let new = env.try_member(&next_image, &member).await.ok().flatten();
        (old_gone && new.is_some_and(|m| m["status"] == "accepted")).then_some(())
    })
    .await;
    let object = ns.wait_ready("share").await;
    assert_eq!(
        object.status.and_then(|s| s.applied).map(|a| a.image_id),
        Some(next_image.clone())
    );

    // Delete → the membership goes, then the object.
    kubectl_ok(
        &["delete", "ia", "share", "-n", &ns.name, "--wait=true", "--timeout=60s"],
        None,
    );
    ns.wait_gone("share").await;
    assert!(
        env.member(&next_image, &member).await.is_none(),
        "membership removed on delete"
    );

    ns.wait_events(None, &["MemberCreated", "StatusSet", "Replaced", "MemberDeleted"])
        .await;
}

#[tokio::test]
async fn orphan_policy_keeps_the_membership() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("orphan", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let image = env.create_image("shared").await;
    let member = env.member2_project_id.clone();
    assert!(
        ns.apply(&manifest(
            "keep",
            &image,
            &member,
            "owner",
            "  deletionPolicy: Orphan\n"
        ))
        .success
    );
    ns.wait_ready("keep").await;
    kubectl_ok(&["delete", "ia", "keep", "-n", &ns.name, "--timeout=60s"], None);
    ns.wait_gone("keep").await;
    assert!(env.member(&image, &member).await.is_some(), "membership left in Glance");
}

#[tokio::test]
async fn owner_asking_for_a_status_stalls_without_a_hot_loop() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("stalled", &env).await;
    let operator = Operator::start_fast(&ns.name, &[]);
    let image = env.create_image("shared").await;
    let member = env.member1_project_id.clone();
    assert!(
        ns.apply(&manifest(
            "owner-accepts",
            &image,
            &member,
            "owner",
            "  status: accepted\n"
        ))
        .success
    );
    let object = ns.wait_condition("owner-accepts", "Stalled").await;
    let (_, reason, message) = condition(&object, "Stalled").expect("Stalled");
    assert_eq!(reason, "StatusChangeForbidden");
    assert!(message.contains("remove spec.status"), "{message}");
    assert_eq!(condition(&object, "Ready").map(|c| c.0), Some("False".into()));

    // No hot loop: over 9 s with a 3 s re-check, a handful of reconciles, not hundreds. That
    // nothing more happens can only be seen by waiting the window out, so it keeps its sleep;
    // it starts once /metrics has counted the refused status call (the Stalled path was taken
    // and is measured), and it must hold the re-checks (the operator was alive and counting).
    let total = r#"controller_runtime_reconcile_total{controller="imageaccess",result="success"}"#;
    let refused =
        r#"image_access_operator_openstack_requests_total{service="image",operation="set_member_status",code="403"}"#;
    eventually("the refused status call counted on /metrics", WAIT, || async {
        operator.try_metric(refused).await.filter(|count| *count >= 1.0)
    })
    .await;
    let before = operator.metric(total).await;
    let puts_before = operator.metric(refused).await;
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(9)).await;
    let reconciles = operator.metric(total).await - before;
    let puts = operator.metric(refused).await - puts_before;
    let took = window.elapsed();
    assert!(
        reconciles >= 1.0,
        "no reconcile in {took:?}: the 3 s re-check should have come (is the operator alive?)\n{}",
        operator.log_for_message()
    );
    assert!(reconciles <= 6.0, "{reconciles} reconciles in {took:?}: a hot loop");
    assert!(puts <= 6.0, "{puts} refused status calls in {took:?}");
    let warnings = ns.wait_events(Some("Warning"), &["StatusChangeForbidden"]).await;
    assert_eq!(
        warnings.matches("StatusChangeForbidden").count(),
        1,
        "one Warning, on the transition: {warnings}"
    );

    // The fix the message names: remove spec.status → Ready.
    assert!(
        ns.apply(&manifest("owner-accepts", &image, &member, "owner", ""))
            .success
    );
    ns.wait_ready("owner-accepts").await;
}

#[tokio::test]
async fn drift_in_glance_is_repaired_within_a_resync() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("drift", &env).await;
    let _operator = Operator::start_fast(&ns.name, &[]);
    let image = env.create_image("shared").await;
    let member = env.member1_project_id.clone();
    assert!(
        ns.apply(&manifest("drift", &image, &member, "admin", "  status: accepted\n"))
            .success
    );
    ns.wait_ready("drift").await;

    // Someone removes the member by hand → recreated (resync is 4 s here).
    let path = format!("/v2/images/{image}/members/{member}");
    assert_eq!(env.raw("owner", reqwest::Method::DELETE, &path, None).await, 204);
    eventually("recreated and accepted", Duration::from_secs(20), || async {
        env.try_member(&image, &member)
            .await
            .ok()
            .flatten()
            .filter(|m| m["status"] == "accepted")
    })
    .await;

    // Someone rejects it by hand → restored to accepted.
    let body = serde_json::json!({"status": "rejected"});
    assert_eq!(env.raw("member1", reqwest::Method::PUT, &path, Some(body)).await, 200);
    assert_eq!(env.member(&image, &member).await.expect("member")["status"], "rejected");
    eventually("status restored", Duration::from_secs(20), || async {
        env.try_member(&image, &member)
            .await
            .ok()
            .flatten()
            .filter(|m| m["status"] == "accepted")
    })
    .await;
    ns.wait_events(None, &["MemberRecreated"]).await;
}

#[tokio::test]
async fn private_image_and_member_quota_stall_with_reasons() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("refusals", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let private = env.create_image("private").await;
    assert!(
        ns.apply(&manifest("private", &private, &env.member1_project_id, "owner", ""))
            .success
    );
    let object = ns.wait_condition("private", "Stalled").await;
    let (_, reason, message) = condition(&object, "Stalled").expect("Stalled");
    assert_eq!(reason, "ImageNotShared");
    assert!(message.contains("openstack image set --shared"), "{message}");

    let full = env.create_image("shared").await;
    for i in 0..env.member_quota {
        let body = serde_json::json!({"member": format!("filler-{i}")});
        assert_eq!(
            env.raw(
                "owner",
                reqwest::Method::POST,
                &format!("/v2/images/{full}/members"),
                Some(body)
            )
            .await,
            200
        );
    }
    assert!(
        ns.apply(&manifest("quota", &full, &env.member1_project_id, "owner", ""))
            .success
    );
    let object = ns.wait_condition("quota", "Stalled").await;
    assert_eq!(
        condition(&object, "Stalled").map(|c| c.1),
        Some("MemberQuotaExceeded".into())
    );

    // Deleting a never-applied object is not blocked.
    kubectl_ok(
        &["delete", "ia", "private", "quota", "-n", &ns.name, "--timeout=60s"],
        None,
    );
    ns.wait_gone("private").await;
    ns.wait_gone("quota").await;
}

#[tokio::test]
async fn wrong_password_stalls_and_a_fixed_secret_recovers_without_restart() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("password", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let good = env.clouds_yaml();
    ns.put_secret(&good.replace(
        &format!("password: {}", env.user_password),
        "password: not-the-password",
    ))
    .await;
    let image = env.create_image("shared").await;
    assert!(
        ns.apply(&manifest("auth", &image, &env.member1_project_id, "owner", ""))
            .success
    );
    let object = ns.wait_condition("auth", "Stalled").await;
    let (_, reason, message) = condition(&object, "Stalled").expect("Stalled");
    assert_eq!(reason, "AuthenticationFailed");
    assert!(!message.contains("not-the-password"), "no secret in conditions");
    let events = kubectl_ok(
        &["get", "events", "-n", &ns.name, "-o", "jsonpath={.items[*].message}"],
        None,
    );
    assert!(
        events.contains("Keystone refused the credentials"),
        "the Warning is there: {events}"
    );
    assert!(
        !events.contains("not-the-password") && !events.contains(&env.user_password),
        "no secret in events"
    );

    // Issue 7, B8: with the default 5-minute stalled re-check, only the Secret's watch can make
    // this quick.
    let fixed = std::time::Instant::now();
    ns.put_secret(&good).await;
    ns.wait_ready_within("auth", Duration::from_secs(20)).await;
    eprintln!("fixed password used after {:?}", fixed.elapsed());
    assert!(env.member(&image, &env.member1_project_id).await.is_some());
}

#[tokio::test]
async fn kstatus_reads_ready_as_current_and_stalled_as_failed() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("kstatus", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let image = env.create_image("shared").await;
    let private = env.create_image("private").await;
    assert!(
        ns.apply(&manifest("ready", &image, &env.member1_project_id, "owner", ""))
            .success
    );
    assert!(
        ns.apply(&manifest("failed", &private, &env.member1_project_id, "owner", ""))
            .success
    );
    ns.wait_ready("ready").await;
    ns.wait_condition("failed", "Stalled").await;
    // An object no operator has looked at yet (here: one nobody watches) is in progress, not
    // Current: the CRD gives it observedGeneration 0 from its first moment.
    let unwatched = TestNamespace::new("kstatus-unwatched", &env).await;
    assert!(
        unwatched
            .apply(&manifest("new", &image, &env.member2_project_id, "owner", ""))
            .success
    );
    for (namespace, name, expected) in [
        (&ns.name, "ready", "Current"),
        (&ns.name, "failed", "Failed"),
        (&unwatched.name, "new", "InProgress"),
    ] {
        let json = kubectl_ok(&["get", "ia", name, "-n", namespace, "-o", "json"], None);
        let out = std::process::Command::new("kstatus")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().expect("stdin").write_all(json.as_bytes())?;
                child.wait_with_output()
            })
            .expect("kstatus helper on PATH (hack/tools.sh builds it)");
        let verdict = String::from_utf8_lossy(&out.stdout);
        assert!(verdict.starts_with(expected), "{name}: kstatus says {verdict}");
    }
}

#[tokio::test]
async fn restart_after_50_objects_leaves_no_duplicate_and_no_orphan() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("restart", &env).await;
    let mut operator = Operator::start(&ns.name, &[]);
    // 25 images × 2 members: the test Glance allows 2 members per image.
    let mut images = Vec::new();
    for _ in 0..25 {
        images.push(env.create_image("shared").await);
    }
    let mut manifests = String::new();
    let members = [env.member1_project_id.clone(), env.member2_project_id.clone()];
    for (i, image) in images.iter().enumerate() {
        for (j, member) in members.iter().enumerate() {
            manifests.push_str(&manifest(&format!("ia-{i}-{j}"), image, member, "owner", ""));
            manifests.push_str("---\n");
        }
    }
    assert!(ns.apply(&manifests).success);
    // Kill it while it works: as soon as it has begun (an object carries its finalizer or a
    // status), not after a guessed time.
    let (touched, ready) = eventually("the operator at work on the 50 objects", WAIT, || async {
        let list = ns.api().list(&Default::default()).await.ok()?;
        let touched = list
            .items
            .iter()
            .filter(|o| o.status.is_some() || o.metadata.finalizers.as_ref().is_some_and(|f| !f.is_empty()))
            .count();
        let ready = list.items.iter().filter(|o| is_ready(*o)).count();
        (touched > 0).then_some((touched, ready))
    })
    .await;
    operator.kill();
    eprintln!("killed the operator at work: {touched} of 50 objects touched, {ready} Ready");
    let _restarted = Operator::start(&ns.name, &[]);
    eventually("all 50 Ready", Duration::from_secs(120), || async {
        let list = ns.api().list(&Default::default()).await.ok()?;
        (list.items.len() == 50 && list.items.iter().all(is_ready)).then_some(())
    })
    .await;
    let token = env.token("owner").await;
    let http = reqwest::Client::builder().no_proxy().build().expect("http");
    for image in &images {
        let body: serde_json::Value = http
            .get(format!("{}/v2/images/{image}/members", env.glance_url))
            .header("X-Auth-Token", &token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let mut found: Vec<String> = body["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| m["member_id"].as_str().unwrap_or_default().to_string())
            .collect();
        found.sort();
        let mut expected = members.to_vec();
        expected.sort();
        assert_eq!(found, expected, "image {image}: exactly the two declared members");
    }
}
