//! Parity with sentence-transformers (PyTorch CPU) on all-MiniLM-L6-v2:
//! tests/fixtures/reference.{json,npy}, made by tests/fixtures/make_reference.py.

mod common;

use common::{embedder, max_diff, reference};
use embeddings_core::{EmbedRequest, Embedder};

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn vectors_match_sentence_transformers_within_1e_4() {
    let r = reference();
    assert!(r.sentences.len() >= 50);
    assert!(
        r.tokens.iter().any(|&n| n > 256),
        "the fixture has inputs past 256 tokens"
    );
    let e = embedder(2, None);
    assert_eq!(e.info().dimension, r.dim);
    let got = e.embed_documents(&refs(&r.sentences)).await.unwrap();
    assert_eq!(got.len(), r.sentences.len());
    let mut worst = (0.0f32, 0usize);
    for i in 0..r.sentences.len() {
        let d = max_diff(got.row(i), r.row(i));
        if d > worst.0 {
            worst = (d, i);
        }
    }
    println!(
        "max |local - sentence-transformers| over {} sentences x {} dims: {:.3e} (sentence {})",
        r.sentences.len(),
        r.dim,
        worst.0,
        worst.1
    );
    assert!(
        worst.0 <= 1e-4,
        "sentence {} ({:?}) differs by {:e}",
        worst.1,
        r.sentences[worst.1],
        worst.0
    );
}

#[tokio::test]
async fn token_counts_match_the_python_tokenizer() {
    let r = reference();
    let e = embedder(1, None);
    for (i, s) in r.sentences.iter().enumerate() {
        assert_eq!(e.count_tokens(s), r.tokens[i], "sentence {i} {s:?}");
        assert!(
            e.token_bound(s.len()) >= r.tokens[i],
            "token_bound below the count for {i}"
        );
    }
    let got = e.embed_documents(&refs(&r.sentences)).await.unwrap();
    let usage = got.usage().unwrap();
    assert_eq!(
        usage.prompt_tokens,
        r.tokens_truncated.iter().sum::<usize>() as u64
    );
}

#[tokio::test]
async fn rows_identical_whatever_batch_size_pass_size_and_threads() {
    let r = reference();
    let texts = refs(&r.sentences);
    let base = embedder(2, None).embed_documents(&texts).await.unwrap();
    // One thread with the smallest passes, in batches of 7; two threads
    // with one pass for everything, one input per call.
    let variants = [(1, Some(256), 7usize), (2, Some(100_000), 1)];
    for (threads, chunk, batch) in variants {
        let e = embedder(threads, chunk);
        let all = e.embed_documents(&texts).await.unwrap();
        for (b, chunk_texts) in texts.chunks(batch).enumerate() {
            let part = e.embed_documents(chunk_texts).await.unwrap();
            for k in 0..chunk_texts.len() {
                let i = b * batch + k;
                let d = max_diff(part.row(k), base.row(i)).max(max_diff(all.row(i), base.row(i)));
                assert!(
                    d <= 1e-5,
                    "threads {threads} chunk {chunk:?} batch {batch}: row {i} differs by {d:e}"
                );
            }
        }
    }
}

#[tokio::test]
async fn rows_follow_input_order() {
    let r = reference();
    let e = embedder(2, None);
    let texts = refs(&r.sentences);
    let mut rev = texts.clone();
    rev.reverse();
    let got = e.embed(EmbedRequest::new(&rev)).await.unwrap();
    for (k, _) in rev.iter().enumerate() {
        let i = texts.len() - 1 - k;
        assert!(
            max_diff(got.row(k), r.row(i)) <= 1e-4,
            "row {k} is not input {i}'s"
        );
    }
}
