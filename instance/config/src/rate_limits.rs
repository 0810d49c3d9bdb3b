//! Rate limits of the API (Mastodon's rack-attack throttles) and the proxies whose
//! `X-Forwarded-For` names the client.
//!
//! `FEDI_RATE_LIMITS` overrides the defaults group by group, as `sign_up=10/1h,api=off`;
//! `FEDI_TRUSTED_PROXIES` lists addresses or CIDR ranges, or `none`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

/// A group of requests counted together, each with its own limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RateLimitGroup {
    /// Every `/api/` request, per token (or per client address without one).
    Api,
    /// `POST /api/v1/accounts`, per client address.
    SignUp,
    /// `POST /oauth/token` and the sign-in form, per client address.
    SignIn,
    /// `POST /api/v1/apps`, per client address.
    Apps,
    /// Media uploads, per token.
    Media,
    /// Status creation, per token.
    Statuses,
}

impl RateLimitGroup {
    pub const ALL: [RateLimitGroup; 6] = [
        Self::Api,
        Self::SignUp,
        Self::SignIn,
        Self::Apps,
        Self::Media,
        Self::Statuses,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::SignUp => "sign_up",
            Self::SignIn => "sign_in",
            Self::Apps => "apps",
            Self::Media => "media",
            Self::Statuses => "statuses",
        }
    }

    /// Mastodon's own values: rack-attack's throttles, and its `RateLimiter` for statuses.
    pub fn default_limit(self) -> Option<Limit> {
        let (requests, minutes) = match self {
            Self::Api => (300, 5),
            Self::SignUp => (5, 30),
            Self::SignIn => (25, 5),
            Self::Apps => (5, 10),
            Self::Media => (30, 30),
            Self::Statuses => (300, 180),
        };
        Some(Limit {
            requests,
            period: Duration::from_secs(minutes * 60),
        })
    }
}

impl FromStr for RateLimitGroup {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|g| g.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|g| g.name()).collect();
                format!("unknown group {s:?}, expected one of {}", names.join(", "))
            })
    }
}

/// At most `requests` in each window of `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub requests: u32,
    pub period: Duration,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.period.as_secs();
        match secs {
            s if s % 3600 == 0 => write!(f, "{}/{}h", self.requests, s / 3600),
            s if s % 60 == 0 => write!(f, "{}/{}m", self.requests, s / 60),
            s => write!(f, "{}/{}s", self.requests, s),
        }
    }
}

impl FromStr for Limit {
    type Err = String;

    /// `300/5m`: requests, then the window in s, m or h.
    fn from_str(s: &str) -> Result<Self, String> {
        let form = || format!("{s:?} is not of the form REQUESTS/PERIOD such as 300/5m");
        let (requests, period) = s.split_once('/').ok_or_else(form)?;
        let requests: u32 = requests.trim().parse().map_err(|_| form())?;
        let period = period.trim();
        let unit = match period.chars().last() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            _ => return Err(form()),
        };
        let count: u64 = period[..period.len() - 1].parse().map_err(|_| form())?;
        if requests == 0 || count == 0 {
            return Err(format!(
                "{s:?}: requests and period must be above 0 (use off)"
            ));
        }
        Ok(Limit {
            requests,
            period: Duration::from_secs(count * unit),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Each group's limit, `None` when that group is not limited; in `RateLimitGroup::ALL`
    /// order.
    pub limits: Vec<(RateLimitGroup, Option<Limit>)>,
    /// Peers whose `X-Forwarded-For` is believed. Rails' default (the one Mastodon runs
    /// with): loopback and the private ranges, where ingress controllers and load balancers
    /// live.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            limits: RateLimitGroup::ALL
                .iter()
                .map(|g| (*g, g.default_limit()))
                .collect(),
            trusted_proxies: [
                "127.0.0.0/8",
                "::1/128",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "fc00::/7",
            ]
            .iter()
            .map(|n| n.parse().expect("valid default range"))
            .collect(),
        }
    }
}

