//! PROTOCOL.md's "What a receiver accepts" table against what Node did with the shape
//! matrix: every cell must say what the oracle saw, and every case must have its cell.

use crate::cases::Case;
use crate::oracle::Judged;
use std::collections::BTreeMap;

const COLUMNS: [&str; 3] = ["delivered", "ignored", "skipped"];

/// `(field, shape) -> outcome word`, read from the table between the markers.
fn table() -> BTreeMap<(String, String), &'static str> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md");
    let text = std::fs::read_to_string(path).expect("read PROTOCOL.md");
    let start = text
        .find("<!-- receiver-table -->")
        .expect("table start marker");
    let end = text
        .find("<!-- /receiver-table -->")
        .expect("table end marker");
    let mut out = BTreeMap::new();
    for row in text[start..end].lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let field = cells[1].trim_matches('`').to_owned();
        for (word, cell) in COLUMNS.iter().zip(&cells[2..5]) {
            for shape in cell.split('`').skip(1).step_by(2) {
                let key = (field.clone(), shape.to_owned());
                assert!(
                    out.insert(key, *word).is_none(),
                    "{field} {shape} twice in the table"
                );
            }
        }
    }
    out
}

/// Mismatches between the table and the judged matrix cases.
pub(crate) fn mismatches(cases: &[Case], judged: &[Judged]) -> Vec<String> {
    let mut table = table();
    let mut out = Vec::new();
    for (case, j) in cases.iter().zip(judged) {
        if case.field == "-" {
            continue;
        }
        let seen = j.outcome.word();
        match table.remove(&(case.field.to_owned(), case.shape.to_owned())) {
            Some(said) if said == seen => {}
            Some(said) => out.push(format!("{}: the table says {said}, Node {seen}", case.name)),
            None => out.push(format!("{}: not in the table (Node {seen})", case.name)),
        }
    }
    out.extend(
        table
            .keys()
            .map(|(f, s)| format!("{f} {s}: in the table, not a case")),
    );
    out
}
