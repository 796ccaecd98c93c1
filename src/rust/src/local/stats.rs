//! Counters that let tests prove what moved: requests and bytes per route
//! template, contexts and commands. Bytes are counted as bodies stream, by a
//! body wrapper that keeps the size hint (so `Content-Length` survives).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use serde_json::{json, Value};

#[derive(Default)]
pub struct RouteCounter {
    count: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

#[derive(Default)]
pub struct Stats {
    routes: Mutex<BTreeMap<String, Arc<RouteCounter>>>,
    bytes_in: Arc<AtomicU64>,
    bytes_out: Arc<AtomicU64>,
    pub contexts_created: AtomicU64,
    pub contexts_destroyed: AtomicU64,
    pub commands_executed: AtomicU64,
    finished: AtomicU64,
    cancelled: AtomicU64,
    errored: AtomicU64,
    pub faults_injected: AtomicU64,
}

/// Which way a counted body flows.
#[derive(Clone, Copy)]
pub enum Direction {
    In,
    Out,
}

impl Stats {
    /// Count one request on `key` (`"POST /api/1.2/commands/execute"`).
    pub fn route(&self, key: &str) -> Arc<RouteCounter> {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let c = routes.entry(key.to_string()).or_default().clone();
        c.count.fetch_add(1, Relaxed);
        c
    }

    /// Wrap a body so its bytes are added to the route's and the total counters.
    pub fn count<B>(&self, route: Arc<RouteCounter>, dir: Direction, body: B) -> Counted<B> {
        let total = match dir {
            Direction::In => self.bytes_in.clone(),
            Direction::Out => self.bytes_out.clone(),
        };
        Counted { inner: body, route, total, dir }
    }

    /// A command reached a terminal status (`Finished`, `Cancelled`, `Error`).
    pub fn command_done(&self, status: &str) {
        match status {
            "Finished" => &self.finished,
            "Cancelled" => &self.cancelled,
            _ => &self.errored,
        }
        .fetch_add(1, Relaxed);
    }

    pub fn to_json(&self, contexts_alive: usize) -> Value {
        let routes: serde_json::Map<String, Value> = self
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, c)| {
                let v = json!({
                    "count": c.count.load(Relaxed),
                    "bytes_in": c.bytes_in.load(Relaxed),
                    "bytes_out": c.bytes_out.load(Relaxed),
                });
                (k.clone(), v)
            })
            .collect();
        json!({
            "routes": routes,
            "bytes_in": self.bytes_in.load(Relaxed),
            "bytes_out": self.bytes_out.load(Relaxed),
            "contexts": {
                "created": self.contexts_created.load(Relaxed),
                "destroyed": self.contexts_destroyed.load(Relaxed),
                "alive": contexts_alive,
            },
            "commands": {
                "executed": self.commands_executed.load(Relaxed),
                "Finished": self.finished.load(Relaxed),
                "Cancelled": self.cancelled.load(Relaxed),
                "Error": self.errored.load(Relaxed),
            },
            "faults_injected": self.faults_injected.load(Relaxed),
        })
    }
}

/// A body whose data frames are counted as they pass.
pub struct Counted<B> {
    inner: B,
    route: Arc<RouteCounter>,
    total: Arc<AtomicU64>,
    dir: Direction,
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let n = data.len() as u64;
                self.total.fetch_add(n, Relaxed);
                match self.dir {
                    Direction::In => self.route.bytes_in.fetch_add(n, Relaxed),
                    Direction::Out => self.route.bytes_out.fetch_add(n, Relaxed),
                };
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_has_every_documented_key() {
        let s = Stats::default();
        s.route("GET /api/2.1/clusters/get");
        s.command_done("Finished");
        s.command_done("Error");
        let v = s.to_json(2);
        assert_eq!(v["routes"]["GET /api/2.1/clusters/get"]["count"], 1);
        assert_eq!(v["contexts"]["alive"], 2);
        assert_eq!(v["commands"]["Finished"], 1);
        assert_eq!(v["commands"]["Error"], 1);
        assert_eq!(v["faults_injected"], 0);
        assert_eq!(v["bytes_in"], 0);
    }
}
