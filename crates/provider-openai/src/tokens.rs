//! Token counts with OpenAI's `cl100k_base` tokenizer (offline: the ranks
//! ship inside `tiktoken-rs`), built once per process.

use std::sync::OnceLock;

use embeddings_core::{estimate_tokens, split_by_bytes};
use tiktoken_rs::CoreBPE;

fn bpe() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::cl100k_base().ok()).as_ref()
}

/// Tokens of `text` by `cl100k_base` (the tokenizer of OpenAI's embedding
/// models). Falls back to [`estimate_tokens`] if the tokenizer cannot be built.
pub fn count_tokens(text: &str) -> usize {
    if text.is_empty() {
        return 0;
    }
    match bpe() {
        Some(b) => b.encode_ordinary(text).len(),
        None => estimate_tokens(text),
    }
}

/// Splits `text` into consecutive pieces of at most `max_tokens`
/// `cl100k_base` tokens each, cut on char boundaries, covering the text.
pub fn split_tokens(text: &str, max_tokens: usize) -> Vec<&str> {
    let max = max_tokens.max(1);
    if text.is_empty() {
        return Vec::new();
    }
    let Some(b) = bpe() else {
        return split_by_bytes(text, max * 4);
    };
    let tokens = b.encode_ordinary(text);
    if tokens.len() <= max {
        return vec![text];
    }
    let mut out = Vec::with_capacity(tokens.len().div_ceil(max));
    let mut start = 0;
    let mut pos = 0;
    for chunk in tokens.chunks(max) {
        pos += chunk
            .iter()
            .map(|t| b.decode_bytes(&[*t]).map_or(0, |v| v.len()))
            .sum::<usize>();
        let mut cut = pos.min(text.len());
        // A token may end inside a multi-byte char: cut before that char,
        // or after it when the piece would otherwise be empty.
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut <= start {
            cut = pos.min(text.len());
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
        }
        if cut > start {
            out.push(&text[start..cut]);
            start = cut;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_cl100k() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("hello world"), 2);
        // "tiktoken is great!" is 6 tokens in cl100k_base.
        assert_eq!(count_tokens("tiktoken is great!"), 6);
    }

    #[test]
    fn split_covers_the_text_within_the_budget() {
        let text = "The quick brown fox jumps over the lazy dog. déjà vu 🌍🌍 日本語のテキスト "
            .repeat(20);
        for max in [1, 2, 3, 7, 50, 10_000] {
            let parts = split_tokens(&text, max);
            assert_eq!(parts.concat(), text, "max {max}");
            for p in &parts {
                assert!(!p.is_empty());
                // Re-tokenising a piece may differ by a token at a cut inside a char.
                assert!(count_tokens(p) <= max + 2, "max {max}: {p:?}");
            }
        }
        assert!(split_tokens("", 5).is_empty());
        assert_eq!(split_tokens("short", 5), vec!["short"]);
        assert_eq!(split_tokens("🌍", 1).concat(), "🌍");
    }
}
