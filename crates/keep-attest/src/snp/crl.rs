//! AMD's certificate revocation lists: each product line's ARK signs a CRL of revoked ASKs
//! and ASVKs (KDS `/vcek/v1/{product}/crl`). A CRL is used when supplied: its signature is
//! checked with the built-in ARK, it must be current at the verification time, and the
//! chain's intermediate must not be on it.

use std::time::SystemTime;

use der::Encode as _;
use der::referenced::OwnedToRef as _;
use rsa::signature::Verifier as _;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;

use crate::Error;
use crate::error::rfc3339;
use crate::x509::subject;

/// Checks `intermediate` (signed by `ark`) against the CRLs among `crls` that `ark` issued.
pub fn check(
    ark: &Certificate,
    intermediate: &Certificate,
    crls: &[CertificateList],
    at: SystemTime,
) -> Result<(), Error> {
    for crl in crls
        .iter()
        .filter(|crl| crl.tbs_cert_list.issuer == ark.tbs_certificate.subject)
    {
        verify_signature(ark, crl)?;
        let this_update = crl.tbs_cert_list.this_update.to_system_time();
        let next_update = crl.tbs_cert_list.next_update.map(|t| t.to_system_time());
        if at < this_update || next_update.is_some_and(|next| at > next) {
            return Err(Error::Collateral(format!(
                "the CRL of `{}` is not current at {}: issued {}, next update {}",
                subject(ark),
                rfc3339(at),
                rfc3339(this_update),
                next_update.map_or("none".to_owned(), rfc3339)
            )));
        }
        let serial = &intermediate.tbs_certificate.serial_number;
        if crl
            .tbs_cert_list
            .revoked_certificates
            .iter()
            .flatten()
            .any(|revoked| &revoked.serial_number == serial)
        {
            return Err(Error::Chain(format!(
                "`{}` is revoked by its ARK's CRL",
                subject(intermediate)
            )));
        }
    }
    Ok(())
}

/// AMD signs CRLs as it signs certificates: RSA-PSS with SHA-384.
fn verify_signature(ark: &Certificate, crl: &CertificateList) -> Result<(), Error> {
    let key =
        rsa::RsaPublicKey::try_from(ark.tbs_certificate.subject_public_key_info.owned_to_ref())
            .map_err(|e| Error::Chain(format!("the ARK's key: {e}")))?;
    let tbs = crl
        .tbs_cert_list
        .to_der()
        .map_err(|e| Error::malformed("CRL", e))?;
    let signature = rsa::pss::Signature::try_from(crl.signature.raw_bytes())
        .map_err(|e| Error::malformed("CRL", format!("signature: {e}")))?;
    rsa::pss::VerifyingKey::<sha2::Sha384>::new(key)
        .verify(&tbs, &signature)
        .map_err(|_| Error::Collateral(format!("the CRL is not signed by `{}`", subject(ark))))
}
