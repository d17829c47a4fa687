//! Two io threads (fair share, issue 20). The main io thread accepts, serves HTTP and owns
//! the sockets of light connections; a connection that moves to the busy lane
//! (`msg::Lane`) is handed over whole — socket, queues, framing and deflate state — to a
//! second io thread running at `relay.busyLaneNice`, so a flood's socket work (its reads,
//! frames and writes, and the kernel's loopback work inside them) waits for cores the
//! other clients leave idle, as its stage work already does. It comes back when it turns
//! light again. Either way a socket has one owner at a time.
//!
//! The busy lane's stage threads (ingester, req-worker) answer through the busy io thread;
//! every other stage (writer, monitors, negentropy, compressors) sends to the main one,
//! which forwards what is for a connection it handed over. Order holds per connection:
//! a connection changes lane only with nothing in flight, and moves *before* the message
//! that changed its lane is delivered (the new owner delivers it), so the lane's answers
//! never reach an io thread before the connection does; the forwarded messages share the
//! busy thread's FIFO. Handing back needs a fence, because what the main thread forwarded
//! before it learnt of the return (and any busy-lane answer still queued) is on its way
//! to the busy thread: the main thread holds the connection's new messages and sends
//! `Fence`; the busy thread sends everything it gets for the connection back (`Back`)
//! until the fence, then answers `Fenced`, and the held messages follow. The main thread
//! hands over no connection while it holds messages for it.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mio::{Interest, Token};

use super::{Conn, Io, Phase};
use crate::relay::msg::{ConnId, Framed, IoSender, Lane, Outbound};
use crate::relay::ThreadPriority;

/// A connection on its way from one io thread to the other.
pub struct Moved {
    id: ConnId,
    conn: Box<Conn>,
}

/// Which io thread this is, and its link to the other.
pub enum Link {
    Main(MainLink),
    Busy(BusyLink),
}

pub struct MainLink {
    /// The busy io thread's inbox.
    pub busy: IoSender,
    pub routes: RefCell<MainRoutes<Outbound>>,
    pub thread: RefCell<Option<std::thread::JoinHandle<()>>>,
    /// Tells the busy thread to finish (after the main thread has).
    pub stop: Arc<AtomicBool>,
}

pub struct BusyLink {
    /// The main io thread's inbox (the one the stages use).
    pub main: IoSender,
    pub routes: RefCell<BusyRoutes>,
    pub(crate) nice: RefCell<ThreadPriority>,
}

impl MainLink {
    pub fn new(busy: IoSender, thread: std::thread::JoinHandle<()>, stop: Arc<AtomicBool>) -> Self {
        MainLink {
            busy,
            routes: RefCell::default(),
            thread: RefCell::new(Some(thread)),
            stop,
        }
    }
}

impl BusyLink {
    pub fn new(main: IoSender) -> Self {
        BusyLink {
            main,
            routes: RefCell::default(),
            nice: RefCell::default(),
        }
    }
}

/// Where a message for one connection goes from this thread.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dest {
    Here,
    /// Main: the connection is at the busy thread.
    Forward,
    /// Main: returned, fence pending.
    Hold,
    /// Busy: returned, so back to the main thread.
    Bounce,
}

/// The main thread's routing state (sans IO: the model test drives it).
pub struct MainRoutes<M> {
    /// Connections handed to the busy thread: their messages are forwarded.
    away: HashSet<ConnId>,
    /// Connections it returned whose fence has not come back: their new messages wait.
    held: HashMap<ConnId, Vec<M>>,
}

impl<M> Default for MainRoutes<M> {
    fn default() -> Self {
        MainRoutes {
            away: HashSet::new(),
            held: HashMap::new(),
        }
    }
}

impl<M> MainRoutes<M> {
    pub fn dest(&self, conn: ConnId) -> Dest {
        if self.away.contains(&conn) {
            Dest::Forward
        } else if self.held.contains_key(&conn) {
            Dest::Hold
        } else {
            Dest::Here
        }
    }

    pub fn hold(&mut self, conn: ConnId, m: M) {
        self.held.entry(conn).or_default().push(m);
    }

    /// Handed to the busy thread (only a connection whose messages come `Here`).
    pub fn handed_over(&mut self, conn: ConnId) {
        self.away.insert(conn);
    }

