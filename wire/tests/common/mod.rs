//! Shared by `fuzz.rs` and `corpus.rs`: a counting allocator, the four decoders under a
//! time and memory budget, and the golden fixtures.
#![allow(dead_code)]

use socketioxide_cluster_wire::{
    codec,
    message::BroadcastMessage,
    request::{Request, Response},
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Counting allocator. Counters are per thread, so the tests the harness runs in parallel
// do not see each other's allocations.
// ---------------------------------------------------------------------------------------

struct Counting;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn grow(bytes: usize) {
    let _ = CURRENT.try_with(|c| {
        let now = c.get() + bytes as isize;
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
    let _ = LARGEST.try_with(|l| l.set(l.get().max(bytes)));
}

fn shrink(bytes: usize) {
    let _ = CURRENT.try_with(|c| c.set(c.get() - bytes as isize));
}

// SAFETY: every call is forwarded to `System`; the bookkeeping touches only
// const-initialised thread-locals without destructors, which never allocate.
// The one unsafe code of the workspace: a test-only allocator that forwards to `System`
// and counts, so the fuzz tests can bound the decoders' heap use.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrink(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrink(layout.size());
            grow(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What one call cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cost {
    /// Most bytes live at once during the call, above what was live before it.
    pub(crate) peak: usize,
    /// Largest single allocation (or reallocation target) during the call.
    pub(crate) largest: usize,
    /// Wall time.
    pub(crate) elapsed: Duration,
}

/// Runs `f`, recording its peak heap use and duration (this thread only). The result
/// is dropped inside the measurement.
pub(crate) fn measure<R>(f: impl FnOnce() -> R) -> Cost {
    let base = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(base));
    LARGEST.with(|l| l.set(0));
    let start = Instant::now();
    let r = f();
    let elapsed = start.elapsed();
    drop(r);
    let peak = (PEAK.with(Cell::get) - base).max(0) as usize;
    let largest = LARGEST.with(Cell::get);
    Cost {
        peak,
        largest,
        elapsed,
    }
}

// ---------------------------------------------------------------------------------------
// Budgets
// ---------------------------------------------------------------------------------------

/// No decode may take longer than this (debug build, loaded 2-core machine).
pub(crate) const MAX_TIME: Duration = Duration::from_millis(100);

/// Inputs this short must never cost more than [`SMALL_INPUT_MAX_PEAK`].
pub(crate) const SMALL_INPUT: usize = 20;
/// Peak heap for a decode of at most [`SMALL_INPUT`] bytes.
pub(crate) const SMALL_INPUT_MAX_PEAK: usize = 64 * 1024;

/// Bytes of heap a decode may hold per input byte. A decoded value costs a few dozen
/// bytes per input byte (an `rmpv::Value` is 40 bytes, JSON goes through a
/// `serde_json::Value` first: 40–60 per byte measured for flat containers of the
/// cheapest items); this leaves room for that, not for length headers multiplying the
/// input.
pub(crate) const PEAK_PER_INPUT_BYTE: usize = 256;
/// Fixed allowance on top of [`PEAK_PER_INPUT_BYTE`]: room for a reader that
/// pre-allocates up to a constant number of items per container level, whatever the
/// header claims (64 levels × 1024 map entries × 80 bytes = 5 MiB).
pub(crate) const PEAK_BASE: usize = 6 << 20;

/// The heap budget of one decode of `len` bytes.
pub(crate) fn peak_budget(len: usize) -> usize {
    if len <= SMALL_INPUT {
        SMALL_INPUT_MAX_PEAK
    } else {
        PEAK_BASE + PEAK_PER_INPUT_BYTE * len
    }
}

/// Hex dump for failure messages (capped).
pub(crate) fn hex(b: &[u8]) -> String {
    let shown: String = b.iter().take(256).map(|x| format!("{x:02x}")).collect();
    if b.len() > 256 {
        format!("{shown}… ({} bytes)", b.len())
    } else {
        shown
    }
}

/// The decoders every subscribed channel's bytes go through.
pub(crate) const DECODERS: [&str; 4] = [
    "codec::decode",
    "BroadcastMessage::decode",
    "Request::decode",
    "Response::decode",
];

/// Runs decoder `which` (index into [`DECODERS`]) on `input` under budget; `Err` says
/// which budget was exceeded. A panic propagates.
pub(crate) fn run_decoder(which: usize, input: &[u8]) -> Result<Cost, String> {
    let run = || match which {
        0 => measure(|| codec::decode(input).is_ok()),
        1 => measure(|| BroadcastMessage::decode(input).is_ok()),
        2 => measure(|| Request::decode(input).is_ok()),
        _ => measure(|| Response::decode(input).is_ok()),
    };
    let mut cost = run();
    // A pathological input is slow every time; a loaded machine (other test binaries,
    // other builds on 2 cores) only now and then. Over budget: the best of three counts.
    for _ in 0..2 {
        if cost.elapsed <= MAX_TIME {
            break;
        }
        let again = run();
        if again.elapsed < cost.elapsed {
            cost = again;
        }
    }
    let name = DECODERS[which];
    if cost.elapsed > MAX_TIME {
        return Err(format!(
            "{name} took {:?} (> {MAX_TIME:?}) on {} bytes: {}",
            cost.elapsed,
            input.len(),
            hex(input)
        ));
    }
    let budget = peak_budget(input.len());
    if cost.peak > budget {
        return Err(format!(
            "{name} held {} bytes of heap at peak (budget {budget}, largest single \
             allocation {}) on {} bytes: {}",
            cost.peak,
            cost.largest,
            input.len(),
            hex(input)
        ));
    }
    Ok(cost)
}

/// Every decoder on `input`; the first budget overrun, if any.
pub(crate) fn check_all(input: &[u8]) -> Result<(), String> {
    for which in 0..DECODERS.len() {
        run_decoder(which, input)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

// The one `fixtures_dir` of the workspace lives (hidden) in the wire library: see
// `socketioxide_cluster_wire::test_fixtures` for why wire cannot use test-support.
pub(crate) use socketioxide_cluster_wire::test_fixtures::fixtures_dir;

/// Every `<set>/*.bin` payload, sorted by path: (`set/file`, bytes).
pub(crate) fn fixture_payloads() -> Vec<(String, Vec<u8>)> {
    let dir = fixtures_dir();
    let mut out = Vec::new();
    for set in std::fs::read_dir(&dir).expect("read fixtures dir") {
        let set = set.expect("fixtures dir entry").path();
        if !set.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&set).expect("read fixture set") {
            let file = file.expect("fixture entry").path();
            if file.extension().is_some_and(|e| e == "bin") {
                let name = file
                    .strip_prefix(&dir)
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                out.push((name, std::fs::read(&file).expect("read fixture")));
            }
        }
    }
    out.sort();
    assert!(
        out.len() >= 100,
        "only {} fixture payloads under {}",
        out.len(),
        dir.display()
    );
    out
}

/// The corpus directory, `wire/tests/corpus`.
pub(crate) fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

// ---------------------------------------------------------------------------------------
// msgpack structure
// ---------------------------------------------------------------------------------------

/// The kind of a msgpack header that carries a length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// fixarray / fixmap / fixstr: the length is in the marker byte.
    Fix,
    /// 8-bit length after the marker (str8, bin8, ext8).
    L8,
    /// 16-bit length (str16, bin16, ext16, array16, map16).
    L16,
    /// 32-bit length (str32, bin32, ext32, array32, map32).
    L32,
}

/// Offsets and kinds of every length-carrying header in a well-formed msgpack value
/// (stops quietly at the first malformed byte: JSON payloads yield nothing useful).
pub(crate) fn length_headers(buf: &[u8]) -> Vec<(usize, u8, Header)> {
    let mut out = Vec::new();
    let mut pos = 0;
    walk(buf, &mut pos, &mut out, 0);
    out
}

fn walk(buf: &[u8], pos: &mut usize, out: &mut Vec<(usize, u8, Header)>, depth: usize) -> bool {
    if depth > 100 {
        return false;
    }
    let Some(&m) = buf.get(*pos) else {
        return false;
    };
    let at = *pos;
    *pos += 1;
    let be = |pos: &mut usize, n: usize| -> Option<usize> {
        let s = buf.get(*pos..*pos + n)?;
        *pos += n;
        Some(s.iter().fold(0usize, |a, b| (a << 8) | *b as usize))
    };
    let skip = |pos: &mut usize, n: usize| {
        *pos += n;
        *pos <= buf.len()
    };
    let children = |pos: &mut usize, out: &mut Vec<_>, n: usize| -> bool {
        (0..n).all(|_| walk(buf, pos, out, depth + 1))
    };
    match m {
        0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => true,
        0x80..=0x8f => {
            out.push((at, m, Header::Fix));
            children(pos, out, 2 * (m & 0x0f) as usize)
        }
        0x90..=0x9f => {
            out.push((at, m, Header::Fix));
            children(pos, out, (m & 0x0f) as usize)
        }
        0xa0..=0xbf => {
            out.push((at, m, Header::Fix));
            skip(pos, (m & 0x1f) as usize)
        }
        0xc4..=0xc6 | 0xd9..=0xdb => {
            let w = 1 << ((m - if m >= 0xd9 { 0xd9 } else { 0xc4 }) as usize);
            out.push((at, m, [Header::L8, Header::L16, Header::L32][w / 2]));
            be(pos, w).is_some_and(|n| skip(pos, n))
        }
        0xc7..=0xc9 => {
            let w = 1 << ((m - 0xc7) as usize);
            out.push((at, m, [Header::L8, Header::L16, Header::L32][w / 2]));
            be(pos, w).is_some_and(|n| skip(pos, n + 1))
        }
        0xca => skip(pos, 4),
        0xcb => skip(pos, 8),
        0xcc..=0xcf => skip(pos, 1 << (m - 0xcc)),
        0xd0..=0xd3 => skip(pos, 1 << (m - 0xd0)),
        0xd4..=0xd8 => skip(pos, 1 + (1 << (m - 0xd4))),
        0xdc | 0xde => {
            out.push((at, m, Header::L16));
            let mul = if m == 0xde { 2 } else { 1 };
            be(pos, 2).is_some_and(|n| children(pos, out, mul * n))
        }
        0xdd | 0xdf => {
            out.push((at, m, Header::L32));
            let mul = if m == 0xdf { 2 } else { 1 };
            be(pos, 4).is_some_and(|n| children(pos, out, mul * n))
        }
        0xc1 => false,
    }
}

/// Rewrites the length of the header at `at` (as found by [`length_headers`]) to
/// `len`, widening fix/8/16-bit headers to their 32-bit form (ext8/ext16 → ext32) so
/// any `u32` fits.
pub(crate) fn inflate(buf: &[u8], at: usize, marker: u8, kind: Header, len: u32) -> Vec<u8> {
    let (wide, old_len_bytes) = match (marker, kind) {
        (0x80..=0x8f, _) => (0xdf, 0),
        (0x90..=0x9f, _) => (0xdd, 0),
        (0xa0..=0xbf, _) => (0xdb, 0),
        (0xc4..=0xc6 | 0xd9..=0xdb | 0xc7..=0xc9 | 0xdc..=0xdf, k) => {
            let wide = match marker {
                0xc4..=0xc6 => 0xc6,
                0xd9..=0xdb => 0xdb,
                0xc7..=0xc9 => 0xc9,
                0xdc | 0xdd => 0xdd,
                _ => 0xdf,
            };
            let n = match k {
                Header::Fix => 0,
                Header::L8 => 1,
                Header::L16 => 2,
                Header::L32 => 4,
            };
            (wide, n)
        }
        _ => return buf.to_vec(),
    };
    let mut out = Vec::with_capacity(buf.len() + 4);
    out.extend_from_slice(&buf[..at]);
    out.push(wide);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(buf.get(at + 1 + old_len_bytes..).unwrap_or(&[]));
    out
}
