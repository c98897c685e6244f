//! Admission: the bounds that keep slow or greedy clients from starving honest ones.
//!
//! - Open connections are capped per client address on accept ([`Admission::connections`]).
//! - Each connection must deliver its first request's headers within the header timeout (TLS
//!   handshake and HTTP version detection included); HTTP/1.1 applies the same timeout to
//!   every later request's headers and to the idle wait between them; HTTP/2 pings the peer.
//! - A request body must arrive whole within the body timeout (`proxy::post`, 408), and a POST
//!   takes its global concurrency permit only once its body is in, so a trickling body holds
//!   none.
//! - Requests in flight are capped per token subject ([`Admission::subjects`], 429).
//!
//! Refusals made before there is any request (a connection closed on accept, headers that
//! never finished) are recorded at most once per reason and address per [`EVENT_WINDOW`], with
//! a count of the refusals since the last record, so an attacker cannot flood the log.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;

use super::Gateway;
use crate::config::GatewayConfig;
use crate::protocol::EventData;
use crate::protocol::events::Refusal;

/// A connection-level refusal of one reason and address is recorded at most this often.
pub const EVENT_WINDOW: Duration = Duration::from_secs(10);
/// Addresses the event throttle tracks at once; refusals of further addresses are counted
/// together under the unspecified address until the table empties.
const THROTTLE_ADDRESSES: usize = 4096;
/// How often an HTTP/2 connection is pinged (it must answer within the header timeout).
const H2_PING_EVERY: Duration = Duration::from_secs(30);

/// Why a connection was refused before any request.
pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";
/// Why a connection was closed before its first request's headers were in.
pub const HEADER_TIMEOUT: &str = "header_timeout";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Things held open per key (connections per address, requests per subject), each key
/// bounded by one cap.
#[derive(Debug)]
pub struct Counts<K> {
    cap: usize,
    held: Arc<Mutex<HashMap<K, usize>>>,
}

/// One place held in a [`Counts`]; dropping it gives the place back.
#[derive(Debug)]
pub struct Held<K: Eq + Hash> {
    key: Option<K>,
    held: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Eq + Hash + Clone> Counts<K> {
    /// Counters allowing `cap` places per key (at least one).
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            held: Arc::default(),
        }
    }

    /// The cap per key.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Takes one place of `key`, or `None` when it already holds the cap.
    pub fn try_hold(&self, key: K) -> Option<Held<K>> {
        let mut held = lock(&self.held);
        let n = held.entry(key.clone()).or_default();
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Held {
            key: Some(key),
            held: self.held.clone(),
        })
    }
}

impl<K: Eq + Hash> Drop for Held<K> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut held = lock(&self.held);
        if let Some(n) = held.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&key);
            }
        }
    }
}

/// The address a connection counts against: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its
/// /64, since one host is commonly given a whole /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
    }
}

/// Connection-level refusals of one reason and address, due to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Burst {
    /// The refusal reason ([`TOO_MANY_CONNECTIONS`] or [`HEADER_TIMEOUT`]).
    pub reason: &'static str,
    /// The address (as counted by [`address_key`]; unspecified: many addresses together).
    pub address: IpAddr,
    /// Refusals since the previous record of this reason and address.
    pub count: u64,
}

#[derive(Debug)]
struct Unrecorded {
    recorded_at: Instant,
    count: u64,
}

