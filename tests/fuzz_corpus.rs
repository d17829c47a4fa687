//! Every fuzz target's seeds (`fuzz/seeds/<target>/`) and past crashes
//! (`fuzz/regressions/<target>/`) through the target's own body (`wok::fuzz_targets`), on
//! stable and without libFuzzer: a fixed crash stays fixed in every `cargo test`, and a seed
//! that stops exercising its target's checks shows up here first.

use std::path::Path;

use wok::fuzz_targets::TARGETS;

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn seeds_and_regressions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, run) in TARGETS {
        let seeds = inputs(&root.join("seeds").join(name));
        assert!(!seeds.is_empty(), "fuzz target {name} has no seeds");
        for file in seeds
            .iter()
            .chain(&inputs(&root.join("regressions").join(name)))
        {
            let data = std::fs::read(file).expect("read input");
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                panic!("fuzz target {name} fails on {}", file.display());
            }
        }
    }
}

/// Each target in `TARGETS` has its libFuzzer binary in fuzz/, and no binary lacks a body.
#[test]
fn every_target_has_a_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut bins: Vec<String> = inputs(&root.join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    bins.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    names.sort();
    assert_eq!(bins, names);
    for n in &names {
        assert!(
            manifest.contains(&format!("name = \"{n}\"")),
            "fuzz/Cargo.toml has no [[bin]] {n}"
        );
    }
}
