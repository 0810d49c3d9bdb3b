//! Cluster DNS for the operator, played with a hosts file.
//!
//! The operator resolves the managed services' names (`<pod>.<svc>.<ns>.svc`,
//! `<svc>.<ns>.svc`) and external hosts the samples name (`s3.eu-central-1.amazonaws.com`)
//! with the system resolver. [`operator_command`] runs it in a private mount namespace whose
//! `/etc/hosts` is [`HostsFile`]: the host's own entries plus the played names. glibc reads
//! `/etc/hosts` again on each lookup, so names added while the operator runs are seen at
//! once. Only the operator's namespace sees them: the rest of the machine is untouched.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub struct HostsFile {
    path: PathBuf,
    /// The host's own `/etc/hosts`, kept first (localhost and the machine's name).
    base: String,
    names: Mutex<BTreeMap<String, IpAddr>>,
}

impl HostsFile {
    pub fn create(path: PathBuf) -> std::io::Result<Self> {
        let mut base = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        if !base.ends_with('\n') {
            base.push('\n');
        }
        base.push_str("# played by the fedi e2e tests (tests/e2e/src/played)\n");
        std::fs::write(&path, &base)?;
        Ok(Self {
            path,
            base,
            names: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes `name` resolve to `ip` for the operator from now on.
    pub fn map(&self, name: &str, ip: IpAddr) {
        use std::io::Write;
        let mut names = self.names.lock().unwrap();
        let previous = names.insert(name.to_string(), ip);
        if previous == Some(ip) {
            return;
        }
        // The bind mount shows this inode: the file is changed in place, never replaced.
        if previous.is_none() {
            // A new name is appended, so that a lookup while it is written still finds
            // every name played before.
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.path)
                .expect("the played hosts file");
            f.write_all(format!("{ip} {name}\n").as_bytes())
                .expect("append to the played hosts file");
            return;
        }
        let mut text = self.base.clone();
        for (name, ip) in names.iter() {
            text.push_str(&format!("{ip} {name}\n"));
        }
        std::fs::write(&self.path, text).expect("rewrite the played hosts file");
    }

    /// Where `name` resolves for the operator, if it was played.
    pub fn get(&self, name: &str) -> Option<IpAddr> {
        self.names.lock().unwrap().get(name).copied()
    }
}

/// Panics with what is missing unless this process may make a mount namespace (root).
pub fn assert_mount_namespaces() {
    let ok = Command::new("unshare")
        .args(["--mount", "--", "true"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`unshare --mount` failed: playing cluster DNS for the operator needs root (a mount \
         namespace with its own /etc/hosts) and util-linux's unshare and setpriv"
    );
}

/// A command that runs the operator binary (`operator_bin`) with `hosts` as its
/// `/etc/hosts`; the caller adds the operator's arguments. Needs root (a mount namespace);
/// the operator dies with the test process (`--pdeathsig`).
pub fn operator_command(hosts: &Path) -> Command {
    seeing(hosts, &crate::operator_bin())
}

/// As [`operator_command`], for the operator binary `bin` (the bench names its own).
pub fn operator_command_for(hosts: &Path, bin: &str) -> Command {
    seeing(hosts, bin)
}

/// `program` in a private mount namespace whose `/etc/hosts` is `hosts`.
fn seeing(hosts: &Path, program: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--"])
        .args(["unshare", "--mount", "--propagation", "private", "--"])
        .args(["sh", "-c", r#"mount --bind "$0" /etc/hosts && exec "$@""#])
        .arg(hosts)
        .arg(program);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(hosts: &HostsFile, name: &str) -> String {
        let out = seeing(hosts.path(), "getent")
            .args(["hosts", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn played_names_resolve_inside_the_namespace_only_and_follow_changes() {
        assert_mount_namespaces();
        let dir = std::env::temp_dir().join(format!("fedi-played-dns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hosts = HostsFile::create(dir.join("hosts")).unwrap();
        let name = "pod-0.svc-headless.e2e-dns.svc";
        hosts.map(name, "127.1.2.3".parse().unwrap());
        hosts.map("other.e2e-dns.svc", "127.1.2.4".parse().unwrap());
        assert!(resolve(&hosts, name).starts_with("127.1.2.3 "));
        assert!(
            resolve(&hosts, "localhost").contains("localhost"),
            "the host's own"
        );
        hosts.map(name, "127.1.2.5".parse().unwrap());
        assert!(resolve(&hosts, name).starts_with("127.1.2.5 "));
        assert!(resolve(&hosts, "other.e2e-dns.svc").starts_with("127.1.2.4 "));
        let outside = Command::new("getent")
            .args(["hosts", name])
            .output()
            .unwrap();
        assert!(
            outside.stdout.is_empty(),
            "the machine's /etc/hosts is untouched"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
