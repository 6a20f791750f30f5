//! What the server saw: the request log and the counters.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use axum::http::HeaderMap;
use bytes::Bytes;
use embeddings_core::{InputType, OutputType};

use super::dialect::Dialect;
use super::route::Route;

/// One request as the client really sent it, and what its dialect read
/// from it ([`Dialect::describe`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The path with the query, e.g. `/v1/embeddings`.
    pub path: String,
    /// The route it went to.
    pub route: Route,
    /// The headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body as JSON, or `Null` when it is empty or not JSON.
    pub body: serde_json::Value,
    /// The status answered; 0 when no answer was sent (hang, reset) or not yet.
    pub status: u16,
    /// The dialect that served it (`None`: no dialect serves the path).
    pub dialect: Option<&'static str>,
    /// The model the request named, when its dialect can tell.
    pub model: Option<String>,
    /// The number of inputs, when its dialect can tell.
    pub inputs: Option<usize>,
    /// The input type sent on the wire, when the API has one and the request set it.
    pub input_type: Option<InputType>,
    /// The output type asked for, when the API has one and the request set it.
    pub output_type: Option<OutputType>,
    /// When it arrived (tokio's clock, so a paused-time test sees its own
    /// time): the pacing of a client is read from these.
    pub received: tokio::time::Instant,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Counters of what the server answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every request received.
    pub requests: u64,
    /// Requests per route.
    pub by_route: BTreeMap<Route, u64>,
    /// Requests per status answered (0: no answer, as for hang and reset).
    pub by_status: BTreeMap<u16, u64>,
    /// Requests per route and status.
    pub by_route_status: BTreeMap<(Route, u16), u64>,
    /// Inputs embedded in successful answers.
    pub inputs: u64,
    /// Tokens (cl100k_base) of the inputs embedded in successful answers.
    pub tokens: u64,
    /// Faults that fired (one request may fire several).
    pub faults: u64,
    /// Requests refused by the requests/tokens-per-minute limits.
    pub rate_limited: u64,
}

impl Stats {
    /// Requests on `route` answered with `status`.
    pub fn count(&self, route: Route, status: u16) -> u64 {
        self.by_route_status
            .get(&(route, status))
            .copied()
            .unwrap_or(0)
    }

    /// Requests on `route`, whatever the answer.
    pub fn route(&self, route: Route) -> u64 {
        self.by_route.get(&route).copied().unwrap_or(0)
    }

    pub(crate) fn record(&mut self, route: Route, status: u16) {
        self.requests += 1;
        *self.by_route.entry(route).or_default() += 1;
        *self.by_status.entry(status).or_default() += 1;
        *self.by_route_status.entry((route, status)).or_default() += 1;
    }
}

/// A request as stored: cheap to keep, turned into a [`RecordedRequest`] on demand.
#[derive(Debug)]
struct Entry {
    method: axum::http::Method,
    path: String,
    route: Route,
    dialect: Option<usize>,
    headers: HeaderMap,
    body: Bytes,
    status: u16,
    received: tokio::time::Instant,
}

/// The latest `limit` requests, in arrival order.
#[derive(Debug)]
pub(crate) struct RequestLog {
    entries: VecDeque<Entry>,
    /// Sequence number of `entries[0]`.
    base: u64,
    next: u64,
    limit: usize,
}

impl RequestLog {
    pub(crate) fn new(limit: usize) -> Self {
        RequestLog {
            entries: VecDeque::new(),
            base: 0,
            next: 0,
            limit,
        }
    }

    /// Stores a request on arrival; returns its sequence number.
    pub(crate) fn push(
        &mut self,
        method: &axum::http::Method,
        path: &str,
        route: Route,
        dialect: Option<usize>,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> u64 {
        let seq = self.next;
        self.next += 1;
        if self.limit == 0 {
            self.base = self.next;
            return seq;
        }
        if self.entries.len() == self.limit {
            self.entries.pop_front();
            self.base += 1;
        }
        if self.entries.is_empty() {
            self.base = seq;
        }
        self.entries.push_back(Entry {
            method: method.clone(),
            path: path.to_owned(),
            route,
            dialect,
            headers: headers.clone(),
            body: body.clone(),
            status: 0,
            received: tokio::time::Instant::now(),
        });
        seq
    }

    pub(crate) fn set_status(&mut self, seq: u64, status: u16) {
        let entry = seq
            .checked_sub(self.base)
            .and_then(|i| self.entries.get_mut(i as usize));
        if let Some(e) = entry {
            e.status = status;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.base = self.next;
    }

    /// The entries as [`RecordedRequest`]s, each described by its dialect.
    pub(crate) fn snapshot(&self, dialects: &[Arc<dyn Dialect>]) -> Vec<RecordedRequest> {
        self.entries
            .iter()
            .map(|e| {
                let dialect = e.dialect.and_then(|i| dialects.get(i));
                let mut r = RecordedRequest {
                    method: e.method.as_str().to_owned(),
                    path: e.path.clone(),
                    route: e.route,
                    headers: e
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().to_owned(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect(),
                    body: serde_json::from_slice(&e.body).unwrap_or(serde_json::Value::Null),
                    status: e.status,
                    dialect: dialect.map(|d| d.name()),
                    model: None,
                    inputs: None,
                    input_type: None,
                    output_type: None,
                    received: e.received,
                };
                if let Some(d) = dialect {
                    let summary = d.describe(&r);
                    r.model = summary.model;
                    r.inputs = summary.inputs;
                    r.input_type = summary.input_type;
                    r.output_type = summary.output_type;
                }
                r
            })
            .collect()
    }
}
