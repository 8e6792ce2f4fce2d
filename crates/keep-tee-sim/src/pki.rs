//! A test PKI shaped like AMD's: an ARK (RSA-4096, self-signed) signs an ASK, the ASK signs
//! VCEKs (ECDSA P-384 keys with AMD's extensions), every signature RSA-PSS with SHA-384.
//! Names say plainly that it is not AMD's.
//!
//! Certificates are assembled from their ASN.1 structures (x509-cert) and signed with the
//! `rsa` crate: rcgen, the workspace's certificate generator, cannot sign RSA-PSS SHA-384
//! nor carry AMD's extension encodings.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, anyhow};
use der::asn1::{BitString, Ia5String, ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _, EncodePem as _};
use rand_core::OsRng;
use rsa::RsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _};
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _};
use sha2::{Digest as _, Sha384};
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

/// The files of a PKI directory, relative to it. `roots/` is what a verifier is told to trust
/// (`keep steward serve --insecure-test-roots DIR/roots`); `keys/` is the simulator's.
pub const ARK_CERT: &str = "roots/snp-ark.pem";
/// The ASK certificate.
pub const ASK_CERT: &str = "roots/snp-ask.pem";
const ARK_KEY: &str = "keys/snp-ark-key.pem";
const ASK_KEY: &str = "keys/snp-ask-key.pem";

const RSA_BITS: usize = 4096;
const VCEK_STRUCT_VERSION: &str = "1.3.6.1.4.1.3704.1.1";
const PRODUCT_NAME: &str = "1.3.6.1.4.1.3704.1.2";
const HW_ID: &str = "1.3.6.1.4.1.3704.1.4";
/// blSPL, teeSPL, snpSPL, spl_4..spl_7, ucodeSPL: `1.3.6.1.4.1.3704.1.3.{1..8}`.
const SPL_ARC: &str = "1.3.6.1.4.1.3704.1.3";

/// The TCB a VCEK is derived for (Milan/Genoa layout: no FMC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcb {
    /// PSP bootloader SPL.
    pub bootloader: u8,
    /// PSP OS SPL.
    pub tee: u8,
    /// SNP firmware SPL.
    pub snp: u8,
    /// Microcode SPL.
    pub microcode: u8,
}

impl FromStr for Tcb {
    type Err = String;

    /// `BOOTLOADER,TEE,SNP,MICROCODE`, e.g. `9,0,23,72`.
    fn from_str(text: &str) -> Result<Self, String> {
        let parts: Vec<u8> = text
            .split(',')
            .map(|part| part.trim().parse::<u8>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("`{text}`: {e} (expected BOOTLOADER,TEE,SNP,MICROCODE)"))?;
        let [bootloader, tee, snp, microcode] = parts[..] else {
            return Err(format!(
                "`{text}`: {} numbers, expected BOOTLOADER,TEE,SNP,MICROCODE",
                parts.len()
            ));
        };
        Ok(Self {
            bootloader,
            tee,
            snp,
            microcode,
        })
    }
}

/// The simulated AMD: ARK and ASK, with their keys.
pub struct SnpPki {
    ark_key: RsaPrivateKey,
    ask_key: RsaPrivateKey,
    ark: Certificate,
    ask: Certificate,
    product: String,
}

impl SnpPki {
    /// Generates a PKI for `product` (`Milan`, `Genoa`) and writes it under `dir`.
    pub fn generate(dir: &Path, product: &str) -> anyhow::Result<Self> {
        let ark_key = RsaPrivateKey::new(&mut OsRng, RSA_BITS).context("ARK key")?;
        let ask_key = RsaPrivateKey::new(&mut OsRng, RSA_BITS).context("ASK key")?;
        let ark_name = test_name(&format!("ARK-{product}"))?;
        let ask_name = test_name(&format!("SEV-{product}"))?;
        let ark = sign(
            Tbs::ca(ark_name.clone(), ark_name.clone(), rsa_spki(&ark_key)?),
            &ark_key,
        )?;
        let ask = sign(Tbs::ca(ark_name, ask_name, rsa_spki(&ask_key)?), &ark_key)?;
        for (file, text) in [
            (ARK_CERT, ark.to_pem(der::pem::LineEnding::LF)?),
            (ASK_CERT, ask.to_pem(der::pem::LineEnding::LF)?),
            (
                ARK_KEY,
                ark_key.to_pkcs8_pem(der::pem::LineEnding::LF)?.to_string(),
            ),
            (
                ASK_KEY,
                ask_key.to_pkcs8_pem(der::pem::LineEnding::LF)?.to_string(),
            ),
        ] {
            write(&dir.join(file), text.as_bytes())?;
        }
        Ok(Self {
            ark_key,
            ask_key,
            ark,
            ask,
            product: product.to_owned(),
        })
    }