/// Holds back repeated connection-level refusals: the first of a reason and address is
/// recorded at once, the next ones are counted and recorded together a window later.
#[derive(Debug)]
pub struct Throttle {
    window: Duration,
    entries: Mutex<HashMap<(&'static str, IpAddr), Unrecorded>>,
}

impl Throttle {
    /// A throttle recording each reason and address at most once per `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            entries: Mutex::default(),
        }
    }

    /// Counts one refusal; returns what to record now when this reason and address had no
    /// record within the window.
    pub fn note(&self, reason: &'static str, address: IpAddr, now: Instant) -> Option<Burst> {
        let mut entries = lock(&self.entries);
        let mut key = (reason, address);
        if !entries.contains_key(&key) && entries.len() >= THROTTLE_ADDRESSES {
            key.1 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        }
        match entries.get_mut(&key) {
            Some(entry) if now.duration_since(entry.recorded_at) < self.window => {
                entry.count += 1;
                None
            }
            Some(entry) => {
                let count = entry.count + 1;
                *entry = Unrecorded {
                    recorded_at: now,
                    count: 0,
                };
                Some(Burst {
                    reason,
                    address: key.1,
                    count,
                })
            }
            None => {
                entries.insert(
                    key,
                    Unrecorded {
                        recorded_at: now,
                        count: 0,
                    },
                );
                Some(Burst {
                    reason,
                    address: key.1,
                    count: 1,
                })
            }
        }
    }

    /// The refusals held back whose window has passed (to record now); forgets the reasons
    /// and addresses that stayed quiet for a window.
    pub fn due(&self, now: Instant) -> Vec<Burst> {
        let mut due = Vec::new();
        lock(&self.entries).retain(|&(reason, address), entry| {
            if now.duration_since(entry.recorded_at) < self.window {
                return true;
            }
            if entry.count == 0 {
                return false;
            }
            due.push(Burst {
                reason,
                address,
                count: entry.count,
            });
            *entry = Unrecorded {
                recorded_at: now,
                count: 0,
            };
            true
        });
        due
    }
}

/// The gateway's admission bounds and timeouts.
#[derive(Debug)]
pub struct Admission {
    /// Open connections per client address ([`address_key`]).
    pub connections: Counts<IpAddr>,
    /// Requests in flight per token subject.
    pub subjects: Counts<String>,
    /// Connection-level refusals not recorded yet.
    pub throttle: Throttle,
    /// Time to deliver request headers.
    pub header_timeout: Duration,
    /// Time to deliver a whole request body.
    pub body_timeout: Duration,
}

impl Admission {
    /// The bounds of `[gateway]` (zeros count as one).
    pub fn new(gc: &GatewayConfig) -> Self {
        Self {
            connections: Counts::new(gc.max_connections_per_ip),
            subjects: Counts::new(gc.max_inflight_per_subject),
            throttle: Throttle::new(EVENT_WINDOW),
            header_timeout: Duration::from_secs(gc.header_timeout_secs.max(1)),
            body_timeout: Duration::from_secs(gc.body_timeout_secs.max(1)),
        }
    }

    /// The `refusal` event of a burst.
    pub fn refusal(&self, burst: &Burst) -> Refusal {
        let (status, why) = match burst.reason {
            TOO_MANY_CONNECTIONS => (
                429,
                format!(
                    "closed on accept: over max_connections_per_ip = {}",
                    self.connections.cap()
                ),
            ),
            _ => (
                408,
                format!(
                    "closed: no complete request headers within {} s (header_timeout_secs)",
                    self.header_timeout.as_secs()
                ),
            ),
        };
        let from = if burst.address.is_unspecified() {
            "addresses beyond the throttle's table".to_string()
        } else {
            burst.address.to_string()
        };
        Refusal {
            status,
            reason: burst.reason.to_string(),
            detail: format!(
                "{} connection(s) from {from} within {} s: {why}",
                burst.count,
                EVENT_WINDOW.as_secs()
            ),
            upstream: None,
            method: None,
            user: None,
            remote: Some(burst.address.to_string()),
        }
    }

    /// The connection builder: header read timeout for HTTP/1.1, pings for HTTP/2.
    fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_PING_EVERY)
            .keep_alive_timeout(self.header_timeout);
        builder
    }
}

/// Counts one connection-level refusal and records it unless the throttle holds it back
/// (the event is written by a task of its own: the accept loop never waits for the log).
pub(super) fn refused_connection(gw: &Arc<Gateway>, reason: &'static str, peer: SocketAddr) {
    gw.metrics.refusal(reason);
    let address = address_key(peer.ip());
    if let Some(burst) = gw.admission.throttle.note(reason, address, Instant::now()) {
        let gw = gw.clone();
        tokio::spawn(async move {
            let event = gw.admission.refusal(&burst);
            gw.events.emit(EventData::Refusal(event)).await;
        });
    }
}

