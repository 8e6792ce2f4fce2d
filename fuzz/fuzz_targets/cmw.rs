//! CMW collections as Keep reads them: the extension value (DER), its JSON, Keep's request
//! records, and the attestation result of a certificate.
#![no_main]

use keep_attest::certificate::AttestedClaims;
use keep_attest::cmw::Collection;
use keep_attest::request::AttestationRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(collection) = Collection::from_extension_value(data) {
        let _ = AttestationRequest::from_collection(&collection);
        let _ = collection.to_json();
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(collection) = Collection::from_json(text)
    {
        // What Keep writes it reads back identically.
        let json = collection.to_json();
        let again = Collection::from_json(&json).expect("own JSON reads back");
        assert_eq!(again.to_json(), json);
        let _ = AttestationRequest::from_collection(&collection);
    }
    let _ = AttestedClaims::from_certificate(data);
});
