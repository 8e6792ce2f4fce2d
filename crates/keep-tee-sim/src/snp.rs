//! The simulated SEV-SNP firmware: attestation reports (version 3, the layout of AMD's
//! SEV-SNP ABI specification, encoded by virtee's `sev`) signed by the chip's VCEK, and the
//! certificate table a host hands out with extended reports.

use anyhow::Context as _;
use der::Encode as _;
use p384::ecdsa::signature::Signer as _;
use sev::firmware::guest::{AttestationReport, GuestPolicy, KeyInfo, PlatformInfo, Version};
use sev::firmware::host::TcbVersion;
use sev::parser::ByteParser as _;

use crate::pki::{SnpPki, Tcb, Vcek};

/// The report's size and the signed prefix (ABI specification, ATTESTATION_REPORT).
const REPORT_LEN: usize = 0x4A0;
const SIGNED_LEN: usize = 0x2A0;
/// SIGNATURE_ALGO: ECDSA P-384 with SHA-384.
const ECDSA_P384_SHA384: u32 = 1;
/// CPUID family 19h model 11h: Genoa.
const GENOA: (u8, u8, u8) = (0x19, 0x11, 0x01);

/// What the simulated VM was launched with and runs on.
#[derive(Debug, Clone)]
pub struct Launch {
    /// MEASUREMENT (48 bytes).
    pub measurement: [u8; 48],
    /// HOST_DATA (32 bytes).
    pub host_data: [u8; 32],
    /// The guest policy (bit 17 is always set; 16 SMT allowed, 18 migration agent, 19 debug).
    pub policy: u64,
    /// The platform's TCB (current, committed, launch and reported alike).
    pub tcb: Tcb,
    /// The chip.
    pub chip_id: [u8; 64],
}

/// The firmware of one chip.
pub struct Firmware {
    launch: Launch,
    vcek: Vcek,
    /// The certificate table handed out with reports (empty: the host supplies none).
    cert_table: Vec<u8>,
    /// A hostile host's replay: a report recorded earlier, handed out for every request.
    replay: Option<Vec<u8>>,
}

impl Firmware {
    /// The firmware of the launch's chip, handing out `certificates` (VCEK, ASK, ARK, DER,
    /// by GUID name) with its reports.
    pub fn new(launch: Launch, pki: &SnpPki, table: &[(&str, Vec<u8>)]) -> anyhow::Result<Self> {
        let vcek = pki.vcek(&launch.chip_id, launch.tcb)?;
        Ok(Self {
            launch,
            vcek,
            cert_table: cert_table(table)?,
            replay: None,
        })
    }

    /// Plays a hostile host that answers every request with a report it recorded earlier
    /// (made here for other report data).
    pub fn replaying(mut self) -> anyhow::Result<Self> {
        let mut recorded_data = [0u8; 64];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut recorded_data);
        self.replay = Some(self.report(&recorded_data, 0)?);
        Ok(self)
    }

    /// The chip's own VCEK (DER).
    pub fn vcek_der(&self) -> anyhow::Result<Vec<u8>> {
        Ok(self.vcek.certificate.to_der()?)
    }

    /// MSG_REPORT_REQ: a report for `report_data` at `vmpl`, signed by the VCEK.
    pub fn report(&self, report_data: &[u8; 64], vmpl: u32) -> anyhow::Result<Vec<u8>> {
        let launch = &self.launch;
        let tcb = TcbVersion::new(
            None,
            launch.tcb.bootloader,
            launch.tcb.tee,
            launch.tcb.snp,
            launch.tcb.microcode,
        );
        let mut report_id = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut report_id);
        let smt_enabled = 1;
        let report = AttestationReport {
            version: 3,
            guest_svn: 0,
            policy: GuestPolicy::from(launch.policy),
            vmpl,
            sig_algo: ECDSA_P384_SHA384,
            current_tcb: tcb,
            plat_info: PlatformInfo::from(smt_enabled),
            // SIGNING_KEY 0: the VCEK; chip ID not masked.
            key_info: KeyInfo::from(0),
            report_data: *report_data,
            measurement: launch.measurement,
            host_data: launch.host_data,
            report_id,
            report_id_ma: [0xff; 32],
            reported_tcb: tcb,
            cpuid_fam_id: Some(GENOA.0),
            cpuid_mod_id: Some(GENOA.1),
            cpuid_step: Some(GENOA.2),
            chip_id: launch.chip_id,
            committed_tcb: tcb,
            current: Version::new(1, 55, 24),
            committed: Version::new(1, 55, 24),
            launch_tcb: tcb,
            ..Default::default()
        };
        let mut bytes = report.to_bytes().context("encoding the report")?.to_vec();
        anyhow::ensure!(
            bytes.len() == REPORT_LEN,
            "the report is {} bytes",
            bytes.len()
        );
        let signature: p384::ecdsa::Signature = self.vcek.key.sign(&bytes[..SIGNED_LEN]);
        let (r, s) = signature.split_bytes();
        // R and S little-endian in 72-byte fields (48 significant bytes).
        for (at, component) in [(SIGNED_LEN, r), (SIGNED_LEN + 72, s)] {
            let mut little_endian = component.to_vec();
            little_endian.reverse();
            bytes[at..at + 48].copy_from_slice(&little_endian);
        }
        Ok(bytes)
    }
}

