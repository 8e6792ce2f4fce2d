//! `steward = "https://HOST[:PORT][/PATH]"`: where a Keep gets its certificate. Parsed here,
//! once, so that a malformed URL is refused with the file and line like every other error,
//! and the client gets host, port and path already split.

use std::fmt;
use std::str::FromStr;

/// The port of `https://` when the URL names none.
const HTTPS_PORT: u16 = 443;

/// A Steward's URL: HTTPS only (the Keep's evidence and certificate never travel in clear).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StewardUrl {
    text: String,
    host: String,
    port: u16,
    base_path: String,
}

impl StewardUrl {
    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host: a DNS name or an IP address (IPv6 without its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (443 unless the URL names one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path under which the Steward's endpoints live, without a trailing `/` (empty
    /// for the root).
    pub fn base_path(&self) -> &str {
        &self.base_path
    }
}

impl fmt::Display for StewardUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for StewardUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        let invalid = |why: &str| {
            format!("invalid steward URL {url:?}: {why} (expected https://HOST[:PORT][/PATH])")
        };
        let Some(rest) = url.strip_prefix("https://") else {
            return Err(invalid("a Steward is reached over https:// only"));
        };
        if rest.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(invalid("it contains white space"));
        }
        if rest.contains(['?', '#']) {
            return Err(invalid("a query or fragment has no meaning here"));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err(invalid("user information has no meaning here"));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid("an IPv6 address lacks its closing `]`"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(invalid(&format!("`{host}` is not an IPv6 address")));
            }
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(invalid("unexpected text after `]`")),
                },
            }
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let is_name = |h: &str| {
            h.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            })
        };
        if !authority.starts_with('[') && !is_name(host) {
            return Err(invalid(&format!(
                "`{host}` is not a host name or an IPv4 address"
            )));
        }
        let port = match port {
            None => HTTPS_PORT,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => {
                    return Err(invalid(&format!("`{port}` is not a port (1 to 65535)")));
                }
            },
        };
        Ok(Self {
            text: url.to_owned(),
            host: host.to_owned(),
            port,
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }
}

crate::deserialize_from_str!(StewardUrl);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_path() {
        let url: StewardUrl = "https://steward.example:8443/base/".parse().unwrap();
        assert_eq!(
            (url.host(), url.port(), url.base_path()),
            ("steward.example", 8443, "/base")
        );
        let url: StewardUrl = "https://127.0.0.1".parse().unwrap();
        assert_eq!(
            (url.host(), url.port(), url.base_path()),
            ("127.0.0.1", 443, "")
        );
        let url: StewardUrl = "https://[::1]:9/".parse().unwrap();
        assert_eq!((url.host(), url.port(), url.base_path()), ("::1", 9, ""));
        assert_eq!(url.to_string(), "https://[::1]:9/");
    }

    #[test]
    fn malformed_urls_are_refused_with_the_reason() {
        for (bad, why) in [
            ("http://h", "https:// only"),
            ("https://", "no host"),
            ("https://h:x", "`x` is not a port"),
            ("https://h:", "`` is not a port"),
            ("https://h:0", "`0` is not a port"),
            ("https://h:70000", "`70000` is not a port"),
            ("https://[::1", "closing `]`"),
            ("https://[nope]:1", "not an IPv6 address"),
            ("https://[::1]x", "after `]`"),
            ("https://a b", "white space"),
            ("https://h/?q", "query"),
            ("https://u@h", "user information"),
            ("https://h..x", "not a host name"),
            ("https://h:1:2", "not a port"),
        ] {
            let err = bad.parse::<StewardUrl>().expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