    /// Loads the PKI written by [`SnpPki::generate`].
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path).with_context(|| path.display().to_string())
        };
        let certificate = |file: &str| -> anyhow::Result<Certificate> {
            use der::DecodePem as _;
            Certificate::from_pem(read(file)?).with_context(|| format!("{file}: not a certificate"))
        };
        let ark = certificate(ARK_CERT)?;
        let ask = certificate(ASK_CERT)?;
        let key = |file: &str| {
            RsaPrivateKey::from_pkcs8_pem(&read(file)?).map_err(|e| anyhow!("{file}: {e}"))
        };
        let (ark_key, ask_key) = (key(ARK_KEY)?, key(ASK_KEY)?);
        let product = ark
            .tbs_certificate
            .subject
            .to_string()
            .split(',')
            .find_map(|rdn| rdn.strip_prefix("CN=ARK-").map(str::to_owned))
            .ok_or_else(|| anyhow!("{ARK_CERT}: its subject names no product (CN=ARK-…)"))?;
        Ok(Self {
            ark_key,
            ask_key,
            ark,
            ask,
            product,
        })
    }

    /// The product line it imitates (`Genoa`).
    pub fn product(&self) -> &str {
        &self.product
    }

    /// The ARK and ASK, DER.
    pub fn chain_der(&self) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        Ok((self.ark.to_der()?, self.ask.to_der()?))
    }

    /// The ARK's CRL, current for a week, listing the ASK when `revoke_ask` (DER).
    pub fn crl(&self, revoke_ask: bool) -> anyhow::Result<Vec<u8>> {
        let now = SystemTime::now();
        let revoked = revoke_ask.then(|| {
            Ok::<_, anyhow::Error>(vec![RevokedCert {
                serial_number: self.ask.tbs_certificate.serial_number.clone(),
                revocation_date: Time::try_from(now - Duration::from_secs(3600))?,
                crl_entry_extensions: None,
            }])
        });
        let algorithm = pss_sha384()?;
        let tbs_cert_list = TbsCertList {
            version: Version::V2,
            signature: algorithm.clone(),
            issuer: self.ark.tbs_certificate.subject.clone(),
            this_update: Time::try_from(now - Duration::from_secs(3600))?,
            next_update: Some(Time::try_from(now + Duration::from_secs(7 * 86_400))?),
            revoked_certificates: revoked.transpose()?,
            crl_extensions: None,
        };
        let signature = pss_sign(&self.ark_key, &tbs_cert_list.to_der()?);
        Ok(CertificateList {
            tbs_cert_list,
            signature_algorithm: algorithm,
            signature: BitString::from_bytes(&signature)?,
        }
        .to_der()?)
    }

    /// The VCEK of `chip_id` at `tcb`: its key is derived from both (as a real chip derives
    /// it from its secret and the TCB), so the simulated guest and the simulated KDS agree
    /// on it without talking to each other.
    pub fn vcek(&self, chip_id: &[u8; 64], tcb: Tcb) -> anyhow::Result<Vcek> {
        let key = vcek_key(chip_id, tcb)?;
        let spki_der = key
            .verifying_key()
            .to_public_key_der()
            .map_err(|e| anyhow!("VCEK public key: {e}"))?;
        let spki = SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes())?;
        let oid = |text: &str| ObjectIdentifier::new(text).map_err(|e| anyhow!("{text}: {e}"));
        let integer = |value: u8| u32::from(value).to_der();
        let mut extensions = vec![
            extension(oid(VCEK_STRUCT_VERSION)?, 1u32.to_der()?)?,
            extension(
                oid(PRODUCT_NAME)?,
                Ia5String::new(&format!("{}-B1", self.product))?.to_der()?,
            )?,
        ];
        let spls = [tcb.bootloader, tcb.tee, tcb.snp, 0, 0, 0, 0, tcb.microcode];
        for (index, spl) in spls.into_iter().enumerate() {
            extensions.push(extension(
                oid(&format!("{SPL_ARC}.{}", index + 1))?,
                integer(spl)?,
            )?);
        }
        extensions.push(extension(
            oid(HW_ID)?,
            OctetString::new(chip_id.to_vec())?.to_der()?,
        )?);
        let tbs = Tbs {
            issuer: self.ask.tbs_certificate.subject.clone(),
            subject: test_name("SEV-VCEK")?,
            spki,
            extensions,
        };
        Ok(Vcek {
            certificate: sign(tbs, &self.ask_key)?,
            key,
        })
    }
}

