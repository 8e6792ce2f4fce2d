//! The Steward's decision (`Steward::decide`, what `POST /v1/attest` runs) on real evidence
//! from `tests/vectors` and on Keep requests made here, with the verdicts the vectors
//! README states.

#[path = "../../keep-attest/tests/vectors/mod.rs"]
mod vectors;

use std::time::{Duration, SystemTime};

use keep_attest::certificate::{AttestedClaims, Expectations, verify_certificate};
use keep_attest::intel::Collateral;
use keep_attest::request::{AttestationRequest, CosignSignature, Evidence, PackageStatement};
use keep_attest::{Endorsements, Policy, TeeKind, collect, load_certificates};
use keep_identity::steward::certificate_request;
use keep_steward::{CertificateAuthority, Refusal, Steward};
use rcgen::{KeyPair, PublicKeyData as _};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use vectors::{at, read, tampered};

const DIGEST: [u8; 32] = [7; 32];

fn new_ca() -> (tempfile::TempDir, CertificateAuthority) {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate_or_load(dir.path()).unwrap();
    (dir, ca)
}

/// A Keep request for `evidence` (or, when `None`, `none` evidence binding the key).
fn keep_request(evidence: Option<Evidence>, certificates: Vec<Vec<u8>>, names: &[&str]) -> Vec<u8> {
    keep_request_from(evidence, certificates, names, None)
}

/// [`keep_request`] stating that the workload came from `package`.
fn keep_request_from(
    evidence: Option<Evidence>,
    certificates: Vec<Vec<u8>>,
    names: &[&str],
    package: Option<PackageStatement>,
) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let evidence = evidence.unwrap_or(Evidence::None {
        report_data: collect::report_data(&key.subject_public_key_info(), &DIGEST),
    });
    let content = AttestationRequest {
        evidence,
        workload_digest: DIGEST,
        certificates,
        crls: Vec::new(),
        package,
        fetch: None,
    };
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    certificate_request(&key, &names, &content).unwrap()
}

fn refusal(steward: &Steward, der: &[u8], time: SystemTime) -> Refusal {
    match steward.decide(der, time) {
        Ok(issued) => panic!("issued {:?}", issued.claims),
        Err(refusal) => refusal,
    }
}

#[test]
fn none_evidence_is_certified_only_in_insecure_mode() {
    let request = keep_request(None, Vec::new(), &[]);
    let (_dir, ca) = new_ca();
    let refused = refusal(&Steward::builder().build(ca), &request, SystemTime::now());
    assert_eq!(refused.reason(), "insecure-none");
    assert_eq!(refused.status(), 403);
    assert!(refused.to_string().contains("--insecure-accept-none"));

    let (_dir, ca) = new_ca();
    let steward = Steward::builder()
        .insecure_accept_none(true)
        .validity(Duration::from_secs(600))
        .build(ca);
    let issued = steward.decide(&request, SystemTime::now()).unwrap();
    let chain: Vec<CertificateDer> = CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
        .map(Result::unwrap)
        .collect();
    assert_eq!(chain.len(), 2, "leaf and CA");
    let anchors: Vec<CertificateDer> = CertificateDer::pem_slice_iter(steward.ca_pem().as_bytes())
        .map(Result::unwrap)
        .collect();
    let claims = verify_certificate(&chain, &anchors, SystemTime::now()).unwrap();
    assert_eq!(claims.tee, TeeKind::None);
    assert_eq!(
        claims.workload_digest,
        format!("sha256:{}", hex::encode(DIGEST))
    );
    assert_eq!(claims, AttestedClaims::from_certificate(&chain[0]).unwrap());
    let expect = |digest: &str, tee| Expectations {
        workload_digest: Some(digest.into()),
        tee: Some(tee),
        ..Expectations::default()
    };
    assert!(
        expect(&hex::encode(DIGEST), TeeKind::None)
            .unmet(&claims)
            .is_empty()
    );
    assert_eq!(expect("sha256:00", TeeKind::SevSnp).unmet(&claims).len(), 2);
    // Short-lived: not valid after its lifetime, nor under another CA.
    let later = SystemTime::now() + Duration::from_secs(700);
    assert!(verify_certificate(&chain, &anchors, later).is_err());
    let (_dir, other) = new_ca();
    assert!(verify_certificate(&chain, &[other.certificate], SystemTime::now()).is_err());
}

