//! Where Web Push may connect. A push endpoint is a URL the client chose, so unchecked the worker
//! would POST wherever a user pointed it: a loopback service, the cloud metadata address, the
//! private network (SSRF). An endpoint must be `https`, and its host must be, or resolve only to,
//! public unicast addresses. This is checked when a subscription is stored and again on every
//! connection ([`CheckedResolver`] is the push client's resolver), since a name may resolve
//! elsewhere by then (DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};
use url::{Host, Url};

/// How long resolving a push endpoint's name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// IPv4 ranges that are not a public push service (the IANA special-purpose registry): this
/// network, private (RFC 1918), shared/CGNAT, loopback, link-local, IETF protocol assignments,
/// documentation, the retired 6to4 relay, benchmarking, multicast, reserved and broadcast.
const SPECIAL_V4: [Ipv4Net; 16] = [
    Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10),
    Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16),
    Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12),
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 0, 0), 24),
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 2, 0), 24),
    Ipv4Net::new_assert(Ipv4Addr::new(192, 88, 99, 0), 24),
    Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16),
    Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15),
    Ipv4Net::new_assert(Ipv4Addr::new(198, 51, 100, 0), 24),
    Ipv4Net::new_assert(Ipv4Addr::new(203, 0, 113, 0), 24),
    Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4),
    Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4),
    Ipv4Net::new_assert(Ipv4Addr::new(255, 255, 255, 255), 32),
];

/// IPv6 is allowed only in global unicast (2000::/3), which leaves out loopback, unspecified,
/// IPv4-compatible, NAT64, unique local (fc00::/7), link-local (fe80::/10) and multicast.
const GLOBAL_UNICAST_V6: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);

/// The special blocks inside 2000::/3: IETF protocol assignments (Teredo, benchmarking,
/// ORCHID), documentation, and 6to4 (which embeds an IPv4 address of any kind).
const SPECIAL_V6: [Ipv6Net; 4] = [
    Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    Ipv6Net::new_assert(Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),
    Ipv6Net::new_assert(Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),
];

/// Whether `ip` is a public unicast address (IPv4-mapped IPv6 is judged as the IPv4 it maps).
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => !SPECIAL_V4.iter().any(|net| net.contains(&v4)),
        IpAddr::V6(v6) => GLOBAL_UNICAST_V6.contains(&v6) && !SPECIAL_V6.iter().any(|net| net.contains(&v6)),
    }
}

/// Which push endpoints this worker may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Egress {
    /// `https` to public addresses only: the one mode a deployment has.
    #[default]
    Public,
    /// Also `http` and loopback, for a local push service (tests and local development only).
    Insecure,
}

impl Egress {
    pub fn from_config(allow_insecure_push: bool) -> Egress {
        if allow_insecure_push { Egress::Insecure } else { Egress::Public }
    }

    pub fn allows(self, ip: IpAddr) -> bool {
        is_public(ip) || (self == Egress::Insecure && ip.to_canonical().is_loopback())
    }

    fn allows_scheme(self, scheme: &str) -> bool {
        scheme == "https" || (self == Egress::Insecure && scheme == "http")
    }
}

/// Why a push endpoint is refused. The message is what the client reads under `endpoint`, so
/// it never names the address a name resolved to.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refused {
    #[error("must be an https URL")]
    NotHttps,
    #[error("must not point to a loopback, private or other special address")]
    Address(IpAddr),
    #[error("has a host that could not be resolved")]
    Unresolvable,
}

/// The part of the check that needs no DNS: the scheme, and the host when it is an address.
/// The URL returned is the one to connect to (parsed once, so checked and used alike).
pub fn check_url(raw: &str, egress: Egress) -> Result<Url, Refused> {
    let url = Url::parse(raw).map_err(|_| Refused::NotHttps)?;
    if !egress.allows_scheme(url.scheme()) {
        return Err(Refused::NotHttps);
    }
    let ip = match url.host() {
        Some(Host::Domain(_)) => return Ok(url),
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        None => return Err(Refused::NotHttps),
    };
    if egress.allows(ip) { Ok(url) } else { Err(Refused::Address(ip)) }
}