/// A chip's endorsement key at one TCB.
pub struct Vcek {
    /// Its certificate, signed by the ASK.
    pub certificate: Certificate,
    /// Its private key, which signs reports.
    pub key: p384::ecdsa::SigningKey,
}

/// A P-384 key from SHA-384 of the chip and TCB (retried with a counter in the negligible
/// case that the digest is not a valid scalar).
fn vcek_key(chip_id: &[u8; 64], tcb: Tcb) -> anyhow::Result<p384::ecdsa::SigningKey> {
    for counter in 0u8..=255 {
        let digest = Sha384::new()
            .chain_update(b"keep-tee-sim VCEK\0")
            .chain_update(chip_id)
            .chain_update([tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode, counter])
            .finalize();
        if let Ok(key) = p384::ecdsa::SigningKey::from_slice(&digest) {
            return Ok(key);
        }
    }
    Err(anyhow!("no VCEK key could be derived"))
}

/// The chip ID of a simulated chip named `name`.
pub fn chip_id(name: &str) -> [u8; 64] {
    sha2::Sha512::new()
        .chain_update(b"keep-tee-sim chip\0")
        .chain_update(name.as_bytes())
        .finalize()
        .into()
}

fn test_name(common_name: &str) -> anyhow::Result<Name> {
    Name::from_str(&format!(
        "CN={common_name},OU=Keep simulated TEE,O=TEST PKI - NOT AMD"
    ))
    .map_err(|e| anyhow!("name {common_name}: {e}"))
}

fn rsa_spki(key: &RsaPrivateKey) -> anyhow::Result<SubjectPublicKeyInfoOwned> {
    let der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| anyhow!("RSA public key: {e}"))?;
    Ok(SubjectPublicKeyInfoOwned::from_der(der.as_bytes())?)
}

fn extension(extn_id: ObjectIdentifier, value: Vec<u8>) -> anyhow::Result<Extension> {
    Ok(Extension {
        extn_id,
        critical: false,
        extn_value: OctetString::new(value)?,
    })
}

/// What differs between the certificates of the PKI.
struct Tbs {
    issuer: Name,
    subject: Name,
    spki: SubjectPublicKeyInfoOwned,
    extensions: Vec<Extension>,
}

impl Tbs {
    /// An ARK or ASK: a CA that signs certificates and CRLs.
    fn ca(issuer: Name, subject: Name, spki: SubjectPublicKeyInfoOwned) -> Self {
        let constraints = BasicConstraints {
            ca: true,
            path_len_constraint: None,
        };
        let usage = KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign);
        let extensions = [
            ("2.5.29.19", constraints.to_der()),
            ("2.5.29.15", usage.to_der()),
        ]
        .into_iter()
        .filter_map(|(oid, value)| {
            Some(Extension {
                extn_id: ObjectIdentifier::new(oid).ok()?,
                critical: true,
                extn_value: OctetString::new(value.ok()?).ok()?,
            })
        })
        .collect();
        Self {
            issuer,
            subject,
            spki,
            extensions,
        }
    }
}

/// RSA-PSS with SHA-384 and a 48-byte salt, as AMD signs.
fn pss_sha384() -> anyhow::Result<x509_cert::spki::AlgorithmIdentifierOwned> {
    rsa::pss::get_default_pss_signature_algo_id::<Sha384>()
        .map_err(|e| anyhow!("RSA-PSS algorithm identifier: {e}"))
}

fn pss_sign(key: &RsaPrivateKey, message: &[u8]) -> Vec<u8> {
    let signer = rsa::pss::SigningKey::<Sha384>::new(key.clone());
    signer.sign_with_rng(&mut OsRng, message).to_vec()
}

/// Signs `tbs` with `key`, as AMD signs.
fn sign(tbs: Tbs, key: &RsaPrivateKey) -> anyhow::Result<Certificate> {
    let algorithm = pss_sha384()?;
    let now = SystemTime::now();
    let validity = Validity {
        not_before: Time::try_from(now - Duration::from_secs(86_400))?,
        not_after: Time::try_from(now + Duration::from_secs(10 * 365 * 86_400))?,
    };
    let mut serial = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut OsRng, &mut serial);
    serial[0] &= 0x7f;
    let tbs_certificate = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&serial)?,
        signature: algorithm.clone(),
        issuer: tbs.issuer,
        validity,
        subject: tbs.subject,
        subject_public_key_info: tbs.spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(tbs.extensions),
    };
    let signature = pss_sign(key, &tbs_certificate.to_der()?);
    Ok(Certificate {
        tbs_certificate,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(&signature)?,
    })
}

/// Writes `bytes` to `path`, making its directory.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
    }
    std::fs::write(path, bytes).with_context(|| path.display().to_string())
}
