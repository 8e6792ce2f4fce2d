//! The confidential-computing event log of a TD (ACPI CCEL table; TCG PC Client "crypto
//! agile" format): what was measured into each RTMR, so the RTMRs of a quote can be
//! explained and replayed.
//!
//! Written here rather than taken from `eventlog-rs` because that crate slices its input
//! without bounds checks and panics on a truncated or hostile log; Keep reads logs that come
//! from the host.

use sha2::{Digest as _, Sha384};

use crate::Error;

/// TCG algorithm ID of SHA-384, the only digest that extends TDX RTMRs.
const TPM_ALG_SHA384: u16 = 0x000C;
/// EV_NO_ACTION: the log's header event ("Spec ID Event03") and other non-measurements.
const EV_NO_ACTION: u32 = 0x3;

/// One measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The log's register index: 0 is MRTD, 1–4 are RTMR0–RTMR3.
    pub index: u32,
    /// The TCG event type.
    pub event_type: u32,
    /// Digests by TCG algorithm ID.
    pub digests: Vec<(u16, Vec<u8>)>,
    /// The event data.
    pub data: Vec<u8>,
}

impl Event {
    /// The TCG name of the event type, e.g. `EV_SEPARATOR`.
    pub fn type_name(&self) -> String {
        let name = match self.event_type {
            0x0000_0001 => "EV_POST_CODE",
            0x0000_0003 => "EV_NO_ACTION",
            0x0000_0004 => "EV_SEPARATOR",
            0x0000_0005 => "EV_ACTION",
            0x0000_0006 => "EV_EVENT_TAG",
            0x0000_0007 => "EV_S_CRTM_CONTENTS",
            0x0000_0008 => "EV_S_CRTM_VERSION",
            0x0000_0009 => "EV_CPU_MICROCODE",
            0x0000_000A => "EV_PLATFORM_CONFIG_FLAGS",
            0x0000_000B => "EV_TABLE_OF_DEVICES",
            0x0000_000C => "EV_COMPACT_HASH",
            0x0000_000D => "EV_IPL",
            0x0000_000E => "EV_IPL_PARTITION_DATA",
            0x0000_000F => "EV_NONHOST_CODE",
            0x0000_0010 => "EV_NONHOST_CONFIG",
            0x0000_0011 => "EV_NONHOST_INFO",
            0x0000_0012 => "EV_OMIT_BOOT_DEVICE_EVENTS",
            0x8000_0001 => "EV_EFI_VARIABLE_DRIVER_CONFIG",
            0x8000_0002 => "EV_EFI_VARIABLE_BOOT",
            0x8000_0003 => "EV_EFI_BOOT_SERVICES_APPLICATION",
            0x8000_0004 => "EV_EFI_BOOT_SERVICES_DRIVER",
            0x8000_0005 => "EV_EFI_RUNTIME_SERVICES_DRIVER",
            0x8000_0006 => "EV_EFI_GPT_EVENT",
            0x8000_0007 => "EV_EFI_ACTION",
            0x8000_0008 => "EV_EFI_PLATFORM_FIRMWARE_BLOB",
            0x8000_0009 => "EV_EFI_HANDOFF_TABLES",
            0x8000_000A => "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
            0x8000_000B => "EV_EFI_HANDOFF_TABLES2",
            0x8000_00E0 => "EV_EFI_VARIABLE_AUTHORITY",
            other => return format!("EV_UNKNOWN_{other:#x}"),
        };
        name.to_owned()
    }

    /// The SHA-384 digest, if the event has one.
    pub fn sha384(&self) -> Option<&[u8]> {
        self.digests
            .iter()
            .find(|(alg, _)| *alg == TPM_ALG_SHA384)
            .map(|(_, digest)| digest.as_slice())
    }

    /// Whether the SHA-384 digest is the hash of the event data (true for events that
    /// measure their own data, such as separators; false where the data describes what
    /// was measured).
    pub fn digest_matches_data(&self) -> bool {
        self.sha384() == Some(Sha384::digest(&self.data).as_slice())
    }
}

/// A reader that fails instead of panicking when the log ends early.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], Error> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                Error::malformed(
                    "event log",
                    format!("truncated in {what} at byte {}", self.at),
                )
            })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u16(&mut self, what: &str) -> Result<u16, Error> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, Error> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Parses a CCEL log. It ends at its last event: the table's remaining space is filled with
/// 0xFF or zeros.
pub fn parse(bytes: &[u8]) -> Result<Vec<Event>, Error> {
    let mut reader = Reader { bytes, at: 0 };
    // The header: a SHA-1-format event whose data is the "Spec ID Event03" structure listing
    // the digest sizes of the log.
    reader.take(8, "the header event")?;
    reader.take(20, "the header digest")?;
    let header_len = reader.u32("the header size")? as usize;
    let header = reader.take(header_len, "the header")?;
    if !header.starts_with(b"Spec ID Event03\0") || header.len() < 28 {
        return Err(Error::malformed(
            "event log",
            "no \"Spec ID Event03\" header",
        ));
    }
    let mut spec = Reader {
        bytes: header,
        at: 24,
    };
    let algorithms = spec.u32("the algorithm count")?;
    let mut sizes = Vec::new();
    for _ in 0..algorithms.min(16) {
        sizes.push((spec.u16("an algorithm ID")?, spec.u16("a digest size")?));
    }
    let mut events = Vec::new();
    while reader.at + 8 <= bytes.len() {
        let marker = &bytes[reader.at..reader.at + 8];
        if marker.iter().all(|&b| b == 0xFF) || marker.iter().all(|&b| b == 0) {
            break;
        }
        let index = reader.u32("an event's register index")?;
        let event_type = reader.u32("an event's type")?;
        let count = reader.u32("an event's digest count")?;
        let mut digests = Vec::new();
        for _ in 0..count {
            let algorithm = reader.u16("a digest's algorithm")?;
            let size = sizes
                .iter()
                .find(|(id, _)| *id == algorithm)
                .map(|(_, size)| *size as usize)
                .ok_or_else(|| {
                    Error::malformed(
                        "event log",
                        format!("digest algorithm {algorithm:#x} is not in the log's header"),
                    )
                })?;
            digests.push((algorithm, reader.take(size, "a digest")?.to_vec()));
        }
        let data_len = reader.u32("an event's data size")? as usize;
        let data = reader.take(data_len, "an event's data")?.to_vec();
        if event_type != EV_NO_ACTION {
            events.push(Event {
                index,
                event_type,
                digests,
                data,
            });
        }
    }
    Ok(events)
}

/// RTMR0–RTMR3 as the events extend them: each starts at zero, and each event's SHA-384
/// digest extends `RTMR = SHA-384(RTMR ‖ digest)`.
pub fn replay(events: &[Event]) -> [[u8; 48]; 4] {
    let mut rtmrs = [[0u8; 48]; 4];
    for event in events {
        let (Some(slot), Some(digest)) = (
            (event.index as usize).checked_sub(1).filter(|&i| i < 4),
            event.sha384(),
        ) else {
            continue;
        };
        let mut hasher = Sha384::new();
        hasher.update(rtmrs[slot]);
        hasher.update(digest);
        rtmrs[slot].copy_from_slice(&hasher.finalize());
    }
    rtmrs
}
