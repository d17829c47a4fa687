//! The generated FlatBuffers code is checked in (see scripts/gen-schema.sh for why); this
//! fails when schema/records.fbs changes without regenerating it.

use sha2::{Digest, Sha256};

#[test]
fn generated_records_match_schema() {
    let root = env!("CARGO_MANIFEST_DIR");
    let fbs = std::fs::read(format!("{root}/schema/records.fbs")).expect("schema");
    let generated = std::fs::read_to_string(format!("{root}/src/store/records_generated.rs"))
        .expect("generated");
    let want: String = Sha256::digest(&fbs)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let recorded = generated
        .lines()
        .find_map(|l| l.strip_prefix("// schema-sha256: "))
        .expect("generated file records the schema hash");
    assert_eq!(
        recorded, want,
        "schema/records.fbs changed: run scripts/gen-schema.sh"
    );
}
