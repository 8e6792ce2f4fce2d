//! Intel TDX and SGX quote verification on the real quotes and collateral of
//! `tests/vectors/{tdx,sgx}` (see its README), and on tampered copies.

mod vectors;

use keep_attest::intel::{self, Collateral, ParsedQuote};
use keep_attest::{Error, TcbStatus, TeeKind, load_certificates};
use vectors::{at, read, tampered};

const SPR_QUOTE: &str = "tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat";
const SPR_VALID: &str = "2023-07-01T00:00:00Z";

fn text(name: &str) -> String {
    String::from_utf8(read(name)).unwrap()
}

/// Intel's TCB signing certificate and the root, PEM.
fn tcb_signing_chain() -> String {
    text("sgx/dcap-rs/tcb_signing_cert.pem")
        + &text("sgx/dcap-rs/Intel_SGX_Provisioning_Certification_RootCA.pem")
}

/// The PCS collateral of the Sapphire Rapids quote. Its TCB info and QE identity are
/// signed by Intel's TCB signing certificate, which the go-tdx-guest samples leave out
/// (PCS sends it in a header); the same certificate comes with the dcap-rs samples.
fn spr_collateral() -> Collateral {
    Collateral {
        tcb_info: text("tdx/go-tdx-guest/sample_tcbInfo_response"),
        qe_identity: text("tdx/go-tdx-guest/sample_qeIdentity_response"),
        tcb_signing_chain: tcb_signing_chain(),
        root_ca_crl: read("tdx/go-tdx-guest/rootcrl.der"),
        pck_crl: read("tdx/go-tdx-guest/pckcrl"),
        pck_chain: None,
    }
}

fn verify_prod(
    quote: &[u8],
    collateral: Option<&Collateral>,
    time: &str,
) -> Result<keep_attest::Claims, Error> {
    intel::verify(quote, collateral, None, at(time))
}

#[test]
fn tdx_v4_quote_verifies_with_and_without_collateral() {
    let quote = read(SPR_QUOTE);
    let claims = verify_prod(&quote, None, SPR_VALID).unwrap();
    assert_eq!(claims.tee, TeeKind::Tdx);
    assert_eq!(claims.details["version"], "4");
    assert_eq!(claims.tcb_status, TcbStatus::NotEvaluated);
    assert_eq!(claims.measurements["mrtd"].len(), 96);

    // With collateral the TCB is evaluated: this pre-production sample's TDX module SVN
    // (tee_tcb_svn 3.0.4) is below every level of its TCB info (3.0.5).
    let collateral = spr_collateral();
    let claims = verify_prod(&quote, Some(&collateral), SPR_VALID).unwrap();
    assert_eq!(claims.tcb_status, TcbStatus::NotSupported);
    // The collateral itself is checked: a changed TCB info no longer matches its
    // signature, and after its nextUpdate it is stale.
    let forged = Collateral {
        tcb_info: collateral.tcb_info.replacen("UpToDate", "OutOfDate", 1),
        ..collateral.clone()
    };
    let error = verify_prod(&quote, Some(&forged), SPR_VALID).unwrap_err();
    assert!(matches!(error, Error::Collateral(_)), "{error}");
    let error = verify_prod(&quote, Some(&collateral), "2023-08-01T00:00:00Z").unwrap_err();
    assert!(matches!(error, Error::Collateral(_)), "{error}");

    let error = verify_prod(&quote, None, "2053-07-01T00:00:00Z").unwrap_err();
    assert!(matches!(error, Error::NotValidAt { .. }), "{error}");
}

#[test]
fn collateral_is_due_at_the_earliest_next_update_of_its_parts() {
    // TCB info 2023-07-18T08:42:58Z, QE identity 2023-07-08T07:24:59Z, PCK CRL
    // 2023-07-08T07:27:52Z, root CA CRL 2024-04-02: the QE identity is due first.
    let collateral = spr_collateral();
    assert_eq!(
        collateral.next_update().unwrap(),
        at("2023-07-08T07:24:59Z")
    );
    let broken = Collateral {
        qe_identity: collateral
            .qe_identity
            .replace("\"nextUpdate\"", "\"nextUpdat\""),
        ..collateral
    };
    assert!(broken.next_update().is_err());
}

