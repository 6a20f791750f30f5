//! Token counts with tiktoken's cl100k_base, built once per process.

use tiktoken_rs::CoreBPE;

/// The shared cl100k_base encoder (built on first use: that takes a while).
pub(crate) fn bpe() -> &'static CoreBPE {
    tiktoken_rs::cl100k_base_singleton()
}

/// The number of cl100k_base tokens in `text`, as the fake server counts
/// them for `usage`, the request limits and the tokens-per-minute limit.
///
/// ```
/// assert_eq!(embeddings_testkit::count_tokens("hello world"), 2);
/// ```
pub fn count_tokens(text: &str) -> usize {
    if text.is_empty() {
        return 0;
    }
    bpe().count_ordinary(text)
}
