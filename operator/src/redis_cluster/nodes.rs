//! Parsing of `CLUSTER NODES`, one node per line:
//!
//! ```text
//! <id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot>...
//! ```
//!
//! Slots are ranges (`0-5460`), single slots (`5461`), and, on the `myself` line only, open
//! migrations: `[slot->-target-id]` (migrating) and `[slot-<-source-id]` (importing).

use super::plan::SlotRange;

/// One line of `CLUSTER NODES`: a node as seen by the node that answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: String,
    /// Empty while a node does not know its own address yet (before its first MEET).
    pub ip: String,
    pub port: u16,
    /// Absent in the `ip:port` form of Redis before 4.0.
    pub bus_port: Option<u16>,
    /// Set by `cluster-announce-hostname` (Redis 7).
    pub hostname: Option<String>,
    pub flags: Flags,
    /// The master's id, for a replica.
    pub master_id: Option<String>,
    pub config_epoch: u64,
    pub connected: bool,
    pub slots: Vec<SlotRange>,
    /// `(slot, target id)`: this node is moving the slot's keys away.
    pub migrating: Vec<(u16, String)>,
    /// `(slot, source id)`: this node accepts the slot's keys from the source.
    pub importing: Vec<(u16, String)>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub myself: bool,
    pub master: bool,
    pub replica: bool,
    /// `fail?`: this node cannot reach it (not yet agreed by the majority).
    pub pfail: bool,
    pub fail: bool,
    pub handshake: bool,
    pub noaddr: bool,
    pub nofailover: bool,
}

impl ClusterNode {
    pub fn slot_count(&self) -> usize {
        super::plan::count(&self.slots)
    }

    pub fn holds(&self, slot: u16) -> bool {
        self.slots.iter().any(|r| r.start <= slot && slot <= r.end)
    }

