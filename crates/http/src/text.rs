//! What of a server's text may be printed: short excerpts on one printable
//! line, with every secret masked.

use std::borrow::Cow;
use std::fmt;

use embeddings_core::{Error, ExposeSecret, SecretString};

/// The longest excerpt of a server's body kept in an error message, in chars.
pub const MAX_EXCERPT: usize = 300;

/// The shortest run of a configured secret's characters that is masked
/// wherever it appears (the whole secret is always masked).
pub const MIN_SECRET_RUN: usize = 8;

const REDACTED: &str = "[redacted]";

/// Whether `c` must not reach a terminal as it is: control characters (C0,
/// DEL, C1), line and paragraph separators, bidirectional overrides and
/// invisible format characters.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
        )
}

/// `text` as one printable line of at most `max` chars (then `…`; an
/// escape counts its length):
/// whitespace runs (spaces, tabs, `\n`, `\r`, ...) become one space, every
/// other control or invisible character is escaped (`\u{1b}`), so an
/// excerpt can neither move the cursor, clear the screen, ring the bell nor
/// reorder the text around it. Masks nothing: see [`Masker::excerpt`].
///
/// ```
/// use embeddings_http::excerpt;
/// assert_eq!(excerpt("a\r\n\tb\x1b[2J\u{7}\0\u{2028}c", 100), "a b\\u{1b}[2J\\u{7}\\u{0}\\u{2028}c");
/// assert_eq!(excerpt("abcdef", 3), "abc…");
/// ```
pub fn excerpt(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 2 + 8));
    let mut chars = 0;
    let mut space = false;
    for c in text.trim().chars() {
        if c.is_whitespace() && !matches!(c, '\u{2028}' | '\u{2029}') {
            if space {
                continue;
            }
            space = true;
            if chars == max {
                out.push('…');
                return out;
            }
            out.push(' ');
            chars += 1;
            continue;
        }
        space = false;
        let width = if is_unsafe(c) {
            c.escape_unicode().len()
        } else {
            1
        };
        if chars + width > max {
            out.push('…');
            return out;
        }
        if width > 1 {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
        chars += width;
    }
    out
}

/// Masks secrets in text a server sent back: every configured secret
/// (whole, and any run of at least [`MIN_SECRET_RUN`] of its characters, so
/// a cut or an echo of part of a key is caught too), and anything shaped
/// like a key whoever configured it (`sk-...`, `Bearer ...`).
///
/// `Debug` shows how many secrets it holds, never them.
///
/// ```
/// use embeddings_http::Masker;
/// let m = Masker::new().with_secret("olkey-SECRET-0123456789");
/// assert_eq!(m.mask("invalid api key olkey-SECRET-0123456789"), "invalid api key [redacted]");
/// assert_eq!(m.mask("code: SECRET-0123"), "code: [redacted]");
/// assert_eq!(m.mask("Bearer abc.def-123 / sk-proj-xyz_12345"), "Bearer [redacted] / sk-[redacted]");
/// ```
#[derive(Clone, Default)]
pub struct Masker {
    secrets: Vec<SecretString>,
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Masker({} secrets)", self.secrets.len())
    }
}

impl Masker {
    /// A masker of key-shaped tokens only.
    pub fn new() -> Self {
        Masker::default()
    }

    /// Adds a secret (blank ones are ignored).
    pub fn with_secret(mut self, secret: impl Into<SecretString>) -> Self {
        self.add(secret.into());
        self
    }

    /// Adds a secret (blank ones are ignored).
    pub fn add(&mut self, secret: SecretString) {
        if !secret.expose_secret().trim().is_empty() {
            self.secrets.push(secret);
        }
    }

    /// `text` with every secret masked.
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut marks: Option<Vec<bool>> = None;
        for s in &self.secrets {
            let key = s.expose_secret().as_bytes();
            mark_secret(text.as_bytes(), key, &mut marks);
        }
        let text: Cow<'t, str> = match marks {
            None => Cow::Borrowed(text),
            Some(m) => Cow::Owned(apply_marks(text, &m)),
        };
        match mask_tokens(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(s) => Cow::Owned(s),
        }
    }

    /// Masks, then [`excerpt`]s (the whole text is masked before it is cut,
    /// so a cut never leaves part of a secret behind).
    pub fn excerpt(&self, text: &str, max: usize) -> String {
        // Only what can reach the excerpt needs masking (with room for
        // the runs the masking shortens).
        let mut cut = text.len().min(max.saturating_mul(16).max(4096));
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        excerpt(&self.mask(&text[..cut]), max)
    }

    /// The error with its message masked.
    pub fn error(&self, e: Error) -> Error {
        match self.mask(e.message()) {
            Cow::Borrowed(_) => e,
            Cow::Owned(m) => e.with_message(m),
        }
    }
}

