//! The real programs behind played pods and external services, each on a loopback address
//! of its own so that they keep the ports the operator expects (6379, 8333, 443).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};

/// A fresh loopback address. The second octet depends on the process, so that two test
/// binaries playing at once (or an orphan of a killed run) never share an address.
pub fn loopback() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let block = (std::process::id() % 100) as u8;
    Ipv4Addr::new(127, 100 + block, (n / 250) as u8, (n % 250 + 1) as u8)
}

/// A process that is killed when this is dropped, or when the test process dies
/// (`setpriv --pdeathsig`).
pub struct Program {
    what: String,
    child: Child,
}

impl Program {
    /// Starts `program args` in `dir`, its output appended to `dir/log`.
    pub fn start(what: &str, dir: &Path, program: &str, args: &[String]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("log"))?;
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", program])
            .args(args)
            .current_dir(dir)
            // Nothing from the caller's ~/.seaweedfs or similar.
            .env("HOME", dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {what} ({program})"))?;
        Ok(Self {
            what: what.to_string(),
            child,
        })
    }

    /// Whether it still runs; an early exit is what its log explains.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn what(&self) -> &str {
        &self.what
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether something accepts connections at `ip:port`.
pub fn answers(ip: Ipv4Addr, port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_millis(300)).is_ok()
}

/// Whether an HTTP server at `ip:port` answers a request (any status: S3 says 403).
pub fn http_answers(ip: Ipv4Addr, port: u16) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut s =
            TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_millis(300))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1."))
    };
    attempt().unwrap_or(false)
}

/// A Redis node as the managed pod runs it: the pod's `redis.conf` with its paths moved
/// into `dir` (data, `nodes.conf`, the included `auth.conf` written there, owner-only),
/// listening on `ip` only, plus the pod start script's `extra` arguments.
pub fn redis_node(
    dir: &Path,
    ip: Ipv4Addr,
    pod_conf: &str,
    auth_conf: &str,
    extra: &[String],
) -> anyhow::Result<Program> {
    std::fs::create_dir_all(dir)?;
    let auth = dir.join("auth.conf");
    write_private(&auth, auth_conf)?;
    let mut conf = String::new();
    for line in pod_conf.lines() {
        let directive = line.split_whitespace().next().unwrap_or_default();
        let line = match directive {
            "dir" => format!("dir {}", dir.display()),
            "cluster-config-file" => {
                format!("cluster-config-file {}", dir.join("nodes.conf").display())
            }
            "include" => format!("include {}", auth.display()),
            _ => line.to_string(),
        };
        conf.push_str(&line);
        conf.push('\n');
    }
    // bind-source-addr: the cluster bus connects from this node's own address, as from a
    // pod's IP; from 127.0.0.1 its peers would take it for another node.
    conf.push_str(&format!(
        "bind {ip}\nbind-source-addr {ip}\ndaemonize no\nlogfile \"\"\n"
    ));
    let path = dir.join("redis.conf");
    std::fs::write(&path, conf)?;
    let mut args = vec![path.display().to_string()];
    args.extend(extra.iter().cloned());
    Program::start(&format!("redis-server {ip}"), dir, "redis-server", &args)
}

/// TLS for a played HTTPS endpoint: certificate and key files.
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `-s3.domainName`: requests to `<bucket>.<domain>` address that bucket.
    pub domain: String,
}

/// SeaweedFS (master, volume, filer, S3 in one process, as in the managed pod) on `ip`, its
/// S3 API on `s3_port` (plain HTTP) and, with `tls`, HTTPS on 443.
pub fn seaweedfs(
    dir: &Path,
    ip: Ipv4Addr,
    s3_port: u16,
    identities: &str,
    tls: Option<&Tls>,
) -> anyhow::Result<Program> {
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::create_dir_all(dir.join("master"))?;
    let config = dir.join("s3.json");
    write_private(&config, identities)?;
    let mut args: Vec<String> = [
        "server".to_string(),
        format!("-ip={ip}"),
        format!("-ip.bind={ip}"),
        format!("-dir={}", dir.join("data").display()),
        format!("-master.dir={}", dir.join("master").display()),
        // One master, resuming at once on restart (see scripts/services/up.sh).
        "-master.peers=none".into(),
        "-master.telemetry=false".into(),
        "-master.volumeSizeLimitMB=16".into(),
        "-volume.max=0".into(),
        "-volume.minFreeSpace=256MiB".into(),
        "-volume.preStopSeconds=0".into(),
        "-s3".into(),
        format!("-s3.port={s3_port}"),
        format!("-s3.config={}", config.display()),
        "-s3.port.iceberg=0".into(),
        "-s3.port.lance=0".into(),
        "-s3.autoCreateBucket=false".into(),
        // `weed server` also serves each part on a Unix socket named by its port alone
        // (/tmp/seaweedfs-filer-grpc-18888.sock...), and dials its own parts through it:
        // played servers on the same default ports talked to each other's filer ("is_moved
        // not sent by a ring member"). Ports no other server uses, sockets named by the IP.
        format!("-filer.localSocket=/tmp/fedi-played-{ip}-filer.sock"),
        format!("-s3.localSocket=/tmp/fedi-played-{ip}-s3.sock"),
    ]
    .into();
    let grpc = distinct_free_ports(4)?;
    for (part, port) in ["master", "volume", "filer", "s3"].iter().zip(grpc) {
        args.push(format!("-{part}.port.grpc={port}"));
    }
    if let Some(tls) = tls {
        args.extend([
            "-s3.port.https=443".to_string(),
            format!("-s3.cert.file={}", tls.cert.display()),
            format!("-s3.key.file={}", tls.key.display()),
            format!("-s3.domainName={}", tls.domain),
        ]);
    }
    Program::start(&format!("seaweedfs {ip}"), dir, &weed_bin()?, &args)
}

