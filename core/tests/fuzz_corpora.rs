//! The kept fuzz corpora (`fuzz/corpus/<target>/`), replayed through the fuzz targets on every run:
//! what coverage-guided fuzzing found interesting (and any input that once crashed) stays a test.
//! The targets are `fuzz/src/lib.rs`, compiled in here as they are in the fuzzer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod targets;

use std::path::Path;

#[test]
fn every_kept_fuzz_input_goes_through_its_target_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (name, target) in targets::TARGETS {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut inputs = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} panics", path.display());
            inputs += 1;
        }
        assert!(inputs > 0, "the corpus of {name} is empty");
        eprintln!("{name}: {inputs} inputs");
    }
}

#[test]
fn every_fuzz_binary_is_a_replayed_target_and_the_reverse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fuzz_targets");
    let mut binaries: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    binaries.sort();
    let mut replayed: Vec<String> = targets::TARGETS.iter().map(|(name, _)| (*name).to_owned()).collect();
    replayed.sort();
    assert_eq!(binaries, replayed);
}
