//! Write-policy threads: when `relay.writePolicy.plugin` is set, verified events go from the
//! ingesters to these threads (by `connId % N`, so each connection's events keep their
//! order), each with its own plugin process, and only accepted ones go on to the writer (or,
//! ephemeral, to the monitors). strfry asks its single plugin inside its writer, one event at
//! a time, so a slow plugin stalls every commit; here it stalls only its own thread's
//! connections, and the writer never waits on a plugin.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::fair::Turns;
use super::metrics::Stage;
use super::msg::{ConnId, IoSender, MonitorMsg, Pool, Ticket, WriterMsg};
use super::{now, Shared};
use crate::nostr::{hex, message, Event};
use crate::policy::plugin::{Plugin, Request, Verdict};
use crate::search::doc::Terms;

pub struct PolicyMsg {
    pub conn: ConnId,
    pub event: Box<Event>,
    pub ip: Option<IpAddr>,
    pub authed: Option<[u8; 32]>,
    pub ticket: Ticket,
    /// Its search terms, when its kind is indexed (tokenized by the ingester).
    pub terms: Option<Terms>,
}

pub struct Policy {
    pub rx: super::inbox::Inbox<PolicyMsg>,
    pub shared: Arc<Shared>,
    pub io: IoSender,
    pub writer: super::inbox::Door<WriterMsg>,
    pub monitors: Pool<MonitorMsg>,
}

impl Policy {
    pub fn run(self) {
        let mut plugin = Plugin::new();
        // Connections served in turns (fair share): with a plugin each event costs a round
        // trip to it, so one connection's burst must not queue the others behind it.
        let mut waiting: Turns<PolicyMsg> = Turns::default();
        loop {
            if waiting.is_empty() {
                match self.rx.recv() {
                    Ok(m) => waiting.push(m.conn, m),
                    Err(_) => return,
                }
            }
            // The inbox is bounded, so taking all of it is too.
            for m in self.rx.try_iter() {
                waiting.push(m.conn, m);
            }
            let Some((_, mut m)) = waiting.pop() else {
                continue;
            };
            m.ticket.waited(Stage::WritePolicy);
            let cfg = self.shared.config();
            let wp = &cfg.relay.write_policy;
            if wp.plugin.trim().is_empty() {
                plugin.stop();
                self.route_accepted(m.conn, m.event, m.ticket, m.terms);
                continue;
            }
            let (source_type, source_info) = match m.ip {
                Some(IpAddr::V4(a)) => ("IP4", a.to_string()),
                Some(IpAddr::V6(a)) => ("IP6", a.to_string()),
                None => ("IP4", String::new()),
            };
            let authed = m.authed.map(|pk| hex::encode(&pk));
            let verdict = plugin.judge(
                &wp.plugin,
                Duration::from_secs(wp.timeout_seconds.max(1)),
                &Request {
                    event_json: m.event.json(),
                    id_hex: m.event.id_hex(),
                    received_at: now(),
                    source_type,
                    source_info: &source_info,
                    authed: authed.as_deref(),
                },
            );
            let ok = |accepted: bool, msg: &str| {
                let mut out = Vec::with_capacity(128);
                message::ok(&mut out, m.event.id_hex(), accepted, msg);
                self.io.text(m.conn, out);
            };
            match verdict {
                Verdict::Accept(_) => self.route_accepted(m.conn, m.event, m.ticket, m.terms),
                Verdict::Reject(msg) => {
                    let msg = if msg.is_empty() {
                        "blocked: rejected by the write policy"
                    } else {
                        &msg
                    };
                    ok(false, msg);
                }
                // Looks accepted to the sender; stored and sent nowhere.
                Verdict::ShadowReject(msg) => ok(true, &msg),
            }
        }
    }

    /// Where an accepted event goes: an ephemeral one to every monitor (and its OK at once:
    /// it is never stored), any other to the writer, which answers after commit.
    fn route_accepted(
        &self,
        conn: ConnId,
        event: Box<Event>,
        ticket: Ticket,
        terms: Option<Terms>,
    ) {
        if event.class() == crate::nostr::kinds::KindClass::Ephemeral {
            let ev: Arc<Event> = Arc::from(event);
            for tx in self.monitors.all() {
                let _ = tx.send(MonitorMsg::Ephemeral(ev.clone()));
            }
            let mut out = Vec::with_capacity(128);
            message::ok(&mut out, ev.id_hex(), true, "");
            self.io.text(conn, out);
        } else {
            let _ = self.writer.send(WriterMsg {
                conn,
                event,
                ticket,
                terms,
            });
        }
    }
}
