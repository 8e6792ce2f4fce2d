//! The simulated TDX module and Quoting Enclave: version-4 quotes (Intel "TDX DCAP Quoting
//! Library API", appendix A) whose attestation key the QE certifies in its report, which the
//! platform's PCK key signs, under a test Intel PKI (root CA → PCK platform CA → PCK, all
//! ECDSA P-256, as Intel's).

use std::path::Path;

use anyhow::{Context as _, anyhow};
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use rand_core::OsRng;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};
use sha2::{Digest as _, Sha256};

use crate::configfs::Evidence;

/// The test Intel root, for verifiers (`--insecure-test-roots DIR/roots`).
pub const ROOT_CERT: &str = "roots/intel-root.pem";
/// The PCK chain a quote embeds: PCK, platform CA, root (PEM).
const PCK_CHAIN: &str = "keys/intel-pck-chain.pem";
const PCK_KEY: &str = "keys/intel-pck-key.pem";
const ROOT_KEY: &str = "keys/intel-root-key.pem";
const PLATFORM_CA: &str = "keys/intel-platform-ca.pem";
const PLATFORM_CA_KEY: &str = "keys/intel-platform-ca-key.pem";
const TCB_SIGNING: &str = "keys/intel-tcb-signing.pem";
const TCB_SIGNING_KEY: &str = "keys/intel-tcb-signing-key.pem";

/// Header: version 4, ECDSA-256-with-P-256 attestation key, TEE type TDX.
const VERSION: u16 = 4;
const KEY_TYPE_ECDSA_P256: u16 = 2;
const TEE_TDX: u32 = 0x81;
/// Intel's QE vendor ID.
const QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07,
];
/// Certification data: 6 is the QE report with its certification data, 5 the PCK chain.
const CERT_QE_REPORT: u16 = 6;
const CERT_PCK_CHAIN: u16 = 5;
const TD_REPORT_LEN: usize = 584;
const QE_REPORT_LEN: usize = 384;

/// The simulated platform's identity and TCB, as its PCK certificate, its TD reports and the
/// TCB info the simulated PCS serves all state it.
pub const FMSPC: [u8; 6] = [0x00, 0x80, 0x6f, 0x05, 0x00, 0x00];
const PCE_ID: [u8; 2] = [0, 0];
const PCE_SVN: u16 = 11;
const CPU_SVN: [u8; 16] = [5, 5, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0];
const TEE_TCB_SVN: [u8; 16] = [5, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// The simulated Quoting Enclave's identity.
const QE_MRSIGNER: [u8; 32] = [0x8c; 32];
const QE_ISV_PROD_ID: u16 = 2;
const QE_ISV_SVN: u16 = 8;
const QE_ATTRIBUTES: [u8; 2] = [0x15, 0x00];

/// The OID arc of Intel's SGX extension in PCK certificates.
const SGX_EXTENSION: [u64; 9] = [1, 2, 840, 113_741, 1, 13, 1, 0, 0];

/// Generates the test Intel PKI under `dir`: root CA, PCK platform CA and PCK (with the SGX
/// extension), and the TCB signing certificate that signs TCB info and QE identities.
pub fn generate_pki(dir: &Path) -> anyhow::Result<()> {
    let ca = |name: &str| -> anyhow::Result<CertificateParams> {
        let mut params = named(name)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ok(params)
    };
    let root_key = KeyPair::generate()?;
    let root_key_pem = root_key.serialize_pem();
    let root = CertifiedIssuer::self_signed(ca("TEST Intel SGX Root CA")?, root_key)?;
    let platform_key = KeyPair::generate()?;
    let platform_key_pem = platform_key.serialize_pem();
    let platform =
        CertifiedIssuer::signed_by(ca("TEST Intel SGX PCK Platform CA")?, platform_key, &root)?;
    let tcb_key = KeyPair::generate()?;
    let tcb_signing = named("TEST Intel SGX TCB Signing")?.signed_by(&tcb_key, &root)?;

    let pck_key = p256::SecretKey::random(&mut OsRng);
    let pck_pkcs8 = pck_key
        .to_pkcs8_der()
        .map_err(|e| anyhow!("PCK key: {e}"))?;
    let pck_pair = KeyPair::try_from(pck_pkcs8.as_bytes())?;
    let mut pck_params = named("TEST Intel SGX PCK Certificate")?;
    pck_params.custom_extensions = vec![CustomExtension::from_oid_content(
        &SGX_EXTENSION[..7],
        sgx_extension(),
    )];
    let pck = pck_params.signed_by(&pck_pair, &platform)?;
    let chain = [pck.pem(), platform.pem(), root.pem()].concat();
    for (file, text) in [
        (ROOT_CERT, root.pem()),
        (ROOT_KEY, root_key_pem),
        (PLATFORM_CA, platform.pem()),
        (PLATFORM_CA_KEY, platform_key_pem),
        (TCB_SIGNING, tcb_signing.pem()),
        (TCB_SIGNING_KEY, tcb_key.serialize_pem()),
        (PCK_CHAIN, chain),
        (
            PCK_KEY,
            pck_key
                .to_pkcs8_pem(der::pem::LineEnding::LF)
                .map_err(|e| anyhow!("PCK key: {e}"))?
                .to_string(),
        ),
    ] {
        crate::pki::write(&dir.join(file), text.as_bytes())?;
    }
    Ok(())
}

fn named(common_name: &str) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "TEST PKI - NOT INTEL");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    Ok(params)
}

