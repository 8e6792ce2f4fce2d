//! The attestation policy judging real claims (from tests/vectors).

mod vectors;

use std::path::Path;

use keep_attest::{Claims, Policy, TcbStatus, intel, load_certificates, snp};
use vectors::{at, read};

fn snp_claims() -> Claims {
    let certs: Vec<_> = [
        "sev-snp/trustee/test-vcek.der",
        "sev-snp/trustee/milan_ask_ark_asvk.pem",
    ]
    .iter()
    .flat_map(|f| load_certificates(&read(f)).unwrap())
    .collect();
    snp::verify(
        &read("sev-snp/trustee/test-report.bin"),
        &certs,
        at("2025-06-01T00:00:00Z"),
    )
    .unwrap()
}

fn policy(text: &str) -> Policy {
    Policy::parse(text, Path::new("policy.toml")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn snp_claims_are_accepted_by_matching_rules() {
    let claims = snp_claims();
    let text = format!(
        "require_report_data = true\n[sev-snp]\nmeasurement = [\"{}\"]\nmin_tcb = {{ bootloader = 3, snp = 8, microcode = 115 }}\n",
        claims.measurements["measurement"]
    );
    let expected = hex::decode(&claims.report_data).unwrap();
    policy(&text).evaluate(&claims, Some(&expected)).unwrap();
}

#[test]
fn every_failed_rule_is_named_with_its_values() {
    let claims = snp_claims();
    let text = "require_report_data = true\n[sev-snp]\nmeasurement = [\"00\"]\nmin_tcb = { snp = 9, fmc = 1 }\n";
    let rejection = policy(text)
        .evaluate(&claims, Some(&[0u8; 64]))
        .unwrap_err();
    let rules: Vec<&str> = rejection.0.iter().map(|v| v.rule.as_str()).collect();
    assert_eq!(
        rules,
        [
            "require_report_data",
            "[sev-snp].measurement",
            "[sev-snp].min_tcb.fmc",
            "[sev-snp].min_tcb.snp"
        ]
    );
    let text = rejection.to_string();
    assert!(
        text.contains(&format!(
            "{} is not one of 00",
            claims.measurements["measurement"]
        )),
        "{text}"
    );
    assert!(text.contains("8 is below 9"), "{text}");
}

#[test]
fn a_tee_without_a_table_and_debug_are_refused() {
    let claims = snp_claims();
    let rejection = policy("[tdx]\n").evaluate(&claims, None).unwrap_err();
    assert_eq!(rejection.0[0].rule, "[sev-snp]");
    let mut debug = claims.clone();
    debug.debug = true;
    let rejection = policy("[sev-snp]\n").evaluate(&debug, None).unwrap_err();
    assert_eq!(rejection.0[0].rule, "[sev-snp].debug");
    policy("[sev-snp]\ndebug = true\n")
        .evaluate(&debug, None)
        .unwrap();
}

#[test]
fn tcb_status_and_advisories_are_judged_on_intel_claims() {
    let quote = read("tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat");
    let mut claims = intel::verify(&quote, None, None, at("2023-07-01T00:00:00Z")).unwrap();
    let mrtd = claims.measurements["mrtd"].clone();
    policy(&format!("[tdx]\nmrtd = [\"{mrtd}\"]\n"))
        .evaluate(&claims, None)
        .unwrap();
    let rejection = policy("[tdx]\ntcb_status = [\"up-to-date\"]\n")
        .evaluate(&claims, None)
        .unwrap_err();
    assert_eq!(rejection.0[0].rule, "[tdx].tcb_status");
    assert!(
        rejection
            .to_string()
            .contains("\"not-evaluated\" is not allowed"),
        "{rejection}"
    );
    claims.tcb_status = TcbStatus::Revoked;
    assert!(
        policy("[tdx]\n").evaluate(&claims, None).is_err(),
        "revoked is refused by default"
    );
    claims.tcb_status = TcbStatus::SwHardeningNeeded;
    claims.advisories = vec!["INTEL-SA-00615".into(), "INTEL-SA-00999".into()];
    let rejection = policy("[tdx]\nallowed_advisories = [\"INTEL-SA-00615\"]\n")
        .evaluate(&claims, None)
        .unwrap_err();
    assert!(
        rejection
            .to_string()
            .contains("INTEL-SA-00999 apply and are not allowed"),
        "{rejection}"
    );
}

#[test]
fn policy_mistakes_are_reported_with_their_place() {
    for (text, needle) in [
        (
            "[sev-snp]\nmrenclave = [\"00\"]\n",
            "[sev-snp] has no claim `mrenclave`",
        ),
        ("[sgx]\nmrsigner = [\"xyz\"]\n", "`xyz` is not hex"),
        ("[sev-snp]\nmin_tcb = { snp = \"high\" }\n", "policy.toml:2"),
        ("[amd]\n", "unknown field `amd`"),
        ("[tdx]\ntcb_status = [\"fine\"]\n", "unknown variant `fine`"),
    ] {
        let error = Policy::parse(text, Path::new("policy.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains(needle), "{text:?}: {error}");
    }
}

#[test]
fn snp_guest_policy_bits_and_vmpl_are_judged() {
    let claims = snp_claims();
    // The trustee report: guest policy 0x3001f (SMT allowed, no migration agent), VMPL 0.
    assert_eq!(claims.details["policy"], "0x3001f");
    assert_eq!(claims.details["vmpl"], "0");
    policy("[sev-snp]\nmax_vmpl = 0\nsmt = true\n")
        .evaluate(&claims, None)
        .unwrap();
    let rejection = policy("[sev-snp]\nsmt = false\n")
        .evaluate(&claims, None)
        .unwrap_err();
    assert_eq!(rejection.0.len(), 1, "{rejection}");
    assert_eq!(rejection.0[0].rule, "[sev-snp].smt");
    assert!(
        rejection.0[0]
            .reason
            .contains("guest policy 0x3001f allows SMT"),
        "{rejection}"
    );

    // The same claims as if the report came from a paravisor's VMPL 2, from a guest whose
    // policy lets a migration agent in.
    let mut moved = claims.clone();
    moved.details.insert("vmpl".into(), "2".into());
    moved.details.insert("policy".into(), "0x7001f".into());
    let rejection = policy("[sev-snp]\nmax_vmpl = 1\n")
        .evaluate(&moved, None)
        .unwrap_err();
    let rules: Vec<&str> = rejection.0.iter().map(|v| v.rule.as_str()).collect();
    assert_eq!(rules, ["[sev-snp].max_vmpl", "[sev-snp].migration_agent"]);
    assert!(
        rejection
            .to_string()
            .contains("requested at VMPL 2, above 1"),
        "{rejection}"
    );
    policy("[sev-snp]\nmigration_agent = true\n")
        .evaluate(&moved, None)
        .unwrap();
}

#[test]
fn snp_only_rules_are_refused_elsewhere() {
    for text in [
        "[tdx]\nsmt = false\n",
        "[sgx]\nmax_vmpl = 0\n",
        "[none]\nmigration_agent = true\n",
    ] {
        let err = Policy::parse(text, Path::new("policy.toml")).unwrap_err();
        assert!(
            err.to_string().contains("only SEV-SNP evidence has it"),
            "{err}"
        );
    }
}
