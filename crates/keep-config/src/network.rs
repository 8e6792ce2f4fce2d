//! `[network]`: what a WASI 0.2 component may do with `wasi:sockets`. Default deny.
//!
//! Preview-1 programs get exactly the sockets of `[[files]]`; this table is for components,
//! which open their own sockets.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::Deserialize;

/// The `[network]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPolicy {
    /// Addresses TCP streams may connect to (and UDP datagrams may be sent to, with `udp`).
    #[serde(default)]
    pub connect: Vec<AddressRule>,
    /// Addresses TCP listeners (and, with `udp`, UDP sockets) may bind.
    #[serde(default)]
    pub listen: Vec<AddressRule>,
    /// Whether UDP sockets are allowed at all (still subject to `connect` and `listen`).
    #[serde(default)]
    pub udp: bool,
    /// Whether host names may be resolved (`wasi:sockets/ip-name-lookup`).
    #[serde(default)]
    pub dns: bool,
}

impl NetworkPolicy {
    /// Whether the policy allows anything at all.
    pub fn is_deny_all(&self) -> bool {
        self.connect.is_empty() && self.listen.is_empty() && !self.dns
    }
}

/// `HOST:PORT` where HOST is an IP address, a CIDR block, a host name (resolved when the
/// Keep starts) or `*`, and PORT is a number or `*`. IPv6 addresses go in brackets:
/// `[::1]:8080`, `[fd00::]/8:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRule {
    /// Which addresses.
    pub host: HostPattern,
    /// Which port; `None` is any.
    pub port: Option<u16>,
}

/// The address part of an [`AddressRule`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: every address.
    Any,
    /// An address or a CIDR block.
    Net(IpNet),
    /// A host name, resolved when the Keep starts.
    Name(String),
}

impl AddressRule {
    /// Whether `addr` matches, given the addresses `HostPattern::Name`s resolved to.
    pub fn matches(&self, addr: SocketAddr, resolved: &[IpAddr]) -> bool {
        if self.port.is_some_and(|port| port != addr.port()) {
            return false;
        }
        let ip = canonical(addr.ip());
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Net(net) => net.contains(&ip),
            HostPattern::Name(_) => resolved.iter().any(|r| canonical(*r) == ip),
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are their IPv4 address, so a rule for
/// `127.0.0.1` also covers a dual-stack socket reaching it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for AddressRule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} has no port: write HOST:PORT (PORT may be `*`)"))?;
        let port = match port {
            "*" => None,
            p => Some(p.parse::<u16>().map_err(|_| {
                format!("{text:?}: port {p:?} is neither a number from 0 to 65535 nor `*`")
            })?),
        };
        // `[v6]` and `[v6]/len`: strip the brackets around the address.
        let unbracketed = host
            .strip_prefix('[')
            .and_then(|rest| rest.split_once(']'))
            .map(|(addr, suffix)| format!("{addr}{suffix}"));
        let host = unbracketed.as_deref().unwrap_or(host);
        let pattern = if host == "*" {
            HostPattern::Any
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            HostPattern::Net(IpNet::from(ip))
        } else if let Ok(net) = host.parse::<IpNet>() {
            HostPattern::Net(net.trunc())
        } else if !host.is_empty()
            && !host.contains(':')
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        {
            HostPattern::Name(host.to_owned())
        } else {
            return Err(format!(
                "{text:?}: {host:?} is not an IP address, CIDR block, host name or `*` \
                 (IPv6 addresses go in brackets: [::1]:80)"
            ));
        };
        Ok(Self {
            host: pattern,
            port,
        })
    }
}

impl fmt::Display for AddressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostPattern::Any => write!(f, "*")?,
            HostPattern::Net(IpNet::V6(net)) if net.prefix_len() == 128 => {
                write!(f, "[{}]", net.addr())?
            }
            HostPattern::Net(IpNet::V6(net)) => write!(f, "[{}]/{}", net.addr(), net.prefix_len())?,
            HostPattern::Net(IpNet::V4(net)) if net.prefix_len() == 32 => {
                write!(f, "{}", net.addr())?
            }
            HostPattern::Net(net) => write!(f, "{net}")?,
            HostPattern::Name(name) => write!(f, "{name}")?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => write!(f, ":*"),
        }
    }
}

crate::deserialize_from_str!(AddressRule);

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> AddressRule {
        text.parse().unwrap()
    }

    #[test]
    fn rules_parse_and_print_back() {
        for text in [
            "127.0.0.1:8080",
            "10.0.0.0/8:443",
            "[::1]:80",
            "[fd00::]/8:*",
            "*:443",
            "example.com:*",
        ] {
            assert_eq!(rule(text).to_string(), text);
        }
        for bad in [
            "127.0.0.1",
            "a b:80",
            "1.2.3.4:http",
            "1.2.3.4:70000",
            "::1:80x",
        ] {
            assert!(bad.parse::<AddressRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rules_match_addresses() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(rule("10.0.0.0/8:443").matches(addr("10.1.2.3:443"), &[]));
        assert!(!rule("10.0.0.0/8:443").matches(addr("10.1.2.3:80"), &[]));
        assert!(!rule("10.0.0.0/8:*").matches(addr("11.1.2.3:80"), &[]));
        assert!(rule("127.0.0.1:*").matches(addr("[::ffff:127.0.0.1]:9"), &[]));
        let resolved = ["192.0.2.7".parse().unwrap()];
        assert!(rule("example.com:443").matches(addr("192.0.2.7:443"), &resolved));
        assert!(!rule("example.com:443").matches(addr("192.0.2.8:443"), &resolved));
    }
}
