//! Who the client is, by network address: the TCP peer, or, when that peer is a proxy we trust
//! (`SOULCHAT_TRUSTED_PROXIES`), the address it forwarded in `X-Forwarded-For`. A header from
//! anyone else is ignored: otherwise every client could pick its own rate-limit bucket.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

/// One trusted proxy: an address (`10.0.0.7`) or a network (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet(IpNet);

impl FromStr for ProxyNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        s.parse::<IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
            .map(ProxyNet)
            .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR network"))
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<ProxyNet>);

impl TrustedProxies {
    pub fn new(proxies: Vec<ProxyNet>) -> Self {
        TrustedProxies(proxies)
    }

    pub fn trusts(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.0.iter().any(|net| net.0.contains(&addr))
    }

    /// The client behind `peer`: walking `X-Forwarded-For` from the right (the entry our own
    /// proxy appended), the first address that is not a trusted proxy. A header that does not
    /// parse counts as absent, leaving the proxy itself as the client.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for value in headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(value) = value.to_str() else { return client };
            for hop in value.rsplit(',') {
                let Ok(hop) = hop.trim().parse::<IpAddr>() else { return client };
                client = hop.to_canonical();
                if !self.trusts(client) {
                    return client;
                }
            }
        }
        client
    }
}

/// The client's address, as the edge middleware resolved it (or the TCP peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(client) = parts.extensions.get::<ClientAddr>() {
            return Ok(*client);
        }
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(ClientAddr(peer.map(|p| p.to_canonical()).unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|p| p.parse().unwrap()).collect())
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let trusted = proxies(&["10.0.0.0/8", "192.168.1.1"]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // A stranger's header is ignored.
        assert_eq!(trusted.client(ip("203.0.113.9"), &forwarded("1.2.3.4")), ip("203.0.113.9"));
        // Through our proxy: the rightmost address that is not a proxy of ours.
        assert_eq!(trusted.client(ip("10.1.2.3"), &forwarded("6.6.6.6, 1.2.3.4, 10.9.9.9")), ip("1.2.3.4"));
        assert_eq!(trusted.client(ip("192.168.1.1"), &forwarded("1.2.3.4")), ip("1.2.3.4"));
        // Garbage leaves the proxy as the client; no header too.
        assert_eq!(trusted.client(ip("10.1.2.3"), &forwarded("nonsense")), ip("10.1.2.3"));
        assert_eq!(trusted.client(ip("10.1.2.3"), &HeaderMap::new()), ip("10.1.2.3"));
        assert!("not an address".parse::<ProxyNet>().is_err());
        assert!(trusted.trusts(ip("::ffff:10.0.0.1")));
    }
}
