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
        if lists(crl, intermediate) {
            return Err(Error::Chain(format!(
                "`{}` is revoked by its ARK's CRL",
                subject(intermediate)
            )));
        }
    }
    Ok(())
}

/// Whether `crl` lists `cert` as revoked.
fn lists(crl: &CertificateList, cert: &Certificate) -> bool {
    crl.tbs_cert_list
        .revoked_certificates
        .iter()
        .flatten()
        .any(|revoked| revoked.serial_number == cert.tbs_certificate.serial_number)
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

#[cfg(test)]
mod tests {
    //! On the real Milan CRL that an Enarx Keep carried (signed by the Milan ARK, current
    //! from 2022-05-09 to 2023-05-09), and on altered copies.

    use std::time::{Duration, UNIX_EPOCH};

    use x509_cert::crl::RevokedCert;

    use super::*;

    fn milan_crl() -> CertificateList {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/vectors/sev-snp/enarx-steward/milan.signed.crl.csr");
        let csr = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let request = crate::enarx::Request::from_der(&csr).unwrap();
        request
            .snp_crls()
            .unwrap()
            .into_iter()
            .find(|crl| {
                crl.tbs_cert_list
                    .issuer
                    .to_string()
                    .contains("CN=ARK-Milan")
            })
            .unwrap()
    }

    fn milan() -> (Certificate, Certificate) {
        let load = |pem: &[u8]| crate::load_certificates(pem).unwrap().remove(0);
        (
            load(sev::certs::snp::builtin::milan::ARK),
            load(sev::certs::snp::builtin::milan::ASK),
        )
    }

    // 2023-01-01T00:00:00Z and 2024-01-01T00:00:00Z.
    const CURRENT: u64 = 1_672_531_200;
    const STALE: u64 = 1_704_067_200;

    #[test]
    fn the_real_crl_verifies_and_does_not_list_the_ask() {
        let (ark, ask) = milan();
        let crl = milan_crl();
        check(
            &ark,
            &ask,
            std::slice::from_ref(&crl),
            UNIX_EPOCH + Duration::from_secs(CURRENT),
        )
        .unwrap();
        let error = check(&ark, &ask, &[crl], UNIX_EPOCH + Duration::from_secs(STALE)).unwrap_err();
        assert!(error.to_string().contains("is not current"), "{error}");
    }

    #[test]
    fn a_listed_intermediate_is_revoked_and_an_altered_crl_is_refused() {
        let (ark, ask) = milan();
        let mut crl = milan_crl();
        let revoked = RevokedCert {
            serial_number: ask.tbs_certificate.serial_number.clone(),
            revocation_date: crl.tbs_cert_list.this_update,
            crl_entry_extensions: None,
        };
        crl.tbs_cert_list
            .revoked_certificates
            .get_or_insert_with(Vec::new)
            .push(revoked);
        assert!(lists(&crl, &ask));
        assert!(!lists(&milan_crl(), &ask));
        // Adding the entry broke ARK's signature: such a CRL is refused before it is read.
        let error = check(
            &ark,
            &ask,
            &[crl],
            UNIX_EPOCH + Duration::from_secs(CURRENT),
        )
        .unwrap_err();
        assert!(error.to_string().contains("is not signed by"), "{error}");
    }
}