    /// `ip:port` as other nodes and clients reach it.
    pub fn address(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot parse CLUSTER NODES line {line:?}: {reason}")]
pub struct ParseError {
    pub line: String,
    pub reason: String,
}

/// Parses the whole reply; blank lines are skipped.
pub fn parse(text: &str) -> Result<Vec<ClusterNode>, ParseError> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Result<ClusterNode, ParseError> {
    let error = |reason: String| ParseError {
        line: line.to_owned(),
        reason,
    };
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 8 {
        return Err(error(format!(
            "expected at least 8 fields, got {}",
            fields.len()
        )));
    }
    let (ip, port, bus_port, hostname) = parse_address(fields[1]).map_err(error)?;
    let mut node = ClusterNode {
        id: fields[0].to_owned(),
        ip,
        port,
        bus_port,
        hostname,
        flags: parse_flags(fields[2]),
        master_id: (fields[3] != "-").then(|| fields[3].to_owned()),
        config_epoch: fields[6]
            .parse()
            .map_err(|_| error(format!("bad config epoch {:?}", fields[6])))?,
        connected: fields[7] == "connected",
        ..ClusterNode::default()
    };
    for token in &fields[8..] {
        if let Some(open) = token.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            if let Some((slot, target)) = open.split_once("->-") {
                node.migrating
                    .push((parse_slot(slot).map_err(error)?, target.to_owned()));
            } else if let Some((slot, source)) = open.split_once("-<-") {
                node.importing
                    .push((parse_slot(slot).map_err(error)?, source.to_owned()));
            } else {
                return Err(error(format!("unknown slot marker {token:?}")));
            }
        } else if let Some((start, end)) = token.split_once('-') {
            let (start, end) = (
                parse_slot(start).map_err(error)?,
                parse_slot(end).map_err(error)?,
            );
            if start > end {
                return Err(error(format!("empty slot range {token:?}")));
            }
            node.slots.push(SlotRange::new(start, end));
        } else {
            let slot = parse_slot(token).map_err(error)?;
            node.slots.push(SlotRange::new(slot, slot));
        }
    }
    Ok(node)
}

type Address = (String, u16, Option<u16>, Option<String>);

/// `ip:port@cport[,hostname]`; Redis 7.2+ may append `key=value` fields after the hostname.
fn parse_address(field: &str) -> Result<Address, String> {
    let mut parts = field.split(',');
    let endpoint = parts.next().unwrap_or_default();
    let mut hostname = None;
    for extra in parts {
        match extra.split_once('=') {
            Some(("hostname", value)) => hostname = Some(value.to_owned()),
            Some(_) => {}
            None if hostname.is_none() => hostname = Some(extra.to_owned()),
            None => {}
        }
    }
    let hostname = hostname.filter(|h| !h.is_empty());
    let (ip_port, bus_port) = match endpoint.split_once('@') {
        Some((ip_port, bus)) => {
            let bus = bus
                .parse()
                .map_err(|_| format!("bad cluster bus port in {field:?}"))?;
            (ip_port, Some(bus))
        }
        None => (endpoint, None),
    };
    // IPv6 addresses are printed without brackets: the port follows the last colon.
    let (ip, port) = ip_port
        .rsplit_once(':')
        .ok_or_else(|| format!("no port in address {field:?}"))?;
    let port = port
        .parse()
        .map_err(|_| format!("bad port in address {field:?}"))?;
    Ok((ip.to_owned(), port, bus_port, hostname))
}

fn parse_flags(field: &str) -> Flags {
    let mut flags = Flags::default();
    for flag in field.split(',') {
        match flag {
            "myself" => flags.myself = true,
            "master" => flags.master = true,
            "slave" | "replica" => flags.replica = true,
            "fail?" => flags.pfail = true,
            "fail" => flags.fail = true,
            "handshake" => flags.handshake = true,
            "noaddr" => flags.noaddr = true,
            "nofailover" => flags.nofailover = true,
            _ => {}
        }
    }
    flags
}

fn parse_slot(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(slot) if slot < super::plan::SLOT_COUNT => Ok(slot),
        _ => Err(format!("bad slot {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "07c37dfeb235213a872192d90877d0cd55635b91";
    const B: &str = "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1";

    fn node(id: &str, ip: &str, port: u16) -> ClusterNode {
        ClusterNode {
            id: id.to_owned(),
            ip: ip.to_owned(),
            port,
            bus_port: Some(port + 10000),
            connected: true,
            ..ClusterNode::default()
        }
    }

    fn master() -> Flags {
        Flags {
            master: true,
            ..Flags::default()
        }
    }

    #[test]
    fn parses_lines() {
        let r = SlotRange::new;
        let cases: Vec<(&str, String, ClusterNode)> = vec![
            (
                "master with ranges and a single slot",
                format!(
                    "{A} 127.0.0.1:30001@40001 master - 0 1426238317239 4 connected 0-99 200 300-301"
                ),
                ClusterNode {
                    flags: master(),
                    config_epoch: 4,
                    slots: vec![r(0, 99), r(200, 200), r(300, 301)],
                    ..node(A, "127.0.0.1", 30001)
                },
            ),
            (
                "myself master",
                format!("{A} 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-16383"),
                ClusterNode {
                    flags: Flags {
                        myself: true,
                        ..master()
                    },
                    config_epoch: 1,
                    slots: vec![r(0, 16383)],
                    ..node(A, "10.0.0.1", 6379)
                },
            ),
            (
                "replica",
                format!("{B} 10.0.0.2:6379@16379 slave {A} 0 1426238316232 4 connected"),
                ClusterNode {
                    flags: Flags {
                        replica: true,
                        ..Flags::default()
                    },
                    master_id: Some(A.to_owned()),
                    config_epoch: 4,
                    ..node(B, "10.0.0.2", 6379)
                },
            ),
            (
                "failed master, disconnected",
                format!(
                    "{B} 10.0.0.2:6379@16379 master,fail - 1426238316232 1426238316000 2 disconnected 5-6"
                ),
                ClusterNode {
                    flags: Flags {
                        fail: true,
                        ..master()
                    },
                    config_epoch: 2,
                    connected: false,
                    slots: vec![r(5, 6)],
                    ..node(B, "10.0.0.2", 6379)
                },
            ),
            (
                "suspected failure, no failover",
                format!("{B} 10.0.0.2:6379@16379 slave,fail?,nofailover {A} 0 0 2 connected"),
                ClusterNode {
                    flags: Flags {
                        replica: true,
                        pfail: true,
                        nofailover: true,
                        ..Flags::default()
                    },
                    master_id: Some(A.to_owned()),
                    config_epoch: 2,
                    ..node(B, "10.0.0.2", 6379)
                },
            ),
            (
                "fresh node without its own address",
                format!("{A} :6379@16379 myself,master - 0 0 0 connected"),
                ClusterNode {
                    flags: Flags {
                        myself: true,
                        ..master()
                    },
                    ..node(A, "", 6379)
                },
            ),
            (
                "handshake",
                format!("{B} 10.0.0.9:6379@16379 handshake - 0 0 0 disconnected"),
                ClusterNode {
                    flags: Flags {
                        handshake: true,
                        ..Flags::default()
                    },
                    connected: false,
                    ..node(B, "10.0.0.9", 6379)
                },
            ),
            (
                "announced hostname (Redis 7.0)",
                format!(
                    "{A} 10.0.0.1:6379@16379,redis-0.redis.ns.svc master - 0 0 1 connected 0-5460"
                ),
                ClusterNode {
                    hostname: Some("redis-0.redis.ns.svc".to_owned()),
                    flags: master(),
                    config_epoch: 1,
                    slots: vec![r(0, 5460)],
                    ..node(A, "10.0.0.1", 6379)
                },
            ),
            (
                "empty hostname",
                format!("{A} 10.0.0.1:6379@16379, master - 0 0 1 connected"),
                ClusterNode {
                    flags: master(),
                    config_epoch: 1,
                    ..node(A, "10.0.0.1", 6379)
                },
            ),
            (
                "hostname with 7.2 aux fields",
                format!("{A} 10.0.0.1:6379@16379,redis-0,shard-id=abc master - 0 0 1 connected"),
                ClusterNode {
                    hostname: Some("redis-0".to_owned()),
                    flags: master(),
                    config_epoch: 1,
                    ..node(A, "10.0.0.1", 6379)
                },
            ),
            (
                "IPv6",
                format!("{A} fd00::1:6379@16379 master - 0 0 1 connected"),
                ClusterNode {
                    flags: master(),
                    config_epoch: 1,
                    ..node(A, "fd00::1", 6379)
                },
            ),
            (
                "migrating and importing markers",
                format!(
                    "{A} 127.0.0.1:7000@17000 myself,master - 0 0 3 connected 0-100 [5->-{B}] [16383-<-{B}]"
                ),
                ClusterNode {
                    flags: Flags {
                        myself: true,
                        ..master()
                    },
                    config_epoch: 3,
                    slots: vec![r(0, 100)],
                    migrating: vec![(5, B.to_owned())],
                    importing: vec![(16383, B.to_owned())],
                    ..node(A, "127.0.0.1", 7000)
                },
            ),
            (
                "address without bus port (before Redis 4)",
                format!("{A} 127.0.0.1:7000 master - 0 0 1 connected"),
                ClusterNode {
                    bus_port: None,
                    flags: master(),
                    config_epoch: 1,
                    ..node(A, "127.0.0.1", 7000)
                },
            ),
        ];
        for (name, line, want) in cases {
            let got = parse(&line).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, vec![want], "{name}");
        }
    }

    #[test]
    fn parses_a_whole_reply() {
        let text = format!(
            "{A} 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-8191\n\
             {B} 127.0.0.1:7001@17001 master - 0 1700000000000 2 connected 8192-16383\n\n"
        );
        let nodes = parse(&text).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].slot_count() + nodes[1].slot_count(), 16384);
        assert_eq!(nodes[1].address(), "127.0.0.1:7001");
        assert!(nodes[0].holds(0) && nodes[0].holds(8191) && !nodes[0].holds(8192));
    }

    #[test]
    fn refuses_malformed_lines() {
        for line in [
            format!("{A} 127.0.0.1:7000@17000 master -"),
            format!("{A} 127.0.0.1@17000 master - 0 0 1 connected"),
            format!("{A} 127.0.0.1:port@17000 master - 0 0 1 connected"),
            format!("{A} 127.0.0.1:7000@17000 master - 0 0 x connected"),
            format!("{A} 127.0.0.1:7000@17000 master - 0 0 1 connected 16384"),
            format!("{A} 127.0.0.1:7000@17000 master - 0 0 1 connected 10-5"),
            format!("{A} 127.0.0.1:7000@17000 master - 0 0 1 connected [5-?-{B}]"),
        ] {
            assert!(parse(&line).is_err(), "{line}");
        }
    }
}
