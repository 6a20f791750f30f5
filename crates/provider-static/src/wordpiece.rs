//! The fast path of BERT WordPiece tokenizers for ASCII text.
//!
//! A `tokenizer.json` with a `BertNormalizer`, the `BertPreTokenizer` and a
//! `WordPiece` model (all-MiniLM, BERT-uncased and most static models made
//! from them) tokenizes ASCII text by rules simple enough to run without
//! the general pipeline's allocations: drop control characters, whitespace
//! separates, every ASCII punctuation character is a word of its own,
//! lowercase when the normaliser does, then greedy longest-match-first
//! WordPiece. Text that is not ASCII, or that contains the first byte of an
//! added token (`[CLS]`, `[MASK]`, ...: those are matched in the raw text),
//! goes through the `tokenizers` crate. The two are checked equal by
//! property tests.

use rustc_hash::FxHashMap;
use serde_json::Value;

/// The WordPiece vocabulary and rules read from a `tokenizer.json`.
pub(crate) struct WordPiece {
    words: FxHashMap<Box<[u8]>, u32>,
    /// Continuations, stored without their prefix (`##`).
    pieces: FxHashMap<Box<[u8]>, u32>,
    unk: u32,
    max_chars: usize,
    lowercase: bool,
    /// Bytes that start an added token: text containing one takes the
    /// general path.
    added_first: [bool; 128],
}

impl std::fmt::Debug for WordPiece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordPiece")
            .field("vocab", &(self.words.len() + self.pieces.len()))
            .finish_non_exhaustive()
    }
}

impl WordPiece {
    /// The fast path for this `tokenizer.json`, or `None` when its pipeline
    /// is not exactly BertNormalizer + BertPreTokenizer + WordPiece.
    pub(crate) fn from_tokenizer_json(v: &Value) -> Option<WordPiece> {
        let norm = v.get("normalizer")?;
        if norm.get("type")?.as_str()? != "BertNormalizer" || !norm.get("clean_text")?.as_bool()? {
            return None;
        }
        let lowercase = norm.get("lowercase")?.as_bool()?;
        if v.get("pre_tokenizer")?.get("type")?.as_str()? != "BertPreTokenizer" {
            return None;
        }
        let model = v.get("model")?;
        if model.get("type")?.as_str()? != "WordPiece" {
            return None;
        }
        let prefix = model.get("continuing_subword_prefix")?.as_str()?;
        let max_chars = usize::try_from(model.get("max_input_chars_per_word")?.as_u64()?).ok()?;
        let unk_token = model.get("unk_token")?.as_str()?;
        let vocab = model.get("vocab")?.as_object()?;
        let mut words = FxHashMap::default();
        let mut pieces = FxHashMap::default();
        for (tok, id) in vocab {
            let id = u32::try_from(id.as_u64()?).ok()?;
            match tok.strip_prefix(prefix) {
                Some(rest) if !prefix.is_empty() => {
                    pieces.insert(rest.as_bytes().into(), id);
                }
                _ => {
                    words.insert(tok.as_bytes().into(), id);
                }
            }
        }
        let unk = *words.get(unk_token.as_bytes())?;
        let mut added_first = [false; 128];
        for t in v.get("added_tokens")?.as_array()? {
            let content = t.get("content")?.as_str()?;
            match content.bytes().next() {
                Some(b) if b < 128 => added_first[b as usize] = true,
                // An added token that cannot occur in ASCII text.
                _ => {}
            }
        }
        // Normalised added tokens would be matched after lowercasing: only
        // the case where they are matched on the raw text is handled.
        if v.get("added_tokens")?
            .as_array()?
            .iter()
            .any(|t| t.get("normalized").and_then(Value::as_bool) != Some(false))
        {
            return None;
        }
        Some(WordPiece {
            words,
            pieces,
            unk,
            max_chars,
            lowercase,
            added_first,
        })
    }

    /// One more than the largest id of the vocabulary.
    pub(crate) fn vocab_size(&self) -> usize {
        self.words
            .values()
            .chain(self.pieces.values())
            .map(|&i| i as usize + 1)
            .max()
            .unwrap_or(0)
    }

    /// The id of a whole-word token.
    pub(crate) fn word_id(&self, token: &str) -> Option<u32> {
        self.words.get(token.as_bytes()).copied()
    }

    /// Whether `text` (ASCII) can take the fast path.
    pub(crate) fn accepts(&self, text: &str) -> bool {
        text.is_ascii() && !text.bytes().any(|b| self.added_first[b as usize])
    }

    /// Appends the ids of ASCII `text` (see [`accepts`](Self::accepts));
    /// `word` is the caller's scratch buffer (reused across texts: no
    /// allocation per text).
    pub(crate) fn encode_ascii(&self, text: &str, ids: &mut Vec<u32>, word: &mut Vec<u8>) {
        word.clear();
        for &b in text.as_bytes() {
            match b {
                // Whitespace separates; other control characters are dropped.
                b'\t' | b'\n' | b'\r' | b' ' => self.end_word(word, ids),
                0..=0x1f | 0x7f => {}
                b if b.is_ascii_punctuation() => {
                    self.end_word(word, ids);
                    self.word(&[b], ids);
                }
                b if self.lowercase => word.push(b.to_ascii_lowercase()),
                b => word.push(b),
            }
        }
        self.end_word(word, ids);
    }

    /// The word collected so far, if any, then an empty one.
    fn end_word(&self, word: &mut Vec<u8>, ids: &mut Vec<u32>) {
        if !word.is_empty() {
            self.word(word, ids);
            word.clear();
        }
    }

    /// Greedy longest-match-first WordPiece of one word.
    fn word(&self, w: &[u8], ids: &mut Vec<u32>) {
        if w.len() > self.max_chars {
            ids.push(self.unk);
            return;
        }
        if let Some(&id) = self.words.get(w) {
            ids.push(id);
            return;
        }
        let before = ids.len();
        let mut start = 0;
        while start < w.len() {
            let table = if start == 0 {
                &self.words
            } else {
                &self.pieces
            };
            let mut end = w.len();
            let mut found = None;
            while end > start {
                if let Some(&id) = table.get(&w[start..end]) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => {
                    ids.push(id);
                    start = end;
                }
                None => {
                    ids.truncate(before);
                    ids.push(self.unk);
                    return;
                }
            }
        }
    }
}