#[test]
fn workloads_and_names_are_certified_only_as_the_policy_allows() {
    let digest = format!("sha256:{}", hex::encode(DIGEST));
    let policy = |text: &str| Policy::parse(text, std::path::Path::new("policy.toml")).unwrap();
    let steward = |text: &str| {
        let (dir, ca) = new_ca();
        std::mem::forget(dir);
        Steward::builder()
            .insecure_accept_none(true)
            .policy(policy(text))
            .build(ca)
    };
    let listed = steward(&format!(
        "[[workload]]\ndigest = \"{digest}\"\nnames = [\"api.example.com\", \"spiffe://example.com/api\"]\n"
    ));
    let issued = listed
        .decide(
            &keep_request(
                None,
                Vec::new(),
                &["api.example.com", "spiffe://example.com/api"],
            ),
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(
        issued.names,
        ["api.example.com", "spiffe://example.com/api"]
    );
    let refused = refusal(
        &listed,
        &keep_request(None, Vec::new(), &["admin.example.com"]),
        SystemTime::now(),
    );
    assert_eq!(refused.reason(), "policy");
    assert!(
        refused
            .to_string()
            .contains("the name `admin.example.com` is not allowed for workload"),
        "{refused}"
    );
    let other = steward(&format!(
        "[[workload]]\ndigest = \"sha256:{}\"\n",
        "ab".repeat(32)
    ));
    let refused = refusal(
        &other,
        &keep_request(None, Vec::new(), &[]),
        SystemTime::now(),
    );
    assert!(
        refused
            .to_string()
            .contains(&format!("workload {digest} is not in the policy")),
        "{refused}"
    );
    // Without [[workload]] tables any workload is certified, under no name.
    let open = steward("");
    open.decide(&keep_request(None, Vec::new(), &[]), SystemTime::now())
        .unwrap();
    assert_eq!(
        refusal(
            &open,
            &keep_request(None, Vec::new(), &["x.example"]),
            SystemTime::now()
        )
        .reason(),
        "policy"
    );
}

#[test]
fn enarx_requests_verify_but_name_no_workload() {
    let (_dir, ca) = new_ca();
    let steward = Steward::builder().build(ca);
    for (file, time) in [
        (
            "sev-snp/enarx-steward/milan.signed.crl.csr",
            "2023-01-01T00:00:00Z",
        ),
        (
            "sgx/enarx-steward/icelake.signed.tcb.crl.multi.xeon.csr",
            "2023-02-01T00:00:00Z",
        ),
        (
            "sgx/enarx-steward/icelake.signed.tcb.crl.single.i5.csr",
            "2023-02-01T00:00:00Z",
        ),
    ] {
        // The evidence verifies (else the refusal would be about it), but Enarx bound only
        // the key: no certificate can name the workload.
        let refused = refusal(&steward, &read(file), at(time));
        assert_eq!(refused.reason(), "no-workload", "{file}: {refused}");
    }
    // After its CRLs expired the Milan evidence itself is refused.
    let refused = refusal(
        &steward,
        &read("sev-snp/enarx-steward/milan.signed.crl.csr"),
        at("2024-01-01T00:00:00Z"),
    );
    assert_eq!(refused.reason(), "collateral", "{refused}");
    // A changed request no longer matches its signature.
    let csr = read("sev-snp/enarx-steward/milan.signed.crl.csr");
    let csr = tampered(&csr, csr.len() - 1, |b| b ^ 1);
    let refused = refusal(&steward, &csr, at("2023-01-01T00:00:00Z"));
    assert_eq!(refused.reason(), "signature", "{refused}");
}

#[test]
fn real_reports_in_keep_requests_are_verified_then_refused_for_their_binding() {
    let (_dir, ca) = new_ca();
    let steward = Steward::builder().build(ca);
    let report = read("sev-snp/trustee/test-report.bin");
    let certificates = vec![read("sev-snp/trustee/test-vcek.der")];
    let ask = load_certificates(&read("sev-snp/trustee/milan_ask_ark_asvk.pem")).unwrap();
    let (_dir, ca) = new_ca();
    let steward_with_ask = Steward::builder()
        .endorsements(Endorsements {
            certificates: ask,
            ..Endorsements::default()
        })
        .build(ca);
    let when = at("2025-06-01T00:00:00Z");
    for steward in [&steward, &steward_with_ask] {
        // Genuine, but made for another key and workload: refused for the binding, which
        // is checked only after the signature and chain verified.
        let refused = refusal(
            steward,
            &keep_request(
                Some(Evidence::SevSnp(report.clone())),
                certificates.clone(),
                &[],
            ),
            when,
        );
        assert_eq!(refused.reason(), "binding", "{refused}");
        assert!(
            refused
                .to_string()
                .contains("is not the binding of the request's key")
        );
        let forged = tampered(&report, 42, |b| b.wrapping_add(1));
        let refused = refusal(
            steward,
            &keep_request(Some(Evidence::SevSnp(forged)), certificates.clone(), &[]),
            when,
        );
        assert_eq!(refused.reason(), "signature", "{refused}");
        let wrong_tcb = tampered(&report, 384, |b| b.wrapping_add(1));
        let refused = refusal(
            steward,
            &keep_request(Some(Evidence::SevSnp(wrong_tcb)), certificates.clone(), &[]),
            when,
        );
        assert_eq!(refused.reason(), "tcb-mismatch", "{refused}");
    }

    let quote = read("tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat");
    let request = keep_request(Some(Evidence::IntelQuote(quote.clone())), Vec::new(), &[]);
    let refused = refusal(&steward, &request, at("2023-07-01T00:00:00Z"));
    assert_eq!(refused.reason(), "binding", "{refused}");
    let refused = refusal(&steward, &request, at("2053-07-01T00:00:00Z"));
    assert_eq!(refused.reason(), "expired", "{refused}");
    let forged = tampered(&quote, 0x3C, |b| b ^ 1);
    let request = keep_request(Some(Evidence::IntelQuote(forged)), Vec::new(), &[]);
    let refused = refusal(&steward, &request, at("2023-07-01T00:00:00Z"));
    assert_eq!(refused.reason(), "signature", "{refused}");
}

#[test]
fn a_default_steward_accepts_no_test_signing_root() {
    for dir in [
        "sgx/intel-qvl-sampledata-synthetic",
        "tdx/intel-qvl-sampledata-synthetic",
    ] {
        // Supply the test PKI's PCK chain, so that the quote's signatures can be checked:
        // they hold against Intel's test root, which a Steward never trusts.
        let chain = [
            read(&format!("{dir}/pckCert.pem")),
            read(&format!("{dir}/pckSignChain.pem")),
        ]
        .concat();
        let (_dir, ca) = new_ca();
        let steward = Steward::builder()
            .endorsements(Endorsements {
                intel: Some(Collateral {
                    pck_chain: Some(String::from_utf8(chain).unwrap()),
                    ..Collateral::default()
                }),
                ..Endorsements::default()
            })
            .build(ca);
        let quote = read(&format!("{dir}/quote.dat"));
        let request = keep_request(Some(Evidence::IntelQuote(quote)), Vec::new(), &[]);
        let refused = refusal(&steward, &request, at("2024-01-01T00:00:00Z"));
        assert_eq!(refused.reason(), "chain", "{dir}: {refused}");
        assert!(
            refused.to_string().contains("not the trusted root"),
            "{dir}: {refused}"
        );
    }
}

#[test]
fn malformed_requests_are_refused_by_name() {
    let (_dir, ca) = new_ca();
    let steward = Steward::builder().insecure_accept_none(true).build(ca);
    let now = SystemTime::now();
    let refused = refusal(&steward, b"garbage", now);
    assert_eq!((refused.reason(), refused.status()), ("malformed", 400));
    assert!(
        refused.to_string().contains("certificate request"),
        "{refused}"
    );

    // No evidence extension at all.
    let key = KeyPair::generate().unwrap();
    let bare = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .der()
        .to_vec();
    let refused = refusal(&steward, &bare, now);
    assert_eq!(
        (refused.reason(), refused.status()),
        ("missing-evidence", 400)
    );
    assert!(
        refused.to_string().contains("1.3.6.1.5.5.7.1.35"),
        "{refused}"
    );

    // The evidence extension twice.
    let content = AttestationRequest {
        evidence: Evidence::None {
            report_data: collect::report_data(&key.subject_public_key_info(), &DIGEST),
        },
        workload_digest: DIGEST,
        certificates: Vec::new(),
        crls: Vec::new(),
        package: None,
        fetch: None,
    };
    let extension = rcgen::CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 5, 5, 7, 1, 35],
        content.to_collection().to_extension_value(),
    );
    let mut params = rcgen::CertificateParams::default();
    params.custom_extensions = vec![extension.clone(), extension];
    let twice = params.serialize_request(&key).unwrap().der().to_vec();
    let refused = refusal(&steward, &twice, now);
    assert_eq!(refused.status(), 400);
    assert!(refused.to_string().contains("appears 2 times"), "{refused}");

    // A signature that does not match.
    let mut forged = keep_request(None, Vec::new(), &[]);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let refused = refusal(&steward, &forged, now);
    assert_eq!(refused.reason(), "signature", "{refused}");
}

