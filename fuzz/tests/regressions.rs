//! Replays every committed input (`corpus/<target>/seed-*`, which includes
//! minimized crashes saved as `seed-regress-*`) through the same checks as the
//! fuzz targets. Runs on the stable toolchain, without libFuzzer:
//!
//!     cargo test --manifest-path fuzz/Cargo.toml

use std::path::Path;

use orderbatch::model::InputFormat;

fn replay(target: &str, format: InputFormat) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seed-* files in {}", dir.display());
    for path in files {
        eprintln!("{target}: {}", path.display());
        let data = std::fs::read(&path).unwrap();
        orderbatch_fuzz::check_input(&data, format);
    }
}

#[test]
fn read_csv_seeds_and_regressions() {
    replay("read_csv", InputFormat::Csv);
}

#[test]
fn read_jsonl_seeds_and_regressions() {
    replay("read_jsonl", InputFormat::Jsonl);
}
