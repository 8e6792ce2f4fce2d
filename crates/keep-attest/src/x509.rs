//! X.509 helpers shared by the verifiers: loading certificates from PEM or DER and checking
//! validity at the verification time.

use std::time::SystemTime;

use der::Decode as _;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;

use crate::Error;

/// Every certificate in `bytes`: one DER certificate, or a chain of PEM `CERTIFICATE`
/// blocks.
pub fn load_certificates(bytes: &[u8]) -> Result<Vec<Certificate>, Error> {
    if bytes.first() == Some(&0x30) {
        return Certificate::from_der(bytes)
            .map(|cert| vec![cert])
            .map_err(|e| Error::malformed("DER certificate", e));
    }
    pem_chain(bytes).map_err(|e| Error::malformed("PEM certificates", e))
}

/// The certificates of a PEM chain. x509-cert 0.2.5's `load_pem_chain` underflows on input
/// that is empty once trailing line breaks are removed (found by fuzzing), so such input is
/// refused here first.
pub(crate) fn pem_chain(bytes: &[u8]) -> Result<Vec<Certificate>, String> {
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Err("no certificate in it".to_owned());
    }
    let certs = Certificate::load_pem_chain(trimmed).map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate in it".to_owned());
    }
    Ok(certs)
}

/// A CRL, DER or PEM (`X509 CRL`).
pub fn load_crl(bytes: &[u8]) -> Result<CertificateList, String> {
    use der::Decode as _;
    if bytes.first() == Some(&0x30) {
        return CertificateList::from_der(bytes).map_err(|e| e.to_string());
    }
    let (label, der) = der::pem::decode_vec(bytes.trim_ascii()).map_err(|e| e.to_string())?;
    if label != "X509 CRL" {
        return Err(format!("a PEM `{label}` block, not `X509 CRL`"));
    }
    CertificateList::from_der(&der).map_err(|e| e.to_string())
}

/// The certificate's subject as text.
pub fn subject(cert: &Certificate) -> String {
    cert.tbs_certificate.subject.to_string()
}

/// Fails unless `cert` is valid at `at`.
pub fn check_validity(cert: &Certificate, at: SystemTime) -> Result<(), Error> {
    let validity = &cert.tbs_certificate.validity;
    let not_before = validity.not_before.to_system_time();
    let not_after = validity.not_after.to_system_time();
    if at < not_before || at > not_after {
        return Err(Error::NotValidAt {
            subject: subject(cert),
            at,
            not_before,
            not_after,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_blank_pem_input_is_refused_not_a_panic() {
        for input in [&b""[..], b"\n", b"\r\n\r\n", b"  \n\0"] {
            assert!(load_certificates(input).is_err(), "{input:?}");
        }
    }
}