impl RateLimitConfig {
    pub fn limit(&self, group: RateLimitGroup) -> Option<Limit> {
        self.limits
            .iter()
            .find(|(g, _)| *g == group)
            .and_then(|(_, l)| *l)
    }

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    /// `group=LIMIT` pairs over the defaults.
    pub fn parse_limits(value: &str) -> Result<Vec<(RateLimitGroup, Option<Limit>)>, String> {
        let mut limits = Self::default().limits;
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (group, limit) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?} is not of the form group=300/5m or group=off"))?;
            let group: RateLimitGroup = group.trim().parse()?;
            let limit = match limit.trim() {
                "off" => None,
                l => Some(l.parse()?),
            };
            for slot in limits.iter_mut().filter(|(g, _)| *g == group) {
                slot.1 = limit;
            }
        }
        Ok(limits)
    }

    pub fn render_limits(&self) -> String {
        self.limits
            .iter()
            .map(|(g, l)| match l {
                Some(l) => format!("{}={l}", g.name()),
                None => format!("{}=off", g.name()),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Addresses (a /32 or /128) or CIDR ranges, or `none`.
    pub fn parse_proxies(value: &str) -> Result<Vec<IpNet>, String> {
        if value.trim() == "none" {
            return Ok(Vec::new());
        }
        value
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{e:?} is neither an IP address nor a CIDR range"))
            })
            .collect()
    }

    pub fn render_proxies(&self) -> String {
        if self.trusted_proxies.is_empty() {
            return "none".into();
        }
        self.trusted_proxies
            .iter()
            .map(IpNet::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_override_the_defaults_group_by_group() {
        let limits = RateLimitConfig::parse_limits("sign_up=10/1h, api=off,media=2/90s").unwrap();
        let c = RateLimitConfig {
            limits,
            ..Default::default()
        };
        assert_eq!(c.limit(RateLimitGroup::Api), None);
        assert_eq!(
            c.limit(RateLimitGroup::SignUp),
            Some(Limit {
                requests: 10,
                period: Duration::from_secs(3600)
            })
        );
        assert_eq!(c.limit(RateLimitGroup::Media).unwrap().to_string(), "2/90s");
        assert_eq!(
            c.limit(RateLimitGroup::SignIn),
            RateLimitGroup::SignIn.default_limit()
        );
        assert_eq!(
            RateLimitConfig::parse_limits(&c.render_limits()).unwrap(),
            c.limits
        );
    }

    #[test]
    fn bad_limits_say_what_is_expected() {
        for (value, expected) in [
            ("api", "group=300/5m"),
            ("apis=1/1m", "unknown group"),
            ("api=300", "REQUESTS/PERIOD"),
            ("api=300/5d", "REQUESTS/PERIOD"),
            ("api=0/5m", "above 0"),
        ] {
            let err = RateLimitConfig::parse_limits(value).unwrap_err();
            assert!(err.contains(expected), "{value}: {err}");
        }
    }

    #[test]
    fn proxies_are_addresses_or_ranges() {
        let p = RateLimitConfig::parse_proxies("10.1.2.3, 192.168.0.0/16,fd00::/8").unwrap();
        let c = RateLimitConfig {
            trusted_proxies: p,
            ..Default::default()
        };
        assert!(c.is_trusted_proxy("10.1.2.3".parse().unwrap()));
        assert!(!c.is_trusted_proxy("10.1.2.4".parse().unwrap()));
        assert!(c.is_trusted_proxy("fd12::1".parse().unwrap()));
        assert!(!c.is_trusted_proxy("127.0.0.1".parse().unwrap()));
        assert_eq!(RateLimitConfig::parse_proxies("none").unwrap(), vec![]);
        assert!(
            RateLimitConfig::parse_proxies("10.0.0.0/33")
                .unwrap_err()
                .contains("CIDR")
        );
        let d = RateLimitConfig::default();
        assert!(d.is_trusted_proxy("127.0.0.1".parse().unwrap()));
        assert!(!d.is_trusted_proxy("203.0.113.1".parse().unwrap()));
        assert_eq!(
            RateLimitConfig::parse_proxies(&d.render_proxies()).unwrap(),
            d.trusted_proxies
        );
    }
}
