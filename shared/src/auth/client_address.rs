//! Which address a request comes from, for the per-address limits.
//!
//! Behind a load balancer every request's socket peer is the balancer, so counting per socket
//! address would let 20 failures block everyone. `X-Forwarded-For` names the client, but anyone
//! can send it: it is believed only when the socket peer is one of `TRUSTED_PROXIES`, and then
//! only as far as the chain stays within trusted proxies (the first untrusted address from the
//! right is the client; what stands left of it was written by the client itself).

use std::net::IpAddr;

/// One `address/prefix` range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr.trim().parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Self { network, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `TRUSTED_PROXIES`: the proxies whose `X-Forwarded-For` is believed (empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR ranges (`10.0.0.0/8, ::1`).
    /// `Err` names the first entry that is neither.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| Cidr::parse(entry).ok_or_else(|| entry.to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }

    /// Whether the socket `peer` is one of the trusted proxies (whose request headers, such as
    /// `X-Request-Id`, are believed).
    pub fn is_trusted(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|peer| self.trusts(canonical(peer)))
    }

    /// The client's address: the socket `peer`, or, when the peer is a trusted proxy, the
    /// rightmost address of `forwarded_for` that is not a trusted proxy. `None` when the peer is
    /// unknown (an in-process client).
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut client = peer;
        for hop in forwarded_for.unwrap_or_default().rsplit(',') {
            // A hop we cannot read ends the chain: nothing left of it can be trusted.
            let Ok(hop) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = canonical(hop);
            if !self.trusts(client) {
                break;
            }
        }
        Some(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(Some(ip("203.0.113.9")), Some("1.2.3.4")),
            Some(ip("203.0.113.9"))
        );
        let lb = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            lb.client_ip(Some(ip("198.51.100.7")), Some("1.2.3.4")),
            Some(ip("198.51.100.7")),
            "a client cannot pick its address by sending the header"
        );
        assert_eq!(
            lb.client_ip(Some(ip("10.1.2.3")), Some("1.2.3.4")),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(lb.client_ip(None, Some("1.2.3.4")), None);
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client_and_forged_hops_left_of_it_are_ignored() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1, ::1").unwrap();
        let peer = Some(ip("10.0.0.2"));
        // The client forged "6.6.6.6"; the edge proxy appended the real client 1.2.3.4.
        assert_eq!(
            proxies.client_ip(peer, Some("6.6.6.6, 1.2.3.4, 192.168.1.1")),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(
            proxies.client_ip(peer, Some("garbage, 1.2.3.4")),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(
            proxies.client_ip(peer, Some("1.2.3.4, garbage")),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(proxies.client_ip(peer, None), Some(ip("10.0.0.2")));
        assert_eq!(
            proxies.client_ip(Some(ip("::ffff:10.9.9.9")), Some("2001:db8::1")),
            Some(ip("2001:db8::1"))
        );
    }

    #[test]
    fn bad_entries_are_named_and_ranges_match_by_prefix() {
        assert_eq!(
            TrustedProxies::parse("10.0.0.0/33"),
            Err("10.0.0.0/33".to_owned())
        );
        assert_eq!(
            TrustedProxies::parse("10.0.0.1, proxy"),
            Err("proxy".to_owned())
        );
        assert_eq!(TrustedProxies::parse(" "), Ok(TrustedProxies::default()));
        let any = TrustedProxies::parse("0.0.0.0/0, ::/0").unwrap();
        assert!(any.trusts(ip("8.8.8.8")) && any.trusts(ip("2001:db8::5")));
        let one = TrustedProxies::parse("172.16.0.0/12").unwrap();
        assert!(one.trusts(ip("172.31.255.255")) && !one.trusts(ip("172.32.0.0")));
    }
}