/// The whole check, when a subscription is stored: the URL, then every address its name
/// resolves to now.
pub async fn check_endpoint(raw: &str, egress: Egress) -> Result<(), Refused> {
    let url = check_url(raw, egress)?;
    if let Some(Host::Domain(name)) = url.host() {
        resolve(name, egress).await?;
    }
    Ok(())
}

/// Resolves `name`; refused unless it has addresses and every one is allowed.
async fn resolve(name: &str, egress: Egress) -> Result<Vec<SocketAddr>, Refused> {
    let resolved = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, 0))).await;
    let addrs: Vec<SocketAddr> = match resolved {
        Ok(Ok(addrs)) => addrs.collect(),
        _ => return Err(Refused::Unresolvable),
    };
    if addrs.is_empty() {
        return Err(Refused::Unresolvable);
    }
    match addrs.iter().find(|addr| !egress.allows(addr.ip())) {
        Some(forbidden) => Err(Refused::Address(forbidden.ip())),
        None => Ok(addrs),
    }
}

/// The push client's resolver: a connection goes only to the addresses checked here, so a name
/// that now resolves to a forbidden address fails before any connection. (Address hosts never
/// reach a resolver: [`check_url`] covers them.)
pub struct CheckedResolver(pub Egress);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.0;
        Box::pin(async move {
            let addrs = resolve(name.as_str(), egress).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The refusal behind a failed request, if the resolver refused its name.
pub fn refusal(error: &reqwest::Error) -> Option<&Refused> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_public() {
        let special = [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.9",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "100::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "2001::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "3fff::1",
        ];
        for ip in special {
            assert!(!is_public(ip.parse().unwrap()), "{ip} is special");
            assert!(!Egress::Public.allows(ip.parse().unwrap()), "{ip} is refused");
        }
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.3.1",
            "198.20.0.1",
            "223.255.255.255",
            "::ffff:8.8.8.8",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
        ];
        for ip in public {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn insecure_mode_adds_loopback_only() {
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(Egress::Insecure.allows(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["169.254.169.254", "10.0.0.1", "fe80::1", "0.0.0.0"] {
            assert!(!Egress::Insecure.allows(ip.parse().unwrap()), "{ip}");
        }
        assert_eq!(Egress::default(), Egress::Public);
    }

    #[test]
    fn urls_are_judged_as_they_will_be_connected_to() {
        let refused = |raw: &str| check_url(raw, Egress::Public).unwrap_err();
        assert!(matches!(refused("http://push.example/x"), Refused::NotHttps));
        assert!(matches!(refused("ftp://push.example/x"), Refused::NotHttps));
        assert!(matches!(refused("not a url"), Refused::NotHttps));
        // Other spellings of an address are normalised first.
        for raw in [
            "https://127.0.0.1:8443/x",
            "https://0x7f.1/x",
            "https://2130706433/x",
            "https://[::1]/x",
            "https://[::ffff:a9fe:a9fe]/latest",
            "https://169.254.169.254/latest",
        ] {
            assert!(matches!(refused(raw), Refused::Address(_)), "{raw}");
        }
        assert!(check_url("https://fcm.googleapis.com/fcm/send/abc", Egress::Public).is_ok());
        assert!(check_url("https://8.8.8.8/x", Egress::Public).is_ok());
        assert!(check_url("http://127.0.0.1:9/x", Egress::Insecure).is_ok());
    }

    #[tokio::test]
    async fn names_are_judged_by_what_they_resolve_to() {
        let refused = check_endpoint("https://localhost/x", Egress::Public).await.unwrap_err();
        assert!(matches!(refused, Refused::Address(ip) if ip.is_loopback()), "{refused:?}");
        assert!(check_endpoint("http://localhost:9/x", Egress::Insecure).await.is_ok());
        let unresolvable = check_endpoint("https://push.invalid/x", Egress::Public).await.unwrap_err();
        assert!(matches!(unresolvable, Refused::Unresolvable), "{unresolvable:?}");
    }
}