#[test]
fn tdx_v4_tamper_cases_fail_for_the_stated_reason() {
    let quote = read(SPR_QUOTE);
    let check =
        |offset: usize, change: fn(u8) -> u8, expected: fn(&Error) -> bool, needle: &str| {
            let error =
                verify_prod(&tampered(&quote, offset, change), None, SPR_VALID).unwrap_err();
            assert!(expected(&error), "offset {offset:#x}: {error}");
            assert!(
                error.to_string().contains(needle),
                "offset {offset:#x}: {error}"
            );
        };
    check(
        0x00,
        |_| 3,
        |e| matches!(e, Error::Unsupported { .. }),
        "quote version",
    );
    check(
        0x278,
        |_| 0x10,
        |e| matches!(e, Error::Malformed { .. }),
        "certification data size mismatch",
    );
    check(0x1343, |_| 0x32, |e| matches!(e, Error::Chain(_)), "PCK");
    for offset in [0x1329, 0xF5F, 0xB77] {
        // Any change to a certificate's bytes breaks its signature (or its encoding).
        check(
            offset,
            |b| if b == b'A' { b'B' } else { b'A' },
            |e| matches!(e, Error::Chain(_)),
            "",
        );
    }
    for offset in [0x1E, 0x3C] {
        check(
            offset,
            |b| b ^ 0x01,
            |e| matches!(e, Error::Signature(_)),
            "quote is not signed",
        );
    }
}

#[test]
fn tdx_v4_and_v5_quotes_are_detected_and_verify() {
    for (file, version) in [
        ("tdx/trustee/tdx_quote_4.dat", 4),
        ("tdx/trustee/tdx_quote_5.dat", 5),
    ] {
        let parsed = ParsedQuote::parse(&read(file)).unwrap();
        assert_eq!(parsed.quote.header.version, version, "{file}");
        assert!(!parsed.quote.header.is_sgx(), "{file}");
        // Both verify in full: quote, QE report and PCK chain (valid from 2024-03-18).
        let claims = verify_prod(&read(file), None, "2024-06-01T00:00:00Z").unwrap();
        assert_eq!(claims.details["version"], version.to_string());
    }
}

