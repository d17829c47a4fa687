//! Ingester threads: decode client messages, validate events (structure, time window, id,
//! signature), refuse duplicates early with a read-only lookup, compile filters, and route:
//! events to the writer (ephemeral ones straight to the monitors), REQ/COUNT/CLOSE to the
//! req-workers. Every refusal is answered here.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use super::msg::{IngesterMsg, IoSender, MonitorMsg, Pool, ReqMsg, WriterMsg};
use super::{now, Shared};
use crate::nostr::kinds::{self, KindClass};
use crate::nostr::message::{self, ClientMsg, MsgError};
use crate::nostr::{decode, verify, Event, JsonParser};

pub struct Ingester {
    pub rx: Receiver<IngesterMsg>,
    pub shared: Arc<Shared>,
    pub io: IoSender,
    pub writer: Sender<WriterMsg>,
    pub reqs: Pool<ReqMsg>,
    pub monitors: Pool<MonitorMsg>,
}

impl Ingester {
    pub fn run(self) {
        let mut parser = JsonParser::new();
        while let Ok(first) = self.rx.recv() {
            // Take the whole inbox per wake-up (DESIGN §1).
            for m in std::iter::once(first).chain(self.rx.try_iter()) {
                match m {
                    IngesterMsg::Text { conn, mut text } => {
                        self.handle(conn, &mut text, &mut parser)
                    }
                    IngesterMsg::Connected { .. } | IngesterMsg::Closed { .. } => {}
                }
            }
        }
    }

    fn reply(&self, conn: u64, f: impl FnOnce(&mut Vec<u8>)) {
        let mut out = Vec::with_capacity(128);
        f(&mut out);
        self.io.text(conn, out);
    }

    fn handle(&self, conn: u64, text: &mut [u8], parser: &mut JsonParser) {
        let cfg = self.shared.config();
        let msg = match decode(text, parser, &self.shared.decode_limits(&cfg)) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                self.io.text(conn, e.reply());
                return;
            }
        };
        match msg {
            ClientMsg::Event(ev) => {
                self.shared.metrics.client_message("EVENT");
                self.event(conn, ev);
            }
            ClientMsg::Req { sub_id, filters } => {
                self.shared.metrics.client_message("REQ");
                self.reqs.dispatch(
                    conn,
                    ReqMsg::Req {
                        conn,
                        sub_id,
                        filters,
                    },
                );
            }
            ClientMsg::Count { sub_id, filters } => {
                self.shared.metrics.client_message("COUNT");
                if cfg.relay.max_filter_limit_count == 0 {
                    self.io.text(
                        conn,
                        MsgError::Closed {
                            sub_id: sub_id.as_str().to_owned(),
                            reason: "error: bad req: COUNT disabled".into(),
                        }
                        .reply(),
                    );
                    return;
                }
                self.reqs.dispatch(
                    conn,
                    ReqMsg::Count {
                        conn,
                        sub_id,
                        filters,
                    },
                );
            }
            ClientMsg::Close { sub_id } => {
                self.shared.metrics.client_message("CLOSE");
                self.reqs.dispatch(conn, ReqMsg::Close { conn, sub_id });
            }
            ClientMsg::Auth(ev) => {
                self.shared.metrics.client_message("AUTH");
                self.reply(conn, |o| {
                    message::ok(
                        o,
                        ev.id_hex(),
                        false,
                        "error: relay needs serviceUrl to be configured before AUTH can work",
                    )
                });
            }
            ClientMsg::NegOpen { sub_id, .. } | ClientMsg::NegMsg { sub_id, .. } => {
                self.reply(conn, |o| {
                    message::neg_err(
                        o,
                        sub_id.as_str(),
                        "blocked: negentropy is not enabled on this relay yet",
                    )
                });
            }
            ClientMsg::NegClose { .. } => {}
        }
    }

    fn event(&self, conn: u64, ev: Box<Event>) {
        let cfg = self.shared.config();
        let refuse = |reason: &str| {
            self.reply(conn, |o| message::ok(o, ev.id_hex(), false, reason));
        };
        if let Err(e) = ev.check_time(now(), &self.shared.time_window(&cfg)) {
            return refuse(&e.to_string());
        }
        if ev.kind == kinds::KIND_AUTH {
            return refuse("invalid: kind 22242 is only for AUTH");
        }
        if ev.embeds_protected() {
            return refuse("blocked: reposts can't embed protected events");
        }
        if ev.is_protected() {
            // NIP-70 needs an authenticated author; AUTH needs relay.auth.serviceUrl.
            return refuse("blocked: event marked as protected");
        }
        // A duplicate costs one lookup instead of a signature check.
        if let Ok(txn) = self.shared.store.read_txn() {
            if matches!(self.shared.store.lookup_id(&txn, &ev.id), Ok(Some(_))) {
                return self.reply(conn, |o| {
                    message::ok(o, ev.id_hex(), true, "duplicate: have this event")
                });
            }
        }
        if let Err(e) = verify::check_event(&ev) {
            if cfg.relay.logging.invalid_events {
                log::info!(
                    "[{conn}] rejected invalid event {}: {}",
                    ev.id_hex(),
                    e.reason()
                );
            }
            return refuse(&e.to_string());
        }
        if ev.class() == KindClass::Ephemeral {
            let ev: Arc<Event> = Arc::from(ev);
            for m in self.monitors.all() {
                let _ = m.send(MonitorMsg::Ephemeral(ev.clone()));
            }
            return self.reply(conn, |o| message::ok(o, ev.id_hex(), true, ""));
        }
        let _ = self.writer.send(WriterMsg { conn, event: ev });
    }
}