/// Intel's SGX extension (PCK certificate specification): a SEQUENCE of (OID, value) pairs:
/// PPID, TCB (16 CPU SVN components, PCESVN, CPUSVN), PCE-ID, FMSPC, SGX type.
///
/// Encoded here with a minimal DER writer: the structure is a nesting of SEQUENCEs of
/// heterogeneous (OID, value) pairs, which `der`'s derives would need a type per shape for.
fn sgx_extension() -> Vec<u8> {
    let oid = |last: &[u64]| {
        let arcs: Vec<u64> = SGX_EXTENSION[..7].iter().chain(last).copied().collect();
        // 1.2 → 42; each later arc in base 128.
        let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
        for arc in &arcs[2..] {
            let mut groups = vec![(arc & 0x7f) as u8];
            let mut rest = arc >> 7;
            while rest > 0 {
                groups.push(((rest & 0x7f) as u8) | 0x80);
                rest >>= 7;
            }
            groups.reverse();
            body.extend(groups);
        }
        tlv(0x06, &body)
    };
    let integer = |value: u16| {
        let bytes = value.to_be_bytes();
        let mut body: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        if body.first().is_none_or(|b| b & 0x80 != 0) {
            body.insert(0, 0);
        }
        tlv(0x02, &body)
    };
    let pair = |last: &[u64], value: Vec<u8>| tlv(0x30, &[oid(last), value].concat());
    let mut tcb: Vec<Vec<u8>> = CPU_SVN
        .iter()
        .enumerate()
        .map(|(i, svn)| pair(&[2, i as u64 + 1], integer(u16::from(*svn))))
        .collect();
    tcb.push(pair(&[2, 17], integer(PCE_SVN)));
    tcb.push(pair(&[2, 18], tlv(0x04, &CPU_SVN)));
    tlv(
        0x30,
        &[
            pair(&[1], tlv(0x04, &[0x11; 16])),
            pair(&[2], tlv(0x30, &tcb.concat())),
            pair(&[3], tlv(0x04, &PCE_ID)),
            pair(&[4], tlv(0x04, &FMSPC)),
            pair(&[5], tlv(0x0a, &[0])),
        ]
        .concat(),
    )
}

/// One DER tag-length-value.
fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match body.len() {
        len @ 0..=0x7f => out.push(len as u8),
        len => {
            let bytes: Vec<u8> = (len as u32)
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
    }
    out.extend_from_slice(body);
    out
}

