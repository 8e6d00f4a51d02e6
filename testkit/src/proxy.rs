//! A TCP proxy in front of the test's nats-server, so a test can cut one role's NATS connection
//! (every open connection through the proxy drops, new ones are refused) and restore it, while
//! the server and everyone else carry on.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    addr: SocketAddr,
    /// `true` while cut.
    cut: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the proxy");
        let addr = listener.local_addr().unwrap();
        let (cut, _) = watch::channel(false);
        let watcher = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *watcher.borrow() {
                    continue; // refused: dropped at once
                }
                tokio::spawn(relay(client, target, watcher.subscribe()));
            }
        });
        Proxy { addr, cut, task }
    }

    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Drops every connection through the proxy and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(mut client: TcpStream, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(target).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.wait_for(|cut| *cut) => {}
    }
}
