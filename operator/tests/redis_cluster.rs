//! `redis_cluster::reconcile` and `health` against real `redis-server` processes in cluster
//! mode, each test with its own nodes on free loopback ports and data under the target dir.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use fedi_operator::redis_cluster::nodes::{self, ClusterNode};
use fedi_operator::redis_cluster::{self, ClusterError, Health, HealthReason, Report, Topology};
use redis::AsyncCommands;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const PASSWORD: &str = "test-only-s3cret";
/// Short, so that a killed master fails over within seconds.
const NODE_TIMEOUT_MS: &str = "2000";

fn topology(shards: usize, replicas_per_shard: usize) -> Topology {
    Topology {
        shards,
        replicas_per_shard,
    }
}

/// Ports handed out by this process; others' are caught by binding first and by the server's
/// own exit when it loses the race.
static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
static NEXT: AtomicU16 = AtomicU16::new(0);

/// A port `p` below the ephemeral range whose cluster bus port `p + 10000` is free too, and
/// neither clashing with the project's shared services (16379, 17001-17006 and their buses).
fn free_port() -> u16 {
    const FIRST: u16 = 12000;
    const SPAN: u16 = 10000;
    let start = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let port = FIRST + (start + NEXT.fetch_add(7, Ordering::Relaxed)) % SPAN;
        let shared = |p: u16| p == 16379 || (17001..=17006).contains(&p);
        if shared(port) || shared(port + 10000) {
            continue;
        }
        let mut taken = TAKEN.lock().unwrap();
        if taken.contains(&port) {
            continue;
        }
        let bindable = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if bindable(port) && bindable(port + 10000) {
            taken.push(port);
            return port;
        }
    }
    panic!("no free loopback port pair found");
}

/// One `redis-server --cluster-enabled yes`, killed and its data removed on drop.
struct Server {
    port: u16,
    dir: PathBuf,
    password: Option<String>,
    child: Option<Child>,
}

