//! Patterns that grants and policies are written in.
//!
//! **Names** (components, topics, storage namespaces) are dot-separated:
//! `*` matches within one segment, `**` across segments, `?` one character,
//! `[abc]` a class. `worker-*` matches `worker-1`; `events.*` matches
//! `events.created` but not `events.a.b`; `events.**` matches both. Names are
//! case-sensitive.
//!
//! **Hosts** are `HOST:PORT`. `HOST` is a DNS name pattern (labels, `*` one
//! label, `**` any number; case-insensitive), an IPv4 address or pattern
//! (`127.0.0.1`, `10.0.0.*`), or an IPv6 address in brackets (`[::1]`). `PORT` is
//! a number, a range `8000-8100`, or `*`.
//!
//! **Paths** (host policy) are globs over `/`-separated paths: `*` within one
//! component, `**` across components.

use std::net::{IpAddr, Ipv6Addr};

use globset::{Glob, GlobBuilder, GlobMatcher};

/// A set of name patterns.
#[derive(Debug, Clone, Default)]
pub struct NamePatterns {
    patterns: Vec<(String, GlobMatcher)>,
}

fn segment_glob(pattern: &str, case_insensitive: bool) -> Result<GlobMatcher, String> {
    // Dots become the glob separator so that `*` stays within one segment.
    GlobBuilder::new(&pattern.replace('.', "/"))
        .literal_separator(true)
        .case_insensitive(case_insensitive)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("invalid pattern {pattern:?}: {e}"))
}

impl NamePatterns {
    /// Compiles `patterns`; an invalid one is an error naming it.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        let patterns = patterns
            .iter()
            .map(|p| {
                let p = p.as_ref();
                if p.is_empty() {
                    return Err("empty pattern".to_string());
                }
                Ok((p.to_string(), segment_glob(p, false)?))
            })
            .collect::<Result<_, _>>()?;
        Ok(NamePatterns { patterns })
    }

    /// The first pattern that matches `name`.
    pub fn matching(&self, name: &str) -> Option<&str> {
        let candidate = name.replace('.', "/");
        self.patterns
            .iter()
            .find(|(_, m)| m.is_match(&candidate))
            .map(|(p, _)| p.as_str())
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns as written.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|(p, _)| p.as_str())
    }
}

/// Which ports a [`HostPattern`] covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortPattern {
    /// Every port.
    Any,
    /// An inclusive range (a single port is `n..=n`).
    Range(u16, u16),
}

impl PortPattern {
    fn matches(&self, port: u16) -> bool {
        match *self {
            PortPattern::Any => true,
            PortPattern::Range(lo, hi) => (lo..=hi).contains(&port),
        }
    }
}

#[derive(Debug, Clone)]
enum HostPart {
    /// An IPv6 address (matched exactly).
    V6(Ipv6Addr),
    /// A DNS name or IPv4 pattern, matched label by label.
    Glob(GlobMatcher),
}

/// One `HOST:PORT` pattern.
#[derive(Debug, Clone)]
pub struct HostPattern {
    text: String,
    host: HostPart,
    port: PortPattern,
}

