//! PKCS#10 certificate requests: parse one, check that the holder of its key signed it, and
//! read the extensions it asks for.

use der::asn1::ObjectIdentifier;
use der::{Decode as _, Encode as _};
use x509_cert::ext::Extension;
use x509_cert::ext::Extensions;
use x509_cert::request::CertReq;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use crate::Error;

/// PKCS#9 `extensionRequest`.
const EXTENSION_REQUEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");
/// The P-384 curve.
pub const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// The P-256 curve.
pub const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// Largest request Keep reads (evidence with its certificates is a few KiB).
pub const MAX_REQUEST_LEN: usize = 512 * 1024;

/// A request whose signature verifies with the key it carries.
pub struct SignedRequest {
    /// The parsed request.
    pub request: CertReq,
}

impl SignedRequest {
    /// Parses a DER request and checks its signature: ECDSA P-384 with SHA-384 or P-256 with
    /// SHA-256 (what Keep's and Enarx's Keeps make).
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        if der.len() > MAX_REQUEST_LEN {
            return Err(Error::malformed(
                "certificate request",
                format!(
                    "{} bytes, more than the {MAX_REQUEST_LEN} Keep reads",
                    der.len()
                ),
            ));
        }
        let request =
            CertReq::from_der(der).map_err(|e| Error::malformed("certificate request", e))?;
        verify_signature(&request)?;
        Ok(Self { request })
    }

    /// The requested extensions (from every `extensionRequest` attribute).
    pub fn extensions(&self) -> Result<Vec<Extension>, Error> {
        let mut found = Vec::new();
        for attribute in self
            .request
            .info
            .attributes
            .iter()
            .filter(|a| a.oid == EXTENSION_REQUEST)
        {
            for value in attribute.values.iter() {
                let extensions: Extensions = value.decode_as().map_err(|e| {
                    Error::malformed("certificate request", format!("extensions: {e}"))
                })?;
                found.extend(extensions);
            }
        }
        Ok(found)
    }

    /// The requested extension `oid`, if there is exactly one; an error if there are more.
    pub fn single_extension(&self, oid: ObjectIdentifier) -> Result<Option<Extension>, Error> {
        let mut matching: Vec<Extension> = self
            .extensions()?
            .into_iter()
            .filter(|e| e.extn_id == oid)
            .collect();
        match matching.len() {
            0 | 1 => Ok(matching.pop()),
            n => Err(Error::malformed(
                "certificate request",
                format!("extension {oid} appears {n} times"),
            )),
        }
    }

    /// The request's key as DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> Result<Vec<u8>, Error> {
        self.request
            .info
            .public_key
            .to_der()
            .map_err(|e| Error::malformed("certificate request", e))
    }

    /// The curve of the request's key: [`SECP384R1`] or [`SECP256R1`].
    pub fn key_curve(&self) -> Option<ObjectIdentifier> {
        curve_of(&self.request.info.public_key)
    }
}

fn curve_of(spki: &SubjectPublicKeyInfoOwned) -> Option<ObjectIdentifier> {
    spki.algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
}

/// The request's signature, by the key it carries. ring's ECDSA verification, several times
/// faster than the pure-Rust curves: the Steward checks one signature per request.
fn verify_signature(request: &CertReq) -> Result<(), Error> {
    use ring::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, UnparsedPublicKey};
    let spki = &request.info.public_key;
    let key = spki.subject_public_key.raw_bytes();
    let signature = request.signature.raw_bytes();
    let info = request
        .info
        .to_der()
        .map_err(|e| Error::malformed("certificate request", e))?;
    let algorithm = match (curve_of(spki), request.algorithm.oid) {
        (Some(SECP384R1), ECDSA_WITH_SHA384) => &ECDSA_P384_SHA384_ASN1,
        (Some(SECP256R1), ECDSA_WITH_SHA256) => &ECDSA_P256_SHA256_ASN1,
        (curve, algorithm) => {
            return Err(Error::Unsupported {
                what: "certificate request key",
                detail: format!(
                    "{} with {algorithm} (Keep checks ECDSA P-384/SHA-384 and P-256/SHA-256)",
                    curve.map_or("unknown curve".to_owned(), |c| c.to_string()),
                ),
            });
        }
    };
    UnparsedPublicKey::new(algorithm, key)
        .verify(&info, signature)
        .map_err(|_| Error::Signature("the certificate request is not signed by its key".into()))
}
