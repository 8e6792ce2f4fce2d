//! The certificate table an SEV-SNP host returns with an extended report (configfs-tsm's
//! `auxblob`, the `certs_buf` of `SNP_GET_EXT_REPORT`): entries of a 16-byte GUID, a
//! little-endian u32 offset and a u32 length (offsets from the start of the table), ended by
//! an all-zero entry; the certificates (DER) follow.
//!
//! virtee's `sev` crate parses the table through raw pointers (`unsafe`, and its offsets are
//! trusted); the table comes from the host, which a confidential VM does not trust, so it is
//! parsed here with every offset and length checked.

/// The GUIDs of the table (AMD's GHCB specification), as they appear in memory.
const KNOWN: [([u8; 16], &str); 5] = [
    (
        guid(
            0x63da758d,
            0xe664,
            0x4564,
            [0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd],
        ),
        "VCEK",
    ),
    (
        guid(
            0xa8074bc2,
            0xa25a,
            0x483e,
            [0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1],
        ),
        "VLEK",
    ),
    (
        guid(
            0x4ab7b379,
            0xbbac,
            0x4fe4,
            [0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82],
        ),
        "ASK",
    ),
    (
        guid(
            0xc0b406a4,
            0xa803,
            0x4952,
            [0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae],
        ),
        "ARK",
    ),
    (guid(0x00000000, 0x0000, 0x0000, [0; 8]), ""),
];

const ENTRY_LEN: usize = 24;

/// A GUID in its mixed-endian memory layout.
const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// A certificate from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCertificate {
    /// `VCEK`, `VLEK`, `ASK`, `ARK`, or the GUID of an entry Keep does not know.
    pub kind: String,
    /// The certificate (DER).
    pub der: Vec<u8>,
}

/// Why a table cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertTableError {
    /// The table ends before its terminating all-zero entry.
    #[error("the certificate table has no terminating entry")]
    Unterminated,
    /// An entry points outside the table.
    #[error(
        "certificate table entry {index} ({kind}) points outside the table ({offset} + {length} > {size})"
    )]
    OutOfBounds {
        /// The entry's position.
        index: usize,
        /// What it says it is.
        kind: String,
        /// Its offset.
        offset: u32,
        /// Its length.
        length: u32,
        /// The table's size.
        size: usize,
    },
}

/// The certificates of `table`; an empty table (the host supplied none) gives none.
pub fn parse(table: &[u8]) -> Result<Vec<TableCertificate>, CertTableError> {
    if table.is_empty() {
        return Ok(Vec::new());
    }
    let mut certificates = Vec::new();
    for (index, entry) in table.chunks(ENTRY_LEN).enumerate() {
        let entry: &[u8; ENTRY_LEN] = entry.try_into().map_err(|_| CertTableError::Unterminated)?;
        if entry.iter().all(|b| *b == 0) {
            return Ok(certificates);
        }
        let id: [u8; 16] = entry[..16]
            .try_into()
            .map_err(|_| CertTableError::Unterminated)?;
        let word = |at: usize| {
            u32::from_le_bytes([entry[at], entry[at + 1], entry[at + 2], entry[at + 3]])
        };
        let (offset, length) = (word(16), word(20));
        let kind = KNOWN
            .iter()
            .find(|(known, name)| *known == id && !name.is_empty())
            .map_or_else(|| hex::encode(id), |(_, name)| (*name).to_owned());
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let der = start
            .checked_add(usize::try_from(length).unwrap_or(usize::MAX))
            .and_then(|end| table.get(start..end))
            .ok_or_else(|| CertTableError::OutOfBounds {
                index,
                kind: kind.clone(),
                offset,
                length,
                size: table.len(),
            })?;
        certificates.push(TableCertificate {
            kind,
            der: der.to_vec(),
        });
    }
    Err(CertTableError::Unterminated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[([u8; 16], &[u8])]) -> Vec<u8> {
        let header = (entries.len() + 1) * ENTRY_LEN;
        let mut head = Vec::new();
        let mut body = Vec::new();
        for (id, der) in entries {
            head.extend_from_slice(id);
            head.extend_from_slice(&((header + body.len()) as u32).to_le_bytes());
            head.extend_from_slice(&(der.len() as u32).to_le_bytes());
            body.extend_from_slice(der);
        }
        head.extend_from_slice(&[0; ENTRY_LEN]);
        head.extend_from_slice(&body);
        head
    }

    #[test]
    fn known_entries_are_named_and_cut_out() {
        let bytes = table(&[
            (KNOWN[0].0, b"vcek-der"),
            (KNOWN[2].0, b"ask"),
            ([7; 16], b"x"),
        ]);
        let certs = parse(&bytes).unwrap();
        let kinds: Vec<_> = certs.iter().map(|c| c.kind.as_str()).collect();
        assert_eq!(kinds, ["VCEK", "ASK", "07070707070707070707070707070707"]);
        assert_eq!(certs[0].der, b"vcek-der");
        assert_eq!(certs[1].der, b"ask");
        assert_eq!(parse(&[]).unwrap(), []);
    }

    #[test]
    fn a_hostile_table_is_refused_not_trusted() {
        let mut bytes = table(&[(KNOWN[0].0, b"vcek-der")]);
        bytes[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse(&bytes),
            Err(CertTableError::OutOfBounds { index: 0, .. })
        ));
        let mut bytes = table(&[(KNOWN[0].0, b"vcek-der")]);
        bytes[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&bytes).is_err(), "offset past the end");
        let bytes = table(&[(KNOWN[0].0, b"vcek-der")]);
        assert!(parse(&bytes[..30]).is_err(), "truncated");
        let mut unterminated = KNOWN[0].0.to_vec();
        unterminated.extend_from_slice(&0u32.to_le_bytes());
        unterminated.extend_from_slice(&4u32.to_le_bytes());
        assert_eq!(parse(&unterminated), Err(CertTableError::Unterminated));
        assert_eq!(
            parse(&[1; 48]),
            Err(CertTableError::OutOfBounds {
                index: 0,
                kind: "01010101010101010101010101010101".into(),
                offset: 0x0101_0101,
                length: 0x0101_0101,
                size: 48,
            })
        );
    }
}
