//! The client's address: the socket's peer, or what a trusted proxy says in
//! `X-Forwarded-For` (Rails' `RemoteIp`, which Mastodon's throttles read).

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;
use fedi_config::RateLimitConfig;

/// The peer when it is not a trusted proxy; otherwise the `X-Forwarded-For` hops are read
/// from the nearest (rightmost) back, trusted proxies skipped, and the first other address
/// is the client. Hops beyond an unreadable entry are not believed: the address that
/// appended it is taken. With only trusted hops, the farthest one is the client.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, config: &RateLimitConfig) -> IpAddr {
    if !config.is_trusted_proxy(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            return client;
        };
        client = ip;
        if !config.is_trusted_proxy(ip) {
            return ip;
        }
    }
    client
}

/// An address, as proxies write it (IPv4-mapped IPv6 folded to IPv4).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let ip: IpAddr = hop.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    })
}

/// What a client address is counted as: an IPv6 client usually holds a whole /64, so its
/// /64 is one client (as in Mastodon).
pub fn throttle_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0).to_string() + "/64"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn config(proxies: &str) -> RateLimitConfig {
        RateLimitConfig {
            trusted_proxies: RateLimitConfig::parse_proxies(proxies).unwrap(),
            ..Default::default()
        }
    }

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let c = config("10.0.0.0/8");
        // An untrusted peer cannot name another client.
        assert_eq!(
            client_ip(ip("203.0.113.9"), &headers(&["198.51.100.1"]), &c),
            ip("203.0.113.9")
        );
        // Behind two trusted hops, the first untrusted address from the right.
        assert_eq!(
            client_ip(
                ip("10.0.0.2"),
                &headers(&["198.51.100.7, 203.0.113.5", "10.0.0.3"]),
                &c
            ),
            ip("203.0.113.5")
        );
        // Garbage stops the walk at the proxy that wrote it.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &headers(&["198.51.100.7, bogus"]), &c),
            ip("10.0.0.2")
        );
        // Only trusted hops: the farthest.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &headers(&["10.9.9.9, 10.0.0.3"]), &c),
            ip("10.9.9.9")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), &headers(&["::ffff:198.51.100.3"]), &c),
            ip("198.51.100.3")
        );
        assert_eq!(client_ip(ip("10.0.0.2"), &headers(&[]), &c), ip("10.0.0.2"));
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        assert_eq!(
            throttle_key(ip("2001:db8:1:2:3:4:5:6")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(throttle_key(ip("203.0.113.5")), "203.0.113.5");
    }
}