    /// Back from the busy thread: its messages wait until `fenced` (the caller sends the
    /// busy thread a `Fence`).
    pub fn returned(&mut self, conn: ConnId) {
        self.away.remove(&conn);
        self.held.insert(conn, Vec::new());
    }

    /// The fence came back: what was held, in order.
    pub fn fenced(&mut self, conn: ConnId) -> Vec<M> {
        self.held.remove(&conn).unwrap_or_default()
    }

    /// The busy thread closed it.
    pub fn gone(&mut self, conn: ConnId) {
        self.away.remove(&conn);
    }

    /// This thread closed it: nothing held is delivered.
    pub fn dropped(&mut self, conn: ConnId) {
        self.held.remove(&conn);
    }

    pub fn away(&self) -> usize {
        self.away.len()
    }

    fn is_empty(&self) -> bool {
        self.away.is_empty() && self.held.is_empty()
    }
}

/// The busy thread's routing state.
#[derive(Default)]
pub struct BusyRoutes {
    /// Connections handed back, until the main thread's fence for them comes.
    returned: HashSet<ConnId>,
}

impl BusyRoutes {
    pub fn dest(&self, conn: ConnId) -> Dest {
        if self.returned.contains(&conn) {
            Dest::Bounce
        } else {
            Dest::Here
        }
    }

    pub fn handed_back(&mut self, conn: ConnId) {
        self.returned.insert(conn);
    }

    /// The main thread's fence: nothing more for `conn` can come (answered with `Fenced`).
    pub fn fence(&mut self, conn: ConnId) {
        self.returned.remove(&conn);
    }
}

impl Io {
    fn dest(&self, conn: ConnId) -> Dest {
        match &self.link {
            Link::Main(l) => l.routes.borrow().dest(conn),
            Link::Busy(b) => b.routes.borrow().dest(conn),
        }
    }

    /// Sends `m` (for one connection, or a part of a message split by connection) where
    /// `d` says; `Here` goes to `local`, for the caller to handle in order.
    fn send_to(&self, d: Dest, conn: ConnId, m: Outbound, local: &mut Vec<Outbound>) {
        match (d, &self.link) {
            (Dest::Forward, Link::Main(l)) => l.busy.send(m),
            (Dest::Hold, Link::Main(l)) => l.routes.borrow_mut().hold(conn, m),
            (Dest::Bounce, Link::Busy(b)) => b.main.send(Outbound::Back(Box::new(m))),
            _ => local.push(m),
        }
    }

    /// Routes one inbox message: what is for this thread's connections goes to `local`
    /// (in order), the rest to the other thread or to a connection's held queue; messages
    /// between the threads are acted on here.
    pub(super) fn route(
        &self,
        m: Outbound,
        conns: &mut HashMap<ConnId, Conn>,
        touched: &mut HashSet<ConnId>,
        local: &mut Vec<Outbound>,
    ) {
        let conn = match &m {
            Outbound::Send { conn, .. }
            | Outbound::SendAll { conn, .. }
            | Outbound::SendPaced { conn, .. }
            | Outbound::RateLimited { conn }
            | Outbound::HttpReply { conn, .. } => *conn,
            Outbound::Framed(_) | Outbound::EventBatch { .. } => return self.split(m, local),
            _ => return self.between(m, conns, touched, local),
        };
        self.send_to(self.dest(conn), conn, m, local);
    }

    /// A message for several connections, split by where each goes (in order per
    /// connection: each part keeps its items' order).
    fn split(&self, m: Outbound, local: &mut Vec<Outbound>) {
        let all_here = match &self.link {
            Link::Main(l) => l.routes.borrow().is_empty(),
            Link::Busy(b) => b.routes.borrow().returned.is_empty(),
        };
        if all_here {
            local.push(m);
            return;
        }
        match m {
            Outbound::Framed(frames) => {
                let mut here: Vec<Framed> = Vec::new();
                let mut forward: Vec<Framed> = Vec::new();
                for f in frames {
                    match self.dest(f.conn) {
                        Dest::Here => here.push(f),
                        Dest::Forward => forward.push(f),
                        d => {
                            let conn = f.conn;
                            self.send_to(d, conn, Outbound::Framed(vec![f]), local);
                        }
                    }
                }
                if !forward.is_empty() {
                    self.send_to(Dest::Forward, 0, Outbound::Framed(forward), local);
                }
                if !here.is_empty() {
                    local.push(Outbound::Framed(here));
                }
            }
            Outbound::EventBatch { json, recipients } => {
                let mut here = Vec::new();
                let mut forward = Vec::new();
                for (conn, sub) in recipients {
                    match self.dest(conn) {
                        Dest::Here => here.push((conn, sub)),
                        Dest::Forward => forward.push((conn, sub)),
                        d => {
                            let part = Outbound::EventBatch {
                                json: json.clone(),
                                recipients: vec![(conn, sub)],
                            };
                            self.send_to(d, conn, part, local);
                        }
                    }
                }
                if !forward.is_empty() {
                    let part = Outbound::EventBatch {
                        json: json.clone(),
                        recipients: forward,
                    };
                    self.send_to(Dest::Forward, 0, part, local);
                }
                if !here.is_empty() {
                    local.push(Outbound::EventBatch {
                        json,
                        recipients: here,
                    });
                }
            }
            m => local.push(m),
        }
    }