/// AMD's KDS, played on loopback over TLS: each connection gets the next answer of
/// `answers` (status, `Retry-After`, body), and the paths asked are recorded. The server
/// thread ends after the last answer and is joined by [`FakeService::paths`].
struct FakeService {
    url: String,
    ca: rustls::RootCertStore,
    thread: std::thread::JoinHandle<Vec<String>>,
}

/// An answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, Vec<u8>);

impl FakeService {
    fn start(answers: Vec<Answer>) -> Self {
        use std::io::{Read as _, Write as _};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let issuer = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let mut ca = rustls::RootCertStore::empty();
        ca.add(issuer.der().clone()).unwrap();
        let config = std::sync::Arc::new(
            rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let thread = std::thread::spawn(move || {
            let mut paths = Vec::new();
            for (status, headers, body) in answers {
                let (tcp, _) = listener.accept().unwrap();
                let connection = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, tcp);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && tls.read(&mut byte).unwrap() == 1 {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                paths.push(head.split(' ').nth(1).unwrap_or_default().to_owned());
                let headers: String = headers
                    .iter()
                    .map(|(name, value)| format!("{name}: {value}\r\n"))
                    .collect();
                write!(
                    tls,
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n{headers}connection: close\r\n\r\n",
                    body.len()
                )
                .unwrap();
                tls.write_all(&body).unwrap();
                tls.flush().unwrap();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
            paths
        });
        Self { url, ca, thread }
    }

    /// The paths asked, once every answer was given.
    fn paths(self) -> Vec<String> {
        self.thread.join().unwrap()
    }
}

/// A Steward fetching from the KDS at `url`, with the directory of its CA.
fn steward_with_kds(
    url: &str,
    ca: rustls::RootCertStore,
    cache: &std::path::Path,
) -> (tempfile::TempDir, Steward) {
    let kds = keep_steward::kds::Kds::new(url, ca, Some(cache.to_owned()))
        .unwrap()
        .max_wait(Duration::from_secs(5));
    let (dir, ca) = new_ca();
    (dir, Steward::builder().kds(kds).build(ca))
}

#[test]
fn a_missing_vcek_is_fetched_from_the_kds_and_cached() {
    let report = read("sev-snp/trustee/test-report.bin");
    let request = keep_request(Some(Evidence::SevSnp(report)), Vec::new(), &[]);
    let when = at("2025-06-01T00:00:00Z");
    let cache = tempfile::tempdir().unwrap();
    let vcek = read("sev-snp/trustee/test-vcek.der");

    // Without a KDS the refusal names the missing VCEK and where AMD serves it.
    let (_dir, ca) = new_ca();
    let refused = refusal(&Steward::builder().build(ca), &request, when);
    assert!(
        refused
            .to_string()
            .contains("blSPL=03&teeSPL=00&snpSPL=08&ucodeSPL=115"),
        "{refused}"
    );

    // The KDS first asks to slow down, then answers: the report then verifies (and is
    // refused only for its binding: it was made for another key).
    let kds = FakeService::start(vec![
        (429, vec![("retry-after", "1".into())], Vec::new()),
        (200, Vec::new(), vcek),
    ]);
    let (_dir, steward) = steward_with_kds(&kds.url, kds.ca.clone(), cache.path());
    let refused = refusal(&steward, &request, when);
    assert_eq!(refused.reason(), "binding", "{refused}");
    let paths = kds.paths();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(
        paths[1].starts_with("/vcek/v1/Milan/c38427a30d4c7af9"),
        "{paths:?}"
    );
    assert!(
        paths[1].ends_with("?blSPL=03&teeSPL=00&snpSPL=08&ucodeSPL=115"),
        "{paths:?}"
    );

    // A Steward started later with the same cache needs no KDS (none listens at port 1).
    let (_dir, offline) = steward_with_kds(
        "https://127.0.0.1:1",
        rustls::RootCertStore::empty(),
        cache.path(),
    );
    let refused = refusal(&offline, &request, when);
    assert_eq!(refused.reason(), "binding", "{refused}");
}

#[test]
fn a_kds_that_cannot_help_is_named_in_the_refusal() {
    let report = read("sev-snp/trustee/test-report.bin");
    let request = keep_request(Some(Evidence::SevSnp(report)), Vec::new(), &[]);
    let when = at("2025-06-01T00:00:00Z");

    let unreachable = tempfile::tempdir().unwrap();
    let (_dir, steward) = steward_with_kds(
        "https://127.0.0.1:1",
        rustls::RootCertStore::empty(),
        unreachable.path(),
    );
    let refused = refusal(&steward, &request, when).to_string();
    assert!(
        refused.contains("no VCEK certificate was supplied"),
        "{refused}"
    );
    assert!(
        refused.contains("could not be fetched from https://127.0.0.1:1/vcek/v1/Milan/"),
        "{refused}"
    );

    // Neither product line has it: both are named.
    let kds = FakeService::start(vec![
        (404, Vec::new(), Vec::new()),
        (404, Vec::new(), Vec::new()),
    ]);
    let empty = tempfile::tempdir().unwrap();
    let (_dir, steward) = steward_with_kds(&kds.url, kds.ca.clone(), empty.path());
    let refused = refusal(&steward, &request, when).to_string();
    assert!(refused.contains("AMD's KDS has no such VCEK"), "{refused}");
    assert!(refused.contains("/vcek/v1/Genoa/"), "{refused}");
    assert_eq!(kds.paths().len(), 2);
    assert!(
        std::fs::read_dir(empty.path()).unwrap().next().is_none(),
        "nothing cached"
    );
}

#[test]
fn intel_collateral_is_fetched_from_the_pcs_cached_and_fetched_again_when_due() {
    // The real Sapphire Rapids quote and its collateral, served in a PCCS's layout.
    let quote = read("tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat");
    let request = keep_request(Some(Evidence::IntelQuote(quote)), Vec::new(), &[]);
    let text = |name: &str| String::from_utf8(read(name)).unwrap();
    let issuer_chain = percent_encoding::utf8_percent_encode(
        &(text("sgx/dcap-rs/tcb_signing_cert.pem")
            + &text("sgx/dcap-rs/Intel_SGX_Provisioning_Certification_RootCA.pem")),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    let answers = vec![
        (
            200,
            vec![("TCB-Info-Issuer-Chain", issuer_chain.clone())],
            read("tdx/go-tdx-guest/sample_tcbInfo_response"),
        ),
        (
            200,
            vec![("SGX-Enclave-Identity-Issuer-Chain", issuer_chain)],
            read("tdx/go-tdx-guest/sample_qeIdentity_response"),
        ),
        (200, Vec::new(), read("tdx/go-tdx-guest/pckcrl")),
        // A PCCS serves the root CA's CRL in hex.
        (
            200,
            Vec::new(),
            hex::encode(read("tdx/go-tdx-guest/rootcrl.der")).into_bytes(),
        ),
    ];
    let pcs = FakeService::start(answers);
    let cache = tempfile::tempdir().unwrap();
    let steward_with_pcs = |url: &str, ca: rustls::RootCertStore| {
        let pcs = keep_steward::pcs::Pcs::new(url, ca, Some(cache.path().to_owned())).unwrap();
        let (dir, ca) = new_ca();
        (dir, Steward::builder().pcs(pcs).build(ca))
    };
    let (_dir, steward) = steward_with_pcs(&pcs.url, pcs.ca.clone());
    let when = at("2023-07-01T00:00:00Z");
    // Verified with the fetched collateral (TCB evaluated), then refused for its binding:
    // the quote was made for another key.
    let refused = refusal(&steward, &request, when);
    assert_eq!(refused.reason(), "binding", "{refused}");
    assert_eq!(
        pcs.paths(),
        [
            "/tdx/certification/v4/tcb?fmspc=50806F000000",
            "/tdx/certification/v4/qe/identity",
            "/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
            "/sgx/certification/v4/rootcacrl",
        ]
    );
    // Remembered, and cached for a Steward started later (none listens at port 1) ...
    assert_eq!(refusal(&steward, &request, when).reason(), "binding");
    let (_dir, later) = steward_with_pcs("https://127.0.0.1:1", rustls::RootCertStore::empty());
    assert_eq!(refusal(&later, &request, when).reason(), "binding");
    // ... until the first next update of its parts (the QE identity's, 2023-07-08): then it
    // is fetched again, and a PCS that cannot be reached is named.
    let refused = refusal(&later, &request, at("2023-07-09T00:00:00Z")).to_string();
    assert!(
        refused.contains("Intel's TCB collateral for the quote")
            && refused
                .contains("GET https://127.0.0.1:1/tdx/certification/v4/tcb?fmspc=50806F000000"),
        "{refused}"
    );
}

/// A package statement for `manifest` in `repository`, signed by `keys` for `signed_for`.
fn package(
    manifest: &[u8],
    repository: &str,
    keys: &[&p256::ecdsa::SigningKey],
    signed_for: &str,
) -> PackageStatement {
    let digest = keep_oci::Digest::of(manifest);
    PackageStatement {
        manifest: manifest.to_vec(),
        repository: repository.to_owned(),
        signatures: keys
            .iter()
            .map(|key| {
                let signed = keep_oci::signature::sign(key, signed_for, &digest);
                CosignSignature {
                    payload: signed.payload,
                    signature: signed.signature,
                }
            })
            .collect(),
    }
}

#[test]
fn a_policy_of_signers_certifies_packages_they_signed_and_states_the_signer() {
    use p256::pkcs8::EncodePublicKey as _;
    let dir = tempfile::tempdir().unwrap();
    let release = p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
    let other = p256::ecdsa::SigningKey::from_slice(&[4; 32]).unwrap();
    let pem = release
        .verifying_key()
        .to_public_key_pem(Default::default())
        .unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/release.pub"), pem).unwrap();
    let policy_path = dir.path().join("policy.toml");
    let policy = Policy::parse(
        "[none]\n[[workload]]\nsigners = [\"keys/release.pub\"]\n\
         repository = \"registry.example/team/api\"\nnames = [\"api.example.com\"]\n",
        &policy_path,
    )
    .unwrap();
    let fingerprint = policy.workloads[0].signers[0].fingerprint();
    let (_ca_dir, ca) = new_ca();
    let steward = Steward::builder()
        .policy(policy)
        .insecure_accept_none(true)
        .build(ca);
    let now = SystemTime::now();
    let repository = "registry.example/team/api";
    let manifest = br#"{"schemaVersion":2}"#;

    // Signed by the policy's key (among others): certified, and the certificate says by whom.
    let signed = package(manifest, repository, &[&other, &release], repository);
    let request = keep_request_from(None, Vec::new(), &["api.example.com"], Some(signed));
    let issued = steward.decide(&request, now).unwrap();
    let stated = issued.claims.package.clone().unwrap();
    assert_eq!(stated.repository, repository);
    assert_eq!(
        stated.manifest_digest,
        keep_oci::Digest::of(manifest).to_string()
    );
    assert_eq!(stated.signers, vec![fingerprint.clone()]);
    let chain: Vec<CertificateDer> = CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
        .map(Result::unwrap)
        .collect();
    let claims = AttestedClaims::from_certificate(&chain[0]).unwrap();
    assert_eq!(claims.package, Some(stated));
    let expect_signer = |signer: &str| Expectations {
        signers: vec![signer.to_owned()],
        ..Expectations::default()
    };
    assert!(expect_signer(&fingerprint).unmet(&claims).is_empty());
    let unmet = expect_signer("sha256:00").unmet(&claims);
    assert!(
        unmet[0].contains(&format!("signed by {fingerprint}")),
        "{unmet:?}"
    );

    // Refused: signed by another key only, for another repository, for another manifest,
    // unsigned, or no package stated at all.
    let cases = [
        (
            Some(package(manifest, repository, &[&other], repository)),
            "signed by none of the policy's keys",
        ),
        (
            Some(package(
                manifest,
                repository,
                &[&release],
                "registry.example/team/other",
            )),
            "signed by none of the policy's keys",
        ),
        (
            Some(PackageStatement {
                manifest: br#"{"schemaVersion":2,"changed":1}"#.to_vec(),
                ..package(manifest, repository, &[&release], repository)
            }),
            "signed by none of the policy's keys",
        ),
        (
            Some(package(manifest, repository, &[], repository)),
            "signed by none of the policy's keys",
        ),
        (None, "the Keep states no package it came from"),
    ];
    for (statement, reason) in cases {
        let request = keep_request_from(None, Vec::new(), &[], statement);
        let refused = refusal(&steward, &request, now);
        assert_eq!(refused.reason(), "policy", "{refused}");
        assert!(refused.to_string().contains(reason), "{refused}");
    }

    // Signed for the stated repository, but the policy names another.
    let elsewhere = "registry.example/team/copy";
    let request = keep_request_from(
        None,
        Vec::new(),
        &[],
        Some(package(manifest, elsewhere, &[&release], elsewhere)),
    );
    let refused = refusal(&steward, &request, now);
    assert!(
        refused
            .to_string()
            .contains(&format!("{elsewhere}@sha256:")),
        "{refused}"
    );

    // A policy naming a key file that is not a key, or a rule with nothing to match.
    std::fs::write(dir.path().join("keys/bad.pub"), "no").unwrap();
    let err = Policy::parse("[[workload]]\nsigners = [\"keys/bad.pub\"]\n", &policy_path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[[workload]] 1: signers: `"), "{err}");
    assert!(err.contains("bad.pub`: not a PEM `PUBLIC KEY`"), "{err}");
    let err = Policy::parse("[[workload]]\nnames = [\"a\"]\n", &policy_path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`digest`, its package's `signers`, or both"),
        "{err}"
    );
    let err = Policy::parse(
        "[[workload]]\ndigest = \"sha256:0707070707070707070707070707070707070707070707070707070707070707\"\nrepository = \"r\"\n",
        &policy_path,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("it needs `signers`"), "{err}");
}

/// A request from a Keep about to fetch `reference`, binding `digest` as its workload.
fn fetch_request(reference: &str, digest: [u8; 32], names: &[&str]) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let content = AttestationRequest {
        evidence: Evidence::None {
            report_data: collect::report_data(&key.subject_public_key_info(), &digest),
        },
        workload_digest: digest,
        certificates: Vec::new(),
        crls: Vec::new(),
        package: None,
        fetch: Some(reference.to_owned()),
    };
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    certificate_request(&key, &names, &content).unwrap()
}

#[test]
fn a_keep_about_to_fetch_is_certified_for_that_alone_and_only_under_a_fetch_rule() {
    use keep_attest::request::fetch_digest;
    let pinned = format!("sha256:{}", "ab".repeat(32));
    let policy = format!(
        "[none]\n[[fetch]]\nrepository = \"registry.test:5000/team/api\"\n\
         [[fetch]]\nrepository = \"registry.test:5000/team/pinned\"\nmanifests = [\"{pinned}\"]\n"
    );
    let steward = |text: &str| {
        let (dir, ca) = new_ca();
        std::mem::forget(dir);
        Steward::builder()
            .insecure_accept_none(true)
            .policy(Policy::parse(text, std::path::Path::new("policy.toml")).unwrap())
            .build(ca)
    };
    let with_rules = steward(&policy);
    let request = |reference: &str| fetch_request(reference, fetch_digest(reference), &[]);

    // Certified: the reference stated, the digest of the fetch, for client auth alone.
    let reference = "registry.test:5000/team/api:v1";
    let issued = with_rules
        .decide(&request(reference), SystemTime::now())
        .unwrap();
    assert_eq!(issued.claims.fetch.as_deref(), Some(reference));
    assert_eq!(
        issued.claims.workload_digest,
        format!("sha256:{}", hex::encode(fetch_digest(reference)))
    );
    let chain: Vec<CertificateDer> = CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
        .map(Result::unwrap)
        .collect();
    let anchors: Vec<CertificateDer> =
        CertificateDer::pem_slice_iter(with_rules.ca_pem().as_bytes())
            .map(Result::unwrap)
            .collect();
    let err = verify_certificate(&chain, &anchors, SystemTime::now()).unwrap_err();
    assert!(err.to_string().contains("Eku"), "not a server: {err}");
    let claims = AttestedClaims::from_certificate(&chain[0]).unwrap();
    let unmet = Expectations::default().unmet(&claims);
    assert!(unmet[0].contains("about to fetch"), "{unmet:?}");
    let pinned_reference = format!("registry.test:5000/team/pinned@{pinned}");
    assert!(
        with_rules
            .decide(&request(&pinned_reference), SystemTime::now())
            .is_ok()
    );

    // Refused: no [[fetch]] at all, another repository, a tag where a pin is required, a
    // pin to another manifest, names, a digest that is not the fetch's, a bad reference.
    let other_pin = format!("registry.test:5000/team/pinned@sha256:{}", "cd".repeat(32));
    for (steward, der, expected) in [
        (
            &steward("[none]\n"),
            request(reference),
            "lets no Keep fetch after attestation",
        ),
        (
            &with_rules,
            request("registry.test:5000/team/other:v1"),
            "registry.test:5000/team/other by tag is not in the policy",
        ),
        (
            &with_rules,
            request("registry.test:5000/team/pinned:v1"),
            "by tag is not in the policy",
        ),
        (&with_rules, request(&other_pin), "is not in the policy"),
        (
            &with_rules,
            fetch_request(reference, fetch_digest(reference), &["api.example.com"]),
            "certified under no name",
        ),
        (
            &with_rules,
            fetch_request(reference, DIGEST, &[]),
            "must bind sha256:",
        ),
        (
            &with_rules,
            request("not a reference"),
            "the `fetch` reference",
        ),
    ] {
        let refused = refusal(steward, &der, SystemTime::now());
        assert!(refused.to_string().contains(expected), "{refused}");
    }
    for bad in [
        "[[fetch]]\nrepository = \"no-slash\"\n",
        "[[fetch]]\nrepository = \"r.test/a\"\nmanifests = [\"sha256:00\"]\n",
        "[[fetch]]\nrepository = \"r.test/a\"\nsigners = []\n",
    ] {
        assert!(Policy::parse(bad, std::path::Path::new("policy.toml")).is_err());
    }
}
