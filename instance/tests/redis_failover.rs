//! A Redis Cluster master killed under a running `fedi-server api`: its replica takes over,
//! the server becomes ready again without a restart, and no acknowledged write is lost.
//!
//! The test runs its own six-node cluster (the shared one of `make services-up` is used by
//! other tests and must not lose a master) and forms it with `redis-cli --cluster create`,
//! the tool an operator would use by hand, so the test needs no dependency on the operator.
//!
//! It also pins down `/readyz` in cluster mode: unready while the cluster refuses keyed
//! commands (CLUSTERDOWN), which PING alone did not show, and for good once a shard has no
//! replica left.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

const PASSWORD: &str = "failover-test-pw";
const SLOTS: u16 = 16384;
/// Ports of the shared services (their Redis, cluster nodes and cluster buses): even while
/// one of them is being restarted and its port looks free, this test must not take it.
const RESERVED_PORTS: &[u16] = &[
    16379, 17001, 17002, 17003, 17004, 17005, 17006, 26379, 27001, 27002, 27003, 27004, 27005,
    27006,
];
/// For one command on one node; a node that does not answer in this time counts as down
/// for this poll.
const NODE_TIMEOUT: Duration = Duration::from_secs(2);

struct Node {
    port: u16,
    bus_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL: the node must not get the chance to hand over gracefully.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Six `redis-server` processes, killed and their directories removed when dropped, so a
/// failing test leaves nothing running.
struct TestCluster {
    root: PathBuf,
    nodes: Vec<Node>,
}

impl TestCluster {
    fn kill(&mut self, port: u16) {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster")
            .kill();
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        if std::thread::panicking() {
            for node in &self.nodes {
                let log = std::fs::read_to_string(node.dir.join("redis.log")).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                eprintln!("--- redis {} (end of its log) ---", node.addr());
                for line in &lines[lines.len().saturating_sub(15)..] {
                    eprintln!("{line}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Free loopback ports, held open together so no two are the same. Each node gets its bus
/// port from here too: the default `port + 10000` may be taken or above 65535, and with
/// `--cluster-port` the cluster only settles if CLUSTER MEET carries the bus port.
fn free_ports(n: usize) -> Vec<u16> {
    let mut held = Vec::new();
    while held.len() < n {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if !RESERVED_PORTS.contains(&port) {
            held.push(listener);
        }
    }
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

async fn start_cluster() -> TestCluster {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let root = std::env::temp_dir().join(format!(
        "fedi-redis-failover-{}-{nanos}",
        std::process::id()
    ));
    let ports = free_ports(12);
    let mut cluster = TestCluster {
        root: root.clone(),
        nodes: Vec::new(),
    };
    for pair in ports.chunks(2) {
        let (port, bus_port) = (pair[0], pair[1]);
        let dir = root.join(port.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-port", &bus_port.to_string()])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--appendonly", "no", "--save", ""])
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--requirepass", PASSWORD, "--masterauth", PASSWORD])
            .arg("--dir")
            .arg(&dir)
            .args(["--logfile", "redis.log"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed by `make services-up`");
        cluster.nodes.push(Node {
            port,
            bus_port,
            dir,
            child: Some(child),
        });
    }
    for node in &cluster.nodes {
        let url = node.url();
        eventually(
            Duration::from_secs(10),
            &format!("redis-server on {} to answer", node.addr()),
            || async { query::<String>(&url, redis::cmd("PING")).await.ok() },
        )
        .await;
    }
    cluster
}

/// One command on one node, over a connection of its own: the polls below must see each
/// node's own view, never a cluster client's routing.
async fn query<T: redis::FromRedisValue>(url: &str, cmd: redis::Cmd) -> anyhow::Result<T> {
    let info = redis::IntoConnectionInfo::into_connection_info(url)?;
    let settings = info.redis_settings().clone().set_password(PASSWORD);
    let client = redis::Client::open(info.set_redis_settings(settings))?;
    let work = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        cmd.query_async::<T>(&mut conn).await
    };
    Ok(tokio::time::timeout(NODE_TIMEOUT, work).await??)
}

fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix(field)?.strip_prefix(':'))
}

/// One line of `CLUSTER NODES`.
#[derive(Debug)]
struct NodeLine {
    id: String,
    port: u16,
    flags: Vec<String>,
    master_id: String,
    has_slots: bool,
}

impl NodeLine {
    fn is(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

async fn cluster_nodes(url: &str) -> anyhow::Result<Vec<NodeLine>> {
    let text: String = query(url, redis::cmd("CLUSTER").arg("NODES").clone()).await?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            anyhow::ensure!(f.len() >= 8, "short CLUSTER NODES line: {line}");
            // ip:port@cport[,hostname]
            let port = f[1]
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("no port in {line}"))?;
            Ok(NodeLine {
                id: f[0].to_string(),
                port,
                flags: f[2].split(',').map(str::to_string).collect(),
                master_id: f[3].to_string(),
                has_slots: f.len() > 8,
            })
        })
        .collect()
}

async fn cluster_state_ok(url: &str) -> bool {
    match query::<String>(url, redis::cmd("CLUSTER").arg("INFO").clone()).await {
        Ok(info) => info_field(&info, "cluster_state") == Some("ok"),
        Err(_) => false,
    }
}

/// Redis Cluster's key hash (CRC16/XMODEM), to pick one key per slot.
fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One key for every slot, so whichever master dies, it held some of them.
fn key_per_slot() -> Vec<(String, String)> {
    let mut by_slot: BTreeMap<u16, String> = BTreeMap::new();
    let mut n = 0u64;
    while by_slot.len() < usize::from(SLOTS) {
        let key = format!("failover:{n}");
        by_slot.entry(crc16(key.as_bytes()) % SLOTS).or_insert(key);
        n += 1;
    }
    by_slot
        .into_values()
        .map(|k| {
            let v = format!("value-of-{k}");
            (k, v)
        })
        .collect()
}

fn cluster_client(cluster: &TestCluster, skip_port: Option<u16>) -> ClusterClient {
    let urls: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| Some(n.port) != skip_port)
        .map(Node::url)
        .collect();
    ClusterClient::builder(urls)
        .password(PASSWORD)
        .build()
        .unwrap()
}

/// Reads every key back and writes it again, one command per key, on clones of `conn` in
/// parallel; returns the keys that did not hold their value.
async fn each_key(conn: &ClusterConnection, pairs: &[(String, String)]) -> Vec<String> {
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in pairs.chunks(512) {
        let (mut conn, chunk) = (conn.clone(), chunk.to_vec());
        tasks.spawn(async move {
            let mut lost = Vec::new();
            for (k, v) in chunk {
                let got: Option<String> = redis::cmd("GET")
                    .arg(&k)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                redis::cmd("SET")
                    .arg(&k)
                    .arg(&v)
                    .query_async::<()>(&mut conn)
                    .await
                    .unwrap();
                if got.as_deref() != Some(v.as_str()) {
                    lost.push(k);
                }
            }
            lost
        });
    }
    let mut lost = Vec::new();
    while let Some(chunk) = tasks.join_next().await {
        lost.extend(chunk.unwrap());
    }
    lost
}

/// Cluster client calls have no deadline of their own: a hang must fail the test, not stall it.
async fn within<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 10 s"))
}

/// A `/readyz` answer seen while the master was down or coming back.
struct Sample {
    at: Duration,
    status: u16,
    body: String,
}

#[tokio::test]
async fn a_killed_cluster_master_fails_over_and_the_server_recovers() {
    let test_start = Instant::now();
    let mut cluster = start_cluster().await;

    let create = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(cluster.nodes.iter().map(Node::addr))
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        // Not `-a`: redis-cli warns about passwords on the command line.
        .env("REDISCLI_AUTH", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli is installed by `make services-up`");
    assert!(
        create.status.success(),
        "redis-cli --cluster create failed:\n{}\n{}",
        String::from_utf8_lossy(&create.stdout),
        String::from_utf8_lossy(&create.stderr)
    );
    let urls: Vec<String> = cluster.nodes.iter().map(Node::url).collect();
    // cluster_state:ok comes before gossip has told every node who replicates whom: wait
    // until each node sees three masters with slots and a replica for each.
    let nodes = eventually(
        Duration::from_secs(15),
        "all six nodes to agree on three masters with a replica each",
        || async {
            let mut view = None;
            for url in &urls {
                let nodes = cluster_nodes(url).await.ok()?;
                let masters: Vec<&NodeLine> = nodes
                    .iter()
                    .filter(|n| n.is("master") && n.has_slots)
                    .collect();
                let complete = nodes.len() == 6
                    && masters.len() == 3
                    && masters
                        .iter()
                        .all(|m| nodes.iter().filter(|n| n.master_id == m.id).count() == 1);
                if !complete || !cluster_state_ok(url).await {
                    return None;
                }
                view = Some(nodes);
            }
            view
        },
    )
    .await;
    let formed = test_start.elapsed();

    // Master to kill and the replica that must replace it, as the cluster itself sees them.
    let victim = nodes
        .iter()
        .find(|n| n.is("master") && n.has_slots)
        .expect("a master with slots");
    let heir = nodes
        .iter()
        .find(|n| n.master_id == victim.id)
        .expect("the master has a replica");
    let (victim_port, victim_id, heir_port, heir_id) =
        (victim.port, victim.id.clone(), heir.port, heir.id.clone());
    let masters: Vec<u16> = nodes
        .iter()
        .filter(|n| n.is("master"))
        .map(|n| n.port)
        .collect();
    assert_eq!(masters.len(), 3, "{nodes:?}");

    let db = fresh_database().await;
    let server = start_api_with(
        &db,
        &urls.join(","),
        &[
            ("FEDI_REDIS_MODE", "cluster"),
            ("FEDI_REDIS_PASSWORD", PASSWORD),
        ],
    )
    .await;
    let http = reqwest::Client::builder()
        // Longer than the server's own 3 s dependency check, so a slow answer is a sample,
        // not a client error.
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let readyz = format!("{}/readyz", server.base_url);
    let mut bodies = vec![
        eventually(
            Duration::from_secs(15),
            "/readyz 200 on the healthy cluster",
            || async {
                let r = http.get(&readyz).send().await.ok()?;
                (r.status() == 200).then_some(())?;
                r.text().await.ok()
            },
        )
        .await,
    ];

    // The server has no Redis-writing endpoint yet: the test writes itself, through a
    // cluster client, one key in every slot. Its connection stays open through the failover,
    // as the server's does, to show that such a connection keeps reading and writing.
    let pairs = key_per_slot();
    let mut mset = redis::cmd("MSET");
    for (k, v) in &pairs {
        mset.arg(k).arg(v);
    }
    let mut mget = redis::cmd("MGET");
    for (k, _) in &pairs {
        mget.arg(k);
    }
    let mut long_lived = within(
        "connecting to the cluster",
        cluster_client(&cluster, None).get_async_connection(),
    )
    .await
    .unwrap();
    within("MSET", mset.query_async::<()>(&mut long_lived))
        .await
        .unwrap();
    // The CRC above must agree with Redis, or "every slot" would be a claim, not a fact.
    for (k, _) in pairs.iter().step_by(997) {
        let slot: u16 = query(
            &urls[0],
            redis::cmd("CLUSTER").arg("KEYSLOT").arg(k).clone(),
        )
        .await
        .unwrap();
        assert_eq!(slot, crc16(k.as_bytes()) % SLOTS, "{k}");
    }
    let mut total = 0;
    for port in &masters {
        total += query::<usize>(&format!("redis://127.0.0.1:{port}"), redis::cmd("DBSIZE"))
            .await
            .unwrap();
    }
    assert_eq!(total, usize::from(SLOTS), "one key per slot on the masters");

    // Asynchronous replication: a write the replica has not received is legitimately lost
    // with its master. Only once the replica has acknowledged everything may the test
    // demand that nothing is lost.
    let victim_url = format!("redis://127.0.0.1:{victim_port}");
    eventually(
        Duration::from_secs(10),
        "the replica to acknowledge the master's whole replication stream",
        || async {
            let info: String = query(&victim_url, redis::cmd("INFO").arg("replication").clone())
                .await
                .ok()?;
            let master: u64 = info_field(&info, "master_repl_offset")?.parse().ok()?;
            let replica = info_field(&info, "slave0")?;
            let acked: u64 = replica
                .split(',')
                .find_map(|kv| kv.strip_prefix("offset="))?
                .parse()
                .ok()?;
            (replica.contains(&format!("port={heir_port},"))
                && replica.contains("state=online")
                && acked == master)
                .then_some(())
        },
    )
    .await;

    // From here on every /readyz answer is recorded, to time the outage and to check that
    // none of them names a node or the password.
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let killed_at = Instant::now();
    let poller = {
        let (samples, http, readyz) = (samples.clone(), http.clone(), readyz.clone());
        tokio::spawn(async move {
            loop {
                let sent = killed_at.elapsed();
                let (status, body) = match http.get(&readyz).send().await {
                    Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                    // Not a body the server sent: kept out of the leak check below.
                    Err(_) => (0, String::new()),
                };
                samples.lock().unwrap().push(Sample {
                    at: sent,
                    status,
                    body,
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    cluster.kill(victim_port);

    // Promoted: every survivor sees the victim failed and its replica as a master with
    // slots, and all slots are served again.
    let survivors: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| n.port != victim_port)
        .map(Node::url)
        .collect();
    eventually(
        Duration::from_secs(20),
        "the replica to be promoted and the cluster to be ok again",
        || async {
            for url in &survivors {
                let nodes = cluster_nodes(url).await.ok()?;
                let victim = nodes.iter().find(|n| n.id == victim_id)?;
                let heir = nodes.iter().find(|n| n.id == heir_id)?;
                if !(victim.is("fail") && heir.is("master") && heir.has_slots) {
                    return None;
                }
                if !cluster_state_ok(url).await {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    let failover = killed_at.elapsed();

    // Ready again, without a restart.
    eventually(
        Duration::from_secs(20),
        "/readyz 200 after the failover",
        || async {
            let s = samples.lock().unwrap();
            s.iter()
                .any(|s| s.at >= failover && s.status == 200)
                .then_some(())
        },
    )
    .await;
    poller.abort();
    let _ = poller.await;
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    bodies.extend(samples.iter().map(|s| s.body.clone()));
    let unready: Vec<&Sample> = samples.iter().filter(|s| s.status != 200).collect();
    let recovered = samples
        .iter()
        .find(|s| s.status == 200 && s.at >= failover)
        .map(|s| s.at)
        .unwrap();

    // Every acknowledged write survived, read through a client that never knew the old
    // topology, in one cross-slot command each way...
    let mut fresh = within(
        "connecting to the cluster after failover",
        cluster_client(&cluster, Some(victim_port)).get_async_connection(),
    )
    .await
    .unwrap();
    let values: Vec<Option<String>> = within("MGET after failover", mget.query_async(&mut fresh))
        .await
        .unwrap();
    let lost: Vec<&str> = pairs
        .iter()
        .zip(&values)
        .filter(|((_, v), got)| got.as_deref() != Some(v.as_str()))
        .map(|((k, _), _)| k.as_str())
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {SLOTS} keys lost or changed after failover, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    within("MSET after failover", mset.query_async::<()>(&mut fresh))
        .await
        .unwrap();
    // ...and through the connection that lived through the failover, one key per command
    // as the server's own commands are. Not a cross-slot MGET: on a connection whose slot
    // map still names the dead master, redis 1.8 puts each of that master's per-slot
    // sub-commands through its reconnect-to-the-seed-nodes retry cycle, one after the
    // other, and the MGET had not finished after 10 s.
    let lost = within(
        "GET and SET of every key on the long-lived connection",
        each_key(&long_lived, &pairs),
    )
    .await;
    assert!(
        lost.is_empty(),
        "long-lived connection: {} of {SLOTS} keys lost or changed, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );

    // The promoted master has no replica left: killing it loses its slots for good, every
    // keyed command fails with CLUSTERDOWN, and the server must say it is not ready.
    let lost_at = Instant::now();
    cluster.kill(heir_port);
    let unready_body = eventually(
        Duration::from_secs(15),
        "/readyz 503 with a shard lost for good",
        || async {
            let r = http.get(&readyz).send().await.ok()?;
            (r.status() == 503).then_some(())?;
            r.text().await.ok()
        },
    )
    .await;
    let noticed = lost_at.elapsed();
    let body: serde_json::Value = serde_json::from_str(&unready_body).unwrap();
    assert_eq!(body["checks"]["redis"], "unavailable", "{unready_body}");
    assert_eq!(body["checks"]["database"], "ok", "{unready_body}");
    bodies.push(unready_body);

    let secrets: HashSet<String> = cluster
        .nodes
        .iter()
        .flat_map(|n| [n.port.to_string(), n.bus_port.to_string()])
        .chain(["127.0.0.1".to_string(), PASSWORD.to_string()])
        .collect();
    for body in &bodies {
        for secret in &secrets {
            assert!(!body.contains(secret), "/readyz reveals {secret}: {body}");
        }
    }

    eprintln!(
        "cluster formed in {formed:?}; master {victim_port} killed, replica {heir_port} \
         promoted and cluster ok after {failover:?}; /readyz: {} of {} answers not 200 \
         (first sent at {:?}, last at {:?}), first 200 after promotion at {recovered:?}; \
         shard lost for good noticed by /readyz after {noticed:?}; test took {:?}",
        unready.len(),
        samples.len(),
        unready.first().map(|s| s.at),
        unready.last().map(|s| s.at),
        test_start.elapsed(),
    );
}
