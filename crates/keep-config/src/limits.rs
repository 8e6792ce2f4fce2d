//! `[limits]` and the value types shared with the command line: sizes, durations, fuel.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// Resource limits of a Keep. Every limit is off unless given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest linear memory the guest may grow to, e.g. `"256MiB"`.
    pub memory: Option<MemorySize>,
    /// Wall-clock time after which the guest is stopped, e.g. `"30s"`.
    pub timeout: Option<Timeout>,
    /// Fuel (roughly, Wasm instructions) the guest may consume.
    pub fuel: Option<Fuel>,
    /// Most elements one of the guest's tables may grow to (default 1,000,000).
    pub table_elements: Option<u64>,
    /// Most descriptors the Keep's process may have open (the guest's files and sockets
    /// and the runtime's own); default [`DEFAULT_OPEN_FILES`].
    pub open_files: Option<u64>,
    /// Most bytes the guest may write to the host's stdout and stderr together, e.g.
    /// `"100MiB"`; the write that crosses it is cut and the guest stopped.
    pub output: Option<MemorySize>,
    /// Most bytes per second the guest may write to the host's stdout and stderr together,
    /// e.g. `"1MiB"`; a faster guest waits in its writes.
    pub output_rate: Option<MemorySize>,
}

/// The default of `[limits] open_files`.
pub const DEFAULT_OPEN_FILES: u64 = 1024;

/// A number of bytes written as `256MiB`, `1.5GB`, `65536` and the like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySize(pub u64);

impl FromStr for MemorySize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bytes = text
            .trim()
            .parse::<bytesize::ByteSize>()
            .map_err(|e| {
                format!("invalid size {text:?} ({e}); write it like \"256MiB\" or \"1GiB\"")
            })?
            .as_u64();
        if bytes == 0 {
            return Err(format!("size {text:?} must be larger than zero"));
        }
        Ok(Self(bytes))
    }
}

/// Exact: `32 MiB` when the size is a whole number of units, else `33619968 bytes`.
impl fmt::Display for MemorySize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (1 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ];
        for (unit, name) in UNITS {
            if self.0 >= unit && self.0.is_multiple_of(unit) {
                return write!(f, "{} {name}", self.0 / unit);
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

/// A wall-clock duration written as `30s`, `5m`, `1h 30m`, `250ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Duration);

impl FromStr for Timeout {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let duration = humantime::parse_duration(text.trim()).map_err(|e| {
            format!("invalid duration {text:?} ({e}); write it like \"30s\", \"5m\" or \"250ms\"")
        })?;
        if duration.is_zero() {
            return Err(format!("duration {text:?} must be longer than zero"));
        }
        Ok(Self(duration))
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// An amount of fuel: a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fuel(pub u64);

impl FromStr for Fuel {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let fuel = text
            .trim()
            .replace('_', "")
            .parse::<u64>()
            .map_err(|_| format!("invalid fuel {text:?}: expected a positive integer"))?;
        Self::new(fuel)
    }
}

impl Fuel {
    fn new(fuel: u64) -> Result<Self, String> {
        if fuel == 0 {
            Err("fuel must be larger than zero".into())
        } else {
            Ok(Self(fuel))
        }
    }
}

/// A TOML value that is either a string or an integer (sizes and fuel accept both).
#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrInteger {
    Text(String),
    Integer(i64),
}

impl<'de> Deserialize<'de> for MemorySize {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        match TextOrInteger::deserialize(de)? {
            TextOrInteger::Text(text) => text.parse().map_err(serde::de::Error::custom),
            TextOrInteger::Integer(n) if n > 0 => Ok(Self(n.unsigned_abs())),
            TextOrInteger::Integer(n) => Err(serde::de::Error::custom(format!(
                "size {n} must be larger than zero"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Fuel {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        match TextOrInteger::deserialize(de)? {
            TextOrInteger::Text(text) => text.parse().map_err(serde::de::Error::custom),
            TextOrInteger::Integer(n) => {
                let n = u64::try_from(n)
                    .map_err(|_| serde::de::Error::custom("fuel must be larger than zero"))?;
                Self::new(n).map_err(serde::de::Error::custom)
            }
        }
    }
}

crate::deserialize_from_str!(Timeout);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_iec_and_si_units() {
        assert_eq!("256MiB".parse::<MemorySize>(), Ok(MemorySize(256 << 20)));
        assert_eq!("1 GiB".parse::<MemorySize>(), Ok(MemorySize(1 << 30)));
        assert_eq!("65536".parse::<MemorySize>(), Ok(MemorySize(65536)));
        assert!("0".parse::<MemorySize>().is_err());
        assert!(
            "lots"
                .parse::<MemorySize>()
                .unwrap_err()
                .contains("\"lots\"")
        );
        assert_eq!(MemorySize(32 << 20).to_string(), "32 MiB");
        assert_eq!(MemorySize((32 << 20) + 65536).to_string(), "32832 KiB");
        assert_eq!(MemorySize(1000).to_string(), "1000 bytes");
    }

    #[test]
    fn durations_are_human() {
        assert_eq!(
            "30s".parse::<Timeout>(),
            Ok(Timeout(Duration::from_secs(30)))
        );
        assert_eq!(
            "250ms".parse::<Timeout>(),
            Ok(Timeout(Duration::from_millis(250)))
        );
        assert!("0s".parse::<Timeout>().is_err());
        assert!("soon".parse::<Timeout>().is_err());
    }

    #[test]
    fn fuel_is_a_positive_integer() {
        assert_eq!("1_000".parse::<Fuel>(), Ok(Fuel(1000)));
        assert!("0".parse::<Fuel>().is_err());
        assert!("-5".parse::<Fuel>().is_err());
    }
}
