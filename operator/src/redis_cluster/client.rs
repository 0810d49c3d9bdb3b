//! One plain connection per node: cluster administration talks to each node itself, never
//! through a cluster-aware client that would follow redirections.

use std::net::IpAddr;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ErrorKind, FromRedisValue, IntoConnectionInfo,
    RedisConnectionInfo, RedisError,
};

use super::ClusterError;
use super::nodes::{self, ClusterNode};

#[derive(Clone, Copy)]
pub(super) struct Timeouts {
    pub connect: Duration,
    /// Must exceed the longest server-side wait a command asks for (MIGRATE's timeout).
    pub response: Duration,
}

pub(super) struct Node {
    /// As given by the caller, for messages.
    pub addr: String,
    /// What other nodes use to reach this one: `CLUSTER MEET` and `MIGRATE` take an IP.
    pub ip: IpAddr,
    pub port: u16,
    conn: MultiplexedConnection,
}

/// `host:port` or `[v6]:port`.
pub(super) fn split_address(node: &str) -> Result<(&str, u16), ClusterError> {
    let invalid = || ClusterError::InvalidAddress {
        node: node.to_owned(),
    };
    let (host, port) = node.rsplit_once(':').ok_or_else(invalid)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = port.parse::<u16>().map_err(|_| invalid())?;
    if host.is_empty() || host.contains(':') && !node.starts_with('[') || port == 0 {
        return Err(invalid());
    }
    Ok((host, port))
}

pub(super) async fn connect(
    addr: &str,
    password: Option<&str>,
    timeouts: Timeouts,
) -> Result<Node, ClusterError> {
    let (host, port) = split_address(addr)?;
    let unreachable = |reason: String| ClusterError::NodeUnreachable {
        node: addr.to_owned(),
        reason,
    };
    let ip =
        match tokio::time::timeout(timeouts.connect, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(mut addrs)) => addrs
                .next()
                .map(|a| a.ip())
                .ok_or_else(|| unreachable(format!("{host} resolves to no address")))?,
            Ok(Err(e)) => return Err(unreachable(format!("cannot resolve {host}: {e}"))),
            Err(_) => return Err(unreachable(format!("resolving {host} timed out"))),
        };
    let mut settings = RedisConnectionInfo::default();
    if let Some(password) = password {
        settings = settings.set_password(password);
    }
    let info = (ip.to_string(), port)
        .into_connection_info()
        .map_err(|e| unreachable(e.to_string()))?
        .set_redis_settings(settings);
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeouts.connect))
        .set_response_timeout(Some(timeouts.response));
    let classify = |e: RedisError| {
        if is_auth_error(&e) {
            ClusterError::AuthFailed {
                node: addr.to_owned(),
                reason: e.to_string(),
            }
        } else {
            unreachable(e.to_string())
        }
    };
    let conn = Client::open(info)
        .map_err(|e| unreachable(e.to_string()))?
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(classify)?;
    let node = Node {
        addr: addr.to_owned(),
        ip,
        port,
        conn,
    };
    // Without a password the handshake succeeds even where one is required; PING is the
    // first command that tells.
    let mut conn = node.conn.clone();
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(classify)?;
    Ok(node)
}

fn is_auth_error(e: &RedisError) -> bool {
    e.kind() == ErrorKind::AuthenticationFailed || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
}

impl Node {
    /// Runs `cmd`; `what` names it in errors (never with a password in it).
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd, what: &str) -> Result<T, ClusterError> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn)
            .await
            .map_err(|source| ClusterError::Command {
                node: self.addr.clone(),
                command: what.to_owned(),
                source,
            })
    }

    pub async fn cluster_nodes(&self) -> Result<Vec<ClusterNode>, ClusterError> {
        let text: String = self
            .query(redis::cmd("CLUSTER").arg("NODES"), "CLUSTER NODES")
            .await?;
        let nodes = nodes::parse(&text).map_err(|e| ClusterError::UnexpectedReply {
            node: self.addr.clone(),
            command: "CLUSTER NODES",
            detail: e.to_string(),
        })?;
        if nodes.iter().filter(|n| n.flags.myself).count() != 1 {
            return Err(ClusterError::UnexpectedReply {
                node: self.addr.clone(),
                command: "CLUSTER NODES",
                detail: "no single line flagged myself".to_owned(),
            });
        }
        Ok(nodes)
    }

    pub async fn cluster_info(&self) -> Result<String, ClusterError> {
        self.query(redis::cmd("CLUSTER").arg("INFO"), "CLUSTER INFO")
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_addresses() {
        for (input, want) in [
            ("127.0.0.1:6379", Some(("127.0.0.1", 6379))),
            (
                "redis-0.redis.ns.svc:6379",
                Some(("redis-0.redis.ns.svc", 6379)),
            ),
            ("[::1]:7000", Some(("::1", 7000))),
            ("redis-0", None),
            (":6379", None),
            ("host:0", None),
            ("host:port", None),
            ("::1:6379", None),
        ] {
            assert_eq!(split_address(input).ok(), want, "{input}");
        }
    }
}
