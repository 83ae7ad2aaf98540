//! Where a webhook may go. A rendered URL must be `http` or `https` with a host that is not
//! this machine, its network or a cloud metadata service: literal loopback, private,
//! link-local, CGNAT, unspecified, multicast and broadcast addresses are refused, and so are
//! `localhost` and the metadata host names. IPv4 written in decimal, hex or octal
//! (`http://2130706433/`, `http://0x7f.1/`) is normalised by the URL parser first, so it is
//! refused like the dotted form. DNS names that resolve to such addresses are Spin's to block
//! (`block_networks = ["private"]` in the runtime config).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use funnelhooks_core::Error;

/// What targets are allowed beyond public ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allows `127.0.0.0/8` and `::1` (never other private ranges): for tests and local
    /// development against receivers on this machine. Off by default.
    pub allow_loopback: bool,
}

/// Host names that always mean "this machine", "this app" or a cloud's metadata service.
const REFUSED_NAMES: [&str; 6] = [
    "localhost",
    "metadata",
    "metadata.goog",
    "instance-data",
    "ip6-localhost",
    "ip6-loopback",
];

/// Name suffixes of private namespaces: this machine (`.localhost`), Spin's local chaining to
/// the app's own components and every cloud's internal DNS (`.internal`: `*.spin.internal`,
/// `metadata.google.internal`, `*.ec2.internal`), mDNS (`.local`), home networks
/// (`.home.arpa`) and `.localdomain`.
const REFUSED_SUFFIXES: [&str; 5] = [
    ".localhost",
    ".internal",
    ".local",
    ".home.arpa",
    ".localdomain",
];

/// Cloud metadata and host services at public-looking addresses.
const METADATA_V4: [Ipv4Addr; 2] = [
    // AWS, GCP, Azure, Oracle, DigitalOcean...
    Ipv4Addr::new(169, 254, 169, 254),
    // Azure's WireServer.
    Ipv4Addr::new(168, 63, 129, 16),
];

fn bad_url(url: &str, reason: impl std::fmt::Display) -> Error {
    Error::new(
        funnelhooks_core::Kind::Invalid,
        "bad_url",
        format!("{url:?} is not a usable URL: {reason}"),
    )
}

/// Parses `url` and checks it may be delivered to under `policy`. Errors carry no field:
/// the caller names where the URL came from.
pub fn check_target(url: &str, policy: TargetPolicy) -> Result<Url, Error> {
    let parsed = Url::parse(url.trim()).map_err(|e| bad_url(url, e))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad_url(
            url,
            format_args!("scheme {:?} is not http or https", parsed.scheme()),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad_url(
            url,
            "credentials in the URL are not allowed; use a header",
        ));
    }
    let refused = |why: &str| {
        Error::new(
            funnelhooks_core::Kind::Invalid,
            "refused_target",
            format!(
                "webhooks may not be sent to {:?}: {why}",
                parsed.host_str().unwrap_or_default()
            ),
        )
    };
    match parsed.host() {
        None => return Err(refused("the URL has no host")),
        Some(Host::Domain(name)) => {
            if let Some(why) = refused_name(name) {
                return Err(refused(why));
            }
        }
        Some(Host::Ipv4(ip)) => {
            if let Some(why) = refused_v4(ip, policy) {
                return Err(refused(why));
            }
        }
        Some(Host::Ipv6(ip)) => {
            if let Some(why) = refused_v6(ip, policy) {
                return Err(refused(why));
            }
        }
    }
    Ok(parsed)
}

/// Why a host name may not be a webhook target, if it may not (a name that resolves to a
/// private address is the host's to refuse: `block_networks`).
pub fn refused_name(name: &str) -> Option<&'static str> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if REFUSED_NAMES.contains(&name.as_str()) {
        return Some("a local or metadata host name");
    }
    if REFUSED_SUFFIXES
        .iter()
        .any(|s| name.ends_with(s) || name == s[1..])
    {
        return Some("a name in a private namespace (.internal, .local, .localhost, ...)");
    }
    None
}

/// Why an address may not be a webhook target, if it may not.
pub fn refused_ip(ip: IpAddr, policy: TargetPolicy) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4, policy),
        IpAddr::V6(v6) => refused_v6(v6, policy),
    }
}

