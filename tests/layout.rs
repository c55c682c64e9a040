//! The shape of the code, held as the design notes describe it
//! (docs/design.md, "The layout of the code"): imports point one way down
//! the layers, the crate root only names its modules, and no function in
//! `src/` runs over 80 lines.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, top first. A module may use those below it (or beside it,
/// where a layer holds several); never one above.
const LAYERS: &[&[&str]] = &[
    &["main"],
    &["cli"],
    &["commands"],
    &["run"],
    &["apply", "report"],
    &["validate"],
    &["read"],
    &["store"],
    &["progress", "interrupt", "usage", "log", "config"],
    &["model"],
    &["exit", "identity"],
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("src/{module} is in no layer of tests/layout.rs: add it"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a file of `src/` belongs to.
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Code without its comments (a doc comment may name any module).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::x` a module's files name, by the module they name.
fn edges() -> BTreeMap<(String, String), Vec<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: Vec<String> = files.iter().map(|f| module_of(f)).collect();
    let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (file, from) in files.iter().zip(&modules) {
        let text = code(&fs::read_to_string(file).unwrap());
        let mut named = Vec::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                named.extend(
                    group
                        .split(',')
                        .map(|p| p.trim().split("::").next().unwrap()),
                );
            } else {
                named.push(
                    rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                        .next()
                        .unwrap(),
                );
            }
        }
        for to in named {
            if to != from && modules.iter().any(|m| m == to) {
                let at = file.strip_prefix(src()).unwrap().display().to_string();
                edges
                    .entry((from.clone(), to.to_string()))
                    .or_default()
                    .push(at);
            }
        }
    }
    edges
}

#[test]
fn imports_point_down_the_layers() {
    let up: Vec<String> = edges()
        .into_iter()
        .filter(|((from, to), _)| layer_of(from) > layer_of(to))
        .map(|((from, to), at)| format!("{from} -> {to} (in {})", at.join(", ")))
        .collect();
    assert!(
        up.is_empty(),
        "imports that run back up the layers:\n{}",
        up.join("\n")
    );
}

#[test]
fn the_crate_root_only_names_its_modules() {
    let lib = code(&fs::read_to_string(src().join("lib.rs")).unwrap());
    let other: Vec<&str> = lib
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("pub mod ") && !l.starts_with("//!"))
        .collect();
    assert!(
        other.is_empty(),
        "lib.rs holds more than modules: {other:?}"
    );
}

/// The length of each function in `text` (from `fn` to its closing brace,
/// at the indentation it opened with).
fn function_lengths(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        let head = line.trim_start();
        let is_fn = [
            "fn ",
            "pub fn ",
            "pub(crate) fn ",
            "pub(super) fn ",
            "const fn ",
        ]
        .iter()
        .any(|p| head.starts_with(p));
        if !is_fn {
            i += 1;
            continue;
        }
        let name = head.split("fn ").nth(1).unwrap_or("");
        let name = name.split(['(', '<']).next().unwrap_or("").to_string();
        let mut open = i;
        while open < lines.len() && !lines[open].trim_end().ends_with('{') {
            if lines[open].trim_end().ends_with(';') {
                break;
            }
            open += 1;
        }
        if open >= lines.len() || !lines[open].trim_end().ends_with('{') {
            i = open + 1;
            continue;
        }
        let close = (open + 1..lines.len())
            .find(|&k| {
                let l = lines[k];
                l.len() - l.trim_start().len() == indent && l.trim_start().starts_with('}')
            })
            .unwrap_or(lines.len() - 1);
        out.push((name, close - i + 1));
        i = open + 1;
    }
    out
}

#[test]
fn no_function_in_src_runs_over_80_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut long = Vec::new();
    for file in files {
        for (name, n) in function_lengths(&fs::read_to_string(&file).unwrap()) {
            if n > 80 {
                let at = file.strip_prefix(src()).unwrap().display().to_string();
                long.push(format!("{at}: {name} ({n} lines)"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over 80 lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checks_see_what_they_look_for() {
    // A function of 81 lines is found; an upward import would be named.
    let body = "    x();\n".repeat(79);
    let text = format!("fn long() {{\n{body}}}\n");
    assert_eq!(function_lengths(&text), [("long".to_string(), 81)]);
    assert!(layer_of("model") > layer_of("store"));
    assert!(edges().contains_key(&("commands".to_string(), "run".to_string())));
}
