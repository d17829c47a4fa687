//! `wok config check|show`: validate a strfry.conf before pointing a relay at it, and print
//! the effective values (file + `--set`).

use std::process::ExitCode;

use clap::Subcommand;
use wok::config::{render_conf, ConfigSource};

use super::Globals;

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Parse the config, report unknown keys and type errors; exit 1 on errors
    Check,
    /// Print the effective config in strfry syntax, or the value of one key
    Show {
        /// A key, dotted (`relay.port`) or strfry's internal form (`relay__port`)
        key: Option<String>,
    },
}

pub fn run(cmd: &ConfigCmd, g: &Globals) -> ExitCode {
    let loaded = match g.load_config() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let source = match &loaded.source {
        ConfigSource::File(p) => p.display().to_string(),
        ConfigSource::Embedded => "built-in strfry-compat.conf".to_string(),
    };
    match cmd {
        ConfigCmd::Check => {
            println!("{source}: ok ({} warning(s))", loaded.warnings.len());
            ExitCode::SUCCESS
        }
        ConfigCmd::Show { key: None } => {
            print!("{}", render_conf(&loaded.config));
            ExitCode::SUCCESS
        }
        ConfigCmd::Show { key: Some(k) } => match loaded.config.get_display(k) {
            Some(v) => {
                println!("{v}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("error: unknown config key: {k}");
                ExitCode::FAILURE
            }
        },
    }
}
