//! SEV-SNP verification on the real reports and certificates of `tests/vectors/sev-snp`
//! (see its README for provenance and expected verdicts), and on tampered copies.

mod vectors;

use keep_attest::snp::{self, SigningKey, Vek};
use keep_attest::{Error, TeeKind, load_certificates};
use vectors::{at, read, tampered};
use x509_cert::Certificate;

/// A moment when every SNP vector's certificates were valid (the VLEK expires 2025-12-10).
const VALID: &str = "2025-06-01T00:00:00Z";

fn certs(files: &[&str]) -> Vec<Certificate> {
    files
        .iter()
        .flat_map(|file| load_certificates(&read(file)).unwrap())
        .collect()
}

/// bootloader, tee, snp, microcode.
fn reported_tcb(claims: &keep_attest::Claims) -> [u64; 4] {
    ["bootloader", "tee", "snp", "microcode"].map(|name| claims.tcb[name])
}

fn milan_report() -> Vec<u8> {
    let text = String::from_utf8(read("sev-snp/virtee-sev/report_milan.hex")).unwrap();
    hex::decode(text.trim()).unwrap()
}

#[test]
fn virtee_milan_report_verifies_and_tampering_is_caught() {
    let chain = certs(&[
        "sev-snp/virtee-sev/vcek_milan.der",
        "sev-snp/virtee-sev/cert_chain_milan",
    ]);
    // The hex text form is accepted as it is.
    let claims = snp::verify(
        &read("sev-snp/virtee-sev/report_milan.hex"),
        &chain,
        at(VALID),
    )
    .unwrap();
    assert_eq!(claims.tee, TeeKind::SevSnp);
    assert_eq!(claims.details["product"], "Milan");
    assert_eq!(claims.details["policy"], "0x30000");
    assert_eq!(reported_tcb(&claims), [3, 0, 8, 115]);
    assert!(!claims.debug);

    let report = tampered(&milan_report(), 21, |b| b ^ 0x80);
    let error = snp::verify(&report, &chain, at(VALID)).unwrap_err();
    assert!(matches!(error, Error::Signature(_)), "{error}");

    let vcek = tampered(&read("sev-snp/virtee-sev/vcek_milan.der"), 40, |b| b ^ 0xff);
    let mut chain = load_certificates(&vcek).unwrap();
    chain.extend(certs(&["sev-snp/virtee-sev/cert_chain_milan"]));
    let error = snp::verify(&milan_report(), &chain, at(VALID)).unwrap_err();
    assert!(matches!(error, Error::Chain(_)), "{error}");
}

#[test]
fn turin_vcek_chains_to_the_turin_root() {
    let vcek = certs(&["sev-snp/virtee-sev/vcek_turin.der"]);
    let supplied = certs(&["sev-snp/virtee-sev/cert_chain_turin"]);
    assert_eq!(
        snp::verify_chain(&vcek[0], &supplied, at(VALID)).unwrap(),
        "Turin"
    );
}

