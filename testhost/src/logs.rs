//! Where the components' stderr goes in the test host: one buffer per app, so tests read
//! the log lines a scenario wrote (as an operator would collect them from Spin) and the test
//! output stays quiet. `FUNNELHOOKS_HOST_STDERR=1` also copies them to the real stderr.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Most bytes kept; past this the oldest half is dropped (a soak writes a lot).
const KEEP: usize = 64 * 1024 * 1024;

/// The app's log: everything its components wrote to stderr.
#[derive(Clone, Default)]
pub struct LogSink {
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl LogSink {
    /// The complete lines written so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.bytes.lock().unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let complete = text.rsplit_once('\n').map_or("", |(done, _)| done);
        complete
            .split('\n')
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for LogSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if std::env::var_os("FUNNELHOOKS_HOST_STDERR").is_some() {
            use std::io::Write as _;
            let _ = std::io::stderr().write_all(buf);
        }
        let mut bytes = self.bytes.lock().unwrap();
        if bytes.len() + buf.len() > KEEP {
            let half = bytes.len() / 2;
            let cut = bytes[half..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(half, |p| half + p + 1);
            bytes.drain(..cut);
        }
        bytes.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