fn refused_v4(ip: Ipv4Addr, policy: TargetPolicy) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        return (!policy.allow_loopback).then_some("a loopback address");
    }
    if METADATA_V4.contains(&ip) {
        return Some("a cloud metadata address");
    }
    if ip.is_unspecified() || a == 0 {
        return Some("an unspecified address");
    }
    if ip.is_private() {
        return Some("a private address");
    }
    if ip.is_link_local() {
        return Some("a link-local address");
    }
    if a == 100 && (64..128).contains(&b) {
        return Some("a carrier-grade NAT address");
    }
    if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        return Some("a broadcast, multicast or reserved address");
    }
    None
}

/// The IPv4 address an IPv6 address carries, where routers or stacks may deliver to it:
/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and
/// 6to4 (`2002:aabb:ccdd::/48`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    // ::a.b.c.d, but not :: and ::1 (which are their own kinds).
    if s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1) {
        return Some(v4(s[6], s[7]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(v4(s[1], s[2]));
    }
    None
}

fn refused_v6(ip: Ipv6Addr, policy: TargetPolicy) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return refused_v4(v4, policy);
    }
    if ip.is_loopback() {
        return (!policy.allow_loopback).then_some("a loopback address");
    }
    let first = ip.segments()[0];
    // AWS's and GCP's metadata services over IPv6.
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        || ip == Ipv6Addr::new(0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254)
    {
        return Some("a cloud metadata address");
    }
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    if first & 0xfe00 == 0xfc00 {
        return Some("a unique local (private) address");
    }
    if first & 0xffc0 == 0xfe80 {
        return Some("a link-local address");
    }
    if ip.is_multicast() {
        return Some("a multicast address");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        matches!(
            check_target(url, TargetPolicy::default()),
            Err(e) if e.code == "refused_target"
        )
    }

    #[test]
    fn public_trackers_are_allowed() {
        for url in [
            "https://keitaro.example.com/25123a/postback?subid=1",
            "http://203.0.113.7:8080/postback",
            "https://[2001:db8::1]/x",
            "https://[64:ff9b::cb00:7107]/nat64-of-a-public-address",
            "https://local.example.com/",
            "https://internal.example.com/",
        ] {
            assert!(check_target(url, TargetPolicy::default()).is_ok(), "{url}");
        }
    }

    #[test]
    fn local_private_and_metadata_targets_are_refused() {
        for url in [
            "http://127.0.0.1/",
            "http://127.1.2.3:9000/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://app.localhost/",
            "http://10.0.0.5/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.10.10/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fd00:ec2::254]/",
            "http://[fc00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://255.255.255.255/",
            "http://224.0.0.1/",
            // IPv4 inside IPv6: compatible, NAT64, 6to4.
            "http://[::127.0.0.1]/",
            "http://[::10.0.0.1]/",
            "http://[64:ff9b::127.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::1]/",
            "http://[2002:c0a8:101::1]/",
            "http://[fd20:ce::254]/",
            // Other clouds' metadata and host services.
            "http://168.63.129.16/",
            "http://100.100.100.200/",
            "http://metadata.goog/",
            "http://instance-data/latest/",
            // The app's own components, and private namespaces.
            "http://send-webhook.spin.internal/internal/step-reached",
            "http://bots-api.spin.internal/api/bots",
            "http://ip-10-0-0-1.ec2.internal/",
            "http://printer.local/",
            "http://router.home.arpa/",
            "http://ip6-localhost/",
        ] {
            assert!(refused(url), "{url} must be refused");
        }
    }

    #[test]
    fn ipv4_in_decimal_hex_or_octal_is_refused_like_dotted() {
        for url in [
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://017700000001/",
            "http://127.1/",
            "http://0xa9fea9fe/",
        ] {
            assert!(refused(url), "{url} must be refused");
        }
    }

    #[test]
    fn only_http_and_https_without_credentials() {
        for url in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://user:pass@example.com/",
            "not a url",
        ] {
            assert!(
                matches!(
                    check_target(url, TargetPolicy::default()),
                    Err(e) if e.code == "bad_url"
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn loopback_exception_allows_loopback_and_nothing_else() {
        let tests = TargetPolicy {
            allow_loopback: true,
        };
        assert!(check_target("http://127.0.0.1:8080/hook", tests).is_ok());
        assert!(check_target("http://[::1]:8080/hook", tests).is_ok());
        assert!(check_target("http://[::127.0.0.1]:8080/hook", tests).is_ok());
        assert!(check_target("http://send-webhook.spin.internal/", tests).is_err());
        assert!(check_target("http://10.0.0.1/", tests).is_err());
        assert!(check_target("http://169.254.169.254/", tests).is_err());
        assert!(check_target("http://localhost:8080/", tests).is_err());
    }
}
