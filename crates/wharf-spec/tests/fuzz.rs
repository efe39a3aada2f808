//! A bounded fuzz run of the loader (YAML tree, decoding, graph checks, rendering): every
//! file of `fuzz/corpus/` as it is, then mutations of them (bytes flipped, inserted,
//! removed, duplicated, spliced from another file, YAML punctuation and aliases added) for
//! a few seconds. No input may panic, or take long.
//!
//! `WHARF_FUZZ_SECS` sets the duration (5 s by default) and `WHARF_FUZZ_SEED` the seed (a
//! new one each run, printed). An input that fails is written to
//! `target/fuzz-failures/` and its path named in the failure: add it to the corpus with
//! the fix.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("fuzz/corpus")
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read corpus file"),
            )
        })
        .collect();
    files.sort();
    assert!(files.len() > 20, "the corpus is missing");
    files
}

/// xorshift64*: enough randomness for mutations, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            usize::try_from(self.next() % (n as u64)).unwrap_or(0)
        }
    }
}

/// Tokens that reach the interesting parts of the loader.
const TOKENS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "\n",
    "\n  ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "<<: *a",
    "<<: ",
    "!!str ",
    "|",
    ">-",
    "'",
    "\"",
    "#",
    "---\n",
    "...\n",
    "${",
    "}",
    "$1",
    "`",
    "\\",
    "\t",
    "~",
    "null",
    "steps:",
    "depends:",
    "command:",
    "executor:",
    "container:",
    "params:",
    "env:",
    "handlerOn:",
    "retryPolicy:",
    "repeatPolicy:",
    "preconditions:",
    "schedule:",
    "volumes:",
    "ports:",
    "registryAuths:",
    "image:",
    "type: docker",
    "name:",
    "\u{feff}",
    "\u{0}",
    "é",
    "\u{1F600}",
];

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                out.splice(at..at, t.iter().copied());
            }
            2 if !out.is_empty() => {
                let end = (at + rng.below(64)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + rng.below(256)).min(out.len());
                let piece = out[start..end].to_vec();
                out.splice(at..at, piece);
            }
            4 if !other.is_empty() => {
                let start = rng.below(other.len());
                let end = (start + rng.below(512)).min(other.len());
                out.splice(at..at, other[start..end].iter().copied());
            }
            5 => {
                let b = u8::try_from(rng.below(256)).unwrap_or(0);
                out.insert(at, b);
            }
            _ => {
                // An anchor on a line and aliases to it further on.
                let line = out[..at]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1);
                if let Some(colon) = out[line..].iter().position(|b| *b == b':') {
                    let cut = line + colon + 1;
                    out.splice(cut..cut, b" &z".iter().copied());
                    let tail = out.len();
                    out.splice(tail..tail, b"\nq: [*z, *z, *z, *z]\n".iter().copied());
                }
            }
        }
    }
    out
}

/// Loads `bytes` as a DAG file the way every entry point does; panics propagate.
fn load(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let loaded = wharf_spec::load_str(text, Path::new("/fuzz/dag.yaml"));
    let _ = loaded.render("dag.yaml", false);
    if let Some(dag) = loaded.dag.as_ref() {
        let _ = wharf_spec::execution_order(dag);
    }
}

fn keep_failure(bytes: &[u8], why: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    let path = dir.join(format!("{hash:016x}.yaml"));
    let _ = std::fs::write(&path, bytes);
    eprintln!("{why}: input kept at {}", path.display());
    path
}

/// The most one input may take (the largest corpus files take a few milliseconds).
const PER_INPUT: Duration = Duration::from_secs(3);

fn check(bytes: &[u8]) -> Result<(), PathBuf> {
    let started = Instant::now();
    let owned = bytes.to_vec();
    let result = std::panic::catch_unwind(move || load(&owned));
    if result.is_err() {
        return Err(keep_failure(bytes, "the loader panicked"));
    }
    if started.elapsed() > PER_INPUT {
        return Err(keep_failure(
            bytes,
            &format!("the loader took {:?}", started.elapsed()),
        ));
    }
    Ok(())
}

#[test]
fn the_corpus_loads_without_panics() {
    for (name, bytes) in corpus() {
        if let Err(kept) = check(&bytes) {
            panic!("{name}: see {}", kept.display());
        }
    }
}

#[test]
fn mutations_of_the_corpus_load_without_panics() {
    let secs = std::env::var("WHARF_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seed = std::env::var("WHARF_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("fuzzing for {secs} s with WHARF_FUZZ_SEED={seed}");
    let files = corpus();
    let mut rng = Rng(seed);
    let until = Instant::now() + Duration::from_secs(secs);
    let mut inputs = 0u64;
    while Instant::now() < until {
        let (_, base) = &files[rng.below(files.len())];
        let (_, other) = &files[rng.below(files.len())];
        let mut input = mutate(&mut rng, base, other);
        // Mutations of mutations reach further from the corpus.
        for _ in 0..rng.below(3) {
            input = mutate(&mut rng, &input, other);
        }
        if let Err(kept) = check(&input) {
            panic!(
                "seed {seed}, input {inputs}: see {} (add it to fuzz/corpus with the fix)",
                kept.display()
            );
        }
        inputs += 1;
    }
    eprintln!("{inputs} inputs");
    assert!(inputs > 100, "only {inputs} inputs in {secs} s");
}
