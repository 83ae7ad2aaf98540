//! `allowed_outbound_hosts` with Spin's grammar and matching: `scheme://host[:port]`, `*` for
//! any scheme, host or port, `*.domain` for subdomains, CIDR ranges, `a..b` port ranges (end
//! exclusive), default ports by scheme, `{{ variable }}` templates (an empty result is skipped),
//! and `*.spin.internal` meaning "any component of this app".

use std::net::IpAddr;

use anyhow::{Context, Result, bail, ensure};

/// Suffix of service-chaining hosts.
pub const CHAINING_SUFFIX: &str = ".spin.internal";

/// One component's outbound allow-list.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

#[derive(Debug, Clone, PartialEq)]
struct AllowedHost {
    scheme: Option<String>,
    host: HostRule,
    ports: PortRule,
}

#[derive(Debug, Clone, PartialEq)]
enum HostRule {
    Any,
    Subdomain(String),
    ToSelf,
    Literal(url::Host),
    Cidr(IpAddr, u8),
}

#[derive(Debug, Clone, PartialEq)]
enum PortRule {
    Any,
    Port(u16),
    Range(u16, u16),
}

impl AllowedHosts {
    /// Parses a component's list; `expand` resolves `{{ }}` templates; `components` are the
    /// app's component ids, for `*.spin.internal`.
    pub fn parse(
        list: &[String],
        expand: impl Fn(&str) -> Result<String>,
        components: &[String],
    ) -> Result<Self> {
        if list.len() == 1 && list[0] == "insecure:allow-all" {
            bail!(
                "'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic'"
            );
        }
        let mut entries = Vec::new();
        for raw in list {
            let resolved = if raw.contains("{{") {
                expand(raw)?
            } else {
                raw.clone()
            };
            if resolved.is_empty() || resolved == "http://" || resolved == "https://" {
                continue;
            }
            let entry = AllowedHost::parse(&resolved)
                .with_context(|| format!("allowed_outbound_hosts entry {raw:?}"))?;
            match &entry.host {
                HostRule::Subdomain(suffix) if suffix == CHAINING_SUFFIX => {
                    for id in components {
                        let mut one = entry.clone();
                        one.host =
                            HostRule::Literal(url::Host::Domain(format!("{id}{CHAINING_SUFFIX}")));
                        entries.push(one);
                    }
                }
                _ => entries.push(entry),
            }
        }
        Ok(Self { entries })
    }

    /// Whether a request to `scheme://host:port` may leave the component.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let Ok(host) = url::Host::parse(host.trim_start_matches('[').trim_end_matches(']')) else {
            return false;
        };
        let port = port.or_else(|| default_port(scheme));
        self.entries.iter().any(|e| {
            e.scheme.as_deref().is_none_or(|s| s == scheme)
                && e.host.allows(&host)
                && match (e.ports.clone(), port) {
                    (PortRule::Any, _) => true,
                    (PortRule::Port(p), Some(q)) => p == q,
                    (PortRule::Range(a, b), Some(q)) => (a..b).contains(&q),
                    (_, None) => false,
                }
        })
    }

    /// Whether relative (`self`) requests are allowed.
    pub fn allows_self(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e.host, HostRule::Any | HostRule::ToSelf))
    }
}

impl AllowedHost {
    fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            bail!("{url:?} does not contain a scheme (e.g., 'http://' or '*://')");
        };
        let scheme = match scheme {
            "*" => None,
            s if s.starts_with('{') => bail!("scheme lists are not supported"),
            s if s.chars().all(char::is_alphabetic) => Some(s.to_string()),
            _ => bail!("only alphabetic characters are allowed in the scheme"),
        };
        let (host, port) = match rest.rsplit_once(':') {
            None => (rest, ""),
            Some((h, "")) => (h, ""),
            Some((h, tail)) => {
                if HostRule::parse(rest).is_ok() {
                    (rest, "")
                } else {
                    let port = match tail.split_once('/') {
                        Some((port, path)) => {
                            ensure!(path.is_empty(), "{url:?} has a path but is not allowed to");
                            port
                        }
                        None => tail,
                    };
                    (h, port)
                }
            }
        };
        let ports = match port {
            "" => PortRule::Port(
                scheme
                    .as_deref()
                    .and_then(default_port)
                    .with_context(|| format!("no port was provided and the scheme {scheme:?} does not have a known default port number"))?,
            ),
            "*" => PortRule::Any,
            p if p.starts_with('{') => bail!("port lists are not yet supported"),
            p => match p.split_once("..") {
                Some((a, b)) => PortRule::Range(
                    a.parse().with_context(|| format!("port range {p:?} contains non-number"))?,
                    b.parse().with_context(|| format!("port range {p:?} contains non-number"))?,
                ),
                None => PortRule::Port(p.parse().with_context(|| format!("port {p:?} is not a number"))?),
            },
        };
        Ok(Self {
            scheme,
            host: HostRule::parse(host)?,
            ports,
        })
    }
}

impl HostRule {
    fn parse(host: &str) -> Result<Self> {
        let host = host.trim();
        if host == "*" {
            return Ok(Self::Any);
        }
        if host == "self" || host == "self.alt" {
            return Ok(Self::ToSelf);
        }
        ensure!(!host.starts_with('{'), "host lists are not yet supported");
        if let Some((ip, bits)) = host.split_once('/')
            && let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u8>())
        {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            ensure!(bits <= max, "invalid prefix length in {host:?}");
            return Ok(Self::Cidr(ip, bits));
        }
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            return Ok(Self::Cidr(ip, bits));
        }
        let host = host.strip_suffix('/').unwrap_or(host);
        ensure!(!host.contains('/'), "must not include a path");
        if let Some(domain) = host.strip_prefix("*.") {
            ensure!(
                !domain.contains('*'),
                "wildcards are allowed only as prefixes"
            );
            let Ok(url::Host::Domain(domain)) = url::Host::parse(domain) else {
                bail!("wildcard suffix must be a domain");
            };
            return Ok(Self::Subdomain(format!(".{domain}")));
        }
        ensure!(
            !host.contains('*'),
            "wildcards are allowed only as subdomains"
        );
        Ok(Self::Literal(url::Host::parse(host)?))
    }

    fn allows(&self, host: &url::Host) -> bool {
        match (self, host) {
            (Self::Any, _) => true,
            (Self::Subdomain(suffix), url::Host::Domain(d)) => d.ends_with(suffix.as_str()),
            (Self::Literal(l), h) => l == h,
            (Self::Cidr(net, bits), url::Host::Ipv4(ip)) => in_cidr(*net, *bits, IpAddr::V4(*ip)),
            (Self::Cidr(net, bits), url::Host::Ipv6(ip)) => in_cidr(*net, *bits, IpAddr::V6(*ip)),
            _ => false,
        }
    }
}

fn in_cidr(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// The component a `http://<component>.spin.internal` host names, if it is one.
pub fn chaining_target(host: &str) -> Option<&str> {
    host.strip_suffix(CHAINING_SUFFIX).filter(|c| !c.is_empty())
}
