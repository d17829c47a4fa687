//! The management thread: serves NIP-86 calls handed over by the io thread (their LMDB
//! write transactions must not run there) and watches the access-control state. Every
//! 100 ms, and after each call, it asks `Access::refresh` whether the DB's management
//! generation or an admin's follow list moved — which is how changes made by other
//! processes (`wok admin` offline) reach a running relay — and on a change re-renders
//! NIP-11 (name, description and icon overrides) and wakes the io thread, which closes
//! connections from newly blocked IPs. It also remembers the NIP-98 tokens it accepted
//! until their window has passed, and refuses one used before (a token is good for one
//! request).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::http::{self, HttpInfo};
use super::msg::{ConnId, IoSender, Outbound};
use super::Shared;
use crate::policy::manage::{self, HttpCall};

/// How often the state is compared with the DB.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// io → management.
pub struct ManageMsg {
    pub conn: ConnId,
    pub call: HttpCall,
}

pub struct Management {
    pub rx: Receiver<ManageMsg>,
    pub shared: Arc<Shared>,
    pub io: IoSender,
    pub http: Arc<RwLock<HttpInfo>>,
    pub addr: std::net::SocketAddr,
}

impl Management {
    pub fn run(self) {
        // This thread is the only one that verifies NIP-98 tokens, one call at a time, so
        // it owns the memory of those used: checking and recording a token is one step,
        // and a copy sent at the same time waits its turn and is refused.
        let mut seen = manage::SeenTokens::new(manage::REPLAY_CAP);
        loop {
            match self.rx.recv_timeout(WATCH_EVERY) {
                Ok(m) => {
                    let cfg = self.shared.config();
                    let (a, changed) =
                        manage::serve(&self.shared.store, &cfg, &m.call, super::now(), &mut seen);
                    // The change is in effect (snapshot, NIP-11) before the caller hears.
                    if changed {
                        self.refresh(true);
                    }
                    self.io.send(Outbound::HttpReply {
                        conn: m.conn,
                        bytes: http::rpc_answer(a.status, a.content_type, &a.body),
                    });
                }
                Err(RecvTimeoutError::Timeout) => self.refresh(false),
                // The io thread is gone: the relay is stopping.
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn refresh(&self, force: bool) {
        let cfg = self.shared.config();
        match self.shared.access.refresh(&self.shared.store, &cfg, force) {
            Ok(true) => {
                super::render_http(&self.http, &cfg, &self.shared, self.addr);
                // io compares the access version each turn; make it take one now.
                self.io.wake();
            }
            Ok(false) => {}
            Err(e) => log::error!("reading the management table failed: {e}"),
        }
    }
}
