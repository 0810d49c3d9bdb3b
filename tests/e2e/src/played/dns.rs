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
        let base = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
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
        let mut names = self.names.lock().unwrap();
        if names.get(name) == Some(&ip) {
            return;
        }
        names.insert(name.to_string(), ip);
        let mut text = self.base.clone();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("# played by the fedi e2e tests (tests/e2e/src/played)\n");
        for (name, ip) in names.iter() {
            text.push_str(&format!("{ip} {name}\n"));
        }
        // Rewritten in place (truncate, write): the bind mount shows this inode, so a new
        // file renamed over it would never be seen by the operator.
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
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--"])
        .args(["unshare", "--mount", "--propagation", "private", "--"])
        .args(["sh", "-c", r#"mount --bind "$0" /etc/hosts && exec "$@""#])
        .arg(hosts)
        .arg(crate::operator_bin());
    cmd
}
