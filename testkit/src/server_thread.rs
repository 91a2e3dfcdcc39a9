//! A loopback test server's own thread: its runtime runs the server's accept loop there, the
//! start waits until the loop says it listens, and dropping the handle stops the loop and
//! joins the thread (the runtime, dropped with it, takes every task still running along).

use std::future::Future;
use std::sync::mpsc::{Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

/// What a server's loop is told: stop when cancelled; say once whether it listens.
pub(crate) type Ready = Sender<std::io::Result<()>>;

pub(crate) struct ServerThread {
    shutdown: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Runs `serve(shutdown, ready)` on `runtime` in a thread named `name`, and waits (10 s
    /// at most) for it to report that it listens. `what` names the server in errors.
    pub(crate) fn start<F, Fut>(
        what: &str,
        name: &str,
        runtime: tokio::runtime::Runtime,
        serve: F,
    ) -> anyhow::Result<Self>
    where
        F: FnOnce(CancellationToken, Ready) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let shutdown = CancellationToken::new();
        let (ready_tx, ready_rx) = channel::<std::io::Result<()>>();
        let thread = {
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || runtime.block_on(serve(shutdown, ready_tx)))
                .with_context(|| format!("spawning the {what}'s thread"))?
        };
        // Built before waiting, so a server that fails to start is still stopped and joined.
        let server = Self {
            shutdown,
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(server),
            Ok(Err(err)) => Err(err).with_context(|| format!("starting the {what}")),
            Err(_) => bail!("the {what} did not start"),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