impl Server {
    async fn start(password: Option<&str>) -> Server {
        for _ in 0..5 {
            let port = free_port();
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("redis-cluster-{}-{port}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let mut server = Server {
                port,
                dir,
                password: password.map(str::to_owned),
                child: None,
            };
            server.spawn();
            if server.wait_up().await {
                return server;
            }
        }
        panic!("redis-server did not start on five different ports");
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(REDIS_SERVER);
        cmd.current_dir(&self.dir)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", NODE_TIMEOUT_MS])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--appendonly", "no", "--save", ""])
            // Replicas sync at once instead of after 5 s, so failover tests need not wait.
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            cmd.args(["--requirepass", password, "--masterauth", password]);
        }
        self.child = Some(cmd.spawn().expect("start /usr/bin/redis-server"));
    }

    /// Up means answering with our own data dir, not just something listening on the port.
    async fn wait_up(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                eprintln!("redis-server on {} exited: {status}", self.port);
                self.child = None;
                return false;
            }
            if let Ok(mut conn) = self.connect().await {
                let dir: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("dir")
                    .query_async(&mut conn)
                    .await;
                if let Ok(dir) = dir {
                    return dir.get(1).map(PathBuf::from).as_ref() == Some(&self.dir);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    async fn connect(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let mut conn = self.connect().await.expect("connect");
        cmd.query_async(&mut conn).await.expect("query")
    }

    /// `CLUSTER NODES` as this node sees it.
    async fn view(&self) -> Vec<ClusterNode> {
        let text: String = self.query(redis::cmd("CLUSTER").arg("NODES")).await;
        nodes::parse(&text).unwrap()
    }

    async fn me(&self) -> ClusterNode {
        self.view()
            .await
            .into_iter()
            .find(|n| n.flags.myself)
            .unwrap()
    }

    /// A field of `INFO replication`.
    async fn replication(&self, field: &str) -> String {
        let info: String = self.query(redis::cmd("INFO").arg("replication")).await;
        info.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// Waits until this replica has everything `master` has written so far: a replica that
    /// never synced cannot take over.
    async fn wait_in_sync_with(&self, master: &Server) {
        let written: u64 = master
            .replication("master_repl_offset")
            .await
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = self.replication("master_link_status").await == "up";
            let offset: u64 = self
                .replication("slave_repl_offset")
                .await
                .parse()
                .unwrap_or(0);
            if up && offset >= written {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica {} not in sync: link up {up}, offset {offset} of {written}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn restart(&mut self) {
        self.kill();
        self.spawn();
        assert!(
            self.wait_up().await,
            "redis-server {} did not restart",
            self.port
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(8).collect();
            eprintln!("--- redis-server {} (last lines, newest first)", self.port);
            for line in tail {
                eprintln!("{line}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        TAKEN.lock().unwrap().retain(|&p| p != self.port);
    }
}

struct Cluster {
    servers: Vec<Server>,
    password: Option<String>,
}

impl Cluster {
    async fn start(count: usize, password: Option<&str>) -> Cluster {
        let mut cluster = Cluster {
            servers: Vec::new(),
            password: password.map(str::to_owned),
        };
        cluster.add(count).await;
        cluster
    }

    async fn add(&mut self, count: usize) {
        let password = self.password.as_deref();
        let started = futures::future::join_all((0..count).map(|_| Server::start(password))).await;
        self.servers.extend(started);
    }

    fn addrs(&self) -> Vec<String> {
        self.servers.iter().map(Server::addr).collect()
    }

    async fn reconcile(&self, shards: usize, replicas: usize) -> Result<Report, ClusterError> {
        let started = Instant::now();
        let result = redis_cluster::reconcile(
            &self.addrs(),
            topology(shards, replicas),
            self.password.as_deref(),
        )
        .await;
        eprintln!(
            "reconcile({shards}x{replicas}) took {:?}: {result:?}",
            started.elapsed()
        );
        result
    }

    async fn health(&self) -> Health {
        redis_cluster::health(&self.addrs(), self.password.as_deref())
            .await
            .expect("health")
    }

    /// Polls `health` until it is ready with `reason`; every distinct state seen on the way
    /// is returned, newest last.
    async fn wait_health(&self, reason: HealthReason) -> Vec<Health> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen: Vec<Health> = Vec::new();
        loop {
            let health = self.health().await;
            let done = health.ready && health.reason == reason;
            if seen.last().map(|h| (h.reason, &h.message)) != Some((health.reason, &health.message))
            {
                seen.push(health);
            }
            if done {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "health never became {reason}: {:#?}",
                seen.iter().map(|h| &h.message).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A cluster-aware client through the given nodes, as the server uses one.
    async fn client(&self, through: &[usize]) -> ClusterConnection {
        let urls: Vec<String> = through.iter().map(|&i| self.servers[i].url()).collect();
        ClusterClient::new(urls)
            .unwrap()
            .get_async_connection()
            .await
            .expect("cluster client")
    }

    /// The shape every node reports about itself: masters' slot counts, replicas' masters.
    async fn assert_topology(&self, shards: usize, replicas_per_shard: usize) {
        let t = topology(shards, replicas_per_shard);
        let mut me = Vec::new();
        for server in &self.servers {
            me.push(server.me().await);
        }
        let expected = 16384 / shards;
        for (position, node) in me.iter().enumerate() {
            if position < shards {
                assert!(node.flags.master, "node {position} is a master: {node:?}");
                let slots = node.slot_count();
                assert!(
                    slots == expected || slots == expected + 1,
                    "master {position} holds {slots} slots, expected {expected} or one more"
                );
                assert!(
                    node.migrating.is_empty() && node.importing.is_empty(),
                    "{node:?}"
                );
            } else {
                let master = &me[t.shard_of(position)];
                assert!(node.flags.replica, "node {position} is a replica: {node:?}");
                assert_eq!(
                    node.master_id.as_deref(),
                    Some(master.id.as_str()),
                    "node {position}"
                );
            }
        }
        let total: usize = me.iter().map(ClusterNode::slot_count).sum();
        assert_eq!(total, 16384);
    }

    async fn keys_on_masters(&self, shards: usize) -> Vec<u64> {
        let mut sizes = Vec::new();
        for server in &self.servers[..shards] {
            sizes.push(server.query(&redis::cmd("DBSIZE")).await);
        }
        sizes
    }
}

async fn write_keys(conn: &mut ClusterConnection, prefix: &str, count: usize) {
    for i in 0..count {
        let _: () = conn
            .set(format!("{prefix}:{i}"), format!("value-{i}"))
            .await
            .unwrap();
    }
}

async fn assert_keys(conn: &mut ClusterConnection, prefix: &str, count: usize) {
    for i in 0..count {
        let value: Option<String> = conn.get(format!("{prefix}:{i}")).await.unwrap();
        assert_eq!(
            value.as_deref(),
            Some(format!("value-{i}").as_str()),
            "{prefix}:{i}"
        );
    }
}

async fn bootstrapped(count: usize, password: Option<&str>) -> Cluster {
    let cluster = Cluster::start(count, password).await;
    cluster.reconcile(3, 1).await.expect("bootstrap");
    cluster.wait_health(HealthReason::ClusterOk).await;
    cluster
}

#[tokio::test]
async fn six_empty_nodes_become_three_shards_with_a_replica_each() {
    let started = Instant::now();
    let cluster = Cluster::start(6, None).await;
    let addrs = cluster.addrs();

    let report = cluster.reconcile(3, 1).await.unwrap();
    assert_eq!(report.met, addrs[1..].to_vec());
    assert_eq!(report.slots_assigned, 16384);
    assert_eq!(
        report.replicas_set,
        vec![
            (addrs[3].clone(), addrs[0].clone()),
            (addrs[4].clone(), addrs[1].clone()),
            (addrs[5].clone(), addrs[2].clone()),
        ]
    );
    assert!(report.new_masters.is_empty());
    assert_eq!(report.slots_migrated, 0);

    let seen = cluster.wait_health(HealthReason::ClusterOk).await;
    let health = seen.last().unwrap();
    assert!(health.message.contains("3 shards"), "{}", health.message);
    cluster.assert_topology(3, 1).await;

    let mut conn = cluster.client(&[0]).await;
    write_keys(&mut conn, "key", 300).await;
    assert_keys(&mut conn, "key", 300).await;
    let sizes = cluster.keys_on_masters(3).await;
    assert!(
        sizes.iter().all(|&s| s > 0),
        "keys on every shard: {sizes:?}"
    );
    assert_eq!(sizes.iter().sum::<u64>(), 300);

    let again = cluster.reconcile(3, 1).await.unwrap();
    assert!(
        again.is_empty(),
        "a second reconcile changes nothing: {again:?}"
    );

    let shrink = cluster.reconcile(2, 1).await.unwrap_err();
    assert!(
        matches!(
            shrink,
            ClusterError::ShrinkNotSupported {
                current: 3,
                wanted: 2
            }
        ),
        "{shrink}"
    );
    assert!(shrink.to_string().contains("not supported"), "{shrink}");
    cluster.assert_topology(3, 1).await;
    assert_keys(&mut conn, "key", 300).await;
    eprintln!("took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_fourth_shard_takes_an_even_share_of_slots_and_keys() {
    let started = Instant::now();
    let mut cluster = bootstrapped(6, Some(PASSWORD)).await;
    let mut conn = cluster.client(&[0, 1]).await;
    write_keys(&mut conn, "key", 2000).await;

    cluster.add(2).await;
    let addrs = cluster.addrs();
    let report = cluster.reconcile(4, 1).await.unwrap();
    // The topology puts shard masters first: node 3, a replica so far, leads the new shard.
    assert_eq!(report.new_masters, vec![addrs[3].clone()]);
    assert_eq!(
        report.met,
        vec![addrs[3].clone(), addrs[6].clone(), addrs[7].clone()]
    );
    assert_eq!(report.replicas_set.len(), 4, "{:?}", report.replicas_set);
    assert_eq!(report.slots_assigned, 0);
    assert_eq!(report.slots_migrated, 4096);
    assert!(report.keys_migrated > 300, "{report:?}");

    cluster.wait_health(HealthReason::ClusterOk).await;
    cluster.assert_topology(4, 1).await;
    let sizes = cluster.keys_on_masters(4).await;
    assert_eq!(
        sizes.iter().sum::<u64>(),
        2000,
        "no key lost or left behind: {sizes:?}"
    );
    assert!(sizes[3] > 0, "{sizes:?}");

    let mut fresh = cluster.client(&[7]).await;
    assert_keys(&mut fresh, "key", 2000).await;
    // A client that knew the old layout follows the redirections.
    assert_keys(&mut conn, "key", 2000).await;

    let again = cluster.reconcile(4, 1).await.unwrap();
    assert!(again.is_empty(), "{again:?}");
    eprintln!("took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_killed_master_fails_over_and_the_keys_survive() {
    let started = Instant::now();
    let mut cluster = bootstrapped(6, None).await;
    let mut conn = cluster.client(&[0]).await;
    write_keys(&mut conn, "key", 500).await;
    let old_master = cluster.servers[0].me().await.id;
    let dead = cluster.servers[0].addr();
    cluster.servers[3]
        .wait_in_sync_with(&cluster.servers[0])
        .await;

    cluster.servers[0].kill();
    // Until the replica takes over, health may say Degraded (the others have not noticed yet)
    // or ClusterFail (they have, and the shard has no master), never ClusterOk.
    let mut during = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let health = cluster.health().await;
        assert_ne!(health.reason, HealthReason::ClusterOk, "{health:?}");
        if during.last() != Some(&health.reason) {
            during.push(health.reason);
        }
        let me = cluster.servers[3].me().await;
        if me.flags.master && me.slot_count() > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "node 3 was not promoted: {me:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("health until the failover: {during:?}");

    let seen = cluster.wait_health(HealthReason::Degraded).await;
    let health = seen.last().unwrap();
    assert!(health.ready);
    assert!(health.message.contains(&dead), "{}", health.message);

    let mut survivors = cluster.client(&[1, 2, 3]).await;
    assert_keys(&mut survivors, "key", 500).await;

    match cluster.reconcile(3, 1).await {
        Err(ClusterError::NodeUnreachable { node, .. }) => assert_eq!(node, dead),
        other => panic!("expected NodeUnreachable for {dead}, got {other:?}"),
    }

    // Back with its data dir, the old master rejoins as a replica of the promoted one, and
    // reconcile leaves the new roles alone rather than failing back.
    cluster.servers[0].restart().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let promoted = cluster.servers[3].me().await.id;
    loop {
        let me = cluster.servers[0].me().await;
        assert_eq!(me.id, old_master);
        if me.flags.replica && me.master_id.as_deref() == Some(promoted.as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 0 did not rejoin as a replica: {me:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.wait_health(HealthReason::ClusterOk).await;
    let report = cluster.reconcile(3, 1).await.unwrap();
    assert!(report.is_empty(), "{report:?}");
    assert_keys(&mut survivors, "key", 500).await;
    eprintln!("took {:?}", started.elapsed());
}

#[tokio::test]
async fn unreachable_nodes_and_too_few_nodes_are_refused() {
    let cluster = Cluster::start(5, None).await;
    let mut addrs = cluster.addrs();
    // Reserved for this test and never started.
    let nobody = format!("127.0.0.1:{}", free_port());
    addrs.insert(2, nobody.clone());

    match redis_cluster::reconcile(&addrs, topology(3, 1), None).await {
        Err(e @ ClusterError::NodeUnreachable { .. }) => {
            let ClusterError::NodeUnreachable { node, .. } = &e else {
                unreachable!()
            };
            assert_eq!(node, &nobody);
            assert!(e.to_string().contains(&nobody), "{e}");
            assert_eq!(e.reason(), "NodeUnreachable");
        }
        other => panic!("expected NodeUnreachable, got {other:?}"),
    }
    for server in &cluster.servers {
        assert_eq!(
            server.view().await.len(),
            1,
            "nothing changed on {}",
            server.addr()
        );
    }
    let health = redis_cluster::health(&addrs, None).await.unwrap();
    assert!(!health.ready);
    assert_eq!(health.reason, HealthReason::SlotsUnassigned);

    let too_few = &cluster.addrs()[..4];
    let e = redis_cluster::reconcile(too_few, topology(3, 1), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ClusterError::NotEnoughNodes {
                available: 4,
                needed: 6,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("needs 6 nodes"), "{e}");

    let e = redis_cluster::reconcile(&["redis-0".to_owned()], topology(1, 0), None)
        .await
        .unwrap_err();
    assert!(matches!(e, ClusterError::InvalidAddress { .. }), "{e:?}");

    let e = redis_cluster::reconcile(&cluster.addrs(), topology(2, 1), Some("wrong"))
        .await
        .unwrap_err();
    assert!(matches!(e, ClusterError::AuthFailed { .. }), "{e:?}");
    for server in &cluster.servers {
        assert_eq!(
            server.view().await.len(),
            1,
            "nothing changed on {}",
            server.addr()
        );
    }
}

#[tokio::test]
async fn an_interrupted_slot_migration_is_finished() {
    let started = Instant::now();
    let cluster = bootstrapped(6, None).await;
    let mut conn = cluster.client(&[0]).await;
    write_keys(&mut conn, "key", 300).await;
    // Hash-tagged keys share one slot, so the interrupted move has keys on both sides.
    write_keys(&mut conn, "{moving}", 20).await;
    let slot: u16 = cluster.servers[0]
        .query(redis::cmd("CLUSTER").arg("KEYSLOT").arg("{moving}"))
        .await;

    let mut me = Vec::new();
    for server in &cluster.servers[..3] {
        me.push(server.me().await);
    }
    let source = (0..3).find(|&i| me[i].holds(slot)).unwrap();
    let target = (source + 1) % 3;
    let (src, dst) = (&cluster.servers[source], &cluster.servers[target]);
    let _: String = dst
        .query(
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("IMPORTING")
                .arg(&me[source].id),
        )
        .await;
    let _: String = src
        .query(
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("MIGRATING")
                .arg(&me[target].id),
        )
        .await;
    let mut migrate = redis::cmd("MIGRATE");
    migrate
        .arg("127.0.0.1")
        .arg(dst.port)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS");
    for i in 0..5 {
        migrate.arg(format!("{{moving}}:{i}"));
    }
    let _: String = src.query(&migrate).await;
    let src_me = src.me().await;
    assert_eq!(src_me.migrating, vec![(slot, me[target].id.clone())]);

    let report = cluster.reconcile(3, 1).await.unwrap();
    assert!(report.slots_migrated >= 1, "{report:?}");
    assert!(report.keys_migrated >= 15, "{report:?}");
    // Finishing the move gave the target one slot too many, so the rebalance that follows
    // may send it back: wherever it ends, one master owns it and holds all its keys.
    let mut owners = Vec::new();
    for server in &cluster.servers[..3] {
        let me = server.me().await;
        let count: u64 = server
            .query(redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot))
            .await;
        if me.holds(slot) {
            owners.push((server.port, count));
        } else {
            assert_eq!(count, 0, "no keys of slot {slot} left on {}", server.port);
        }
    }
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0].1, 20, "{owners:?}");

    cluster.wait_health(HealthReason::ClusterOk).await;
    cluster.assert_topology(3, 1).await;
    assert_keys(&mut conn, "key", 300).await;
    assert_keys(&mut conn, "{moving}", 20).await;
    let sizes = cluster.keys_on_masters(3).await;
    assert_eq!(sizes.iter().sum::<u64>(), 320, "{sizes:?}");

    let again = cluster.reconcile(3, 1).await.unwrap();
    assert!(again.is_empty(), "{again:?}");
    eprintln!("took {:?}", started.elapsed());
}
