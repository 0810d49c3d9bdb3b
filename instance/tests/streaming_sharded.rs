//! Sharded pub/sub on Redis Cluster: the streamer subscribes with `SSUBSCRIBE` on the shard
//! that owns each channel's slot and publishers use `SPUBLISH`, so that no event is
//! broadcast to every node; channels follow their slot when it fails over or migrates, and
//! clients stay connected meanwhile. A standalone Redis keeps `SUBSCRIBE`/`PUBLISH`, and a
//! cluster without sharded pub/sub (simulated by renaming its commands away) falls back to
//! them.
//!
//! The shared 6-node cluster of `make services-up` serves the delivery test; tests that
//! kill a node, move a slot or need another server configuration run clusters of their own
//! on free ports, as `redis_failover.rs` does.

mod common;
#[path = "streaming/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use fedi_server::events::{Event, channel};
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(10);
/// For one command on one node.
const NODE_TIMEOUT: Duration = Duration::from_secs(2);
/// Ports of the shared services (Redis, cluster nodes, cluster buses), which must not be
/// taken even while one of them restarts.
const RESERVED_PORTS: &[u16] = &[
    16379, 17001, 17002, 17003, 17004, 17005, 17006, 26379, 27001, 27002, 27003, 27004, 27005,
    27006,
];

/// One command on one node, over a connection of its own: each node's own view.
async fn query<T: redis::FromRedisValue>(url: &str, cmd: &mut redis::Cmd) -> anyhow::Result<T> {
    let client = redis::Client::open(url)?;
    let work = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        cmd.query_async::<T>(&mut conn).await
    };
    Ok(tokio::time::timeout(NODE_TIMEOUT, work).await??)
}

fn node_url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
struct NodeLine {
    id: String,
    port: u16,
    flags: Vec<String>,
    master_id: String,
    /// Slot ranges served (importing/migrating markers left out).
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn is(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
    }
}

async fn cluster_nodes(url: &str) -> anyhow::Result<Vec<NodeLine>> {
    let text: String = query(url, redis::cmd("CLUSTER").arg("NODES")).await?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            anyhow::ensure!(f.len() >= 8, "short CLUSTER NODES line: {line}");
            let port = f[1]
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("no port in {line}"))?;
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|n| (n, n)),
                })
                .collect();
            Ok(NodeLine {
                id: f[0].to_string(),
                port,
                flags: f[2].split(',').map(str::to_string).collect(),
                master_id: f[3].to_string(),
                slots,
            })
        })
        .collect()
}

async fn cluster_ok(url: &str) -> bool {
    query::<String>(url, redis::cmd("CLUSTER").arg("INFO"))
        .await
        .is_ok_and(|info| info.lines().any(|l| l.trim() == "cluster_state:ok"))
}

/// The channel on Redis of a stream channel: the streamers here are `test.example`'s.
fn on_redis(ch: &str) -> String {
    fedi_server::redis_keys::Namespace::new("test.example").channel(ch)
}

/// The slot of the stream channel `ch` (as on Redis).
async fn key_slot(url: &str, ch: &str) -> u16 {
    query(url, redis::cmd("CLUSTER").arg("KEYSLOT").arg(on_redis(ch)))
        .await
        .unwrap()
}

/// A hashtag whose channel lives on each master (`(master port, tag, channel)`), so that a
/// test covers every shard.
async fn tag_per_master(url: &str, nodes: &[NodeLine]) -> Vec<(u16, String, String)> {
    let masters: Vec<&NodeLine> = nodes
        .iter()
        .filter(|n| n.is("master") && !n.slots.is_empty())
        .collect();
    let mut found: BTreeMap<u16, (String, String)> = BTreeMap::new();
    for i in 0.. {
        if found.len() == masters.len() {
            break;
        }
        let tag = format!("shard{i}");
        let ch = channel::hashtag(&tag, false);
        let slot = key_slot(url, &ch).await;
        let owner = masters.iter().find(|m| m.owns(slot)).expect("slot served");
        found.entry(owner.port).or_insert((tag, ch));
    }
    found.into_iter().map(|(p, (t, c))| (p, t, c)).collect()
}

