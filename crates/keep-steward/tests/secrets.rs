//! `POST /v1/secrets` on a Steward serving on loopback: a Keep that presents the certificate
//! the Steward issued it gets the secrets its rules give it, and nobody else gets anything.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;

use keep_attest::collect;
use keep_attest::request::{AttestationRequest, Evidence};
use keep_config::StewardUrl;
use keep_identity::steward::{certificate_request, request_certificate};
use keep_steward::secrets::Secrets;
use keep_steward::{CertificateAuthority, Metrics, Steward};
use rcgen::{KeyPair, PublicKeyData as _};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A certificate chain and its private key.
type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

const ALLOWED: [u8; 32] = [1; 32];
const OTHER: [u8; 32] = [2; 32];

/// A Steward with secrets on loopback; its runtime ends when dropped.
struct Served {
    addr: SocketAddr,
    ca: CertificateDer<'static>,
    steward: Arc<Steward>,
    _runtime: tokio::runtime::Runtime,
}

fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate_or_load(dir.path()).unwrap();
    let tls = ca.server_config(&["127.0.0.1".to_owned()]).unwrap();
    let anchor = ca.certificate.clone();
    let secrets = Secrets::parse(
        &format!(
            "[[secret]]\nname = \"db\"\nenv = \"DB\"\n[[secret]]\nname = \"other\"\nenv = \"DB\"\n\
             [[release]]\nsecrets = [\"db\"]\nworkloads = [\"sha256:{}\"]\n",
            hex::encode(ALLOWED)
        ),
        std::path::Path::new("secrets.toml"),
        &|name| (name == "DB").then(|| "s3cr3t\u{0}bytes".into()),
    )
    .unwrap();
    let steward = Steward::builder()
        .insecure_accept_none(true)
        .secrets(secrets)
        .build(ca);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let steward = Arc::new(steward);
    runtime.spawn(keep_steward::server::serve(
        listener,
        Arc::new(tls),
        steward.clone(),
        Arc::new(Metrics::default()),
    ));
    Served {
        addr,
        ca: anchor,
        steward,
        _runtime: runtime,
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn trusting(ca: &CertificateDer<'static>) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    roots
}

/// A `none` Keep of `workload` certified by the Steward: its chain and key.
fn certified(served: &Served, workload: [u8; 32]) -> Identity {
    let (csr, key) = keep_request(workload);
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(trusting(&served.ca))
        .with_no_client_auth();
    let url: StewardUrl = format!("https://{}", served.addr).parse().unwrap();
    let chain = request_certificate(&url, &csr, Arc::new(tls)).unwrap();
    (parse_chain(&chain), key)
}

fn parse_chain(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// A Keep's request with `none` evidence for `workload`, and its key.
fn keep_request(workload: [u8; 32]) -> (Vec<u8>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let content = AttestationRequest {
        evidence: Evidence::None {
            report_data: collect::report_data(&key.subject_public_key_info(), &workload),
        },
        workload_digest: workload,
        certificates: Vec::new(),
        crls: Vec::new(),
        package: None,
        fetch: None,
    };
    let csr = certificate_request(&key, &[], &content).unwrap();
    (csr, PrivateKeyDer::Pkcs8(key.serialize_der().into()))
}

/// `POST /v1/secrets` with `body`, presenting `identity`: (status, body), or the TLS error.
fn ask(
    served: &Served,
    identity: Option<&Identity>,
    body: &str,
) -> Result<(u16, String), std::io::Error> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(trusting(&served.ca));
    let tls = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connection =
        rustls::ClientConnection::new(Arc::new(tls), ServerName::try_from("127.0.0.1").unwrap())
            .unwrap();
    let tcp = std::net::TcpStream::connect(served.addr)?;
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    write!(
        stream,
        "POST /v1/secrets HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Ok((status, body))
}

#[test]
fn secrets_go_to_the_keep_that_holds_its_certificate_and_its_rules_name() {
    let served = serve();
    let keep = certified(&served, ALLOWED);
    let (status, body) = ask(&served, Some(&keep), r#"{"secrets":["db"]}"#).unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    use base64::Engine as _;
    let value = base64::engine::general_purpose::STANDARD
        .decode(answer["secrets"]["db"].as_str().unwrap())
        .unwrap();
    assert_eq!(value, b"s3cr3t\0bytes");

    // Without a client certificate, nothing.
    let (status, body) = ask(&served, None, r#"{"secrets":["db"]}"#).unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("only over mTLS"), "{body}");
    // A secret no rule gives it, and one that does not exist.
    let (status, body) = ask(&served, Some(&keep), r#"{"secrets":["other"]}"#).unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("no [[release]] rule names it"), "{body}");
    let (status, body) = ask(&served, Some(&keep), r#"{"secrets":["nope"]}"#).unwrap();
    assert_eq!((status, body.trim()), (403, "no secret is named `nope`"));
    let (status, body) = ask(&served, Some(&keep), "not json").unwrap();
    assert_eq!(status, 400, "{body}");
    // Another workload, certified by the same Steward: nothing.
    let other = certified(&served, OTHER);
    let (status, body) = ask(&served, Some(&other), r#"{"secrets":["db"]}"#).unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("is not released to workload sha256:0202"),
        "{body}"
    );
    assert!(!body.contains("s3cr3t"));
}

/// The TLS handshake of a client presenting `identity`, refused: the server's alert. TLS 1.2,
/// where the server judges the client certificate within the handshake (TLS 1.3 would let
/// the client finish first and only then receive the alert).
fn refused_handshake(served: &Served, identity: &Identity) -> String {
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(trusting(&served.ca))
        .with_client_auth_cert(identity.0.clone(), identity.1.clone_key())
        .unwrap();
    let mut connection =
        rustls::ClientConnection::new(Arc::new(tls), ServerName::try_from("127.0.0.1").unwrap())
            .unwrap();
    let mut tcp = std::net::TcpStream::connect(served.addr).unwrap();
    while connection.is_handshaking() {
        if let Err(e) = connection.complete_io(&mut tcp) {
            return e.to_string();
        }
    }
    panic!("the handshake succeeded");
}

#[test]
fn an_expired_certificate_gets_no_connection() {
    let served = serve();
    // Issued a day ago for eight hours: the Steward's own certificate, expired.
    let (csr, key) = keep_request(ALLOWED);
    let yesterday = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
    let issued = served.steward.decide(&csr, yesterday).unwrap();
    let expired = (parse_chain(&issued.chain_pem), key);
    let refused = refused_handshake(&served, &expired);
    assert!(refused.contains("CertificateExpired"), "{refused}");
}

#[test]
fn a_certificate_the_steward_did_not_issue_gets_no_connection() {
    let served = serve();
    let stranger = rcgen::generate_simple_self_signed(vec!["keep".to_owned()]).unwrap();
    let identity = (
        vec![stranger.cert.der().clone()],
        PrivateKeyDer::Pkcs8(stranger.signing_key.serialize_der().into()),
    );
    let refused = refused_handshake(&served, &identity);
    assert!(refused.contains("UnknownCA"), "{refused}");
}
