//! Turns across connections (fair share): a stage keeps one queue per connection and
//! serves the connections in a ring, one item each per turn, instead of one FIFO in arrival
//! order. A connection that becomes ready joins the ring at the back, so it is served after
//! at most one item of each connection already waiting, however long their queues are.
//! Within a connection the order is kept (or chosen by the stage with `push_front`).

use std::collections::{HashMap, VecDeque};

use super::msg::ConnId;

pub struct Turns<T> {
    queues: HashMap<ConnId, VecDeque<T>>,
    /// The connections with something queued, each once, in turn order.
    ring: VecDeque<ConnId>,
    len: usize,
}

impl<T> Default for Turns<T> {
    fn default() -> Self {
        Turns {
            queues: HashMap::new(),
            ring: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> Turns<T> {
    /// Items queued, all connections together.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Connections with something queued: one round serves each of them once.
    pub fn conns(&self) -> usize {
        self.ring.len()
    }

    fn queue(&mut self, conn: ConnId) -> &mut VecDeque<T> {
        let q = self.queues.entry(conn).or_default();
        if q.is_empty() {
            self.ring.push_back(conn);
        }
        q
    }

    /// Queues `item` behind the connection's others.
    pub fn push(&mut self, conn: ConnId, item: T) {
        self.queue(conn).push_back(item);
        self.len += 1;
    }

    /// Queues `item` before the connection's others (it still waits for its turn).
    pub fn push_front(&mut self, conn: ConnId, item: T) {
        self.queue(conn).push_front(item);
        self.len += 1;
    }

    /// The next connection's first item; that connection goes to the back of the ring.
    pub fn pop(&mut self) -> Option<(ConnId, T)> {
        self.pop_where(|_, _| true)
    }

    /// Like `pop`, for the first connection in turn order whose first item passes `ready`;
    /// connections passed over keep their places.
    pub fn pop_where(&mut self, mut ready: impl FnMut(ConnId, &T) -> bool) -> Option<(ConnId, T)> {
        let pos = self.ring.iter().position(|c| {
            self.queues
                .get(c)
                .and_then(VecDeque::front)
                .is_some_and(|item| ready(*c, item))
        })?;
        let conn = self.ring.remove(pos)?;
        let q = self.queues.get_mut(&conn)?;
        let item = q.pop_front()?;
        self.len -= 1;
        if q.is_empty() {
            self.queues.remove(&conn);
        } else {
            self.ring.push_back(conn);
        }
        Some((conn, item))
    }

    /// One connection's queued items, in order.
    pub fn iter_conn(&self, conn: ConnId) -> impl Iterator<Item = &T> {
        self.queues.get(&conn).into_iter().flatten()
    }

    /// Keeps only the connection's items that pass `keep`.
    pub fn retain_conn(&mut self, conn: ConnId, keep: impl FnMut(&T) -> bool) {
        let Some(q) = self.queues.get_mut(&conn) else {
            return;
        };
        let before = q.len();
        q.retain(keep);
        self.len -= before - q.len();
        if q.is_empty() {
            self.queues.remove(&conn);
            self.ring.retain(|c| *c != conn);
        }
    }

    /// Drops everything the connection has queued.
    pub fn remove_conn(&mut self, conn: ConnId) {
        self.retain_conn(conn, |_| false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8),
        PushFront(u8),
        Pop,
        /// Pop, passing over connections whose id is odd.
        PopEven,
        RemoveConn(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..6).prop_map(Op::Push),
            1 => (0u8..6).prop_map(Op::PushFront),
            4 => Just(Op::Pop),
            1 => Just(Op::PopEven),
            1 => (0u8..6).prop_map(Op::RemoveConn),
        ]
    }

    proptest! {
        /// Against a model: items come out of each connection in its order, nothing is
        /// lost or invented, and a connection waiting in the ring is served after at most
        /// one item of each connection that was ahead of it when it joined or was last
        /// served (the fair-share bound), however many items those connections hold.
        #[test]
        fn each_waiting_connection_is_served_within_one_round(ops in prop::collection::vec(op(), 1..400)) {
            let mut t: Turns<(u8, u32)> = Turns::default();
            let mut model: HashMap<u8, VecDeque<(u8, u32)>> = HashMap::new();
            // Pops other connections may still take before each waiting one is served.
            let mut ahead: HashMap<u8, usize> = HashMap::new();
            let mut serial = 0u32;
            for op in ops {
                match op {
                    Op::Push(c) | Op::PushFront(c) => {
                        serial += 1;
                        let item = (c, serial);
                        let q = model.entry(c).or_default();
                        if q.is_empty() {
                            ahead.insert(c, t.conns());
                        }
                        if matches!(op, Op::Push(_)) {
                            q.push_back(item);
                            t.push(u64::from(c), item);
                        } else {
                            q.push_front(item);
                            t.push_front(u64::from(c), item);
                        }
                    }
                    Op::Pop | Op::PopEven => {
                        let even = matches!(op, Op::PopEven);
                        let got = t.pop_where(|c, _| !even || c % 2 == 0);
                        let Some((conn, item)) = got else {
                            prop_assert!(model.iter().all(|(c, q)| q.is_empty() || (even && c % 2 == 1)));
                            continue;
                        };
                        let c = u8::try_from(conn).unwrap();
                        prop_assert_eq!(item.0, c);
                        let q = model.get_mut(&c).unwrap();
                        prop_assert_eq!(q.pop_front(), Some(item));
                        if !even {
                            // Everyone still waiting had one fewer turn ahead of it.
                            for (w, n) in ahead.iter_mut() {
                                if *w != c && !model[w].is_empty() {
                                    prop_assert!(*n > 0, "conn {} waited more than a round", w);
                                    *n -= 1;
                                }
                            }
                        } else {
                            // Passed-over connections keep their places; the model's bound
                            // only holds for plain turns, so reset it.
                            for n in ahead.values_mut() {
                                *n = (*n).max(t.conns());
                            }
                        }
                        if model[&c].is_empty() {
                            ahead.remove(&c);
                        } else {
                            ahead.insert(c, t.conns() - 1);
                        }
                    }
                    Op::RemoveConn(c) => {
                        t.remove_conn(u64::from(c));
                        model.remove(&c);
                        ahead.remove(&c);
                    }
                }
                prop_assert_eq!(t.len(), model.values().map(VecDeque::len).sum::<usize>());
                prop_assert_eq!(t.conns(), model.values().filter(|q| !q.is_empty()).count());
            }
        }
    }

    #[test]
    fn a_newcomer_waits_one_item_of_each_busy_connection() {
        let mut t = Turns::default();
        for i in 0..1000 {
            t.push(1, i);
            t.push(2, i);
        }
        t.pop();
        t.push(3, 0);
        let order: Vec<ConnId> = (0..3).filter_map(|_| t.pop().map(|(c, _)| c)).collect();
        assert_eq!(order, vec![2, 1, 3]);
    }
}