    /// The messages the two io threads send each other.
    fn between(
        &self,
        m: Outbound,
        conns: &mut HashMap<ConnId, Conn>,
        touched: &mut HashSet<ConnId>,
        local: &mut Vec<Outbound>,
    ) {
        match (m, &self.link) {
            (Outbound::Adopt(moved), _) => self.adopt(moved, conns, touched),
            (Outbound::Returned(moved), Link::Main(l)) => {
                let id = moved.id;
                l.routes.borrow_mut().returned(id);
                l.busy.send(Outbound::Fence(id));
                self.adopt(moved, conns, touched);
            }
            (Outbound::Fence(id), Link::Busy(b)) => {
                b.routes.borrow_mut().fence(id);
                b.main.send(Outbound::Fenced(id));
            }
            (Outbound::Fenced(id), Link::Main(l)) => {
                let held = l.routes.borrow_mut().fenced(id);
                local.extend(held);
            }
            // Older than anything held for its connection: handled at once.
            (Outbound::Back(m), _) => local.push(*m),
            (Outbound::Gone { conn, key }, Link::Main(l)) => {
                l.routes.borrow_mut().gone(conn);
                if let Some(k) = key {
                    self.ips.borrow_mut().closed(k);
                }
            }
            (Outbound::Strike { conn, key }, Link::Main(_)) => self.strike(conn, key),
            _ => {}
        }
    }

