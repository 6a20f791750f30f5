//! The corpus: English sentences from the READMEs and doc comments of a
//! pinned list of crates (`corpus-crates.txt`, made from the workspace's
//! `Cargo.lock` when the model was made; their sources are in cargo's
//! registry once `cargo fetch` has run), so the same list gives the same
//! sentences on any machine, with no download beyond the crates themselves,
//! and a dependency update does not change the model.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// `(name, version)` of every crates.io package in the lock file, sorted.
pub(crate) fn locked_packages(lock: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(lock).with_context(|| lock.display().to_string())?;
    let mut out = Vec::new();
    for block in text.split("[[package]]").skip(1) {
        let field = |k: &str| {
            block.lines().find_map(|l| {
                l.strip_prefix(k)
                    .and_then(|r| r.trim().strip_prefix('='))
                    .map(|v| v.trim().trim_matches('"').to_owned())
            })
        };
        let (Some(name), Some(version), Some(source)) =
            (field("name "), field("version "), field("source "))
        else {
            continue;
        };
        if source.starts_with("registry+") {
            out.push((name, version));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The registry source directory of `name-version`.
fn crate_dir(registry_src: &[PathBuf], name: &str, version: &str) -> Option<PathBuf> {
    registry_src
        .iter()
        .map(|r| r.join(format!("{name}-{version}")))
        .find(|d| d.is_dir())
}

/// cargo's registry source roots (`$CARGO_HOME/registry/src/*`).
pub(crate) fn registry_roots() -> Result<Vec<PathBuf>> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let src = home.join("registry").join("src");
    let mut roots: Vec<PathBuf> = std::fs::read_dir(&src)
        .with_context(|| src.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    roots.sort();
    Ok(roots)
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Paragraphs of a Markdown text: fenced code, tables, headings, HTML and
/// link definitions left out; list items are paragraphs of their own.
fn markdown_paragraphs(text: &str, out: &mut Vec<String>) {
    let mut para = String::new();
    let mut fenced = false;
    let end = |para: &mut String, out: &mut Vec<String>| {
        if !para.trim().is_empty() {
            out.push(std::mem::take(para));
        }
        para.clear();
    };
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with("```") || l.starts_with("~~~") {
            fenced = !fenced;
            end(&mut para, out);
            continue;
        }
        if fenced {
            continue;
        }
        if l.is_empty()
            || l.starts_with('#')
            || l.starts_with('|')
            || l.starts_with('<')
            || l.starts_with("[!")
            || l.starts_with("![")
            || l.starts_with('>')
            || (l.starts_with('[') && l.contains("]:"))
            || line.starts_with("    ")
        {
            end(&mut para, out);
            continue;
        }
        let item = l
            .strip_prefix("- ")
            .or_else(|| l.strip_prefix("* "))
            .or_else(|| l.strip_prefix("+ "));
        if let Some(rest) = item {
            end(&mut para, out);
            para.push_str(rest);
            continue;
        }
        if !para.is_empty() {
            para.push(' ');
        }
        para.push_str(l);
    }
    end(&mut para, out);
}

/// The doc comments (`///`, `//!`) of a Rust file as Markdown, one block
/// per run of doc lines.
fn doc_comments(source: &str, out: &mut Vec<String>) {
    let mut block = String::new();
    for line in source.lines() {
        let l = line.trim_start();
        let doc = l.strip_prefix("///").or_else(|| l.strip_prefix("//!"));
        match doc {
            Some(d) if !d.starts_with('/') => {
                block.push_str(d.strip_prefix(' ').unwrap_or(d));
                block.push('\n');
            }
            _ => {
                if !block.is_empty() {
                    markdown_paragraphs(&block, out);
                    block.clear();
                }
            }
        }
    }
    if !block.is_empty() {
        markdown_paragraphs(&block, out);
    }
}

/// Inline Markdown removed: links keep their text, code spans their
/// content, emphasis markers dropped.
fn plain(p: &str) -> String {
    let mut s = String::with_capacity(p.len());
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'`' | b'*' => i += 1,
            b'[' => i += 1,
            b']' => {
                i += 1;
                // Skip a following (url) or [ref].
                if i < b.len() && (b[i] == b'(' || b[i] == b'[') {
                    let close = if b[i] == b'(' { b')' } else { b']' };
                    match b[i..].iter().position(|&c| c == close) {
                        Some(k) => i += k + 1,
                        None => i = b.len(),
                    }
                }
            }
            _ => {
                let ch = p[i..].chars().next().unwrap_or(' ');
                s.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Sentences of a plain paragraph, split after `.`, `!` or `?` followed by
/// a space and a capital letter.
fn sentences(p: &str, out: &mut Vec<String>) {
    let chars: Vec<char> = p.chars().collect();
    let mut start = 0;
    for i in 0..chars.len() {
        let end_here = matches!(chars[i], '.' | '!' | '?')
            && (i + 1 == chars.len()
                || (chars[i + 1] == ' ' && chars.get(i + 2).is_some_and(|c| c.is_uppercase())));
        if end_here {
            let s: String = chars[start..=i].iter().collect();
            out.push(s.trim().to_owned());
            start = i + 1;
        }
    }
}

/// Whether a sentence is English prose worth embedding.
fn is_prose(s: &str) -> bool {
    let words = s.split_whitespace().count();
    if !(6..=40).contains(&words) || s.len() > 300 {
        return false;
    }
    if !s.chars().next().is_some_and(|c| c.is_ascii_uppercase()) || !s.ends_with('.') {
        return false;
    }
    for bad in [
        "::", "{", "}", "=>", "->", "&mut", "http", "www.", "()", "#[", "//", "SAFETY",
    ] {
        if s.contains(bad) {
            return false;
        }
    }
    let letters = s
        .chars()
        .filter(|c| c.is_ascii_alphabetic() || *c == ' ')
        .count();
    letters * 100 >= s.chars().count() * 90
}

/// The pinned crate list (`name version` per line, `#` comments).
pub(crate) fn listed_packages(list: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(list).with_context(|| list.display().to_string())?;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(' ') {
            Some((n, v)) => out.push((n.to_owned(), v.trim().to_owned())),
            None => bail!(
                "{}: bad line {line:?} (expected `name version`)",
                list.display()
            ),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Every distinct prose sentence of the READMEs and doc comments of
/// `packages`, in their order (sorted by name and version, files by path).
pub(crate) fn collect(packages: &[(String, String)]) -> Result<Vec<String>> {
    let roots = registry_roots()?;
    let mut missing = Vec::new();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut paras = Vec::new();
    let mut sents = Vec::new();
    for (name, version) in packages {
        let Some(dir) = crate_dir(&roots, name, version) else {
            missing.push(format!("{name}-{version}"));
            continue;
        };
        paras.clear();
        let mut tops: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.to_ascii_lowercase().starts_with("readme"))
                    && p.is_file()
            })
            .collect();
        tops.sort();
        for f in tops {
            if let Ok(t) = std::fs::read_to_string(&f) {
                markdown_paragraphs(&t, &mut paras);
            }
        }
        let mut rs = Vec::new();
        files_under(&dir.join("src"), &mut rs);
        for f in rs {
            if let Ok(t) = std::fs::read_to_string(&f) {
                doc_comments(&t, &mut paras);
            }
        }
        for p in &paras {
            sents.clear();
            sentences(&plain(p), &mut sents);
            for s in sents.drain(..) {
                if is_prose(&s) && seen.insert(s.to_ascii_lowercase()) {
                    out.push(s);
                }
            }
        }
    }
    if !missing.is_empty() {
        bail!(
            "{} corpus crates are not in cargo's registry (run `cargo fetch` with a lock file that has them): {}",
            missing.len(),
            missing[..missing.len().min(5)].join(", ")
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_keeps_prose_and_drops_code() {
        let md = "# Title\n\nThis crate does a thing. It also does [another](http://x) thing well.\n\n```rust\nlet x = 1;\n```\n- A list item that is a sentence on its own here.\n";
        let mut p = Vec::new();
        markdown_paragraphs(md, &mut p);
        let mut s = Vec::new();
        for x in &p {
            sentences(&plain(x), &mut s);
        }
        assert_eq!(
            s,
            [
                "This crate does a thing.",
                "It also does another thing well.",
                "A list item that is a sentence on its own here."
            ]
        );
        assert!(!is_prose("This crate does a thing."));
        assert!(is_prose("It also does another thing very well indeed."));
        assert!(!is_prose("Calls foo::bar when the value is not set yet."));
    }

    #[test]
    fn doc_comments_are_read_as_markdown() {
        let src = "/// Returns the `len` of the buffer in bytes today.\n///\n/// # Examples\n/// ```\n/// let a = 1;\n/// ```\nfn f() {}\n//! Module docs are read too, like the rest here.\n";
        let mut p = Vec::new();
        doc_comments(src, &mut p);
        assert_eq!(
            p,
            [
                "Returns the `len` of the buffer in bytes today.",
                "Module docs are read too, like the rest here."
            ]
        );
    }
}
