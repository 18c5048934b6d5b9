//! The layout rules of `src/` (see `lib.rs`, "Modules"), checked on the source itself:
//! no import cycle between top-level modules, and no file much over 400 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Most lines a file of `src/` may have.
const MAX_LINES: usize = 420;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a file belongs to (`adapter/local.rs` → `adapter`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("file under src/");
    let first = rel.components().next().expect("non-empty path");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_owned()
}

/// `Name -> module` for the items `lib.rs` re-exports (`pub use module::{A, B};`), so
/// that `crate::A` counts as a use of `module`.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        let names = names
            .trim_end_matches(';')
            .trim_matches(|c| c == '{' || c == '}');
        for name in names.split(',') {
            out.insert(name.trim().to_owned(), module.to_owned());
        }
    }
    out
}

/// Top-level modules named after `crate::` in code (comments and doc links skipped);
/// re-exported names resolve through `reexports`.
fn references(text: &str, reexports: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                out.insert(name);
            } else if let Some(module) = reexports.get(&name) {
                out.insert(module.clone());
            }
        }
    }
    out
}

type Graph = BTreeMap<String, BTreeSet<String>>;

/// A cycle of `graph`, as the path that closes it, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_owned());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_owned());
        for d in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_import_cycle_between_modules() {
    let src = src();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let reexports = reexports(&lib);
    let mut graph = Graph::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("readable source");
        let deps = graph.entry(module.clone()).or_default();
        deps.extend(
            references(&text, &reexports)
                .into_iter()
                .filter(|d| *d != module),
        );
    }
    // `wire` is the re-exported crate, not a module of ours.
    for deps in graph.values_mut() {
        deps.remove("wire");
    }
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle between modules: {}", cycle.join(" -> "));
    }
    // The checker sees the real dependencies (it would pass vacuously otherwise).
    assert!(graph["adapter"].contains("cluster"), "{graph:?}");
    assert!(graph["cluster"].contains("router"), "{graph:?}");
    assert!(graph["error"].contains("socket_info"), "{graph:?}");
}

#[test]
fn the_checker_sees_references_and_cycles() {
    let lib = "pub use error::{Error, Partial};\npub use cluster::Cluster;";
    let re = reexports(lib);
    assert_eq!(re.get("Partial").map(String::as_str), Some("error"));
    let a = references(
        "use crate::b::X;\n// crate::c in a comment\nlet _ = crate::Error::Closed;",
        &re,
    );
    assert_eq!(a, BTreeSet::from(["b".to_owned(), "error".to_owned()]));
    let edge = |a: &str, b: &str| (a.to_owned(), BTreeSet::from([b.to_owned()]));
    let cyclic = Graph::from([edge("a", "b"), edge("b", "c"), edge("c", "a")]);
    assert_eq!(find_cycle(&cyclic).map(|c| c.len()), Some(4));
    let acyclic = Graph::from([edge("a", "b"), edge("b", "c")]);
    assert_eq!(find_cycle(&acyclic), None);
}

#[test]
fn no_file_over_the_size_limit() {
    let src = src();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let too_long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).ok()?.lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(too_long.is_empty(), "split these files: {too_long:?}");
}
