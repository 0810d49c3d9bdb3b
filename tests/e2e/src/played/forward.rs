//! A TCP forwarder: an external service a sample names (`pg-primary.db.example.net:5432`)
//! played by a test service on another port (PostgreSQL on 127.0.0.1:15432). The played name
//! resolves to the forwarder's own loopback address, which listens on the sample's port.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Forwards until dropped.
pub struct Forwarder {
    stop: Arc<AtomicBool>,
}

impl Forwarder {
    pub fn start(listen: SocketAddr, to: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen)?;
        // Polled, so that dropping the forwarder ends its thread.
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        std::thread::spawn(move || pipe(client, to));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        Ok(Self { stop })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pipe(client: TcpStream, to: SocketAddr) {
    let Ok(server) = TcpStream::connect_timeout(&to, Duration::from_secs(3)) else {
        return;
    };
    let _ = client.set_nonblocking(false);
    let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let (mut client, mut server) = (client, server);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}