/// `PUBSUB SHARDCHANNELS` of one node: the stream channels (of `test.example`) someone
/// subscribed there as shard channels.
async fn shard_channels(url: &str) -> BTreeSet<String> {
    let ns = fedi_server::redis_keys::Namespace::new("test.example");
    query::<Vec<String>>(url, redis::cmd("PUBSUB").arg("SHARDCHANNELS"))
        .await
        .unwrap()
        .iter()
        .filter_map(|c| ns.channel_name(c).map(String::from))
        .collect()
}

async fn numsub(url: &str, ch: &str) -> i64 {
    let reply: Vec<(String, i64)> =
        query(url, redis::cmd("PUBSUB").arg("NUMSUB").arg(on_redis(ch)))
            .await
            .unwrap();
    reply[0].1
}

async fn shard_numsub(url: &str, ch: &str) -> i64 {
    let reply: Vec<(String, i64)> = query(
        url,
        redis::cmd("PUBSUB").arg("SHARDNUMSUB").arg(on_redis(ch)),
    )
    .await
    .unwrap();
    reply[0].1
}

/// Calls of `command` on one node since its statistics were reset (`INFO commandstats`).
async fn calls(url: &str, command: &str) -> u64 {
    let info: String = query(url, redis::cmd("INFO").arg("commandstats"))
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// `redis-server` processes of one test, killed and their directories removed on drop.
struct OwnCluster {
    root: PathBuf,
    /// Further `redis-server` arguments of every node.
    extra: Vec<String>,
    /// `(port, bus port, process)`.
    nodes: Vec<(u16, u16, Option<Child>)>,
}

impl OwnCluster {
    /// `masters` masters with `replicas` replicas each, formed by `redis-cli --cluster
    /// create` and settled (every node sees every master with its replicas); `extra`:
    /// further `redis-server` arguments.
    async fn start(masters: usize, replicas: usize, extra: &[&str]) -> Self {
        let n = masters * (replicas + 1);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let root = std::env::temp_dir().join(format!(
            "fedi-sharded-pubsub-{}-{nanos}",
            std::process::id()
        ));
        let ports = free_ports(2 * n);
        let mut cluster = OwnCluster {
            root: root.clone(),
            extra: extra.iter().map(|a| a.to_string()).collect(),
            nodes: Vec::new(),
        };
        for pair in ports.chunks(2) {
            let child = cluster.spawn(pair[0], pair[1]);
            cluster.nodes.push((pair[0], pair[1], Some(child)));
        }
        for url in cluster.urls() {
            eventually(WAIT, &format!("{url} to answer"), || async {
                query::<String>(&url, &mut redis::cmd("PING")).await.ok()
            })
            .await;
        }
        let create = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(cluster.nodes.iter().map(|(p, ..)| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli is installed by `make services-up`");
        assert!(
            create.status.success(),
            "redis-cli --cluster create failed:\n{}",
            String::from_utf8_lossy(&create.stdout)
        );
        let urls = cluster.urls();
        eventually(
            Duration::from_secs(20),
            "every node to see the whole cluster, ok",
            || async {
                for url in &urls {
                    let nodes = cluster_nodes(url).await.ok()?;
                    let full: Vec<&NodeLine> = nodes
                        .iter()
                        .filter(|m| m.is("master") && !m.slots.is_empty())
                        .collect();
                    let settled = nodes.len() == n
                        && full.len() == masters
                        && full.iter().all(|m| {
                            nodes.iter().filter(|r| r.master_id == m.id).count() == replicas
                        });
                    if !settled || !cluster_ok(url).await {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;
        cluster
    }

    /// A node in its own directory, where its `nodes.conf` outlives a restart.
    fn spawn(&self, port: u16, bus: u16) -> Child {
        let dir = self.root.join(port.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-port", &bus.to_string()])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--appendonly", "no", "--save", ""])
            .args(["--repl-diskless-sync-delay", "0"])
            .args(&self.extra)
            .arg("--dir")
            .arg(&dir)
            .args(["--logfile", "redis.log"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed by `make services-up`")
    }

    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|(p, ..)| node_url(*p)).collect()
    }

    fn kill(&mut self, port: u16) {
        let (.., child) = self.nodes.iter_mut().find(|(p, ..)| *p == port).unwrap();
        if let Some(mut child) = child.take() {
            // SIGKILL: no graceful hand-over.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the node on `port` and starts it again, same port and configuration.
    fn restart(&mut self, port: u16) {
        self.kill(port);
        let i = self.nodes.iter().position(|(p, ..)| *p == port).unwrap();
        let child = self.spawn(port, self.nodes[i].1);
        self.nodes[i].2 = Some(child);
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let ports: Vec<u16> = self.nodes.iter().map(|(p, ..)| *p).collect();
        for port in ports {
            self.kill(port);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Free loopback ports (node and bus ports), held together so that none repeats.
fn free_ports(n: usize) -> Vec<u16> {
    let mut held = Vec::new();
    while held.len() < n {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        if !RESERVED_PORTS.contains(&listener.local_addr().unwrap().port()) {
            held.push(listener);
        }
    }
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A user's token with `read`.
async fn token(db: &str) -> String {
    let (_, user) = create_user(db, "alice", "correct horse battery").await;
    issue_token(db, Some(user), "read").await
}

/// A WebSocket client of `streamer` listening to the hashtag stream of every tag.
async fn hashtag_client(streamer: &Server, token: &str, tags: &[(u16, String, String)]) -> Ws {
    let mut ws = Ws::connect(&streamer.base_url, "", Auth::Header(token))
        .await
        .unwrap();
    for (_, tag, _) in tags {
        ws.subscribe("hashtag", json!({ "tag": tag })).await;
    }
    ws
}

/// Publishes one `update` per channel and returns, for each, the `(tag, status id)` the
/// client received, in arrival order.
async fn deliver_one_each(
    state: &fedi_server::state::AppState,
    ws: &mut Ws,
    tags: &[(u16, String, String)],
    first_id: i64,
) -> BTreeSet<(String, String)> {
    for (i, (_, _, ch)) in tags.iter().enumerate() {
        publish(
            state,
            ch,
            &Event::update(&status(first_id + i as i64, 9, "x", None)),
        )
        .await;
    }
    let mut got = BTreeSet::new();
    for _ in tags {
        let frame = ws.next(WAIT).await.expect("an update");
        got.insert((
            frame["stream"][1].as_str().unwrap().to_string(),
            serde_json::from_str::<serde_json::Value>(frame["payload"].as_str().unwrap()).unwrap()
                ["id"]
                .as_str()
                .unwrap()
                .to_string(),
        ));
    }
    got
}

fn expected(tags: &[(u16, String, String)], first_id: i64) -> BTreeSet<(String, String)> {
    tags.iter()
        .enumerate()
        .map(|(i, (_, t, _))| (t.clone(), (first_id + i as i64).to_string()))
        .collect()
}

#[tokio::test]
async fn events_reach_two_streamers_through_sharded_channels_on_every_shard() {
    let db = migrated_database().await;
    let (nodes, env) = redis_env(true);
    let urls: Vec<String> = nodes.split(',').map(str::to_string).collect();
    let one = start_streamer(&db, &nodes, &env).await;
    let two = start_streamer(&db, &nodes, &env).await;
    assert_ne!(one.base_url, two.base_url);
    let state = app_state(&db, &nodes, true);
    let token = token(&db).await;

    let view = cluster_nodes(&urls[0]).await.unwrap();
    let tags = tag_per_master(&urls[0], &view).await;
    assert!(tags.len() >= 3, "channels on three shards: {tags:?}");
    let mut a = hashtag_client(&one, &token, &tags).await;
    let mut b = hashtag_client(&two, &token, &tags).await;
    for (_, _, ch) in &tags {
        until_subscribed(&mut a, &state, ch, WAIT).await;
        until_subscribed(&mut b, &state, ch, WAIT).await;
    }

    // Where the subscriptions are: on each channel's own master, as shard channels (both
    // streamers), nowhere as ordinary channels, and on no other master.
    for (port, _, ch) in &tags {
        let owner = node_url(*port);
        assert!(
            shard_numsub(&owner, ch).await >= 2,
            "{ch}: both streamers on {owner}"
        );
        for n in view.iter().filter(|n| n.is("master")) {
            let url = node_url(n.port);
            assert_eq!(numsub(&url, ch).await, 0, "{ch}: no SUBSCRIBE on {url}");
            assert_eq!(
                shard_channels(&url).await.contains(ch),
                n.port == *port,
                "{ch} among the shard channels of {url}"
            );
        }
    }

    let want = expected(&tags, 100);
    assert_eq!(deliver_one_each(&state, &mut a, &tags, 100).await, want);
    let mut got_b = BTreeSet::new();
    for _ in &tags {
        let frame = b
            .next(WAIT)
            .await
            .expect("an update on the second streamer");
        assert_eq!(frame["event"], "update");
        got_b.insert((
            frame["stream"][1].as_str().unwrap().to_string(),
            serde_json::from_str::<serde_json::Value>(frame["payload"].as_str().unwrap()).unwrap()
                ["id"]
                .as_str()
                .unwrap()
                .to_string(),
        ));
    }
    assert_eq!(got_b, want);
}

#[tokio::test]
async fn a_killed_masters_channels_resume_on_its_replica_and_nothing_is_broadcast() {
    let mut cluster = OwnCluster::start(3, 1, &[]).await;
    let urls = cluster.urls();
    let nodes = urls.join(",");
    let db = migrated_database().await;
    let streamer = start_streamer(&db, &nodes, &[("FEDI_REDIS_MODE", "cluster")]).await;
    let state = app_state(&db, &nodes, true);
    let token = token(&db).await;
    let view = cluster_nodes(&urls[0]).await.unwrap();
    let tags = tag_per_master(&urls[0], &view).await;
    assert_eq!(tags.len(), 3);
    let mut ws = hashtag_client(&streamer, &token, &tags).await;
    for (_, _, ch) in &tags {
        until_subscribed(&mut ws, &state, ch, WAIT).await;
    }

    // From here on, no node may see an ordinary PUBLISH: each event goes to its shard.
    for url in &urls {
        let _: () = query(url, redis::cmd("CONFIG").arg("RESETSTAT"))
            .await
            .unwrap();
    }
    assert_eq!(
        deliver_one_each(&state, &mut ws, &tags, 1).await,
        expected(&tags, 1)
    );
    let mut spublished = HashMap::new();
    for url in &urls {
        assert_eq!(calls(url, "publish").await, 0, "PUBLISH on {url}");
        spublished.insert(url.clone(), calls(url, "spublish").await);
    }
    for (port, _, _) in &tags {
        assert!(spublished[&node_url(*port)] >= 1, "SPUBLISH on {port}");
    }

    // The first shard's master dies; its replica takes over.
    let (victim, _, lost_channel) = tags[0].clone();
    let victim_id = view.iter().find(|n| n.port == victim).unwrap().id.clone();
    let heir = view
        .iter()
        .find(|n| n.master_id == victim_id)
        .expect("a replica")
        .port;
    let killed = Instant::now();
    cluster.kill(victim);

    // The other shards keep delivering meanwhile.
    until_subscribed(&mut ws, &state, &tags[1].2, Duration::from_secs(20)).await;
    let other_shards = killed.elapsed();

    let heir_url = node_url(heir);
    eventually(
        Duration::from_secs(30),
        "the replica to be promoted",
        || async {
            let nodes = cluster_nodes(&heir_url).await.ok()?;
            let h = nodes.iter().find(|n| n.port == heir)?;
            (h.is("master") && !h.slots.is_empty() && cluster_ok(&heir_url).await).then_some(())
        },
    )
    .await;
    let promoted = killed.elapsed();
    until_subscribed(&mut ws, &state, &lost_channel, Duration::from_secs(30)).await;
    let resumed = killed.elapsed();
    eprintln!(
        "failover: other shards delivering {other_shards:?} after the kill, replica promoted \
         after {promoted:?}, its channel delivering again after {resumed:?}"
    );
    assert!(
        shard_channels(&heir_url).await.contains(&lost_channel),
        "{lost_channel} subscribed on the promoted replica"
    );
    assert_eq!(numsub(&heir_url, &lost_channel).await, 0);
    // The client never noticed: the same connection gets every shard's events.
    assert_eq!(
        deliver_one_each(&state, &mut ws, &tags, 10).await,
        expected(&tags, 10)
    );
    for url in urls.iter().filter(|u| **u != node_url(victim)) {
        assert_eq!(calls(url, "publish").await, 0, "PUBLISH on {url}");
    }
}

#[tokio::test]
async fn a_channel_follows_its_slot_to_another_shard() {
    let cluster = OwnCluster::start(3, 0, &[]).await;
    let urls = cluster.urls();
    let nodes = urls.join(",");
    let db = migrated_database().await;
    let streamer = start_streamer(&db, &nodes, &[("FEDI_REDIS_MODE", "cluster")]).await;
    let state = app_state(&db, &nodes, true);
    let token = token(&db).await;
    let view = cluster_nodes(&urls[0]).await.unwrap();
    let tags = tag_per_master(&urls[0], &view).await;
    let mut ws = hashtag_client(&streamer, &token, &tags).await;
    for (_, _, ch) in &tags {
        until_subscribed(&mut ws, &state, ch, WAIT).await;
    }

    // The first channel's slot moves to the second master, as a resharding does it.
    let (from, _, moving) = tags[0].clone();
    let to = tags[1].0;
    let slot = key_slot(&urls[0], &moving).await;
    let id = |port: u16| view.iter().find(|n| n.port == port).unwrap().id.clone();
    let (from_url, to_url) = (node_url(from), node_url(to));
    let _: () = query(
        &to_url,
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("IMPORTING")
            .arg(id(from)),
    )
    .await
    .unwrap();
    let _: () = query(
        &from_url,
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("MIGRATING")
            .arg(id(to)),
    )
    .await
    .unwrap();
    loop {
        let keys: Vec<String> = query(
            &from_url,
            redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100),
        )
        .await
        .unwrap();
        if keys.is_empty() {
            break;
        }
        let _: String = query(
            &from_url,
            redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(to)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys),
        )
        .await
        .unwrap();
    }
    let moved = Instant::now();
    for url in [&to_url, &from_url] {
        let _: () = query(
            url,
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(id(to)),
        )
        .await
        .unwrap();
    }
    // The old owner said `sunsubscribe`; the streamer subscribes where the slot is now.
    until_subscribed(&mut ws, &state, &moving, Duration::from_secs(20)).await;
    eprintln!(
        "slot migration: channel delivering again {:?} after the move",
        moved.elapsed()
    );
    assert!(shard_channels(&to_url).await.contains(&moving));
    assert!(!shard_channels(&from_url).await.contains(&moving));
    assert_eq!(
        deliver_one_each(&state, &mut ws, &tags, 20).await,
        expected(&tags, 20)
    );
}

#[tokio::test]
async fn a_standalone_redis_keeps_ordinary_channels() {
    let db = migrated_database().await;
    let (redis, env) = redis_env(false);
    let streamer = start_streamer(&db, &redis, &env).await;
    let state = app_state(&db, &redis, false);
    let token = token(&db).await;
    let tags = vec![(
        0,
        "standalonetag".to_string(),
        channel::hashtag("standalonetag", false),
    )];
    let mut ws = hashtag_client(&streamer, &token, &tags).await;
    until_subscribed(&mut ws, &state, &tags[0].2, WAIT).await;
    assert!(numsub(&redis, &tags[0].2).await >= 1);
    assert_eq!(shard_numsub(&redis, &tags[0].2).await, 0);
    assert_eq!(
        deliver_one_each(&state, &mut ws, &tags, 1).await,
        expected(&tags, 1)
    );
}

#[tokio::test]
async fn a_cluster_without_sharded_pubsub_falls_back_to_ordinary_channels() {
    // Redis before 7.0 does not know these commands; renaming them away says the same.
    let cluster = OwnCluster::start(
        3,
        0,
        &[
            "--rename-command",
            "SPUBLISH",
            "",
            "--rename-command",
            "SSUBSCRIBE",
            "",
            "--rename-command",
            "SUNSUBSCRIBE",
            "",
        ],
    )
    .await;
    let urls = cluster.urls();
    let nodes = urls.join(",");
    let db = migrated_database().await;
    let streamer = start_streamer(&db, &nodes, &[("FEDI_REDIS_MODE", "cluster")]).await;
    let state = app_state(&db, &nodes, true);
    let token = token(&db).await;
    let view = cluster_nodes(&urls[0]).await.unwrap();
    let tags = tag_per_master(&urls[0], &view).await;
    let mut ws = hashtag_client(&streamer, &token, &tags).await;
    for (_, _, ch) in &tags {
        until_subscribed(&mut ws, &state, ch, WAIT).await;
    }
    // Subscribed once, on the channel's own master (where the redis crate would subscribe
    // it again after a topology change), so that no message arrives twice.
    for (port, _, ch) in &tags {
        for url in &urls {
            let want = i64::from(*url == node_url(*port));
            assert_eq!(numsub(url, ch).await, want, "{ch}: SUBSCRIBE on {url}");
        }
    }
    assert_eq!(
        deliver_one_each(&state, &mut ws, &tags, 1).await,
        expected(&tags, 1)
    );
}

#[tokio::test]
async fn a_restarted_master_gets_its_channels_back_and_clients_stay() {
    let mut cluster = OwnCluster::start(3, 0, &[]).await;
    let urls = cluster.urls();
    let nodes = urls.join(",");
    let db = migrated_database().await;
    let streamer = start_streamer(&db, &nodes, &[("FEDI_REDIS_MODE", "cluster")]).await;
    let state = app_state(&db, &nodes, true);
    let token = token(&db).await;
    let view = cluster_nodes(&urls[0]).await.unwrap();
    let tags = tag_per_master(&urls[0], &view).await;
    let mut ws = hashtag_client(&streamer, &token, &tags).await;
    for (_, _, ch) in &tags {
        until_subscribed(&mut ws, &state, ch, WAIT).await;
    }

    // Back on the same port with its slots (nodes.conf) but, like any restarted server,
    // without a single subscription.
    let (port, _, channel) = tags[0].clone();
    let restarted = Instant::now();
    cluster.restart(port);
    let url = node_url(port);
    eventually(
        Duration::from_secs(20),
        "the restarted master to serve its slots",
        || async { cluster_ok(&url).await.then_some(()) },
    )
    .await;
    until_subscribed(&mut ws, &state, &channel, Duration::from_secs(30)).await;
    eprintln!(
        "restart: channel delivering again {:?} after the kill",
        restarted.elapsed()
    );
    assert!(shard_channels(&url).await.contains(&channel));
    assert_eq!(
        deliver_one_each(&state, &mut ws, &tags, 30).await,
        expected(&tags, 30)
    );
}
