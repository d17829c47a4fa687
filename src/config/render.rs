//! Renders a `Config` as a commented strfry.conf (taoCONFIG), driven by the
//! key table. `strfry-compat.conf` is `render_conf(&Config::default())`.

use super::keys::Config;
use super::schema::{keys, sections, Setting};
use super::tao::quote_json;

const HEADER: &str = "\
##
## wok configuration, in strfry.conf format
##
## wok reads strfry.conf files as they are: the same taoCONFIG syntax, the same
## key names and the same defaults, except that relay.info.name and
## relay.info.description name wok. Every key is listed below with its default.
## Keys marked \"(restart required)\" take effect only when the relay restarts;
## the others are applied when the file is reloaded. `--set key=value` on the
## command line overrides this file.
##
";

const WIDTH: usize = 100;

/// Renders `cfg` as a complete, commented config file.
pub fn render_conf(cfg: &Config) -> String {
    let mut out = String::from(HEADER);
    let mut open: Vec<&str> = Vec::new();
    // No blank line directly after a section's opening brace.
    let mut first_in_block = false;
    for k in keys() {
        let comps: Vec<&str> = k.name.split('.').collect();
        let (leaf, section) = match comps.split_last() {
            Some((leaf, section)) => (*leaf, section),
            None => continue,
        };
        // Close sections that this key is not in.
        let common = open.iter().zip(section).take_while(|(a, b)| a == b).count();
        while open.len() > common {
            open.pop();
            out.push_str(&"    ".repeat(open.len()));
            out.push_str("}\n");
            first_in_block = false;
        }
        // Open the sections it is in.
        for (depth, name) in section.iter().enumerate().skip(common) {
            let full = section[..=depth].join(".");
            let indent = "    ".repeat(depth);
            if !first_in_block {
                out.push('\n');
            }
            if let Some(s) = sections().iter().find(|s| s.name == full) {
                push_comment(&mut out, &indent, s.doc, None);
            }
            out.push_str(&format!("{indent}{name} {{\n"));
            open.push(name);
            first_in_block = true;
        }
        let indent = "    ".repeat(open.len());
        if !first_in_block {
            out.push('\n');
        }
        first_in_block = false;
        let suffix = k.no_reload.then_some("(restart required)");
        push_comment(&mut out, &indent, k.doc, suffix);
        let value = match k.get(cfg) {
            // `retention.rules` is a block of named blocks (config/retention.rs).
            Setting::Str(s) if k.name == super::typed::RULES_KEY => {
                let body = if s.is_empty() { s } else { format!(" {s} ") };
                out.push_str(&format!("{indent}{leaf} {{{body}}}\n"));
                continue;
            }
            Setting::U64(n) => n.to_string(),
            Setting::Bool(b) => b.to_string(),
            Setting::Str(s) => quote_json(&s),
        };
        out.push_str(&format!("{indent}{leaf} = {value}\n"));
    }
    while !open.is_empty() {
        open.pop();
        out.push_str(&"    ".repeat(open.len()));
        out.push_str("}\n");
    }
    out
}

/// Appends `text` as `# ` comment lines, word-wrapped to [`WIDTH`] columns;
/// `suffix` is appended as one unbreakable word.
fn push_comment(out: &mut String, indent: &str, text: &str, suffix: Option<&str>) {
    let mut line = String::new();
    for word in text.split_whitespace().chain(suffix) {
        if !line.is_empty() && indent.len() + 2 + line.len() + 1 + word.len() > WIDTH {
            out.push_str(&format!("{indent}# {line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!("{indent}# {line}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    #[test]
    fn rendering_round_trips() {
        let mut cfg = Config::default();
        cfg.relay.info.description = "quote \" backslash \\ newline \n tab \t é".into();
        cfg.relay.port = 1;
        cfg.relay.auth.enabled = false;
        let text = render_conf(&cfg);
        let (back, warnings) = parse_str(&text, "rendered").expect("rendered config parses");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(back, cfg);
    }

    #[test]
    fn comments_are_wrapped_and_restart_marked() {
        let text = render_conf(&Config::default());
        assert!(
            text.lines().all(|l| l.chars().count() <= WIDTH),
            "a line is too long"
        );
        assert!(text.contains("    port = 7777\n"));
        let port_comment = text
            .lines()
            .take_while(|l| !l.contains("port = 7777"))
            .last();
        assert!(
            port_comment.is_some_and(|l| l.ends_with("(restart required)")),
            "{port_comment:?}"
        );
        assert!(text.contains("\n    numThreads {\n"));
        // The last section (`search`, top level) closes, nothing after it.
        assert!(text.ends_with("\n}\n"));
    }
}
