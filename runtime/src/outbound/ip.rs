//! Which IP addresses an outbound request may reach by name.
//!
//! Only addresses on the public internet: loopback (where the admin API
//! lives), private, link-local, shared (CGNAT), multicast, reserved and
//! documentation ranges are refused; IPv6 is allowed only in global unicast,
//! and there not in the forms that embed an IPv4 address (6to4, Teredo),
//! since a translator or tunnel on the path could carry them to an internal
//! IPv4 address. IPv4-mapped, IPv4-compatible and NAT64 addresses lie outside
//! global unicast, so they are refused whatever IPv4 address they carry.
//! An allow-list entry that names an address literally bypasses this check.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether an address is reachable on the public internet.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network", 0.0.0.0/8
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || (a == 100 && (b & 0xc0) == 64) // shared address space, 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, 192.0.0.0/24
        || (a == 198 && (b & 0xfe) == 18) // benchmarking, 198.18.0.0/15
        || a >= 240 // reserved 240.0.0.0/4, with the broadcast address
        || ip.is_documentation())
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Only global unicast, 2000::/3, is routed on the internet. Everything
    // else is refused by this first test: loopback, unspecified, IPv4-mapped
    // (::ffff:0:0/96) and IPv4-compatible (::/96) addresses, NAT64
    // (64:ff9b::/96, 64:ff9b:1::/48), unique local (fc00::/7), link-local
    // (fe80::/10), site-local (fec0::/10) and multicast (ff00::/8).
    (s[0] & 0xe000) == 0x2000
        && s[0] != 0x2002 // 6to4, 2002::/16
        && s[..2] != [0x2001, 0] // Teredo, 2001::/32
        && s[..3] != [0x2001, 2, 0] // benchmarking, 2001:2::/48
        && s[..2] != [0x2001, 0xdb8] // documentation, 2001:db8::/32
        && (s[0] != 0x3fff || s[1] >= 0x1000) // documentation, 3fff::/20
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn refused(ips: &[&str]) {
        for ip in ips {
            assert!(!is_public(ip.parse().unwrap()), "{ip} should be refused");
        }
    }

    #[track_caller]
    fn allowed(ips: &[&str]) {
        for ip in ips {
            assert!(is_public(ip.parse().unwrap()), "{ip} should be allowed");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        allowed(&["93.184.216.34", "1.1.1.1", "8.8.8.8", "2606:4700::1111"]);
    }

    #[test]
    fn loopback_private_and_link_local_are_refused() {
        refused(&["127.0.0.1", "127.255.255.254", "::1"]);
        refused(&["10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1"]);
        refused(&["169.254.1.1", "fe80::1", "febf::1"]);
        refused(&["fc00::1", "fd00::1", "fec0::1"]);
        allowed(&["172.32.0.1", "11.0.0.1"]);
    }

    #[test]
    fn this_network_is_refused() {
        refused(&["0.0.0.0", "0.1.2.3", "0.255.255.255", "::"]);
        allowed(&["1.0.0.1"]);
    }

    #[test]
    fn shared_address_space_is_refused() {
        refused(&["100.64.0.1", "100.127.255.255"]);
        allowed(&["100.63.255.255", "100.128.0.1"]);
    }

    #[test]
    fn ietf_protocol_assignments_are_refused() {
        refused(&["192.0.0.1", "192.0.0.255"]);
        allowed(&["192.0.1.1"]);
    }

    #[test]
    fn benchmarking_range_is_refused() {
        refused(&["198.18.0.1", "198.19.255.255"]);
        allowed(&["198.17.255.255", "198.20.0.1"]);
    }

    #[test]
    fn multicast_is_refused() {
        refused(&["224.0.0.1", "239.255.255.255", "ff02::1", "ff0e::1"]);
    }

    #[test]
    fn reserved_and_broadcast_are_refused() {
        refused(&["240.0.0.1", "250.1.2.3", "255.255.255.255"]);
        allowed(&["223.255.255.254"]);
    }

    #[test]
    fn documentation_ranges_are_refused() {
        refused(&["192.0.2.1", "198.51.100.1", "203.0.113.1"]);
        refused(&["2001:db8::1", "3fff::1", "3fff:fff::1"]);
        allowed(&["3fff:1000::1", "2001:db9::1"]);
    }

    #[test]
    fn ipv4_mapped_addresses_are_refused_even_when_public() {
        refused(&[
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:93.184.216.34",
        ]);
    }

    #[test]
    fn ipv4_compatible_addresses_are_refused() {
        refused(&["::127.0.0.1", "::93.184.216.34"]);
    }

    #[test]
    fn nat64_prefixes_are_refused() {
        refused(&["64:ff9b::7f00:1", "64:ff9b::5db8:d822"]);
        refused(&["64:ff9b:1::1", "64:ff9b:1:ffff::1"]);
    }

    #[test]
    fn ipv6_outside_global_unicast_is_refused() {
        refused(&["::1:0:0:1", "100::1", "1fff:ffff::1", "4000::1", "e000::1"]);
        allowed(&["2000::1", "3ffe:ffff::1"]);
    }

    #[test]
    fn six_to_four_and_teredo_are_refused() {
        refused(&["2002:7f00:1::1", "2002::1", "2001:0:4136:e378::1"]);
        allowed(&["2003::1", "2001:1::1", "2001:4860::8888"]);
    }

    #[test]
    fn ipv6_benchmarking_is_refused() {
        refused(&["2001:2::1", "2001:2:0:ffff::1"]);
        allowed(&["2001:2:1::1"]);
    }
}
