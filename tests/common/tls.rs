//! A TLS front that requires a client certificate, in front of the real (plain HTTP) Keystone:
//! a cloud whose Keystone asks for client certificates, as the operator and the `openstack` CLI
//! meet it. It runs on a thread of its own, so a test that blocks on a command (the CLI, kubectl)
//! does not stall it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto};

/// The PEM files a client needs: the CA that signed the front's certificate (and the client's),
/// and a client certificate with its key.
pub struct ClientFiles {
    pub dir: PathBuf,
}

impl ClientFiles {
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn cert(&self) -> PathBuf {
        self.dir.join("client.crt")
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join("client.key")
    }
    /// A client certificate of another CA: the front refuses it.
    pub fn stranger_cert(&self) -> PathBuf {
        self.dir.join("stranger.crt")
    }
    pub fn stranger_key(&self) -> PathBuf {
        self.dir.join("stranger.key")
    }
}

pub struct TlsFront {
    /// `https://127.0.0.1:PORT/v3`.
    pub auth_url: String,
    pub files: ClientFiles,
}

impl TlsFront {
    /// Starts a front on a free loopback port that forwards to `upstream` (`127.0.0.1:5000`).
    pub fn start(upstream: SocketAddr) -> TlsFront {
        let dir = std::env::temp_dir().join(super::cluster::unique("iao-tls-front"));
        std::fs::create_dir_all(&dir).expect("dir");
        let (config, files) = pki(&dir);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(serve(listener, TlsAcceptor::from(Arc::new(config)), upstream));
        });
        TlsFront {
            auth_url: format!("https://127.0.0.1:{port}/v3"),
            files,
        }
    }
}

async fn serve(listener: std::net::TcpListener, acceptor: TlsAcceptor, upstream: SocketAddr) {
    let listener = TcpListener::from_std(listener).expect("listener");
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            // A client without a trusted certificate fails here: the handshake's alert tells it.
            let Ok(mut tls) = acceptor.accept(socket).await else {
                return;
            };
            let Ok(mut plain) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
        });
    }
}

/// A CA, the front's certificate for 127.0.0.1, a client certificate of the same CA and one of
/// another CA, written as PEM into `dir`.
fn pki(dir: &Path) -> (ServerConfig, ClientFiles) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "iao test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA");

    let server_key = rcgen::KeyPair::generate().expect("key");
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&server_key, &ca, &ca_key)
        .expect("server cert");

    let client_key = rcgen::KeyPair::generate().expect("key");
    let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "image-access-operator");
    let client = client_params.signed_by(&client_key, &ca, &ca_key).expect("client cert");

    let stranger_ca_key = rcgen::KeyPair::generate().expect("key");
    let mut stranger_ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    stranger_ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let stranger_ca = stranger_ca_params.self_signed(&stranger_ca_key).expect("CA");
    let stranger_key = rcgen::KeyPair::generate().expect("key");
    let stranger = rcgen::CertificateParams::new(Vec::<String>::new())
        .expect("params")
        .signed_by(&stranger_key, &stranger_ca, &stranger_ca_key)
        .expect("stranger cert");

    let write = |name: &str, pem: String| std::fs::write(dir.join(name), pem).expect("write PEM");
    write("ca.crt", ca.pem());
    write("client.crt", client.pem());
    write("client.key", client_key.serialize_pem());
    write("stranger.crt", stranger.pem());
    write("stranger.key", stranger_key.serialize_pem());

    let provider = Arc::new(crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).expect("root");
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .expect("client verifier");
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .expect("server config");
    (config, ClientFiles { dir: dir.to_path_buf() })
}
