//! Intel DCAP quotes: any bytes parse or are refused with a reason; the embedded PCK chain
//! is read or refused, and its FMSPC; verification fails cleanly without a valid chain.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(quote) = keep_attest::intel::ParsedQuote::parse(data) {
        if let Ok(chain) = quote.pck_chain() {
            let _ = quote.verify_signatures(
                &chain,
                keep_attest::intel::production_root(),
                std::time::SystemTime::now(),
            );
        }
        let _ = keep_attest::intel::unverified_claims(data).map(|c| c.to_json());
        // What the Steward reads to fetch the quote's collateral from the PCS.
        let _ = keep_attest::intel::pcs_key(data);
    }
    let _ = keep_attest::inspect(data).map(|(kind, _)| kind.describe());
});
