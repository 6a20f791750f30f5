//! Ollama `/api/embed` provider. Built in its own issue; this crate is a placeholder.
