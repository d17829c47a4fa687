//! Renders a `Config` as a commented strfry.conf (taoCONFIG), driven by the
//! key table. `strfry-compat.conf` is `render_conf(&Config::default())`.

use super::keys::Config;
use super::schema::{keys, sections, Setting};
use super::tao::quote_json;
use std::sync::OnceLock;

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
    let t = template();
    let mut out = String::with_capacity(t.len + 1024);
    for (k, (before, leaf_line)) in keys().iter().zip(&t.keys) {
        out.push_str(before);
        out.push_str(leaf_line);
        match k.get(cfg) {
            // `retention.rules` is a block of named blocks (config/retention.rs).
            Setting::Str(s) if k.name == super::typed::RULES_KEY => {
                out.push_str(" {");
                if !s.is_empty() {
                    out.push(' ');
                    out.push_str(&s);
                    out.push(' ');
                }
                out.push('}');
            }
            Setting::U64(n) => {
                out.push_str(" = ");
                out.push_str(itoa::Buffer::new().format(n));
            }
            Setting::Bool(b) => out.push_str(if b { " = true" } else { " = false" }),
            Setting::Str(s) => {
                out.push_str(" = ");
                out.push_str(&quote_json(&s));
            }
        }
        out.push('\n');
    }
    out.push_str(&t.end);
    out
}

/// What the rendered file is made of that the values do not change: for each key, the
/// text before its line (sections closed and opened, blank lines, its comment) and its
/// line up to the value (indent and name); the closing braces at the end. Built once:
/// wrapping every comment anew was most of a render's time.
struct Template {
    keys: Vec<(String, String)>,
    end: String,
    /// All of the above, in bytes.
    len: usize,
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let mut t = Template {
            keys: Vec::with_capacity(keys().len()),
            end: String::new(),
            len: 0,
        };
        let mut out = String::from(HEADER);
        let mut open: Vec<&str> = Vec::new();
        // No blank line directly after a section's opening brace.
        let mut first_in_block = false;
        for k in keys() {
            let (section, leaf): (Vec<&str>, &str) = match k.name.rsplit_once('.') {
                Some((section, leaf)) => (section.split('.').collect(), leaf),
                None => (Vec::new(), k.name),
            };
            // Close sections that this key is not in.
            let common = open
                .iter()
                .zip(&section)
                .take_while(|(a, b)| a == b)
                .count();
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
            t.keys
                .push((std::mem::take(&mut out), format!("{indent}{leaf}")));
        }
        while !open.is_empty() {
            open.pop();
            out.push_str(&"    ".repeat(open.len()));
            out.push_str("}\n");
        }
        t.end = out;
        t.len = t.keys.iter().map(|(a, b)| a.len() + b.len()).sum::<usize>() + t.end.len();
        t
    })
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