/// The Intel collateral of the simulated platform, as a PCS serves it, made fresh (issued an
/// hour ago, next update in 30 days).
pub struct Pcs {
    root: rcgen::Issuer<'static, KeyPair>,
    platform: rcgen::Issuer<'static, KeyPair>,
    tcb_key: p256::ecdsa::SigningKey,
    /// The TCB signing certificate and the root, percent-encoded for the issuer-chain
    /// headers.
    pub issuer_chain: String,
}

impl Pcs {
    /// Loads the PKI under `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path).with_context(|| path.display().to_string())
        };
        let issuer = |cert: &str, key: &str| -> anyhow::Result<rcgen::Issuer<'static, KeyPair>> {
            Ok(rcgen::Issuer::from_ca_cert_pem(
                &read(cert)?,
                KeyPair::from_pem(&read(key)?)?,
            )?)
        };
        let chain = read(TCB_SIGNING)? + &read(ROOT_CERT)?;
        Ok(Self {
            root: issuer(ROOT_CERT, ROOT_KEY)?,
            platform: issuer(PLATFORM_CA, PLATFORM_CA_KEY)?,
            tcb_key: p256::ecdsa::SigningKey::from_pkcs8_pem(&read(TCB_SIGNING_KEY)?)
                .map_err(|e| anyhow!("{TCB_SIGNING_KEY}: {e}"))?,
            issuer_chain: chain
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect(),
        })
    }

    /// A signed response: `{"KEY":BODY,"signature":"<hex r‖s>"}`.
    fn signed(&self, key: &str, body: &str) -> String {
        let signature: p256::ecdsa::Signature = self.tcb_key.sign(body.as_bytes());
        format!(
            "{{\"{key}\":{body},\"signature\":\"{}\"}}",
            hex::encode(signature.to_bytes())
        )
    }

    /// The TDX TCB info of the platform's FMSPC: one level, `UpToDate`, that its SVNs meet.
    pub fn tcb_info(&self) -> String {
        let (issued, next) = dates();
        let components = |svns: &[u8]| {
            svns.iter()
                .map(|svn| format!("{{\"svn\":{svn}}}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let body = format!(
            "{{\"id\":\"TDX\",\"version\":3,\"issueDate\":\"{issued}\",\"nextUpdate\":\"{next}\",\
             \"fmspc\":\"{}\",\"pceId\":\"{}\",\"tcbType\":0,\"tcbEvaluationDataNumber\":17,\
             \"tdxModule\":{{\"mrsigner\":\"{}\",\"attributes\":\"0000000000000000\",\
             \"attributesMask\":\"FFFFFFFFFFFFFFFF\"}},\"tcbLevels\":[{{\"tcb\":{{\
             \"sgxtcbcomponents\":[{}],\"pcesvn\":{PCE_SVN},\"tdxtcbcomponents\":[{}]}},\
             \"tcbDate\":\"2026-01-01T00:00:00Z\",\"tcbStatus\":\"UpToDate\"}}]}}",
            hex::encode_upper(FMSPC),
            hex::encode_upper(PCE_ID),
            "0".repeat(96),
            components(&CPU_SVN),
            components(&TEE_TCB_SVN),
        );
        self.signed("tcbInfo", &body)
    }

    /// The TDX QE identity: the simulated QE, `UpToDate`.
    pub fn qe_identity(&self) -> String {
        let (issued, next) = dates();
        let mut attributes = [0u8; 16];
        attributes[..2].copy_from_slice(&QE_ATTRIBUTES);
        let body = format!(
            "{{\"id\":\"TD_QE\",\"version\":2,\"issueDate\":\"{issued}\",\"nextUpdate\":\"{next}\",\
             \"tcbEvaluationDataNumber\":17,\"miscselect\":\"00000000\",\"miscselectMask\":\"FFFFFFFF\",\
             \"attributes\":\"{}\",\"attributesMask\":\"FBFFFFFFFFFFFFFF0000000000000000\",\
             \"mrsigner\":\"{}\",\"isvprodid\":{QE_ISV_PROD_ID},\"tcbLevels\":[{{\"tcb\":\
             {{\"isvsvn\":{QE_ISV_SVN}}},\"tcbDate\":\"2026-01-01T00:00:00Z\",\"tcbStatus\":\"UpToDate\"}}]}}",
            hex::encode_upper(attributes),
            hex::encode_upper(QE_MRSIGNER),
        );
        self.signed("enclaveIdentity", &body)
    }

    /// The root CA's CRL (DER), revoking nothing.
    pub fn root_crl(&self) -> anyhow::Result<Vec<u8>> {
        crl(&self.root)
    }

    /// The PCK platform CA's CRL (DER), revoking nothing.
    pub fn pck_crl(&self) -> anyhow::Result<Vec<u8>> {
        crl(&self.platform)
    }
}

fn crl(issuer: &rcgen::Issuer<'static, KeyPair>) -> anyhow::Result<Vec<u8>> {
    let now = time::OffsetDateTime::now_utc();
    let params = rcgen::CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(30),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(issuer)?.der().to_vec())
}

