//! Where a webhook may go. A rendered URL must be `http` or `https` with a host that is not
//! this machine, its network, a cloud metadata service or a name only a local resolver
//! knows. One table, [`REFUSED_NETWORKS`], lists every refused address range: the code
//! refuses exactly these, and `runtime-config/sqlite-loopback.toml` blocks exactly these
//! (a test holds the two together). IPv6 forms that carry an IPv4 address (mapped,
//! translated, compatible, NAT64, 6to4, Teredo) are refused whole: write the IPv4 address.
//! IPv4 written in decimal, hex or octal (`http://2130706433/`, `http://0x7f.1/`) is
//! normalised by the URL parser first, so it is refused like the dotted form. Names are
//! refused by [`refused_name`]; a public-looking name that resolves to a private address is
//! Spin's to block (`block_networks = ["private"]` in the runtime config), and the senders
//! refuse names altogether when the host does not block (see `funnelhooks_spin::outbound`).

use std::net::{IpAddr, Ipv6Addr};

use url::{Host, Url};

use funnelhooks_core::Error;

/// What targets are allowed beyond public ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allows `127.0.0.0/8` and `::1` (never other private ranges): for tests and local
    /// development against receivers on this machine. Off by default.
    pub allow_loopback: bool,
}

/// Every address range a webhook may not reach, with the reason a refusal gives. Loopback
/// (`127.0.0.0/8`, `::1/128`) comes first: the one exception [`TargetPolicy`] can make.
pub const REFUSED_NETWORKS: [(&str, &str); 39] = [
    ("127.0.0.0/8", "a loopback address"),
    ("::1/128", "a loopback address"),
    ("0.0.0.0/8", "an unspecified address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a carrier-grade NAT address"),
    ("169.254.0.0/16", "a link-local or cloud metadata address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol assignment"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved or broadcast address"),
    ("168.63.129.16/32", "a cloud metadata address"),
    ("::/128", "an unspecified address"),
    (
        "::/96",
        "an IPv4-compatible address: write the IPv4 address",
    ),
    (
        "::ffff:0:0/96",
        "an IPv4-mapped address: write the IPv4 address",
    ),
    (
        "::ffff:0:0:0/96",
        "an IPv4-translated address: write the IPv4 address",
    ),
    ("64:ff9b::/96", "a NAT64 address: write the IPv4 address"),
    ("64:ff9b:1::/48", "a local NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001::/32", "a Teredo address"),
    ("2001:2::/48", "a benchmarking address"),
    ("2001:10::/28", "an ORCHID address"),
    ("2001:20::/28", "an ORCHID address"),
    ("2001:db8::/32", "a documentation address"),
    ("2002::/16", "a 6to4 address: write the IPv4 address"),
    ("3fff::/20", "a documentation address"),
    ("5f00::/16", "a segment routing address"),
    (
        "fc00::/7",
        "a unique local (private) or cloud metadata address",
    ),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
    // Metadata services at addresses of the ranges above, named for the message.
    ("169.254.169.254/32", "a cloud metadata address"),
    ("fd00:ec2::254/128", "a cloud metadata address"),
    ("fd20:ce::254/128", "a cloud metadata address"),
];

/// Host names that always mean "this machine", "this app" or a cloud's metadata service
/// (names without a dot are refused as a rule, see [`refused_name`]).
const REFUSED_NAMES: [&str; 3] = [
    "metadata.goog",
    "kubernetes.default",
    "localhost.localdomain",
];

/// Name suffixes of private namespaces: this machine (`.localhost`), Spin's local chaining to
/// the app's own components and every cloud's internal DNS (`.internal`: `*.spin.internal`,
/// `metadata.google.internal`, `*.ec2.internal`), Kubernetes services (`.svc`,
/// `.cluster.local`), mDNS (`.local`), home and office networks (`.lan`, `.home`, `.corp`,
/// `.intranet`, `.private`, `.localdomain`, `.home.arpa`) and names reserved from the public
/// DNS (`.test`, `.invalid`, `.onion`, `.alt`, `.arpa`).
const REFUSED_SUFFIXES: [&str; 15] = [
    ".localhost",
    ".internal",
    ".svc",
    ".local",
    ".localdomain",
    ".lan",
    ".home",
    ".corp",
    ".intranet",
    ".private",
    ".test",
    ".invalid",
    ".onion",
    ".alt",
    ".arpa",
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
    let why = match parsed.host() {
        None => Some("the URL has no host"),
        Some(Host::Domain(name)) => refused_name(name),
        Some(Host::Ipv4(ip)) => refused_ip(IpAddr::V4(ip), policy),
        Some(Host::Ipv6(ip)) => refused_ip(IpAddr::V6(ip), policy),
    };
    match why {
        None => Ok(parsed),
        Some(why) => Err(Error::new(
            funnelhooks_core::Kind::Invalid,
            "refused_target",
            format!(
                "webhooks may not be sent to {:?}: {why}",
                parsed.host_str().unwrap_or_default()
            ),
        )),
    }
}

/// Why a host name may not be a webhook target, if it may not: a name without a dot (a
/// local resolver's search domains decide where `self`, `localhost`, `kubernetes` or `redis`
/// go), a local or metadata name, or a name in a private namespace.
pub fn refused_name(name: &str) -> Option<&'static str> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if !name.contains('.') {
        return Some(
            "a name without a dot, which only a local resolver knows (self, localhost, a service name)",
        );
    }
    if REFUSED_NAMES.contains(&name.as_str()) {
        return Some("a local or metadata host name");
    }
    if REFUSED_SUFFIXES
        .iter()
        .any(|s| name.ends_with(s) || name == s[1..])
    {
        return Some("a name in a private namespace (.internal, .local, .svc, .localhost, ...)");
    }
    None
}

