//! The fuzz target's corpus (seeded with the shared fixtures, grown by fuzzing) runs as an
//! ordinary test, so every input the fuzzer kept keeps being checked.

include!("../fuzz/exercise.rs");

#[test]
fn fuzz_corpus_never_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/frame_decode");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        exercise(&data);
        count += 1;
    }
    assert!(count >= 50, "corpus has only {count} inputs");
}