/// Issue date an hour ago and next update in 30 days, as Intel writes them.
fn dates() -> (String, String) {
    let format = |t: time::OffsetDateTime| {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    let now = time::OffsetDateTime::now_utc();
    (
        format(now - time::Duration::hours(1)),
        format(now + time::Duration::days(30)),
    )
}

/// What the simulated TD was launched with.
#[derive(Debug, Clone)]
pub struct Launch {
    /// MRTD: the measurement of the TD's initial contents (48 bytes).
    pub mrtd: [u8; 48],
    /// TD_ATTRIBUTES (bit 0: debug).
    pub td_attributes: [u8; 8],
}

/// The TDX module and QE of one platform.
pub struct Platform {
    launch: Launch,
    pck_key: p256::ecdsa::SigningKey,
    pck_chain: Vec<u8>,
    attestation_key: p256::ecdsa::SigningKey,
}

impl Platform {
    /// A platform with the PKI under `dir`; the QE's attestation key is made fresh.
    pub fn load(dir: &Path, launch: Launch) -> anyhow::Result<Self> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path).with_context(|| path.display().to_string())
        };
        let pck_key = p256::ecdsa::SigningKey::from_pkcs8_pem(&read(PCK_KEY)?)
            .map_err(|e| anyhow!("{PCK_KEY}: {e}"))?;
        Ok(Self {
            launch,
            pck_key,
            pck_chain: read(PCK_CHAIN)?.into_bytes(),
            attestation_key: p256::ecdsa::SigningKey::random(&mut OsRng),
        })
    }

    /// A quote of a TD report carrying `report_data`.
    pub fn quote(&self, report_data: &[u8; 64]) -> anyhow::Result<Vec<u8>> {
        let mut quote = Vec::with_capacity(48 + TD_REPORT_LEN + 4 + 1024 + self.pck_chain.len());
        // Header (48 bytes).
        quote.extend_from_slice(&VERSION.to_le_bytes());
        quote.extend_from_slice(&KEY_TYPE_ECDSA_P256.to_le_bytes());
        quote.extend_from_slice(&TEE_TDX.to_le_bytes());
        quote.extend_from_slice(&[0; 4]); // reserved
        quote.extend_from_slice(&QE_VENDOR_ID);
        quote.extend_from_slice(&[0; 20]); // user data
        quote.extend_from_slice(&self.td_report(report_data));

        let signature: p256::ecdsa::Signature = self.attestation_key.sign(&quote);
        let attestation_key = self.attestation_key.verifying_key().to_encoded_point(false);
        let attestation_key = &attestation_key.as_bytes()[1..]; // x ‖ y, without the 0x04 tag
        let qe_auth_data: &[u8] = &[0; 32];
        let qe_report = qe_report(attestation_key, qe_auth_data);
        let qe_signature: p256::ecdsa::Signature = self.pck_key.sign(&qe_report);

        let mut certification = Vec::new();
        certification.extend_from_slice(&qe_report);
        certification.extend_from_slice(&qe_signature.to_bytes());
        certification.extend_from_slice(&u16::try_from(qe_auth_data.len())?.to_le_bytes());
        certification.extend_from_slice(qe_auth_data);
        certification.extend_from_slice(&CERT_PCK_CHAIN.to_le_bytes());
        certification.extend_from_slice(&u32::try_from(self.pck_chain.len())?.to_le_bytes());
        certification.extend_from_slice(&self.pck_chain);

        let mut signature_data = Vec::new();
        signature_data.extend_from_slice(&signature.to_bytes());
        signature_data.extend_from_slice(attestation_key);
        signature_data.extend_from_slice(&CERT_QE_REPORT.to_le_bytes());
        signature_data.extend_from_slice(&u32::try_from(certification.len())?.to_le_bytes());
        signature_data.extend_from_slice(&certification);
        quote.extend_from_slice(&u32::try_from(signature_data.len())?.to_le_bytes());
        quote.extend_from_slice(&signature_data);
        Ok(quote)
    }

    /// TDREPORT's TD info and TEE TCB as a quote carries them (TD 1.0 body).
    fn td_report(&self, report_data: &[u8; 64]) -> Vec<u8> {
        let mut body = Vec::with_capacity(TD_REPORT_LEN);
        body.extend_from_slice(&TEE_TCB_SVN);
        body.extend_from_slice(&[0x3c; 48]); // MRSEAM: the TDX module's measurement
        body.extend_from_slice(&[0; 48]); // MRSIGNERSEAM: zero for Intel's module
        body.extend_from_slice(&[0; 8]); // SEAMATTRIBUTES
        body.extend_from_slice(&self.launch.td_attributes);
        body.extend_from_slice(&[0xe7, 0x02, 0x06, 0, 0, 0, 0, 0]); // XFAM
        body.extend_from_slice(&self.launch.mrtd);
        body.extend_from_slice(&[0; 48]); // MRCONFIGID
        body.extend_from_slice(&[0; 48]); // MROWNER
        body.extend_from_slice(&[0; 48]); // MROWNERCONFIG
        for rtmr in 0..4u8 {
            body.extend_from_slice(&[0x10 + rtmr; 48]);
        }
        body.extend_from_slice(report_data);
        body
    }
}

