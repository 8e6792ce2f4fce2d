//! Intel's TCB collateral (PCS responses and CRLs) and its evaluation by `dcap-qvl`: the
//! TCB info and QE identity signatures, CRLs, and the TCB status of the platform and the QE.

use std::path::Path;
use std::time::SystemTime;

use dcap_qvl::QuoteCollateralV3;
use dcap_qvl::verify::QuoteVerifier;
use der::EncodePem as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use x509_cert::Certificate;

use crate::{Error, TcbStatus};

/// The collateral of one quote, as Intel's PCS serves it.
#[derive(Debug, Clone, Default)]
pub struct Collateral {
    /// The TCB info response: `{"tcbInfo": {...}, "signature": "<hex>"}`.
    pub tcb_info: String,
    /// The QE identity response: `{"enclaveIdentity": {...}, "signature": "<hex>"}`.
    pub qe_identity: String,
    /// PEM chain of the TCB signing certificate (it signs both responses) up to the root.
    pub tcb_signing_chain: String,
    /// The Intel SGX Root CA's CRL (DER or PEM).
    pub root_ca_crl: Vec<u8>,
    /// The PCK CA's CRL (DER or PEM).
    pub pck_crl: Vec<u8>,
    /// The PCK chain, PEM (leaf first), for quotes that do not carry a usable one.
    pub pck_chain: Option<String>,
}

/// The files of a collateral directory.
pub const FILES: [&str; 6] = [
    "tcb_info.json",
    "qe_identity.json",
    "tcb_signing_chain.pem",
    "root_ca_crl.der",
    "pck_crl.der",
    "pck_chain.pem",
];

impl Collateral {
    /// Reads a collateral directory: `tcb_info.json`, `qe_identity.json`,
    /// `tcb_signing_chain.pem`, `root_ca_crl.der`, `pck_crl.der` (all required) and
    /// `pck_chain.pem` (optional). Returns `None` when the directory holds none of them.
    pub fn from_dir(dir: &Path) -> Result<Option<Self>, Error> {
        let present: Vec<&str> = FILES
            .iter()
            .copied()
            .filter(|name| dir.join(name).exists())
            .collect();
        if present.is_empty() {
            return Ok(None);
        }
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| Error::MissingCollateral(format!("{}: {e}", dir.join(name).display())))
        };
        let text = |name: &str| {
            read(name).and_then(|bytes| {
                String::from_utf8(bytes)
                    .map_err(|_| Error::malformed("collateral", format!("{name} is not text")))
            })
        };
        Ok(Some(Self {
            tcb_info: text("tcb_info.json")?,
            qe_identity: text("qe_identity.json")?,
            tcb_signing_chain: text("tcb_signing_chain.pem")?,
            root_ca_crl: read("root_ca_crl.der")?,
            pck_crl: read("pck_crl.der")?,
            pck_chain: if present.contains(&"pck_chain.pem") {
                Some(text("pck_chain.pem")?)
            } else {
                None
            },
        }))
    }
}