/// Marks every byte of `text` inside a run of at least [`MIN_SECRET_RUN`]
/// bytes of `key` (or the whole key, when shorter).
fn mark_secret(text: &[u8], key: &[u8], marks: &mut Option<Vec<bool>>) {
    let min = MIN_SECRET_RUN.min(key.len());
    if min == 0 || text.len() < min {
        return;
    }
    let (mut prev, mut cur) = (vec![0u32; key.len() + 1], vec![0u32; key.len() + 1]);
    for i in 1..=text.len() {
        let mut best = 0u32;
        for j in 1..=key.len() {
            cur[j] = if text[i - 1] == key[j - 1] {
                prev[j - 1] + 1
            } else {
                0
            };
            best = best.max(cur[j]);
        }
        if best as usize >= min {
            let m = marks.get_or_insert_with(|| vec![false; text.len()]);
            for b in &mut m[i - best as usize..i] {
                *b = true;
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
}

fn apply_marks(text: &str, marks: &[bool]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_run = false;
    for (at, c) in text.char_indices() {
        let marked = marks[at..at + c.len_utf8()].iter().any(|&m| m);
        if marked {
            if !in_run {
                out.push_str(REDACTED);
                in_run = true;
            }
        } else {
            in_run = false;
            out.push(c);
        }
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*' | '.' | '~' | '+' | '/' | '=')
}

/// Masks what looks like a key whoever configured it: `sk-` followed by
/// four or more key characters, and the token after `Bearer `.
pub fn mask_tokens(text: &str) -> Cow<'_, str> {
    if !text.contains("sk-") && !text.to_ascii_lowercase().contains("bearer") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let sk = rest.find("sk-");
        let bearer = find_ci(rest, "bearer ");
        let (at, prefix_len, min) = match (sk, bearer) {
            (Some(s), Some(b)) if b < s => (b, "bearer ".len(), 1),
            (Some(s), _) => (s, 3, 4),
            (None, Some(b)) => (b, "bearer ".len(), 1),
            (None, None) => break,
        };
        out.push_str(&rest[..at]);
        let head = &rest[at..at + prefix_len];
        let mut tail = &rest[at + prefix_len..];
        if prefix_len > 3 {
            // Any spaces between `Bearer` and the token.
            let t = tail.trim_start_matches(' ');
            out.push_str(head);
            out.push_str(&tail[..tail.len() - t.len()]);
            tail = t;
        } else {
            out.push_str(head);
        }
        let len = tail.find(|c: char| !is_token_char(c)).unwrap_or(tail.len());
        if len >= min {
            out.push_str(REDACTED);
        } else {
            out.push_str(&tail[..len]);
        }
        rest = &tail[len..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn excerpts_are_one_printable_line() {
        for bad in [
            "\r", "\x1b", "\u{7}", "\0", "\u{2028}", "\u{2029}", "\u{202e}", "\u{85}", "\u{7f}",
        ] {
            let e = excerpt(&format!("a{bad}b"), 100);
            assert!(!e.contains(bad), "{bad:?}: {e:?}");
            assert!(e.chars().all(|c| !is_unsafe(c)), "{e:?}");
        }
        assert_eq!(excerpt("line1\n\n\tline2", 100), "line1 line2");
        assert_eq!(excerpt("é".repeat(10).as_str(), 4), "éééé…");
        assert_eq!(excerpt("  x  ", 4), "x");
    }

    #[test]
    fn keys_are_masked_whole_in_part_and_by_shape() {
        let key = "sk-test-0123456789abcdefSECRET";
        let m = Masker::new().with_secret(key);
        let t = format!("bad key {key}.");
        assert_eq!(m.mask(&t), "bad key [redacted].");
        // A part of the key (as a cut `code` shows it).
        assert_eq!(m.mask("code=0123456789ab"), "code=[redacted]");
        // Shorter than the minimum run: kept.
        assert_eq!(m.mask("0123456"), "0123456");
        assert_eq!(
            mask_tokens("key sk-proj-AbC123xyz_9 was wrong; sk- alone; sk-ab"),
            "key sk-[redacted] was wrong; sk- alone; sk-ab"
        );
        assert_eq!(
            mask_tokens("Authorization: bearer   abc"),
            "Authorization: bearer   [redacted]"
        );
        assert_eq!(mask_tokens("no key"), "no key");
        assert!(format!("{m:?}").contains("1 secrets"));
        assert!(!format!("{m:?}").contains("0123"));
    }

    #[test]
    fn masking_happens_before_the_cut() {
        let key = "olkey-SECRET-abcdefghijklmnop";
        let m = Masker::new().with_secret(key);
        let t = format!("{}{key}", "x".repeat(290));
        let e = m.excerpt(&t, 300);
        assert!(!e.contains("olkey-SEC"), "{e}");
        assert!(!e.contains("SECRET"), "{e}");
    }

    proptest! {
        #[test]
        fn no_run_of_the_key_survives(prefix in ".{0,40}", suffix in ".{0,40}", start in 0usize..20, len in 8usize..30) {
            let key = "Zq9-SECRET-kEy_0123456789-ABCDEFGH";
            let end = (start + len).min(key.len());
            let part = &key[start..end];
            prop_assume!(part.len() >= MIN_SECRET_RUN);
            let m = Masker::new().with_secret(key);
            let out = m.excerpt(&format!("{prefix}{part}{suffix}"), 1000);
            prop_assert!(!out.contains(part), "{}", out);
        }

        #[test]
        fn excerpts_never_hold_unsafe_chars(s in "\\PC*|[\\x00-\\x1f\\u{2028}\\u{2029}\\u{7f}-\\u{9f}a ]{0,40}", max in 0usize..50) {
            let e = excerpt(&s, max);
            prop_assert!(e.chars().all(|c| !is_unsafe(c) && (c == ' ' || !c.is_whitespace())));
            prop_assert!(e.chars().count() <= max + 1);
        }
    }
}