#[test]
fn trustee_vcek_report_checks_the_tcb_against_the_certificate() {
    let report = read("sev-snp/trustee/test-report.bin");
    let chain = certs(&[
        "sev-snp/trustee/test-vcek.der",
        "sev-snp/trustee/milan_ask_ark_asvk.pem",
    ]);
    let claims = snp::verify(&report, &chain, at(VALID)).unwrap();
    assert_eq!(claims.details["policy"], "0x3001f");
    assert_eq!(claims.details["signing_key"], "VCEK");
    assert_eq!(reported_tcb(&claims), [3, 0, 8, 115]);

    let error = snp::verify(
        &tampered(&report, 42, |b| b.wrapping_add(1)),
        &chain,
        at(VALID),
    )
    .unwrap_err();
    assert!(matches!(error, Error::Signature(_)), "{error}");
    let error = snp::verify(
        &tampered(&report, 384, |b| b.wrapping_add(1)),
        &chain,
        at(VALID),
    )
    .unwrap_err();
    assert!(matches!(error, Error::TcbMismatch(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("bootloader 4 in the report, 3 in the certificate"),
        "{error}"
    );
}

#[test]
fn trustee_vlek_report_v3_verifies_until_the_vlek_expires() {
    let report = read("sev-snp/trustee/test-vlek-report.bin");
    let chain = certs(&[
        "sev-snp/trustee/test-vlek.der",
        "sev-snp/trustee/milan_ask_ark_asvk.pem",
    ]);
    let parsed = snp::Report::from_bytes(&report).unwrap();
    assert_eq!(parsed.fields.version, 3);
    assert_eq!(parsed.signing_key().unwrap(), SigningKey::Vlek);
    let claims = snp::verify(&report, &chain, at(VALID)).unwrap();
    assert_eq!(claims.details["signing_key"], "VLEK");
    assert_eq!(
        [
            claims.tcb["bootloader"],
            claims.tcb["snp"],
            claims.tcb["microcode"]
        ],
        [4, 24, 217]
    );

    let error = snp::verify(&report, &chain, at("2025-12-11T00:00:00Z")).unwrap_err();
    assert!(matches!(error, Error::NotValidAt { .. }), "{error}");
    assert!(error.to_string().contains("SEV-VLEK"), "{error}");

    for offset in [42, 384] {
        let error = snp::verify(
            &tampered(&report, offset, |b| b.wrapping_add(1)),
            &chain,
            at(VALID),
        )
        .unwrap_err();
        assert!(
            matches!(error, Error::Signature(_) | Error::TcbMismatch(_)),
            "{error}"
        );
    }
}

#[test]
fn vceks_with_legacy_and_new_extension_encodings_parse_but_do_not_chain() {
    let counting: Vec<u8> = (0..64).collect();
    for (file, snp_spl, microcode_spl) in [
        ("sev-snp/trustee/test-vcek-invalid-legacy.der", 10, 169),
        ("sev-snp/trustee/test-vcek-invalid-new.der", 0, 30),
    ] {
        let cert = certs(&[file]).remove(0);
        let vek = Vek::from_certificate(cert.clone()).unwrap();
        assert_eq!(vek.hw_id.as_deref(), Some(&counting[..]), "{file}");
        assert_eq!(
            (vek.tcb.snp, vek.tcb.microcode),
            (snp_spl, microcode_spl),
            "{file}"
        );
        let supplied = certs(&["sev-snp/trustee/milan_ask_ark_asvk.pem"]);
        let error = snp::verify_chain(&cert, &supplied, at(VALID)).unwrap_err();
        assert!(matches!(error, Error::Chain(_)), "{file}: {error}");
    }
}

#[test]
fn amd_bundles_are_signed_by_their_roots() {
    for (file, product) in [
        ("sev-snp/trustee/milan_ask_ark_asvk.pem", "Milan"),
        ("sev-snp/trustee/genoa_ask_ark_asvk.pem", "Genoa"),
        ("sev-snp/trustee/turin_ask_ark_asvk.pem", "Turin"),
        ("sev-snp/virtee-sev/builtin/milan/ask.pem", "Milan"),
        ("sev-snp/virtee-sev/builtin/genoa/ask.pem", "Genoa"),
        ("sev-snp/virtee-sev/builtin/turin/ask.pem", "Turin"),
        ("sev-snp/virtee-sev/builtin/turin/ark.pem", "Turin"),
    ] {
        let bundle = certs(&[file]);
        for cert in &bundle {
            assert_eq!(snp::issued_by_amd_root(cert).unwrap(), product, "{file}");
        }
    }
}

#[test]
fn a_report_without_its_key_or_with_a_foreign_chain_is_refused() {
    let report = read("sev-snp/trustee/test-report.bin");
    let error = snp::verify(
        &report,
        &certs(&["sev-snp/trustee/milan_ask_ark_asvk.pem"]),
        at(VALID),
    )
    .unwrap_err();
    assert!(matches!(error, Error::MissingCollateral(_)), "{error}");
    // The right kind of key, but another chip's: its chain holds, its HWID and key do not.
    let chain = certs(&[
        "sev-snp/virtee-sev/vcek_milan.der",
        "sev-snp/virtee-sev/cert_chain_milan",
    ]);
    let error = snp::verify(&report, &chain, at(VALID)).unwrap_err();
    assert!(
        matches!(error, Error::Chain(_) | Error::TcbMismatch(_)),
        "{error}"
    );
}

#[test]
fn malformed_reports_are_refused_with_a_reason() {
    for (bytes, needle) in [
        (Vec::new(), "0 bytes, expected 1184"),
        (vec![0u8; 100], "100 bytes"),
        (b"abc".repeat(10), "15 bytes, expected 1184"),
        (b"abc".to_vec(), "hex text"),
    ] {
        let error = snp::Report::from_bytes(&bytes).unwrap_err();
        assert!(error.to_string().contains(needle), "{error}");
    }
    let mut v9 = read("sev-snp/trustee/test-report.bin");
    v9[0] = 9;
    let error = snp::Report::from_bytes(&v9).unwrap_err();
    assert!(matches!(error, Error::Unsupported { .. }), "{error}");
}

#[test]
fn trustee_json_evidence_verifies_with_its_own_chain() {
    let json = read("sev-snp/trustee/e2e-evidence.json");
    assert_eq!(
        keep_attest::detect(&json).unwrap(),
        keep_attest::EvidenceKind::SnpJson
    );
    let (report, certs) = snp::from_json(&json).unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(snp::Report::from_bytes(&report).unwrap().fields.version, 3);
    let claims =
        keep_attest::verify(&json, &keep_attest::Endorsements::default(), at(VALID)).unwrap();
    assert_eq!(claims.details["signing_key"], "VCEK");
    // A changed field no longer matches the signature.
    let text = String::from_utf8(json)
        .unwrap()
        .replacen("\"guest_svn\":0", "\"guest_svn\":1", 1);
    let error = keep_attest::verify(
        text.as_bytes(),
        &keep_attest::Endorsements::default(),
        at(VALID),
    )
    .unwrap_err();
    assert!(matches!(error, Error::Signature(_)), "{error}");
}

#[test]
fn enarx_milan_csr_evidence_verifies() {
    use keep_attest::enarx::{Request, SNP_EVIDENCE, pki_path};
    let csr = read("sev-snp/enarx-steward/milan.signed.crl.csr");
    let request = Request::from_der(&csr).unwrap();
    assert_eq!(request.kind, SNP_EVIDENCE);
    assert_eq!(request.key_curve(), Some(keep_attest::enarx::SECP384R1));
    let chain = pki_path(&read("sev-snp/enarx-steward/milan.pkipath")).unwrap();
    assert_eq!(chain.len(), 2);
    // The report and its VCEK chain verify at a time when the evidence's CRLs were current.
    let claims = request
        .verify_snp(&chain, at("2023-01-01T00:00:00Z"))
        .unwrap();
    assert_eq!(claims.details["product"], "Milan");
    // The evidence's CRLs are checked: its Milan CRL (signed by the Milan ARK) was current
    // until 2023-05-09; later the evidence no longer verifies (the README's "pin the time").
    let error = request
        .verify_snp(&chain, at("2024-01-01T00:00:00Z"))
        .unwrap_err();
    assert!(matches!(error, Error::Collateral(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("is not current at 2024-01-01T00:00:00Z"),
        "{error}"
    );
    // A changed request no longer matches its signature.
    let error = Request::from_der(&tampered(&csr, 60, |b| b ^ 0x01))
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(error, Error::Signature(_) | Error::Malformed { .. }),
        "{error}"
    );
}
