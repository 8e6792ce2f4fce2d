//! `[network]` for components: wasmtime-wasi's `wasi:sockets` gated by Keep's allow lists.
//! Default deny; every refusal is logged on the host and answered with the standard
//! `access-denied` error code. Addresses are judged by wasmtime-wasi's socket address check;
//! when a protocol is not allowed at all, socket creation itself is refused by Keep's own
//! `create-*-socket` (wasmtime-wasi's refusal there has no hook to log from).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::sync::Arc;

use keep_config::{AddressRule, HostPattern, NetworkPolicy};
use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddressFamily};
use wasmtime_wasi::p2::bindings::sockets::tcp_create_socket;
use wasmtime_wasi::p2::bindings::sync::sockets::udp_create_socket;
use wasmtime_wasi::p2::{SocketError, SocketResult, TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::SocketAddrUse;

/// A policy with its host names resolved (once, at start-up).
#[derive(Debug)]
pub struct Policy {
    connect: Vec<(AddressRule, Vec<IpAddr>)>,
    listen: Vec<(AddressRule, Vec<IpAddr>)>,
    udp: bool,
}

impl Policy {
    /// Resolves the host names of `policy`. A name that does not resolve matches nothing
    /// (and is logged).
    pub fn new(policy: &NetworkPolicy) -> Self {
        let resolve = |rules: &[AddressRule]| {
            rules
                .iter()
                .map(|rule| {
                    let addrs = match &rule.host {
                        HostPattern::Name(name) => match (name.as_str(), 0).to_socket_addrs() {
                            Ok(addrs) => addrs.map(|a| a.ip()).collect(),
                            Err(e) => {
                                tracing::warn!(
                                    "[network] rule `{rule}`: cannot resolve `{name}`: {e}"
                                );
                                Vec::new()
                            }
                        },
                        _ => Vec::new(),
                    };
                    (rule.clone(), addrs)
                })
                .collect()
        };
        Self {
            connect: resolve(&policy.connect),
            listen: resolve(&policy.listen),
            udp: policy.udp,
        }
    }

    /// Whether `use_` of `addr` is allowed.
    pub fn allows(&self, addr: SocketAddr, use_: SocketAddrUse) -> bool {
        let matches = |rules: &[(AddressRule, Vec<IpAddr>)]| {
            rules
                .iter()
                .any(|(rule, resolved)| rule.matches(addr, resolved))
        };
        // The implicit bind before a connect or send uses the wildcard address and port 0.
        let implicit = addr.ip().is_unspecified() && addr.port() == 0;
        match use_ {
            SocketAddrUse::TcpBind => {
                matches(&self.listen) || (implicit && !self.connect.is_empty())
            }
            SocketAddrUse::TcpListen => matches(&self.listen),
            SocketAddrUse::TcpAccept => !self.listen.is_empty(),
            SocketAddrUse::TcpConnect => matches(&self.connect),
            SocketAddrUse::UdpBind => {
                self.udp && (matches(&self.listen) || (implicit && !self.connect.is_empty()))
            }
            SocketAddrUse::UdpSend => self.udp && matches(&self.connect),
            // Datagrams arrive only on a socket that was allowed to bind.
            SocketAddrUse::UdpReceive => self.udp,
        }
    }
}

/// Configures `wasi:sockets` of a component's context from `policy`.
pub fn apply(wasi: &mut WasiCtxBuilder, policy: &NetworkPolicy) {
    if policy.is_deny_all() {
        return;
    }
    let checked = Arc::new(Policy::new(policy));
    wasi.allow_tcp(!policy.connect.is_empty() || !policy.listen.is_empty());
    wasi.allow_udp(policy.udp);
    wasi.allow_ip_name_lookup(policy.dns);
    wasi.socket_addr_check(move |addr, use_| {
        let allowed = checked.allows(addr, use_);
        if !allowed {
            tracing::warn!(
                "[network] denied {use_:?} {addr}: not allowed by the [network] table of Keep.toml"
            );
        }
        Box::pin(async move { allowed })
    });
}

/// Replaces `wasi:sockets` socket creation in `linker` (which already has wasmtime-wasi's)
/// by a logged refusal for each protocol `policy` does not allow at all.
pub fn refuse_socket_creation<T: 'static>(
    linker: &mut Linker<T>,
    policy: &NetworkPolicy,
) -> anyhow::Result<()> {
    linker.allow_shadowing(true);
    if policy.connect.is_empty() && policy.listen.is_empty() {
        tcp_create_socket::add_to_linker::<T, Refusal>(linker, |_| Refusal)?;
    }
    if !policy.udp || (policy.connect.is_empty() && policy.listen.is_empty()) {
        udp_create_socket::add_to_linker::<T, Refusal>(linker, |_| Refusal)?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// The `create-*-socket` functions of a protocol the policy does not allow.
struct Refusal;

impl HasData for Refusal {
    type Data<'a> = Refusal;
}

// The creation interfaces `use` types of `wasi:sockets/network`, so their host traits
// require its host trait. Only `convert_error_code` is reached (to return the refusal);
// the network functions themselves stay wasmtime-wasi's.
impl network::Host for Refusal {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        error.downcast()
    }

    fn network_error_code(
        &mut self,
        _: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        Ok(None)
    }
}

impl network::HostNetwork for Refusal {
    fn drop(&mut self, _: Resource<network::Network>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl tcp_create_socket::Host for Refusal {
    fn create_tcp_socket(&mut self, _: IpAddressFamily) -> SocketResult<Resource<TcpSocket>> {
        tracing::warn!(
            "[network] denied creating a TCP socket: the [network] table of Keep.toml has no \
             `connect` or `listen` rule"
        );
        Err(ErrorCode::AccessDenied.into())
    }
}

impl udp_create_socket::Host for Refusal {
    fn create_udp_socket(&mut self, _: IpAddressFamily) -> SocketResult<Resource<UdpSocket>> {
        tracing::warn!(
            "[network] denied creating a UDP socket: the [network] table of Keep.toml needs \
             `udp = true` and a `connect` or `listen` rule"
        );
        Err(ErrorCode::AccessDenied.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        let config = keep_config::Config::parse(text, std::path::Path::new("Keep.toml")).unwrap();
        Policy::new(&config.network)
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn default_is_deny() {
        let policy = policy("");
        for use_ in [
            SocketAddrUse::TcpConnect,
            SocketAddrUse::TcpBind,
            SocketAddrUse::UdpBind,
        ] {
            assert!(!policy.allows(addr("127.0.0.1:80"), use_));
            assert!(!policy.allows(addr("0.0.0.0:0"), use_));
        }
    }

    #[test]
    fn connect_rules_allow_exactly_their_addresses() {
        let policy = policy("[network]\nconnect = [\"127.0.0.1:8080\", \"10.0.0.0/8:*\"]\n");
        assert!(policy.allows(addr("127.0.0.1:8080"), SocketAddrUse::TcpConnect));
        assert!(!policy.allows(addr("127.0.0.1:8081"), SocketAddrUse::TcpConnect));
        assert!(policy.allows(addr("10.9.8.7:1"), SocketAddrUse::TcpConnect));
        assert!(!policy.allows(addr("11.0.0.1:1"), SocketAddrUse::TcpConnect));
        // The implicit wildcard bind of a connect, but no listening.
        assert!(policy.allows(addr("0.0.0.0:0"), SocketAddrUse::TcpBind));
        assert!(!policy.allows(addr("127.0.0.1:8080"), SocketAddrUse::TcpListen));
        // UDP needs `udp = true`.
        assert!(!policy.allows(addr("127.0.0.1:8080"), SocketAddrUse::UdpSend));
    }

    #[test]
    fn listen_and_udp_rules() {
        let policy = policy(
            "[network]\nlisten = [\"127.0.0.1:0\", \"[::1]:9000\"]\nconnect = [\"*:53\"]\nudp = true\n",
        );
        assert!(policy.allows(addr("127.0.0.1:0"), SocketAddrUse::TcpBind));
        assert!(policy.allows(addr("[::1]:9000"), SocketAddrUse::TcpListen));
        assert!(!policy.allows(addr("0.0.0.0:9000"), SocketAddrUse::TcpBind));
        assert!(policy.allows(addr("192.0.2.1:53"), SocketAddrUse::UdpSend));
        assert!(!policy.allows(addr("192.0.2.1:54"), SocketAddrUse::UdpSend));
    }

    #[test]
    fn host_names_resolve_at_start() {
        let policy = policy("[network]\nconnect = [\"localhost:443\"]\n");
        assert!(policy.allows(addr("127.0.0.1:443"), SocketAddrUse::TcpConnect));
        assert!(!policy.allows(addr("127.0.0.2:443"), SocketAddrUse::TcpConnect));
    }
}
