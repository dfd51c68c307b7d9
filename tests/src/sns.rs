//! A loopback Amazon SNS for the SNS sender tests: an HTTPS server whose
//! certificate (from a test CA) names the SNS hosts, serving a signing
//! certificate and recording subscription confirmations, and an RSA key
//! that signs messages as SNS does (SignatureVersion 1: SHA1withRSA, 2:
//! SHA256withRSA). `soar serve` reaches it only through the test-only
//! `SOAR_TEST_SNS_ADDR` / `SOAR_TEST_SNS_CA` (see runner's intake/sns.rs).
//! The RSA key and certificate come from `openssl`, which rcgen cannot make.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// The regions whose SNS host names the loopback certificate carries.
pub const REGIONS: [&str; 2] = ["us-west-2", "eu-west-1"];

/// A running loopback SNS.
pub struct FakeSns {
    /// Serves while it lives.
    _rt: tokio::runtime::Runtime,
    /// Its address (every SNS host resolves here under the override).
    pub addr: SocketAddr,
    /// The test CA that signed its TLS certificate (PEM file).
    pub ca_path: PathBuf,
    key_path: PathBuf,
    dir: PathBuf,
    hits: Arc<Mutex<Vec<String>>>,
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

type Hits = Arc<Mutex<Vec<String>>>;

async fn answer(
    State((hits, cert)): State<(Hits, String)>,
    uri: axum::http::Uri,
    Query(q): Query<BTreeMap<String, String>>,
) -> (axum::http::StatusCode, String) {
    hits.lock().unwrap().push(uri.to_string());
    if uri.path().ends_with(".pem") && !uri.path().contains("missing") {
        return (axum::http::StatusCode::OK, cert);
    }
    if q.get("Action").map(String::as_str) == Some("ConfirmSubscription") {
        let body = "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>arn:aws:sns:us-west-2:123456789012:MyTopic:2bcfbf39</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>";
        return (axum::http::StatusCode::OK, body.to_string());
    }
    (axum::http::StatusCode::NOT_FOUND, String::new())
}

impl FakeSns {
    /// Starts it, with its keys and certificates under `dir`.
    pub fn start(dir: &Path) -> FakeSns {
        let _ = rustls::crypto::ring::default_provider().install_default();
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "sns-signing.key",
                "-out",
                "sns-signing.pem",
                "-days",
                "2",
                "-subj",
                "/CN=sns.amazonaws.com",
            ],
            dir,
        );
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let names: Vec<String> = REGIONS
            .iter()
            .map(|r| format!("sns.{r}.amazonaws.com"))
            .collect();
        let tls_key = rcgen::KeyPair::generate().unwrap();
        let tls = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&tls_key, &ca, &ca_key)
            .unwrap();
        let ca_path = dir.join("sns-test-ca.pem");
        std::fs::write(&ca_path, ca.pem()).unwrap();
        let cert = std::fs::read_to_string(dir.join("sns-signing.pem")).unwrap();
        let hits: Hits = Arc::default();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .fallback(get(answer))
            .with_state((hits.clone(), cert));
        let (cert_pem, key_pem) = (tls.pem(), tls_key.serialize_pem());
        rt.spawn(async move {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem(
                cert_pem.into_bytes(),
                key_pem.into_bytes(),
            )
            .await
            .expect("tls config");
            let _ = axum_server::tls_rustls::from_tcp_rustls(listener, config)
                .serve(app.into_make_service())
                .await;
        });
        FakeSns {
            _rt: rt,
            addr,
            ca_path,
            key_path: dir.join("sns-signing.key"),
            dir: dir.to_path_buf(),
            hits,
        }
    }

    /// The environment `soar serve` needs to reach it.
    pub fn env(&self) -> [(&'static str, String); 2] {
        [
            ("SOAR_TEST_SNS_ADDR", self.addr.to_string()),
            ("SOAR_TEST_SNS_CA", self.ca_path.display().to_string()),
        ]
    }

    /// The URL of an SNS host of `region` on this server (`path` from `/`).
    pub fn url(&self, region: &str, path: &str) -> String {
        format!(
            "https://sns.{region}.amazonaws.com:{}{path}",
            self.addr.port()
        )
    }

    /// Every path (with query) it was asked for.
    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }

    /// The base64 signature of `text` (SignatureVersion `version`).
    pub fn sign(&self, text: &str, version: u8) -> String {
        let digest = if version == 1 { "-sha1" } else { "-sha256" };
        let msg = self.dir.join("sns-msg.txt");
        let sig = self.dir.join("sns-msg.sig");
        std::fs::write(&msg, text).unwrap();
        let key = self.key_path.display().to_string();
        openssl(
            &[
                "dgst",
                digest,
                "-sign",
                &key,
                "-out",
                sig.to_str().unwrap(),
                msg.to_str().unwrap(),
            ],
            &self.dir,
        );
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(sig).unwrap())
    }

    /// Sets `Timestamp` to now, `SigningCertURL` to this server and
    /// `Signature` to a valid one over the envelope as it now stands.
    pub fn sign_envelope(&self, envelope: &mut Value, region: &str, version: u8) {
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        envelope["Timestamp"] = now.to_string().into();
        self.sign_as_is(envelope, region, version);
    }

    /// [`FakeSns::sign_envelope`] keeping the envelope's `Timestamp`.
    pub fn sign_as_is(&self, envelope: &mut Value, region: &str, version: u8) {
        envelope["SigningCertURL"] = self
            .url(region, "/SimpleNotificationService-test.pem")
            .into();
        envelope["SignatureVersion"] = version.to_string().into();
        let text = string_to_sign(envelope);
        envelope["Signature"] = self.sign(&text, version).into();
    }
}

/// SNS's canonical text of an envelope (the keys it signs, in its order).
pub fn string_to_sign(e: &Value) -> String {
    let keys: &[&str] = if e["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    keys.iter()
        .filter_map(|k| e[*k].as_str().map(|v| format!("{k}\n{v}\n")))
        .collect()
}
