//! Regression corpus: every file in `tests/corpus/` (`*.bin`, `*.json`) goes through the
//! four wire decoders. None may panic, take longer than [`common::MAX_TIME`] or hold
//! more heap than [`common::peak_budget`]. Tags in a file's name say which decoders
//! must return an error (see [`must_reject`] and `tests/corpus/README.md`).

mod common;

use common::{DECODERS, corpus_dir, hex, run_decoder};
use socketioxide_cluster_wire::{
    codec,
    message::BroadcastMessage,
    request::{Request, Response},
};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Which decoders (in [`DECODERS`] order) must reject a file, from the tags in its name:
/// `.malformed.` all four; `.reject.` the three message decoders (well-formed msgpack of
/// the wrong shape, which `codec::decode` may read); `.reject-broadcast.`,
/// `.reject-request.`, `.reject-response.` that one decoder.
fn must_reject(name: &str) -> [bool; 4] {
    let tag = |t: &str| name.contains(&format!(".{t}."));
    let all = tag("malformed");
    let msg = all || tag("reject");
    [
        all,
        msg || tag("reject-broadcast"),
        msg || tag("reject-request"),
        msg || tag("reject-response"),
    ]
}

fn is_err(which: usize, input: &[u8]) -> bool {
    match which {
        0 => codec::decode(input).is_err(),
        1 => BroadcastMessage::decode(input).is_err(),
        2 => Request::decode(input).is_err(),
        _ => Response::decode(input).is_err(),
    }
}

#[test]
fn corpus_never_panics_and_returns_fast() {
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus exists")
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin" || e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "only {} corpus files", files.len());

    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let input = std::fs::read(path).expect("read corpus file");
        let reject = must_reject(&name);
        for (which, decoder) in DECODERS.iter().enumerate() {
            match catch_unwind(AssertUnwindSafe(|| run_decoder(which, &input))) {
                Err(_) => failures.push(format!("{name}: {decoder} panicked on {}", hex(&input))),
                Ok(Err(budget)) => failures.push(format!("{name}: {budget}")),
                Ok(Ok(_)) => {
                    if reject[which] && !is_err(which, &input) {
                        failures.push(format!("{name}: {decoder} accepted it"));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus checks failed:\n{}",
        failures.len(),
        files.len() * DECODERS.len(),
        failures.join("\n")
    );
}
