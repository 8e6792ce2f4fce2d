//! The simulated TDX module and Quoting Enclave: version-4 quotes (Intel "TDX DCAP Quoting
//! Library API", appendix A) whose attestation key the QE certifies in its report, which the
//! platform's PCK key signs, under a test Intel PKI (root CA → PCK platform CA → PCK, all
//! ECDSA P-256, as Intel's).

use std::path::Path;

use anyhow::{Context as _, anyhow};
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use rand_core::OsRng;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use sha2::{Digest as _, Sha256};

use crate::configfs::Evidence;

/// The test Intel root, for verifiers (`--insecure-test-roots DIR/roots`).
pub const ROOT_CERT: &str = "roots/intel-root.pem";
/// The PCK chain a quote embeds: PCK, platform CA, root (PEM).
const PCK_CHAIN: &str = "keys/intel-pck-chain.pem";
const PCK_KEY: &str = "keys/intel-pck-key.pem";

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

/// Generates the test Intel PKI under `dir`.
pub fn generate_pki(dir: &Path) -> anyhow::Result<()> {
    let ca = |name: &str| -> anyhow::Result<CertificateParams> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "TEST PKI - NOT INTEL");
        Ok(params)
    };
    let root = CertifiedIssuer::self_signed(ca("TEST Intel SGX Root CA")?, KeyPair::generate()?)?;
    let platform = CertifiedIssuer::signed_by(
        ca("TEST Intel SGX PCK Platform CA")?,
        KeyPair::generate()?,
        &root,
    )?;
    let pck_key = p256::SecretKey::random(&mut OsRng);
    let pck_pkcs8 = pck_key
        .to_pkcs8_der()
        .map_err(|e| anyhow!("PCK key: {e}"))?;
    let pck_pair = KeyPair::try_from(pck_pkcs8.as_bytes())?;
    let mut pck_params = CertificateParams::new(Vec::<String>::new())?;
    pck_params
        .distinguished_name
        .push(DnType::CommonName, "TEST Intel SGX PCK Certificate");
    pck_params
        .distinguished_name
        .push(DnType::OrganizationName, "TEST PKI - NOT INTEL");
    let pck = pck_params.signed_by(&pck_pair, &platform)?;
    let chain = [pck.pem(), platform.pem(), root.pem()].concat();
    for (file, text) in [
        (ROOT_CERT, root.pem()),
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
        let mut tee_tcb_svn = [0u8; 16];
        tee_tcb_svn[..3].copy_from_slice(&[5, 0, 3]);
        body.extend_from_slice(&tee_tcb_svn);
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
    report[0..2].copy_from_slice(&[0x0b, 0x0b]); // CPUSVN
    report[48..50].copy_from_slice(&[0x15, 0x00]); // ATTRIBUTES: init, mode64bit
    report[64..96].copy_from_slice(&[0x9e; 32]); // MRENCLAVE of the QE
    report[128..160].copy_from_slice(&[0x8c; 32]); // MRSIGNER: Intel's QE signer
    report[256..258].copy_from_slice(&2u16.to_le_bytes()); // ISVPRODID: the TDX QE
    report[258..260].copy_from_slice(&8u16.to_le_bytes()); // ISVSVN
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
