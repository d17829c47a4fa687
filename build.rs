//! Records the git commit the binary is built from (`WOK_GIT_COMMIT`, shown by
//! `wok --version` and the landing page), or "unknown" when git or `.git` is missing (a
//! source tarball, a vendored copy).

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Only our own checkout counts (`.git` is a file in a linked worktree): a source tarball
    // unpacked inside some other repository must not report that repository's commit.
    let ours = Path::new(".git").exists();
    let commit = ours
        .then(|| git(&["rev-parse", "--short", "HEAD"]))
        .flatten()
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WOK_GIT_COMMIT={commit}");
    if !ours {
        return;
    }
    // A new commit moves the branch's ref, a checkout moves HEAD. `--git-path` finds both in
    // a linked worktree too (HEAD is per worktree, refs are shared). Only existing files are
    // watched: cargo treats a missing one as always changed and would rebuild every time.
    let mut watch = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    // A ref that `git gc` packed lives here instead.
    watch.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    let branch = git(&["symbolic-ref", "-q", "HEAD"])
        .and_then(|r| git(&["rev-parse", "--git-path", &r]))
        .map(std::path::PathBuf::from);
    match branch {
        Some(r) if r.exists() => watch.push(r.to_str().map(str::to_owned)),
        // A packed branch: the next commit creates its loose file in this directory.
        Some(r) => watch.push(r.parent().and_then(|d| d.to_str()).map(str::to_owned)),
        None => {}
    }
    for p in watch.into_iter().flatten() {
        if Path::new(&p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}