/// The QE's SGX report: its identity, and report data binding the attestation key
/// (SHA-256 of the key and the QE authentication data, then 32 zero bytes).
fn qe_report(attestation_key: &[u8], qe_auth_data: &[u8]) -> Vec<u8> {
    let mut report = vec![0u8; QE_REPORT_LEN];
    report[0..16].copy_from_slice(&CPU_SVN); // CPUSVN
    report[48..50].copy_from_slice(&QE_ATTRIBUTES); // ATTRIBUTES: init, mode64bit
    report[64..96].copy_from_slice(&[0x9e; 32]); // MRENCLAVE of the QE
    report[128..160].copy_from_slice(&QE_MRSIGNER); // MRSIGNER: the QE's signer
    report[256..258].copy_from_slice(&QE_ISV_PROD_ID.to_le_bytes()); // ISVPRODID: the TDX QE
    report[258..260].copy_from_slice(&QE_ISV_SVN.to_le_bytes()); // ISVSVN
    let digest = Sha256::new()
        .chain_update(attestation_key)
        .chain_update(qe_auth_data)
        .finalize();
    report[320..352].copy_from_slice(&digest);
    report
}

impl Evidence for Platform {
    fn provider(&self) -> &'static str {
        "tdx_guest"
    }

    fn privlevel_floor(&self) -> u32 {
        0
    }

    fn has_auxblob(&self) -> bool {
        false
    }

    fn report(
        &self,
        report_data: &[u8; 64],
        _privlevel: u32,
    ) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        Ok((self.quote(report_data)?, Vec::new()))
    }
}
