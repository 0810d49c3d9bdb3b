//! One real `redis-server` standing in for the standalone managed Redis of many instances at
//! once (the operator bench's fleet): one process per instance would not fit a 2-core
//! machine at 1,000 instances, and the operator only PINGs a standalone Redis with the
//! instance's generated password. So the server's `default` user accepts every password
//! admitted so far (`ACL SETUSER default on >pw`), and a wrong one is still refused.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail, ensure};

use super::programs::{self, Program};

pub struct SharedRedis {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// Only the bench's: every instance's password is added beside it.
    admin: String,
    admitted: BTreeSet<String>,
    program: Program,
}

impl SharedRedis {
    /// Starts it on a loopback address of its own, on `port` (the managed Redis' port),
    /// without persistence: the operator writes nothing to a standalone Redis.
    pub fn start(dir: &Path, port: u16) -> anyhow::Result<Self> {
        let ip = programs::loopback();
        let admin = programs::random_secret();
        let conf = format!("port {port}\ndir .\nsave \"\"\nappendonly no\ninclude auth.conf\n");
        let program = programs::redis_node(dir, ip, &conf, &format!("requirepass {admin}\n"), &[])?;
        let mut shared = Self {
            ip,
            port,
            admin,
            admitted: BTreeSet::new(),
            program,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !programs::answers(ip, port) {
            ensure!(
                shared.program.running() && std::time::Instant::now() < deadline,
                "the shared redis-server did not start: see {}/log",
                dir.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // Proves the admin password works before any instance relies on it.
        shared.run(&["PING".to_string()])?;
        Ok(shared)
    }

    /// Makes the server accept `password` from now on (once per password).
    pub fn admit(&mut self, password: &str) -> anyhow::Result<()> {
        if self.admitted.contains(password) {
            return Ok(());
        }
        self.run(&[format!("ACL SETUSER default on >{password}")])?;
        self.admitted.insert(password.to_string());
        Ok(())
    }

    /// The passwords admitted so far (the bench's own not counted).
    pub fn admitted(&self) -> usize {
        self.admitted.len()
    }

    /// Runs `commands` through redis-cli, on its standard input and with the admin password
    /// in its environment, so that no password shows in a command line.
    fn run(&self, commands: &[String]) -> anyhow::Result<()> {
        let mut child = Command::new("redis-cli")
            .args(["-h", &self.ip.to_string(), "-p", &self.port.to_string()])
            .env("REDISCLI_AUTH", &self.admin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("redis-cli is needed to admit passwords to the shared Redis")?;
        {
            let mut stdin = child.stdin.take().context("redis-cli's stdin")?;
            for c in commands {
                stdin.write_all(c.as_bytes())?;
                stdin.write_all(b"\n")?;
            }
        }
        let out = child.wait_with_output()?;
        let replies = String::from_utf8_lossy(&out.stdout);
        // Replies only (never the commands): they carry no password.
        if !out.status.success() || replies.lines().any(|l| !matches!(l, "OK" | "PONG")) {
            bail!(
                "the shared Redis refused a command: {} {}",
                replies.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

/// The password a pod's `auth.conf` sets (`requirepass <password>`).
pub fn required_password(auth_conf: &str) -> Option<&str> {
    auth_conf.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next() == Some("requirepass"))
            .then(|| words.next())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(shared: &SharedRedis, password: &str) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", &shared.ip.to_string(), "-p", &shared.port.to_string()])
            .env("REDISCLI_AUTH", password)
            .arg("PING")
            .output()
            .unwrap();
        // A refused password is told on stderr, the reply on stdout.
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }

    #[test]
    fn every_admitted_password_is_accepted_and_no_other() {
        let dir = std::env::temp_dir().join(format!("fedi-shared-redis-{}", std::process::id()));
        let mut shared = SharedRedis::start(&dir, 6379).unwrap();
        assert!(ping(&shared, "one").contains("WRONGPASS"));
        shared.admit("one").unwrap();
        shared.admit("two").unwrap();
        shared.admit("one").unwrap();
        assert_eq!(shared.admitted(), 2);
        assert_eq!(ping(&shared, "one"), "PONG");
        assert_eq!(ping(&shared, "two"), "PONG");
        assert!(ping(&shared, "three").contains("WRONGPASS"));
        drop(shared);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_password_is_read_from_the_pods_auth_conf() {
        assert_eq!(
            required_password("requirepass s3cr3t\nmasterauth s3cr3t\n"),
            Some("s3cr3t")
        );
        assert_eq!(required_password("masterauth x\n"), None);
    }
}
