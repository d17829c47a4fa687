//! `wok relay`: run the server until interrupted.

use std::process::ExitCode;

use super::Globals;

pub fn run(g: &Globals) -> ExitCode {
    let Some((cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };
    match wok::relay::Relay::start(cfg, store) {
        Ok(relay) => {
            relay.wait();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot start relay: {e}");
            ExitCode::FAILURE
        }
    }
}