impl HostPattern {
    /// Parses `HOST:PORT`, e.g. `127.0.0.1:8080`, `*.example.com:443`, `[::1]:*`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("invalid host pattern {s:?}: {why} (expected HOST:PORT, e.g. 127.0.0.1:8080, *.example.com:443, [::1]:*)")
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (v6, port) = rest.split_once("]:").ok_or_else(|| bad("missing ]:PORT"))?;
            let addr: Ipv6Addr = v6.parse().map_err(|_| bad("not an IPv6 address"))?;
            (HostPart::V6(addr), port)
        } else {
            let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("missing :PORT"))?;
            if host.is_empty() || host.contains(':') {
                return Err(bad("write IPv6 addresses in brackets"));
            }
            (
                HostPart::Glob(segment_glob(host, true).map_err(|e| bad(&e))?),
                port,
            )
        };
        let port = match port {
            "*" => PortPattern::Any,
            p => match p.split_once('-') {
                Some((lo, hi)) => {
                    let lo: u16 = lo.parse().map_err(|_| bad("bad port range"))?;
                    let hi: u16 = hi.parse().map_err(|_| bad("bad port range"))?;
                    if lo > hi {
                        return Err(bad("port range is reversed"));
                    }
                    PortPattern::Range(lo, hi)
                }
                None => {
                    let n: u16 = p
                        .parse()
                        .map_err(|_| bad("port must be a number, a range or *"))?;
                    PortPattern::Range(n, n)
                }
            },
        };
        Ok(HostPattern {
            text: s.to_string(),
            host,
            port,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern covers connecting to `ip:port`.
    pub fn matches_addr(&self, ip: IpAddr, port: u16) -> bool {
        if !self.port.matches(port) {
            return false;
        }
        match (&self.host, ip) {
            (HostPart::V6(p), IpAddr::V6(a)) => *p == a,
            // An IPv4-mapped IPv6 address matches IPv4 patterns.
            (HostPart::Glob(g), IpAddr::V6(a)) => a
                .to_ipv4_mapped()
                .is_some_and(|v4| g.is_match(v4.to_string().replace('.', "/"))),
            (HostPart::Glob(g), IpAddr::V4(a)) => g.is_match(a.to_string().replace('.', "/")),
            (HostPart::V6(_), IpAddr::V4(_)) => false,
        }
    }

    /// Whether the pattern allows `port`.
    pub fn matches_port(&self, port: u16) -> bool {
        self.port.matches(port)
    }

    /// Whether the pattern's host part covers the DNS name `name` (any port).
    pub fn matches_name(&self, name: &str) -> bool {
        match &self.host {
            HostPart::Glob(g) => g.is_match(name.trim_end_matches('.').replace('.', "/")),
            HostPart::V6(_) => false,
        }
    }

    /// Whether the pattern names a DNS host rather than an IP address.
    pub fn is_dns_name(&self) -> bool {
        match &self.host {
            HostPart::V6(_) => false,
            HostPart::Glob(_) => {
                let host = self.text.rsplit_once(':').map(|(h, _)| h).unwrap_or("");
                host.chars().any(|c| c.is_ascii_alphabetic())
            }
        }
    }
}

/// A set of path globs (host policy: forbidden paths).
#[derive(Debug, Clone, Default)]
pub struct PathPatterns {
    patterns: Vec<(String, GlobMatcher)>,
}

impl PathPatterns {
    /// Compiles `patterns`.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        let patterns = patterns
            .iter()
            .map(|p| {
                let p = p.as_ref();
                GlobBuilder::new(p)
                    .literal_separator(true)
                    .build()
                    .map(|g: Glob| (p.to_string(), g.compile_matcher()))
                    .map_err(|e| format!("invalid path pattern {p:?}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(PathPatterns { patterns })
    }

    /// The first pattern that forbids granting directory `dir`: one that matches
    /// `dir` itself, or whose fixed prefix lies inside `dir` (so granting `/etc`
    /// is refused when `/etc/shadow` is forbidden).
    pub fn forbidding_dir(&self, dir: &str) -> Option<&str> {
        let dir = dir.trim_end_matches('/');
        let dir_prefix = format!("{dir}/");
        self.patterns
            .iter()
            .find(|(p, m)| {
                let fixed: String = p.chars().take_while(|c| !"*?[{".contains(*c)).collect();
                m.is_match(dir)
                    || m.is_match(&dir_prefix)
                    || fixed.starts_with(&dir_prefix)
                    || dir.is_empty()
            })
            .map(|(p, _)| p.as_str())
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_star_and_double_star() {
        let p = NamePatterns::new(&["worker-*", "events.*", "logs.**"]).unwrap();
        assert_eq!(p.matching("worker-1"), Some("worker-*"));
        assert_eq!(p.matching("worker-"), Some("worker-*"));
        assert_eq!(p.matching("Worker-1"), None, "names are case-sensitive");
        assert_eq!(p.matching("events.created"), Some("events.*"));
        assert_eq!(p.matching("events.a.b"), None, "* stays within a segment");
        assert_eq!(p.matching("logs.a.b.c"), Some("logs.**"));
        assert_eq!(p.matching("other"), None);
        assert!(NamePatterns::new(&["bad[".to_string()]).is_err());
        assert!(NamePatterns::new(&[""]).is_err());
    }

    #[test]
    fn hosts_ports_ipv6_and_case() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let p = HostPattern::parse("127.0.0.1:8080").unwrap();
        assert!(p.matches_addr(ip("127.0.0.1"), 8080));
        assert!(!p.matches_addr(ip("127.0.0.1"), 8081));
        assert!(!p.matches_addr(ip("127.0.0.2"), 8080));
        assert!(p.matches_addr(ip("::ffff:127.0.0.1"), 8080), "v4-mapped v6");

        let p = HostPattern::parse("10.0.0.*:8000-8100").unwrap();
        assert!(p.matches_addr(ip("10.0.0.7"), 8050));
        assert!(!p.matches_addr(ip("10.0.1.7"), 8050));
        assert!(!p.matches_addr(ip("10.0.0.7"), 8101));

        let p = HostPattern::parse("[::1]:*").unwrap();
        assert!(p.matches_addr(ip("::1"), 1));
        assert!(p.matches_addr(ip("0:0:0:0:0:0:0:1"), 65535));
        assert!(!p.matches_addr(ip("127.0.0.1"), 1));

        let p = HostPattern::parse("*.Example.com:443").unwrap();
        assert!(p.is_dns_name());
        assert!(
            p.matches_name("api.example.COM"),
            "DNS names are case-insensitive"
        );
        assert!(!p.matches_name("a.b.example.com"), "* is one label");
        assert!(!p.matches_name("example.com"));
        assert!(HostPattern::parse("**.example.com:443")
            .unwrap()
            .matches_name("a.b.example.com"));

        for bad in [
            "example.com",
            "::1:80",
            "[::1]",
            "host:http",
            "host:90-80",
            ":80",
            "[zz]:1",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn forbidden_paths_cover_ancestors() {
        let p = PathPatterns::new(&["/etc/shadow", "/root/**", "/home/*/.ssh"]).unwrap();
        assert_eq!(p.forbidding_dir("/etc"), Some("/etc/shadow"));
        assert_eq!(p.forbidding_dir("/etc/shadow"), Some("/etc/shadow"));
        assert_eq!(p.forbidding_dir("/root"), Some("/root/**"));
        assert_eq!(p.forbidding_dir("/root/x"), Some("/root/**"));
        assert_eq!(p.forbidding_dir("/home/alice/.ssh"), Some("/home/*/.ssh"));
        assert_eq!(p.forbidding_dir("/"), Some("/etc/shadow"));
        assert_eq!(p.forbidding_dir("/srv/data"), None);
        assert_eq!(p.forbidding_dir("/etcetera"), None);
    }
}
