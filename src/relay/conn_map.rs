//! Per-connection state that a stage's two lane threads share (`msg::Lane`: a connection's
//! messages go to one thread or its sibling in the other lane) without a lock both take for
//! every message. Each thread keeps its own index of the connections it has served and takes
//! the pair's shared index only when it meets a connection for the first time, and when one
//! opens or closes. A busy-lane thread preempted while it holds that lock (it runs at
//! `busyLaneNice`, so any waking thread preempts it) then holds up its light sibling at most
//! once per connection instead of on any message: under a flood the per-message lock made
//! the polite client's REQ wait up to 6 ms for a SCHED_IDLE thread to get a core again.
//!
//! Each connection's value has a lock of its own, uncontended but for the moment a
//! connection changes lane (it does so only with nothing in flight, see `msg::LaneState`).
//! Connection ids are never reused, so an entry the other thread removed can only linger in
//! this thread's index, which sweeps such entries (held by nobody else) as it grows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::msg::ConnId;

/// One connection's value, as both threads of the pair hold it.
pub type Entry<V> = Arc<Mutex<V>>;

/// A lock, also after a panic elsewhere while it was held (every update is a single step).
pub fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One thread's view of the pair's connections.
pub struct ConnMap<V> {
    shared: Arc<Mutex<HashMap<ConnId, Entry<V>>>>,
    mine: HashMap<ConnId, Entry<V>>,
    /// Size of `mine` after its last sweep: the next one comes when it has doubled.
    swept_at: usize,
    /// Sweeps so far (tests: each is O(n), so they must stay O(log n)).
    #[cfg(test)]
    sweeps: usize,
}

/// Entries below which `mine` is never swept.
const SWEEP_FLOOR: usize = 64;

impl<V: Default> ConnMap<V> {
    /// The two views of one pair (light thread, busy thread).
    pub fn pair() -> (ConnMap<V>, ConnMap<V>) {
        let shared = Arc::new(Mutex::new(HashMap::new()));
        let view = |shared: &Arc<_>| ConnMap {
            shared: Arc::clone(shared),
            mine: HashMap::new(),
            swept_at: 0,
            #[cfg(test)]
            sweeps: 0,
        };
        (view(&shared), view(&shared))
    }

    /// The connection's value, made (default) if neither thread has seen it yet.
    pub fn get(&mut self, conn: ConnId) -> &Entry<V> {
        if !self.mine.contains_key(&conn) {
            let e = locked(&self.shared).entry(conn).or_default().clone();
            self.keep(conn, e);
        }
        &self.mine[&conn]
    }

    /// A connection that opens, with its first value. The sibling may have met it first
    /// (its first message can reach the other lane before the open is handled, with
    /// `busyAtMessagesInFlight = 1`): then the value it made is replaced in place, so both
    /// threads keep holding the same one.
    pub fn insert(&mut self, conn: ConnId, v: V) {
        let e = {
            let mut shared = locked(&self.shared);
            match shared.get(&conn) {
                Some(e) => {
                    *locked(e) = v;
                    e.clone()
                }
                None => {
                    let e = Arc::new(Mutex::new(v));
                    shared.insert(conn, e.clone());
                    e
                }
            }
        };
        self.keep(conn, e);
    }

    /// A connection that closed: gone for both threads (the other's index drops it at its
    /// next sweep). Its value, if either thread had one.
    pub fn remove(&mut self, conn: ConnId) -> Option<Entry<V>> {
        let shared = locked(&self.shared).remove(&conn);
        self.mine.remove(&conn).or(shared)
    }

    fn keep(&mut self, conn: ConnId, e: Entry<V>) {
        self.mine.insert(conn, e);
        if self.mine.len() >= (2 * self.swept_at).max(SWEEP_FLOOR) {
            // Held only here: the shared index (and so the sibling) let it go.
            self.mine.retain(|_, e| Arc::strong_count(e) > 1);
            self.swept_at = self.mine.len();
            #[cfg(test)]
            {
                self.sweeps += 1;
            }
        }
    }

    /// Connections this thread's index holds (tests).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.mine.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn both_threads_see_one_value() {
        let (mut light, mut busy) = ConnMap::<u32>::pair();
        light.insert(7, 1);
        *locked(busy.get(7)) += 1;
        *locked(light.get(7)) += 1;
        assert_eq!(*locked(busy.get(7)), 3);
        // Made by whichever thread meets it first, then the same for the other.
        *locked(busy.get(8)) = 5;
        assert_eq!(*locked(light.get(8)), 5);
    }

    #[test]
    fn an_open_handled_after_the_siblings_first_message_is_shared() {
        let (mut light, mut busy) = ConnMap::<u32>::pair();
        *locked(busy.get(3)) = 1;
        light.insert(3, 10);
        *locked(busy.get(3)) += 1;
        assert_eq!(*locked(light.get(3)), 11);
    }

    /// The invariant the module exists for: once a thread has met a connection, its
    /// messages never wait for the shared lock (held here by the test, as a preempted
    /// sibling would hold it).
    #[test]
    fn a_known_connection_does_not_take_the_shared_lock() {
        let (mut light, busy) = ConnMap::<u32>::pair();
        light.insert(1, 0);
        let held = busy.shared.clone();
        let guard = locked(&held);
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            *locked(light.get(1)) += 1;
            let _ = tx.send(());
            light
        });
        let got = rx.recv_timeout(Duration::from_secs(5));
        drop(guard);
        let light = t.join().expect("thread");
        assert!(got.is_ok(), "a known connection waited for the shared lock");
        drop(light);
    }

    #[test]
    fn a_closed_connection_leaves_both_indexes() {
        let (mut light, mut busy) = ConnMap::<u32>::pair();
        for c in 0..1000 {
            light.insert(c, 0);
            busy.get(c);
            // Closed on the busy side: the light index keeps a stale entry until it sweeps.
            assert!(busy.remove(c).is_some());
        }
        assert_eq!(busy.held(), 0);
        assert!(
            light.held() < 2 * SWEEP_FLOOR,
            "closed connections pile up: {}",
            light.held()
        );
        assert!(locked(&light.shared).is_empty());
    }

    #[test]
    fn open_connections_are_never_swept() {
        let (mut light, mut busy) = ConnMap::<u32>::pair();
        for c in 0..500 {
            light.insert(c, c as u32);
        }
        assert_eq!(light.held(), 500);
        // Each sweep walks the whole index: they come as it doubles (64, 128, 256).
        assert!(
            light.sweeps <= 3,
            "{} sweeps for 500 connections",
            light.sweeps
        );
        for c in 0..500 {
            assert_eq!(*locked(busy.get(c)), c as u32);
        }
    }
}
