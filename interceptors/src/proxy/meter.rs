//! Counting what goes through, and reporting it once an exchange is over.
//!
//! An [`Exchange`] is one decided request or tunnel. Its request body, response body and
//! tunnel copy loop each hold an `Arc` to it and add the bytes they pass on; when the last
//! holder lets go (the response was written, the client went away, the tunnel closed),
//! the exchange reports bytes each way, status, duration and any error to the daemon.
//! Bodies are passed on frame by frame, never collected.

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use warden_proto::v1::{Action, ResultMeta};

use super::Shared;

pub(crate) struct Exchange {
    shared: Arc<Shared>,
    action: Action,
    /// Decision sequence number; `None` when the exchange ran without a decision
    /// (`--fail-open`), so there is nothing to report against.
    decision: Option<u64>,
    started: Instant,
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    /// HTTP status of the response, 0 until there is one.
    status: AtomicU32,
    error: Mutex<String>,
}

impl Exchange {
    pub(crate) fn new(shared: Arc<Shared>, action: Action, decision: Option<u64>) -> Arc<Self> {
        Arc::new(Exchange {
            shared,
            action,
            decision,
            started: Instant::now(),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            status: AtomicU32::new(0),
            error: Mutex::new(String::new()),
        })
    }

    pub(crate) fn set_status(&self, status: u16) {
        self.status.store(u32::from(status), Ordering::Relaxed);
    }

    /// Records why the exchange failed; the first error is the one reported.
    pub(crate) fn fail(&self, error: impl std::fmt::Display) {
        if let Ok(mut e) = self.error.lock()
            && e.is_empty()
        {
            let mut text = error.to_string();
            let mut cut = text.len().min(1024);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            *e = text;
        }
    }

    fn result(&self) -> ResultMeta {
        let sent = self.sent.load(Ordering::Relaxed);
        let received = self.received.load(Ordering::Relaxed);
        let status = self.status.load(Ordering::Relaxed);
        ResultMeta {
            bytes: sent.saturating_add(received),
            bytes_sent: sent,
            bytes_received: received,
            status: (status != 0).then_some(status),
            destination: self
                .action
                .attributes
                .get("host")
                .cloned()
                .unwrap_or_default(),
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            error: self.error.lock().map(|e| e.clone()).unwrap_or_default(),
            ..Default::default()
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let result = self.result();
        let seq = self.decision;
        tracing::info!(
            decision = seq.unwrap_or(0),
            method = self.action.tool.as_str(),
            url = self.action.resource.as_str(),
            status = result.status.unwrap_or(0),
            bytes_sent = result.bytes_sent,
            bytes_received = result.bytes_received,
            duration_ms = result.duration_ms,
            error = result.error.as_str(),
            "exchange done"
        );
        let Some(seq) = seq else { return };
        let mut client = self.shared.client.clone();
        let action = std::mem::take(&mut self.action);
        // The task holds `Shared`, so a draining proxy waits for the report too.
        let shared = self.shared.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _shared = shared;
                if let Err(e) = client.report(action, seq, result).await {
                    tracing::warn!(decision = seq, error = %e, "could not report the result to wardend");
                }
            });
        }
    }
}

/// Which counter a body adds to.
#[derive(Clone, Copy)]
pub(crate) enum Direction {
    Sent,
    Received,
}

/// A body passed on unchanged, frame by frame, with its data bytes counted.
pub(crate) struct Counted<B> {
    inner: B,
    exchange: Arc<Exchange>,
    direction: Direction,
}

impl<B> Counted<B> {
    pub(crate) fn new(inner: B, exchange: Arc<Exchange>, direction: Direction) -> Self {
        Counted {
            inner,
            exchange,
            direction,
        }
    }
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    let counter = match self.direction {
                        Direction::Sent => &self.exchange.sent,
                        Direction::Received => &self.exchange.received,
                    };
                    counter.fetch_add(n, Ordering::Relaxed);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                let side = match self.direction {
                    Direction::Sent => "request body",
                    Direction::Received => "response body",
                };
                self.exchange.fail(format!("{side}: {e}"));
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