/// Records the held-back connection-level refusals as their windows pass.
pub(super) async fn record_held_back(gw: Arc<Gateway>) {
    let mut tick = tokio::time::interval(EVENT_WINDOW / 5);
    loop {
        tick.tick().await;
        for burst in gw.admission.throttle.due(Instant::now()) {
            let event = gw.admission.refusal(&burst);
            gw.events.emit(EventData::Refusal(event)).await;
        }
    }
}

/// Serves one accepted connection: TLS when configured, then HTTP/1.1 or HTTP/2, closed when
/// no request's headers are in within the header timeout.
pub(super) async fn connection(
    gw: Arc<Gateway>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let deadline = tokio::time::Instant::now() + gw.admission.header_timeout;
    let served = Arc::new(AtomicBool::new(false));
    let service = {
        let (gw, served) = (gw.clone(), served.clone());
        service_fn(move |req| {
            served.store(true, Ordering::Relaxed);
            let gw = gw.clone();
            async move { Ok::<_, std::convert::Infallible>(super::proxy::handle(gw, req, peer).await) }
        })
    };
    let builder = gw.admission.builder();
    let ended = match tls {
        Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => {
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                first_request_by(conn, deadline, &served).await
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => None,
        },
        None => {
            let conn = builder.serve_connection(TokioIo::new(tcp), service);
            first_request_by(conn, deadline, &served).await
        }
    };
    let timed_out = match ended {
        None => true,
        Some(Ok(())) => false,
        Some(Err(e)) => {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
            e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
        }
    };
    // Later header timeouts of a connection that was served are idle keep-alive connections
    // closing, nothing to record.
    if timed_out && !served.load(Ordering::Relaxed) {
        tracing::debug!(%peer, "connection closed: no request headers in time");
        refused_connection(&gw, HEADER_TIMEOUT, peer);
    }
}

/// Runs `conn` to its end, or `None` when no request reached the service by `deadline`
/// (dropping `conn` closes the connection).
async fn first_request_by<F: Future>(
    conn: F,
    deadline: tokio::time::Instant,
    served: &AtomicBool,
) -> Option<F::Output> {
    let expiry = async {
        tokio::time::sleep_until(deadline).await;
        if served.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        out = conn => Some(out),
        () = expiry => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cap_each_key_and_give_places_back_on_drop() {
        let counts = Counts::new(2);
        let a1 = counts.try_hold("a");
        let a2 = counts.try_hold("a");
        assert!(a1.is_some() && a2.is_some());
        assert!(counts.try_hold("a").is_none(), "over the cap");
        let b = counts.try_hold("b");
        assert!(b.is_some(), "another key has its own places");
        drop(a1);
        assert_eq!(lock(&counts.held).get("a"), Some(&1));
        assert!(counts.try_hold("a").is_some(), "a place given back is free");
        drop((a2, b));
        assert!(lock(&counts.held).is_empty(), "no key left behind");
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn throttle_records_once_per_window_and_then_the_count() {
        let throttle = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = throttle.note(TOO_MANY_CONNECTIONS, ip, t0).unwrap();
        assert_eq!(first.count, 1);
        for i in 1..=49 {
            let at = t0 + Duration::from_millis(i * 100);
            assert!(throttle.note(TOO_MANY_CONNECTIONS, ip, at).is_none());
        }
        assert!(
            throttle.note(HEADER_TIMEOUT, ip, t0).is_some(),
            "reasons apart"
        );
        assert!(throttle.due(t0 + Duration::from_secs(9)).is_empty());
        let due = throttle.due(t0 + Duration::from_secs(10));
        assert_eq!(
            due,
            vec![Burst {
                reason: TOO_MANY_CONNECTIONS,
                address: ip,
                count: 49
            }]
        );
        assert!(throttle.due(t0 + Duration::from_secs(30)).is_empty());
        assert!(
            lock(&throttle.entries).is_empty(),
            "quiet addresses forgotten"
        );
    }

    #[test]
    fn throttle_table_is_bounded() {
        let throttle = Throttle::new(Duration::from_secs(10));
        let now = Instant::now();
        for i in 0..(THROTTLE_ADDRESSES as u32 + 100) {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            throttle.note(TOO_MANY_CONNECTIONS, ip, now);
        }
        assert_eq!(lock(&throttle.entries).len(), THROTTLE_ADDRESSES + 1);
    }
}