/// `n` different TCP ports free on every address at this moment (each bound on 0.0.0.0 by
/// the kernel's choice, all held until chosen).
fn distinct_free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| std::net::TcpListener::bind(("0.0.0.0", 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// A TLS terminator on `ip:port` in front of `to` (plain TCP), with `cert` and `key`: an
/// HTTPS endpoint of an external service whose test stand-in speaks plain HTTP, as a load
/// balancer would put it. Python's ssl module, so that the test needs no TLS server crate.
pub fn tls_terminator(
    dir: &Path,
    ip: Ipv4Addr,
    port: u16,
    cert: &Path,
    key: &Path,
    to: SocketAddr,
) -> anyhow::Result<Program> {
    const SCRIPT: &str = r#"
import socket, ssl, sys, threading
ip, port, cert, key, to_host, to_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
listener = socket.create_server((ip, port))
def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def serve(conn):
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (OSError, ssl.SSLError) as e:
        print("handshake failed:", e, flush=True)
        conn.close()
        return
    upstream = socket.create_connection((to_host, to_port))
    threading.Thread(target=pipe, args=(tls, upstream), daemon=True).start()
    pipe(upstream, tls)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;
    let args = [
        "-c".to_string(),
        SCRIPT.to_string(),
        ip.to_string(),
        port.to_string(),
        cert.display().to_string(),
        key.display().to_string(),
        to.ip().to_string(),
        to.port().to_string(),
    ];
    Program::start(
        &format!("TLS terminator {ip}:{port}"),
        dir,
        "python3",
        &args,
    )
}

/// The `weed` that scripts/services builds (FEDI_E2E_WEED overrides).
fn weed_bin() -> anyhow::Result<String> {
    if let Ok(bin) = std::env::var("FEDI_E2E_WEED") {
        return Ok(bin);
    }
    let versions = crate::repo_root().join("scripts/services/versions.sh");
    let text = std::fs::read_to_string(&versions)?;
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("SEAWEEDFS_VERSION="))
        .context("SEAWEEDFS_VERSION in scripts/services/versions.sh")?
        .trim_matches('"');
    let cache = std::env::var("FEDI_CACHE_DIR").unwrap_or_else(|_| {
        format!(
            "{}/.cache/fedi-operator",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let bin = format!("{cache}/seaweedfs/{version}/weed");
    if !Path::new(&bin).is_file() {
        bail!("{bin} is missing: `make services-up` builds it (or set FEDI_E2E_WEED)");
    }
    Ok(bin)
}

/// A certificate authority of the test's own, to play HTTPS endpoints of external services
/// (the operator process is told to trust it, and only it, through SSL_CERT_FILE).
pub struct PlayedCa {
    dir: PathBuf,
    pub cert: PathBuf,
}

impl PlayedCa {
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let cert = dir.join("ca.pem");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=fedi e2e played CA",
            "-keyout",
            &path(dir, "ca.key"),
            "-out",
            &path(dir, "ca.pem"),
        ])?;
        Ok(Self {
            dir: dir.to_path_buf(),
            cert,
        })
    }

    /// A server certificate for `names` (wildcards allowed), signed by this CA.
    pub fn issue(&self, file_stem: &str, names: &[&str]) -> anyhow::Result<(PathBuf, PathBuf)> {
        let dir = &self.dir;
        let key = dir.join(format!("{file_stem}.key"));
        let cert = dir.join(format!("{file_stem}.pem"));
        let csr = path(dir, &format!("{file_stem}.csr"));
        let ext = dir.join(format!("{file_stem}.ext"));
        let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
                san.join(",")
            ),
        )?;
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={}", names[0]),
            "-keyout",
            &key.display().to_string(),
            "-out",
            &csr,
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &path(dir, "ca.pem"),
            "-CAkey",
            &path(dir, "ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &ext.display().to_string(),
            "-out",
            &cert.display().to_string(),
        ])?;
        Ok((cert, key))
    }
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

fn openssl(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .context("openssl is needed to play HTTPS endpoints")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Writes a file only its owner can read: it holds a password.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// A random value for a credential the test makes up (hex of 16 bytes of /dev/urandom).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("/dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