impl Collateral {
    /// When the first of its parts is due for renewal: the `nextUpdate` of the TCB info and
    /// the QE identity, and of both CRLs. A verifier that fetched it fetches it again then.
    pub fn next_update(&self) -> Result<SystemTime, Error> {
        #[derive(Deserialize)]
        struct Dated {
            #[serde(rename = "nextUpdate")]
            next_update: String,
        }
        let mut earliest: Option<SystemTime> = None;
        let mut consider = |time: SystemTime| {
            earliest = Some(earliest.map_or(time, |e| e.min(time)));
        };
        for (response, key, what) in [
            (&self.tcb_info, "tcbInfo", "TCB info"),
            (&self.qe_identity, "enclaveIdentity", "QE identity"),
        ] {
            let body = signed(response, key)?.body;
            let dated: Dated =
                serde_json::from_str(&body).map_err(|e| Error::malformed(what, e))?;
            let since_epoch = parse_rfc3339(&dated.next_update).ok_or_else(|| {
                Error::malformed(what, format!("nextUpdate `{}`", dated.next_update))
            })?;
            consider(SystemTime::UNIX_EPOCH + since_epoch);
        }
        for (crl, what) in [
            (&self.root_ca_crl, "root CA CRL"),
            (&self.pck_crl, "PCK CRL"),
        ] {
            let list = crate::x509::load_crl(&crl_der(crl)?)
                .map_err(|e| Error::malformed("CRL", format!("{what}: {e}")))?;
            if let Some(next) = list.tbs_cert_list.next_update {
                consider(next.to_system_time());
            }
        }
        earliest.ok_or_else(|| Error::malformed("collateral", "no next update"))
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (as Intel dates its responses) since the Unix epoch.
fn parse_rfc3339(text: &str) -> Option<std::time::Duration> {
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<u16>().ok();
    if text.len() != 20 || !text.ends_with('Z') {
        return None;
    }
    let date_time = der::DateTime::new(
        number(0..4)?,
        u8::try_from(number(5..7)?).ok()?,
        u8::try_from(number(8..10)?).ok()?,
        u8::try_from(number(11..13)?).ok()?,
        u8::try_from(number(14..16)?).ok()?,
        u8::try_from(number(17..19)?).ok()?,
    )
    .ok()?;
    Some(date_time.unix_duration())
}

/// A signed PCS response: the signed JSON object exactly as served, and its signature.
pub(crate) struct Signed {
    pub body: String,
    pub signature: Vec<u8>,
}

pub(crate) fn signed(response: &str, key: &'static str) -> Result<Signed, Error> {
    #[derive(Deserialize)]
    struct Response<'a> {
        #[serde(borrow, rename = "tcbInfo")]
        tcb_info: Option<&'a RawValue>,
        #[serde(borrow, rename = "enclaveIdentity")]
        enclave_identity: Option<&'a RawValue>,
        signature: String,
    }
    let what = if key == "tcbInfo" {
        "TCB info"
    } else {
        "QE identity"
    };
    let parsed: Response = serde_json::from_str(response).map_err(|e| Error::malformed(what, e))?;
    let body = match key {
        "tcbInfo" => parsed.tcb_info,
        _ => parsed.enclave_identity,
    }
    .ok_or_else(|| Error::malformed(what, format!("no `{key}` object")))?;
    Ok(Signed {
        body: body.get().to_owned(),
        signature: hex::decode(&parsed.signature)
            .map_err(|e| Error::malformed(what, format!("signature: {e}")))?,
    })
}

/// A CRL as DER (PCS serves both DER and PEM).
fn crl_der(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    let text =
        std::str::from_utf8(bytes).map_err(|_| Error::malformed("CRL", "neither DER nor PEM"))?;
    let (_, der) = der::pem::decode_vec(text.as_bytes()).map_err(|e| Error::malformed("CRL", e))?;
    Ok(der)
}

/// The TCB status of the quote's platform and QE, and the advisories that apply.
pub fn evaluate(
    quote: &[u8],
    collateral: &Collateral,
    pck_chain: &[Certificate],
    root: &Certificate,
    at: SystemTime,
) -> Result<(TcbStatus, Vec<String>), Error> {
    let tcb_info = signed(&collateral.tcb_info, "tcbInfo")?;
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    let version = serde_json::from_str::<Version>(&tcb_info.body)
        .map_err(|e| Error::malformed("TCB info", e))?
        .version;
    if version < 3 {
        return Err(Error::Unsupported {
            what: "TCB info version",
            detail: format!(
                "{version} (Keep evaluates version 3, which Intel's PCS serves from API v4 on)"
            ),
        });
    }
    let qe_identity = signed(&collateral.qe_identity, "enclaveIdentity")?;
    let pem = |certs: &[Certificate]| -> Result<String, Error> {
        certs
            .iter()
            .map(|cert| {
                cert.to_pem(der::pem::LineEnding::LF)
                    .map_err(|e| Error::malformed("certificate", e))
            })
            .collect()
    };
    let root_der = der::Encode::to_der(root).map_err(|e| Error::malformed("certificate", e))?;
    let input = QuoteCollateralV3 {
        pck_crl_issuer_chain: pem(&pck_chain[1..])?,
        root_ca_crl: crl_der(&collateral.root_ca_crl)?,
        pck_crl: crl_der(&collateral.pck_crl)?,
        tcb_info_issuer_chain: collateral.tcb_signing_chain.clone(),
        tcb_info: tcb_info.body,
        tcb_info_signature: tcb_info.signature,
        qe_identity_issuer_chain: collateral.tcb_signing_chain.clone(),
        qe_identity: qe_identity.body,
        qe_identity_signature: qe_identity.signature,
        pck_certificate_chain: Some(pem(pck_chain)?),
    };
    let seconds = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Debug enclaves and TDs are judged by Keep's policy (the claims carry the flag), not
    // refused here.
    let report = match QuoteVerifier::new(root_der)
        .allow_debug(true)
        .verify(quote, &input, seconds)
    {
        Ok(report) => report,
        // dcap-qvl matches TCB levels last, after every signature and CRL check, and says
        // so only in its message: a platform below every listed level is authentic but
        // unsupported by Intel, which the policy judges.
        Err(e) if format!("{e:#}").contains("No matching TCB level") => {
            return Ok((TcbStatus::NotSupported, Vec::new()));
        }
        Err(e) => return Err(Error::Collateral(format!("{e:#}"))),
    };
    let status = status_from_intel(&report.status)?;
    Ok((status, report.advisory_ids))
}

/// Intel's name of a TCB status as Keep's.
pub(crate) fn status_from_intel(name: &str) -> Result<TcbStatus, Error> {
    Ok(match name {
        "UpToDate" => TcbStatus::UpToDate,
        "SWHardeningNeeded" => TcbStatus::SwHardeningNeeded,
        "ConfigurationNeeded" => TcbStatus::ConfigurationNeeded,
        "ConfigurationAndSWHardeningNeeded" => TcbStatus::ConfigurationAndSwHardeningNeeded,
        "OutOfDate" => TcbStatus::OutOfDate,
        "OutOfDateConfigurationNeeded" => TcbStatus::OutOfDateConfigurationNeeded,
        "Revoked" => TcbStatus::Revoked,
        other => return Err(Error::Collateral(format!("unknown TCB status `{other}`"))),
    })
}