impl crate::configfs::Evidence for Firmware {
    fn provider(&self) -> &'static str {
        "sev_guest"
    }

    fn privlevel_floor(&self) -> u32 {
        0
    }

    fn has_auxblob(&self) -> bool {
        true
    }

    fn report(&self, report_data: &[u8; 64], privlevel: u32) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let report = match &self.replay {
            Some(recorded) => recorded.clone(),
            None => Firmware::report(self, report_data, privlevel)?,
        };
        Ok((report, self.cert_table.clone()))
    }
}

/// The GUIDs of the certificate table (AMD GHCB specification), by name.
const GUIDS: [(&str, &str); 4] = [
    ("ARK", "c0b406a4-a803-4952-9743-3fb6014cd0ae"),
    ("ASK", "4ab7b379-bbac-4fe4-a02f-05aef327c782"),
    ("VCEK", "63da758d-e664-4564-adc5-f4b93be8accd"),
    ("VLEK", "a8074bc2-a25a-483e-aae6-39c045a0b8a1"),
];

/// A GUID in its in-memory (mixed-endian) form: the first three fields little-endian.
fn guid_bytes(text: &str) -> anyhow::Result<[u8; 16]> {
    let hex_digits: String = text.chars().filter(|c| *c != '-').collect();
    let mut bytes: [u8; 16] = hex::decode(hex_digits)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("{text}: not 16 bytes"))?;
    bytes[0..4].reverse();
    bytes[4..6].reverse();
    bytes[6..8].reverse();
    Ok(bytes)
}

/// The table: `(GUID, offset, length)` entries ended by an all-zero one, then the
/// certificates; offsets count from the table's start.
fn cert_table(entries: &[(&str, Vec<u8>)]) -> anyhow::Result<Vec<u8>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let header_len = (entries.len() + 1) * 24;
    let mut header = Vec::with_capacity(header_len);
    let mut body = Vec::new();
    for (name, der) in entries {
        let guid = GUIDS
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, guid)| guid_bytes(guid))
            .transpose()?
            .ok_or_else(|| anyhow::anyhow!("no GUID for {name}"))?;
        header.extend_from_slice(&guid);
        header.extend_from_slice(&u32::try_from(header_len + body.len())?.to_le_bytes());
        header.extend_from_slice(&u32::try_from(der.len())?.to_le_bytes());
        body.extend_from_slice(der);
    }
    header.extend_from_slice(&[0; 24]);
    header.extend_from_slice(&body);
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_table_reads_back_with_keeps_parser() {
        let table = cert_table(&[("VCEK", vec![1, 2, 3]), ("ASK", vec![4; 10])]).unwrap();
        let parsed = keep_attest::snp::certtable::parse(&table).unwrap();
        let kinds: Vec<(&str, usize)> = parsed
            .iter()
            .map(|cert| (cert.kind.as_str(), cert.der.len()))
            .collect();
        assert_eq!(kinds, [("VCEK", 3), ("ASK", 10)]);
        assert!(cert_table(&[]).unwrap().is_empty());
    }
}