/// A network of [`REFUSED_NETWORKS`] as bits: the address, the prefix length, and whether
/// it is IPv6.
fn network(cidr: &str) -> Option<(u128, u32, bool)> {
    let (addr, bits) = cidr.split_once('/')?;
    let bits: u32 = bits.parse().ok()?;
    Some(match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), bits, false),
        IpAddr::V6(v6) => (u128::from(v6), bits, true),
    })
}

/// Whether `cidr` (`10.0.0.0/8`, `fc00::/7`) contains `ip`.
pub fn network_contains(cidr: &str, ip: IpAddr) -> bool {
    let Some((net, bits, v6)) = network(cidr) else {
        return false;
    };
    let (addr, width) = match ip {
        IpAddr::V4(v4) if !v6 => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(a) if v6 => (u128::from(a), 128),
        _ => return false,
    };
    let shift = width - bits.min(width);
    shift >= 128 || addr >> shift == net >> shift
}

/// Why an address may not be a webhook target, if it may not: the reason of the most
/// specific network of [`REFUSED_NETWORKS`] holding it.
pub fn refused_ip(ip: IpAddr, policy: TargetPolicy) -> Option<&'static str> {
    let loopback = match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    };
    if loopback && policy.allow_loopback {
        return None;
    }
    REFUSED_NETWORKS
        .iter()
        .filter(|(cidr, _)| network_contains(cidr, ip))
        .max_by_key(|(cidr, _)| network(cidr).map_or(0, |(_, bits, _)| bits))
        .map(|(_, why)| *why)
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
            "http://93.184.215.14:8080/postback",
            "https://[2a00:1450:4001:830::200e]/x",
            "https://local.example.com/",
            "https://internal.example.com/",
            "https://svc.example.com/",
            "https://tracker.example.co.uk./",
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
            // Round 2: what the production config let through before.
            "http://[::ffff:0:7f00:1]/",
            "http://[64:ff9b:1::7f00:1]/",
            "http://[2001:0::1]/",
            "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
            "http://[fec0::1]/",
            "http://198.18.0.1/",
            "http://192.0.0.1/",
            "http://self/api/bots",
            "http://self:3000/",
            "http://kubernetes.default.svc/",
            "http://kubernetes.default/",
            "http://kubernetes/",
            "http://redis.prod.svc.cluster.local/",
            "http://redis/",
            // Documentation and reserved nets, and IPv4 written as IPv6.
            "http://192.0.2.10/",
            "http://198.51.100.7/",
            "http://203.0.113.7:8080/postback",
            "http://[2001:db8::1]/",
            "http://[64:ff9b::cb00:7107]/",
            "http://[::ffff:8.8.8.8]/",
            "http://[3fff::1]/",
            "http://printer.lan/",
            "http://wiki.corp/",
            "http://a.test/",
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
        assert!(check_target("http://127.0.0.2:8080/hook", tests).is_ok());
        assert!(check_target("http://[::127.0.0.1]:8080/hook", tests).is_err());
        assert!(check_target("http://[::ffff:127.0.0.1]:8080/hook", tests).is_err());
        assert!(check_target("http://send-webhook.spin.internal/", tests).is_err());
        assert!(check_target("http://10.0.0.1/", tests).is_err());
        assert!(check_target("http://169.254.169.254/", tests).is_err());
        assert!(check_target("http://localhost:8080/", tests).is_err());
    }

    #[test]
    fn a_refusal_names_the_most_specific_reason() {
        let why = |ip: &str| refused_ip(ip.parse().unwrap(), TargetPolicy::default());
        assert_eq!(why("169.254.169.254"), Some("a cloud metadata address"));
        assert_eq!(
            why("169.254.1.1"),
            Some("a link-local or cloud metadata address")
        );
        assert_eq!(
            why("::ffff:10.0.0.1"),
            Some("an IPv4-mapped address: write the IPv4 address")
        );
        assert_eq!(why("::"), Some("an unspecified address"));
        assert_eq!(why("8.8.8.8"), None);
    }

    #[test]
    fn every_network_of_the_table_parses() {
        for (cidr, _) in REFUSED_NETWORKS {
            assert!(network(cidr).is_some(), "{cidr}");
            let (net, bits, v6) = network(cidr).unwrap();
            let width = if v6 { 128 } else { 32 };
            assert!(bits <= width, "{cidr}");
            // No host bits set: the table says what it means.
            assert_eq!(net & ((1u128 << (width - bits)) - 1), 0, "{cidr}");
        }
    }
}