    /// Takes a connection handed over by the other io thread: its socket joins this
    /// thread's poll, and it is read and written this turn (readiness that came while it
    /// moved may not come again).
    fn adopt(
        &self,
        moved: Moved,
        conns: &mut HashMap<ConnId, Conn>,
        touched: &mut HashSet<ConnId>,
    ) {
        let Moved { id, mut conn } = moved;
        let registered = match &mut conn.phase {
            Phase::Ws(ws) => self
                .poll
                .registry()
                .register(
                    &mut ws.stream,
                    Token(id as usize),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(|e| log::warn!("[{id}] register on the other io thread failed: {e}"))
                .is_ok(),
            _ => false,
        };
        conns.insert(id, *conn);
        if !registered {
            self.drop_conn(id, conns);
            return;
        }
        // The message that made it move (held, see `deliver`) goes to its lane now.
        if let Some(c) = conns.get_mut(&id) {
            self.on_readable(id, c);
        }
        touched.insert(id);
    }

    /// Hands the touched connections that changed lane this turn to the other io thread:
    /// busy ones from the main thread, light ones back from the busy thread. Closing
    /// connections finish where they are.
    pub(super) fn hand_over(&self, conns: &mut HashMap<ConnId, Conn>, touched: &HashSet<ConnId>) {
        let serves = self.serves();
        let ids: Vec<ConnId> = touched
            .iter()
            .copied()
            .filter(|id| {
                conns.get(id).is_some_and(|c| {
                    c.lane.lane != serves
                        && matches!(c.phase, Phase::Ws(_))
                        && !c.closing
                        && c.unannounced.is_none()
                }) && self.dest(*id) == Dest::Here
            })
            .collect();
        if ids.is_empty() {
            return;
        }
        // The jobs this thread queued for their compressor leave first: the other thread's
        // jobs for them must come after.
        if let Some(comp) = &self.compressors {
            comp.flush();
        }
        for id in ids {
            let Some(mut conn) = conns.remove(&id) else {
                continue;
            };
            if let Phase::Ws(ws) = &mut conn.phase {
                let _ = self.poll.registry().deregister(&mut ws.stream);
            }
            let moved = Moved {
                id,
                conn: Box::new(conn),
            };
            match &self.link {
                Link::Main(l) => {
                    l.routes.borrow_mut().handed_over(id);
                    l.busy.send(Outbound::Adopt(moved));
                }
                Link::Busy(b) => {
                    b.routes.borrow_mut().handed_back(id);
                    b.main.send(Outbound::Returned(moved));
                }
            }
        }
    }

    /// The lane whose connections' sockets this thread owns.
    pub(super) fn serves(&self) -> Lane {
        match &self.link {
            Link::Main(_) => Lane::Light,
            Link::Busy(_) => Lane::Busy,
        }
    }

    /// Connections the main thread has handed over and not got back.
    pub(super) fn away(&self) -> usize {
        match &self.link {
            Link::Main(l) => l.routes.borrow().away(),
            Link::Busy(_) => 0,
        }
    }

    /// A connection of this thread is gone: the main thread forgets what it held for it;
    /// the busy thread tells the main one (which keeps the per-IP table).
    pub(super) fn forget(&self, id: ConnId, key: Option<crate::policy::limits::IpKey>) {
        match &self.link {
            Link::Main(l) => {
                l.routes.borrow_mut().dropped(id);
                if let Some(k) = key {
                    self.ips.borrow_mut().closed(k);
                }
            }
            Link::Busy(b) => b.main.send(Outbound::Gone { conn: id, key }),
        }
    }

    /// After the main thread's loop: the busy thread finishes too (closing its
    /// connections), and is waited for.
    pub(super) fn finish(&self) {
        if let Link::Main(l) = &self.link {
            l.stop.store(true, Ordering::Relaxed);
            l.busy.wake();
            if let Some(t) = l.thread.borrow_mut().take() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! A model of the two io threads around one connection: the shared stages send
    //! numbered messages to the main thread, and while the connection is busy its lane's
    //! stage threads answer what the busy thread delivered them straight to the busy thread;
    //! the connection is handed over at any moment and back whenever nothing is in flight,
    //! and each thread takes its inbox in any interleaving. Whatever the order of events,
    //! the connection's owner must handle every message, once, in the order each source
    //! sent them.
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    const C: ConnId = 7;

    enum ToMain {
        Stage(u32),
        Back(u32),
        Returned,
        Fenced,
    }

    enum ToBusy {
        Forwarded(u32),
        /// A busy-lane stage thread's answer (numbered from `LANE`).
        Direct(u32),
        Adopt,
        Fence,
    }

    const LANE: u32 = 1 << 30;

    #[derive(Debug, Clone)]
    enum Op {
        Send,
        /// The busy thread delivers a message to its lane (an answer is owed).
        Request,
        /// The lane answers one.
        Answer,
        MainStep,
        BusyStep,
        HandOver,
        HandBack,
    }

    #[derive(Default)]
    struct Model {
        main: MainRoutes<u32>,
        busy: BusyRoutes,
        to_main: VecDeque<ToMain>,
        to_busy: VecDeque<ToBusy>,
        main_owns: bool,
        busy_owns: bool,
        sent: u32,
        /// Busy-lane answers owed (messages in flight), and sent.
        owed: u32,
        answered: u32,
        handled: Vec<u32>,
        /// Handled by a thread that did not own the connection (the real loop drops them).
        lost: Vec<u32>,
    }

    impl Model {
        fn handle(&mut self, by_owner: bool, n: u32) {
            if by_owner {
                self.handled.push(n);
            } else {
                self.lost.push(n);
            }
        }

        fn main_step(&mut self) {
            let Some(m) = self.to_main.pop_front() else {
                return;
            };
            match m {
                ToMain::Stage(n) => match self.main.dest(C) {
                    Dest::Forward => self.to_busy.push_back(ToBusy::Forwarded(n)),
                    Dest::Hold => self.main.hold(C, n),
                    _ => self.handle(self.main_owns, n),
                },
                ToMain::Back(n) => self.handle(self.main_owns, n),
                ToMain::Returned => {
                    self.main.returned(C);
                    self.main_owns = true;
                    self.to_busy.push_back(ToBusy::Fence);
                }
                ToMain::Fenced => {
                    for n in self.main.fenced(C) {
                        self.handle(self.main_owns, n);
                    }
                }
            }
        }

        fn busy_step(&mut self) {
            let Some(m) = self.to_busy.pop_front() else {
                return;
            };
            match m {
                ToBusy::Forwarded(n) | ToBusy::Direct(n) => match self.busy.dest(C) {
                    Dest::Bounce => self.to_main.push_back(ToMain::Back(n)),
                    _ => self.handle(self.busy_owns, n),
                },
                ToBusy::Adopt => self.busy_owns = true,
                ToBusy::Fence => {
                    self.busy.fence(C);
                    self.to_main.push_back(ToMain::Fenced);
                }
            }
        }

        fn apply(&mut self, op: &Op) {
            match op {
                Op::Send => {
                    self.to_main.push_back(ToMain::Stage(self.sent));
                    self.sent += 1;
                }
                Op::Request if self.busy_owns => self.owed += 1,
                Op::Answer if self.owed > 0 => {
                    self.owed -= 1;
                    self.to_busy.push_back(ToBusy::Direct(LANE + self.answered));
                    self.answered += 1;
                }
                Op::MainStep => self.main_step(),
                Op::BusyStep => self.busy_step(),
                // As `hand_over`: only a connection whose messages come here.
                Op::HandOver if self.main_owns && self.main.dest(C) == Dest::Here => {
                    self.main_owns = false;
                    self.main.handed_over(C);
                    self.to_busy.push_back(ToBusy::Adopt);
                }
                // A connection changes lane only with nothing in flight.
                Op::HandBack if self.busy_owns && self.owed == 0 => {
                    self.busy_owns = false;
                    self.busy.handed_back(C);
                    self.to_main.push_back(ToMain::Returned);
                }
                _ => {}
            }
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Send),
            2 => Just(Op::Request),
            2 => Just(Op::Answer),
            3 => Just(Op::MainStep),
            3 => Just(Op::BusyStep),
            1 => Just(Op::HandOver),
            1 => Just(Op::HandBack),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn every_message_reaches_the_owner_once_in_order(ops in proptest::collection::vec(op(), 1..200)) {
            let mut m = Model { main_owns: true, ..Model::default() };
            for op in &ops {
                m.apply(op);
            }
            // What is in flight is answered in the end.
            while m.owed > 0 {
                m.apply(&Op::Answer);
            }
            // Both inboxes drained (bounded: each step takes one message, and a thread
            // sends at most one per message it takes, until both are empty).
            for _ in 0..10_000 {
                if m.to_main.is_empty() && m.to_busy.is_empty() {
                    break;
                }
                m.main_step();
                m.busy_step();
            }
            prop_assert!(m.to_main.is_empty() && m.to_busy.is_empty());
            prop_assert_eq!(&m.lost, &Vec::<u32>::new(), "handled by a thread that did not own it");
            let (lane, stages): (Vec<u32>, Vec<u32>) = m.handled.iter().partition(|n| **n >= LANE);
            prop_assert_eq!(stages, (0..m.sent).collect::<Vec<_>>());
            prop_assert_eq!(lane, (LANE..LANE + m.answered).collect::<Vec<_>>());
        }
    }

    /// The case the fence exists for, step by step: a message forwarded just before the
    /// busy thread handed the connection back, and one the stages sent just after.
    #[test]
    fn a_message_bounced_back_comes_before_one_sent_after_the_return() {
        let mut m = Model {
            main_owns: true,
            ..Model::default()
        };
        for op in [
            Op::HandOver,
            Op::BusyStep, // adopted
            Op::Send,     // 0
            Op::MainStep, // 0 forwarded
            Op::HandBack, // the busy thread's `Returned` is on its way
            Op::Send,     // 1, behind `Returned`
            Op::BusyStep, // 0 bounced: `Back(0)` behind 1
            Op::MainStep, // returned: holding, fence out
            Op::MainStep, // 1 held (without the hold it would go before 0)
            Op::MainStep, // 0 handled
            Op::BusyStep, // fence answered
            Op::MainStep, // fenced: 1 handled
        ] {
            m.apply(&op);
        }
        assert_eq!(m.handled, vec![0, 1]);
        assert!(m.lost.is_empty() && m.to_main.is_empty() && m.to_busy.is_empty());
    }
}
