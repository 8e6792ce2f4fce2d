//! The little-endian encoding of commit contents: integers, and byte strings with a
//! 32-bit length. Reading checks every length against what is left.

/// Appends encoded values to a buffer.
#[derive(Default)]
pub(crate) struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u8(&mut self, value: u8) {
        self.0.push(value);
    }

    pub fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    pub fn i64(&mut self, value: i64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    pub fn bytes(&mut self, value: &[u8]) {
        // Names are at most 255 bytes and a commit's parts far below 4 GiB.
        self.0
            .extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_le_bytes());
        self.0.extend_from_slice(value);
    }

    pub fn array(&mut self, value: &[u8]) {
        self.0.extend_from_slice(value);
    }
}

/// Reads encoded values; every read fails cleanly past the end.
pub(crate) struct Reader<'a>(&'a [u8]);

/// The input ended before a value did.
#[derive(Debug)]
pub(crate) struct Truncated;

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        if self.0.len() < n {
            return Err(Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(self.take(1)?[0])
    }

    pub fn u64(&mut self) -> Result<u64, Truncated> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, Truncated> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], Truncated> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        self.take(len)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_and_a_short_input_is_refused() {
        let mut writer = Writer::default();
        writer.u8(7);
        writer.u64(u64::MAX - 1);
        writer.i64(-5);
        writer.bytes(b"name");
        writer.array(&[9; 12]);
        let mut reader = Reader::new(&writer.0);
        assert_eq!(reader.u8().unwrap(), 7);
        assert_eq!(reader.u64().unwrap(), u64::MAX - 1);
        assert_eq!(reader.i64().unwrap(), -5);
        assert_eq!(reader.bytes().unwrap(), b"name");
        assert_eq!(reader.array::<12>().unwrap(), [9; 12]);
        assert!(reader.u8().is_err());
        // A length that claims more than there is.
        let mut reader = Reader::new(&[255, 255, 255, 255, 1]);
        assert!(reader.bytes().is_err());
    }
}