#[test]
fn sgx_v3_quote_verifies_to_the_intel_root() {
    let quote = read("sgx/dcap-rs/quote_sgx_v3_from_lib_rs_test_verifyv3.dat");
    let claims = verify_prod(&quote, None, "2025-02-13T03:20:32Z").unwrap();
    assert_eq!(claims.tee, TeeKind::Sgx);
    assert_eq!(claims.details["version"], "3");
    assert_eq!(claims.measurements["mrenclave"].len(), 64);
    assert_eq!(claims.signers["mrsigner"].len(), 64);

    let collateral = Collateral {
        tcb_info: text("sgx/dcap-rs/tcbinfov2.json"),
        qe_identity: text("sgx/dcap-rs/qeidentityv2.json"),
        tcb_signing_chain: tcb_signing_chain(),
        root_ca_crl: read("sgx/dcap-rs/intel_root_ca_crl.der"),
        pck_crl: read("sgx/dcap-rs/pck_platform_crl.der"),
        pck_chain: None,
    };
    // These samples are PCS API v3 collateral (TCB info version 2): refused by name
    // rather than misread.
    let error = verify_prod(&quote, Some(&collateral), "2025-02-13T03:30:00Z").unwrap_err();
    assert!(
        matches!(
            error,
            Error::Unsupported {
                what: "TCB info version",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn synthetic_test_pki_quotes_hold_against_their_root_only() {
    for dir in [
        "sgx/intel-qvl-sampledata-synthetic",
        "tdx/intel-qvl-sampledata-synthetic",
    ] {
        let quote = read(&format!("{dir}/quote.dat"));
        let test_root = load_certificates(&read(&format!("{dir}/trustedRootCaCert.pem")))
            .unwrap()
            .remove(0);
        let collateral = Collateral {
            pck_chain: Some(
                text(&format!("{dir}/pckCert.pem")) + &text(&format!("{dir}/pckSignChain.pem")),
            ),
            ..Collateral::default()
        };
        // The PCK chain is the only collateral used without TCB data: verify the
        // signatures alone through the parsed quote.
        let parsed = ParsedQuote::parse(&quote).unwrap();
        let chain = load_certificates(collateral.pck_chain.as_deref().unwrap().as_bytes()).unwrap();
        parsed
            .verify_signatures(&chain, &test_root, at("2024-01-01T00:00:00Z"))
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
        let error = parsed
            .verify_signatures(&chain, intel::production_root(), at("2024-01-01T00:00:00Z"))
            .unwrap_err();
        assert!(matches!(error, Error::Chain(_)), "{dir}: {error}");
        assert!(
            error.to_string().contains("not the trusted root"),
            "{dir}: {error}"
        );
    }
}

#[test]
fn malformed_quotes_are_refused_with_a_reason() {
    for (bytes, needle) in [
        (Vec::new(), "shorter than a quote header"),
        (vec![0u8; 47], "shorter than a quote header"),
        (
            [&[4u8, 0, 2, 0, 0x81, 0, 0, 0][..], &[0u8; 100]].concat(),
            "malformed quote",
        ),
        (
            [&[4u8, 0, 2, 0, 0x42, 0, 0, 0][..], &[0u8; 100]].concat(),
            "TEE type",
        ),
    ] {
        let error = ParsedQuote::parse(&bytes).map(|_| ()).unwrap_err();
        assert!(error.to_string().contains(needle), "{error}");
    }
}

#[test]
fn a_raw_tdreport_parses() {
    let bytes = read("tdx/go-tdx-guest/report.dat");
    let report = intel::TdReport::from_bytes(&bytes).unwrap();
    assert_eq!(&report.report_data[..], &bytes[128..192]);
    assert_eq!(&report.mr_td[..], &bytes[528..576]);
    let error = intel::TdReport::from_bytes(&bytes[..1000]).unwrap_err();
    assert!(
        error.to_string().contains("1000 bytes, expected 1024"),
        "{error}"
    );
}

#[test]
fn tdx_v4_quote_and_its_event_log_give_trustees_claims() {
    use base64::Engine as _;
    use intel::eventlog;

    let expected: serde_json::Value =
        serde_json::from_slice(&read("tdx/trustee/parse_tdx_claims_expected.json")).unwrap();
    let claims = intel::unverified_claims(&read("tdx/trustee/tdx_quote_4.dat")).unwrap();
    let body = &expected["quote"]["body"];
    for (ours, theirs) in [
        (&claims.measurements["mrtd"], "mr_td"),
        (&claims.measurements["rtmr0"], "rtmr_0"),
        (&claims.measurements["rtmr1"], "rtmr_1"),
        (&claims.measurements["rtmr2"], "rtmr_2"),
        (&claims.measurements["rtmr3"], "rtmr_3"),
        (&claims.details["mrseam"], "mr_seam"),
        (&claims.signers["mrsignerseam"], "mrsigner_seam"),
        (claims.host_data.as_ref().unwrap(), "mr_config_id"),
        (&claims.details["mrowner"], "mr_owner"),
        (&claims.details["mrownerconfig"], "mr_owner_config"),
        (&claims.details["td_attributes"], "td_attributes"),
        (&claims.details["xfam"], "xfam"),
        (&claims.report_data, "report_data"),
    ] {
        assert_eq!(ours, body[theirs].as_str().unwrap(), "{theirs}");
    }
    assert_eq!(
        claims.debug,
        expected["td_attributes"]["debug"].as_bool().unwrap()
    );

    let events = eventlog::parse(&read("tdx/trustee/CCEL_data")).unwrap();
    let listed = expected["uefi_event_logs"].as_array().unwrap();
    assert_eq!(events.len(), listed.len());
    for (event, theirs) in events.iter().zip(listed) {
        assert_eq!(u64::from(event.index), theirs["index"].as_u64().unwrap());
        assert_eq!(event.type_name(), theirs["type_name"].as_str().unwrap());
        assert_eq!(
            hex::encode(event.sha384().unwrap()),
            theirs["digests"][0]["digest"].as_str().unwrap()
        );
        let data = base64::engine::general_purpose::STANDARD
            .decode(theirs["event"].as_str().unwrap())
            .unwrap();
        assert_eq!(event.data, data);
        assert_eq!(
            event.digest_matches_data(),
            theirs["digest_matches_event"].as_bool().unwrap()
        );
    }
    // Replay, checked against an independent implementation (a short Python script over the
    // same log). This log is not the one behind the quote: its RTMRs differ from the quote's.
    let rtmrs = eventlog::replay(&events);
    assert_eq!(
        hex::encode(rtmrs[0]),
        "2dc712306a963eadb894ad47dbaa17df44814151555aee11cbb843becca88950ffd079664902e6f22c66f7c8213543f4"
    );
    assert_eq!(rtmrs[2], [0; 48]);
    // A truncated log is an error, not a panic.
    let log = read("tdx/trustee/CCEL_data");
    for cut in [0, 10, 60, 100, 5000] {
        assert!(eventlog::parse(&log[..cut]).is_err(), "cut at {cut}");
    }
}

/// Enarx's Steward policy for these CSRs (`sgx/enarx-steward/steward.toml`, `[sgx]`) in
/// Keep's policy language: signer → mrsigner, hash → mrenclave, enclave_security_version
/// → minimum isv_svn, allowed_advisories as such, and the `Debug` feature → debug allowed.
fn enarx_sgx_policy(signer: &str, isv_svn: u64, advisories: &str) -> keep_attest::Policy {
    let steward: toml::Table = toml::from_str(&text("sgx/enarx-steward/steward.toml")).unwrap();
    let sgx = &steward["sgx"];
    let list = |key: &str| {
        sgx[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| format!("\"{}\"", v.as_str().unwrap()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let signer = if signer.is_empty() {
        list("signer")
    } else {
        format!("\"{signer}\"")
    };
    let advisories = if advisories.is_empty() {
        list("allowed_advisories")
    } else {
        advisories.to_owned()
    };
    let debug = list("features").contains("\"Debug\"");
    keep_attest::Policy::parse(
        &format!(
            "[sgx]\nmrsigner = [{signer}]\nmrenclave = [{}]\nmin_tcb = {{ isv_svn = {isv_svn} }}\n\
             allowed_advisories = [{advisories}]\ndebug = {debug}\n",
            list("hash")
        ),
        std::path::Path::new("steward.toml"),
    )
    .unwrap()
}

#[test]
fn enarx_sgx_csrs_verify_and_meet_the_stewards_policy() {
    use keep_attest::enarx::{Request, SGX_EVIDENCE};
    let steward: toml::Table = toml::from_str(&text("sgx/enarx-steward/steward.toml")).unwrap();
    let isv_svn = steward["sgx"]["enclave_security_version"]
        .as_integer()
        .unwrap() as u64;
    for file in [
        "sgx/enarx-steward/icelake.signed.tcb.crl.multi.xeon.csr",
        "sgx/enarx-steward/icelake.signed.tcb.crl.single.i5.csr",
    ] {
        let request = Request::from_der(&read(file)).unwrap();
        assert_eq!(request.kind, SGX_EVIDENCE, "{file}");
        assert_eq!(
            request.key_curve(),
            Some(keep_attest::enarx::SECP256R1),
            "{file}"
        );
        let claims = request
            .verify_sgx(at("2023-02-01T00:00:00Z"))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(claims.tee, TeeKind::Sgx);
        assert_ne!(claims.tcb_status, TcbStatus::NotEvaluated, "{file}");
        enarx_sgx_policy("", isv_svn, "")
            .evaluate(&claims, None)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        for (policy, rule) in [
            (
                enarx_sgx_policy(&"00".repeat(32), isv_svn, ""),
                "[sgx].mrsigner",
            ),
            (enarx_sgx_policy("", 9999, ""), "[sgx].min_tcb.isv_svn"),
            (
                enarx_sgx_policy("", isv_svn, "\"INTEL-SA-99999\""),
                "[sgx].allowed_advisories",
            ),
        ] {
            let rejection = policy.evaluate(&claims, None).unwrap_err();
            assert_eq!(rejection.0[0].rule, rule, "{file}: {rejection}");
        }
    }
}
