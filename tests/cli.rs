//! The binary as a person meets it on a terminal or in `kubectl logs`: errors are sentences
//! (Display, not a quoted Debug string), and logs carry no colour codes when they are not
//! written to a terminal. A stand-in API server on loopback answers as one without the CRD.

use std::process::Command;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;

/// Answers every request as an API server that does not know the ImageAccess kind.
async fn api_without_the_crd() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let router = Router::new().fallback(|| async {
        (
            StatusCode::NOT_FOUND,
            [("content-type", "application/json")],
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","code":404}"#,
        )
            .into_response()
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    port
}

fn kubeconfig(server: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("iao-cli-{}.kubeconfig", std::process::id()));
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n"
    );
    std::fs::write(&path, text).expect("kubeconfig");
    path
}

/// Issue 7, item 18.
#[tokio::test]
async fn a_missing_crd_is_a_sentence_that_says_how_to_install_it() {
    let port = api_without_the_crd().await;
    let config = kubeconfig(&format!("http://127.0.0.1:{port}"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_image-access-operator"))
            .env("KUBECONFIG", &config)
            .env_remove("RUST_LOG")
            .args(["--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0"])
            .output()
            .expect("run the binary")
    })
    .await
    .expect("join");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr.contains("error: the CRD imageaccesses.glance.viettelidc.com.vn is not installed: kubectl apply --server-side -f crds/"),
        "{stderr}"
    );
    assert!(!stderr.contains("Error: \""), "not a quoted Debug string: {stderr}");
    assert!(
        !stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'),
        "no colour codes off a terminal: {stdout}"
    );
}

/// Issue 11: `export` on a state captured from a real Terraform run, as a person runs it: the
/// manifests on stdout (valid YAML, one object per membership), the summary on stderr; no
/// source is a usage error that names both.
#[test]
fn export_writes_manifests_on_stdout_and_the_summary_on_stderr() {
    let binary = env!("CARGO_BIN_EXE_image-access-operator");
    let state = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/terraform/terraform.tfstate"
    );
    let out = Command::new(binary)
        .args(["export", "--from-terraform-state", state, "-n", "apps"])
        .output()
        .expect("run the binary");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).expect("YAML on stdout");
    assert_eq!(documents.len(), 5);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exported 4 ImageAccess and 1 ImageAccessAccept objects"),
        "{stderr}"
    );
    assert!(stderr.contains("ignored 4 instances"), "{stderr}");

    let out = Command::new(binary).arg("export").output().expect("run the binary");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--from-glance") && stderr.contains("--from-terraform-state"),
        "{stderr}"
    );
}
