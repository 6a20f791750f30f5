//! OpenAI `/v1/embeddings` provider. Built in its own issue; this crate is a placeholder.
