//! Enumerated settings and the parsers for scalar values, each with the wording an operator
//! sees when a value is wrong.

use std::fmt;
use std::str::FromStr;

macro_rules! keyword_enum {
    ($(#[$meta:meta])* $name:ident, default $default:ident, { $($variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl Default for $name {
            fn default() -> Self {
                Self::$default
            }
        }

        impl $name {
            const WORDS: &'static [(&'static str, $name)] = &[$(($word, $name::$variant)),+];
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let s = s.to_ascii_lowercase();
                Self::WORDS.iter().find(|(w, _)| *w == s).map(|(_, v)| *v).ok_or_else(|| {
                    let words: Vec<_> = Self::WORDS.iter().map(|(w, _)| *w).collect();
                    format!("expected {}", $crate::values::one_of(&words))
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let word = Self::WORDS.iter().find(|(_, v)| v == self).map(|(w, _)| *w);
                f.write_str(word.expect("every variant has a word"))
            }
        }
    };
}

// Also for the enumerations of other modules.
pub(crate) use keyword_enum;

keyword_enum!(
    /// Who may create an account.
    Registrations, default Open, { Open => "open", Approval => "approval", Closed => "closed" }
);
keyword_enum!(RedisMode, default Standalone, { Standalone => "standalone", Cluster => "cluster" });
keyword_enum!(
    /// `starttls` upgrades a plain connection (port 587); `tls` is implicit TLS (465).
    SmtpTls, default StartTls, { StartTls => "starttls", Tls => "tls", None => "none" }
);
keyword_enum!(LogFormat, default Text, { Text => "text", Json => "json" });
keyword_enum!(
    /// Job queues, as Mastodon names them (`FEDI_WORKER_QUEUES`).
    Queue, default Default, {
        Default => "default", Push => "push", Ingress => "ingress",
        Mailers => "mailers", Pull => "pull", Scheduler => "scheduler",
    }
);

impl Queue {
    pub const ALL: [Queue; 6] = [
        Queue::Default,
        Queue::Push,
        Queue::Ingress,
        Queue::Mailers,
        Queue::Pull,
        Queue::Scheduler,
    ];

    /// Mastodon's Sidekiq weights: local work first, then federation, then the rest.
    pub fn default_weight(self) -> u32 {
        match self {
            Queue::Default => 8,
            Queue::Ingress => 6,
            Queue::Push => 4,
            Queue::Mailers | Queue::Pull => 2,
            Queue::Scheduler => 1,
        }
    }
}

/// `default:8,push:4,mailers` (a missing weight is 1): the queues a worker polls, each at
/// most once, with weights of at least 1.
pub(crate) fn parse_queue_weights(s: &str) -> Result<Vec<(Queue, u32)>, String> {
    let mut out: Vec<(Queue, u32)> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, weight) = match item.split_once(':') {
            Some((n, w)) => (
                n.trim(),
                w.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|w| *w >= 1)
                    .ok_or_else(|| {
                        format!("weight of {n:?} must be a whole number of at least 1")
                    })?,
            ),
            None => (item, 1),
        };
        let queue: Queue = name.parse().map_err(|e| format!("queue {name:?}: {e}"))?;
        if out.iter().any(|(q, _)| *q == queue) {
            return Err(format!("queue {queue} is listed twice"));
        }
        out.push((queue, weight));
    }
    if out.is_empty() {
        return Err("expected queue:weight pairs such as default:8,push:4".into());
    }
    Ok(out)
}

pub(crate) fn one_of(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

pub(crate) fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true/false".into()),
    }
}

pub(crate) fn parse_num<T: FromStr<Err = std::num::ParseIntError>>(s: &str) -> Result<T, String> {
    s.parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())
}

/// The account domain must be a bare, canonical host name: it becomes part of every
/// account's identity and of every ActivityPub id, so `Example.org.` and `example.org`
/// must not both be possible.
pub(crate) fn parse_domain(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.contains("://") || s.contains('/') || s.contains('@') {
        return Err("expected a bare host name such as social.example.com".into());
    }
    if s != s.to_ascii_lowercase() || s.ends_with('.') {
        return Err("expected lower case without a trailing dot".into());
    }
    // A port, as Mastodon's LOCAL_DOMAIN allows (`localhost:3000`): instances that are not
    // behind 443, such as two test servers side by side on loopback. It is part of every
    // handle and id (`@alice@127.0.0.1:3000`), so it must be the port peers connect to,
    // written canonically (no leading zero).
    let full = s;
    let s = match full.rsplit_once(':') {
        Some((host, port)) => {
            if port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .map(|p| p.to_string())
                != Some(port.to_string())
            {
                return Err("expected a port from 1 to 65535 after the host name".into());
            }
            host
        }
        None => full,
    };
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if s.len() > 253 || !s.split('.').all(valid_label) {
        return Err(
            "expected a bare host name such as social.example.com (IDN in punycode)".into(),
        );
    }
    Ok(full.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_round_trip_and_list_the_choices() {
        for r in [
            Registrations::Open,
            Registrations::Approval,
            Registrations::Closed,
        ] {
            assert_eq!(r.to_string().parse::<Registrations>(), Ok(r));
        }
        assert_eq!("CLUSTER".parse::<RedisMode>(), Ok(RedisMode::Cluster));
        assert_eq!(
            "x".parse::<SmtpTls>(),
            Err("expected starttls, tls or none".to_string())
        );
    }

    #[test]
    fn queue_weights_parse_with_defaults_and_refuse_mistakes() {
        assert_eq!(
            parse_queue_weights("default:8, push:4,mailers"),
            Ok(vec![
                (Queue::Default, 8),
                (Queue::Push, 4),
                (Queue::Mailers, 1)
            ])
        );
        for (bad, expected) in [
            ("default:0", "at least 1"),
            ("default:x", "at least 1"),
            ("inbox:2", "expected default, push"),
            ("push,push:2", "listed twice"),
            (" , ", "queue:weight"),
        ] {
            let err = parse_queue_weights(bad).unwrap_err();
            assert!(err.contains(expected), "{bad}: {err}");
        }
    }

    #[test]
    fn domains_are_canonical_host_names() {
        assert_eq!(
            parse_domain("xn--bcher-kva.example").as_deref(),
            Ok("xn--bcher-kva.example")
        );
        assert_eq!(parse_domain("localhost").as_deref(), Ok("localhost"));
        assert_eq!(
            parse_domain("127.0.0.1:3000").as_deref(),
            Ok("127.0.0.1:3000")
        );
        for bad in [
            "evil.example/victim.example",
            "social.example:",
            "social.example:0",
            "social.example:65536",
            "social.example:+80",
            "social.example:080",
            "social.example:80:80",
            "a..b",
            "-a.example",
            "a_b.example",
            "",
            "u@x.org",
        ] {
            assert!(parse_domain(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
