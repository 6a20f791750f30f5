//! `distill`: makes the embedded static model from all-MiniLM-L6-v2 and
//! measures it (run through `cargo xtask distill`).
//!
//! The recipe (README, "The embedded model"):
//! 1. Corpus: English sentences from the READMEs and doc comments of the
//!    crates in `Cargo.lock` (`corpus.rs`), split by a hash of the text into
//!    a training pool and a held-apart evaluation pool (1 in 8).
//! 2. Teacher: the `local` provider runs MiniLM on the training sentences
//!    and on every vocabulary token alone (`[CLS] token [SEP]`).
//! 3. Projection: the uncentred PCA of the teacher's sentence vectors
//!    (384 → 256 dimensions), applied to both.
//! 4. Start: the projected token outputs, weighted by SIF
//!    (`a / (a + p(token))`).
//! 5. Regression: token vectors fitted so that their mean over a sentence
//!    reproduces the projected teacher vector (ridge towards the start,
//!    conjugate gradients), the regularisation and the number of steps
//!    chosen on a validation slice of the training pool.
//! 6. int8 with one scale per row; tokenizer.json without padding or
//!    truncation; config.json.
//!
//! Every step is sequential in a fixed order or (the teacher) independent
//! of thread count and batch size, so the same inputs give the same bytes.

mod corpus;
mod train;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use embeddings_core::{Embedder, EmbedderExt};
use embeddings_local::{LocalEmbedder, LocalSection};
use embeddings_static::StaticEmbedder;

const DIM: usize = 256;
const SIF_A: f64 = 1e-3;
/// Evaluation pool: sentences whose hash is 0 mod this.
const EVAL_MOD: u64 = 8;
const EVAL_CORPUS: usize = 10_000;
const EVAL_QUERIES: usize = 1_000;
const EVAL_PAIRS: usize = 2_500;
const VAL_SENTENCES: usize = 400;
/// Most conjugate-gradient steps; the best checkpoint on validation wins.
const STEPS: usize = 150;
/// The ridge regularisation (3e-4 to 3e-3 gave the same validation score
/// within 0.001).
const LAMBDA: f32 = 3e-4;

struct Args {
    teacher: PathBuf,
    out: PathBuf,
    lock: Option<PathBuf>,
    list: PathBuf,
    cache: PathBuf,
    train: usize,
    check: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: distill build --teacher DIR [--out DIR] [--list corpus-crates.txt | --lock Cargo.lock] [--cache DIR] [--train N] [--check]\n       distill eval --teacher DIR [--model DIR] [--list FILE | --lock FILE] [--cache DIR]\n       distill corpus [--list FILE | --lock FILE]\n       distill crates --lock Cargo.lock    (a new corpus-crates.txt on stdout)"
    );
    std::process::exit(2)
}

fn parse(mut it: impl Iterator<Item = String>) -> (String, Args, Option<PathBuf>) {
    let cmd = it.next().unwrap_or_else(|| usage());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut a = Args {
        teacher: std::env::var_os("EMBEDDINGS_LOCAL_TEST_MODEL")
            .map(PathBuf::from)
            .unwrap_or_default(),
        out: root.join("crates/provider-static/model"),
        lock: None,
        list: root.join("crates/distill/corpus-crates.txt"),
        cache: root.join("target/distill"),
        train: 1_000_000,
        check: false,
    };
    let mut model = None;
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--teacher" => a.teacher = v().into(),
            "--out" => a.out = v().into(),
            "--lock" => a.lock = Some(v().into()),
            "--list" => a.list = v().into(),
            "--cache" => a.cache = v().into(),
            "--train" => a.train = v().parse().unwrap_or_else(|_| usage()),
            "--model" => model = Some(v().into()),
            "--check" => a.check = true,
            _ => usage(),
        }
    }
    (cmd, a, model)
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The corpus split: evaluation sets and training/validation sentences.
struct Split {
    train: Vec<String>,
    val: Vec<String>,
    eval_corpus: Vec<String>,
    eval_queries: Vec<String>,
    /// Pairs of sentences: adjacent in the source, then random.
    eval_pairs: Vec<(String, String)>,
}

fn split(sentences: Vec<String>, train_n: usize) -> Result<Split> {
    let mut eval_src = Vec::new();
    let mut train = Vec::new();
    for s in sentences {
        let h = fnv(s.as_bytes());
        if h % EVAL_MOD == 0 {
            eval_src.push(s);
        } else {
            train.push((h, s));
        }
    }
    let need = EVAL_CORPUS + EVAL_QUERIES;
    if eval_src.len() < need {
        bail!(
            "the evaluation pool has {} sentences, {need} are needed",
            eval_src.len()
        );
    }
    let mut adjacent = Vec::new();
    for k in 0..EVAL_PAIRS {
        adjacent.push((eval_src[2 * k].clone(), eval_src[2 * k + 1].clone()));
    }
    let mut eval_h: Vec<(u64, String)> = eval_src
        .into_iter()
        .map(|s| (fnv(format!("eval:{s}").as_bytes()), s))
        .collect();
    eval_h.sort();
    let eval: Vec<String> = eval_h.into_iter().map(|(_, s)| s).collect();
    let eval_corpus = eval[..EVAL_CORPUS].to_vec();
    let eval_queries = eval[EVAL_CORPUS..EVAL_CORPUS + EVAL_QUERIES].to_vec();
    // Random pairs: the evaluation pool in hash order, two by two (the
    // pairs may share sentences with the retrieval corpus; none is trained on).
    let mut eval_pairs = adjacent;
    for k in 0..EVAL_PAIRS {
        eval_pairs.push((eval[2 * k].clone(), eval[2 * k + 1].clone()));
    }
    train.sort();
    let mut train: Vec<String> = train.into_iter().map(|(_, s)| s).collect();
    if train.len() < train_n + VAL_SENTENCES {
        eprintln!(
            "note: the training pool has {} sentences (asked for {train_n} + {VAL_SENTENCES})",
            train.len()
        );
    }
    let val: Vec<String> = train.drain(..VAL_SENTENCES.min(train.len())).collect();
    train.truncate(train_n);
    Ok(Split {
        train,
        val,
        eval_corpus,
        eval_queries,
        eval_pairs,
    })
}

fn teacher(dir: &Path) -> Result<LocalEmbedder> {
    if dir.as_os_str().is_empty() {
        bail!(
            "no teacher model: pass --teacher DIR (all-MiniLM-L6-v2) or set EMBEDDINGS_LOCAL_TEST_MODEL"
        );
    }
    Ok(LocalEmbedder::from_dir(dir, &LocalSection::default())?)
}

fn read_f32(path: &Path) -> Option<Vec<f32>> {
    let b = std::fs::read(path).ok()?;
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

fn write_f32(path: &Path, v: &[f32]) -> Result<()> {
    let mut b = Vec::with_capacity(v.len() * 4);
    for x in v {
        b.extend_from_slice(&x.to_le_bytes());
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, b)?;
    std::fs::rename(tmp, path)?;
    Ok(())
}

/// The teacher's vectors of `texts`, cached under `cache` in chunks of 256
/// texts, each by a hash of its texts and the teacher's weights size (the
/// values are a pure function of both), so a longer training list reuses
/// the chunks of a shorter one.
async fn teacher_vectors(
    t: &LocalEmbedder,
    texts: &[String],
    cache: &Path,
    label: &str,
) -> Result<Vec<f32>> {
    let weights = std::fs::metadata(t.model_dir().join("model.safetensors"))?.len();
    let dim = t.info().dimension;
    let dir = cache.join("chunks");
    std::fs::create_dir_all(&dir)?;
    adopt_whole_list_cache(texts, cache, label, weights, dim, &dir)?;
    let start = std::time::Instant::now();
    let mut out = Vec::with_capacity(texts.len() * dim);
    let mut computed = 0usize;
    for (k, chunk) in texts.chunks(256).enumerate() {
        let mut key = weights.to_le_bytes().to_vec();
        for s in chunk {
            key.extend_from_slice(s.as_bytes());
            key.push(0);
        }
        let path = dir.join(format!("{:016x}-{}.f32", fnv(&key), chunk.len()));
        if let Some(v) = read_f32(&path).filter(|v| v.len() == chunk.len() * dim) {
            out.extend_from_slice(&v);
            continue;
        }
        let e = t.embed_texts(chunk).await?;
        write_f32(&path, e.as_flat())?;
        out.extend_from_slice(e.as_flat());
        computed += chunk.len();
        if k % 20 == 0 {
            eprintln!(
                "  teacher {label}: {}/{} ({computed} computed, {:.0?})",
                ((k + 1) * 256).min(texts.len()),
                texts.len(),
                start.elapsed()
            );
        }
    }
    Ok(out)
}

/// The cache of earlier versions held one file per list
/// (`teacher-<label>-<hash of the list>.f32`); one that holds a prefix of
/// `texts` is split into chunk files.
fn adopt_whole_list_cache(
    texts: &[String],
    cache: &Path,
    label: &str,
    weights: u64,
    dim: usize,
    dir: &Path,
) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(cache) else {
        return Ok(());
    };
    let prefix = format!("teacher-{label}-");
    for entry in rd.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(hash) = name
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".f32"))
        else {
            continue;
        };
        let rows = (entry.metadata()?.len() as usize) / (4 * dim);
        if rows > texts.len() {
            continue;
        }
        let mut key = weights.to_le_bytes().to_vec();
        for s in &texts[..rows] {
            key.extend_from_slice(s.as_bytes());
            key.push(0);
        }
        if format!("{:016x}", fnv(&key)) != hash {
            continue;
        }
        let Some(v) = read_f32(&entry.path()) else {
            continue;
        };
        // Whole chunks only: a short last chunk of the old list is not a
        // chunk of a longer one.
        let whole = if rows == texts.len() {
            rows
        } else {
            rows / 256 * 256
        };
        for (chunk, rows) in texts[..whole].chunks(256).zip(v.chunks(256 * dim)) {
            let mut key = weights.to_le_bytes().to_vec();
            for s in chunk {
                key.extend_from_slice(s.as_bytes());
                key.push(0);
            }
            write_f32(
                &dir.join(format!("{:016x}-{}.f32", fnv(&key), chunk.len())),
                rows,
            )?;
        }
        std::fs::remove_file(entry.path())?;
    }
    Ok(())
}

/// The teacher's output for every vocabulary token alone.
async fn token_vectors(
    t: &LocalEmbedder,
    vocab: usize,
    cls: u32,
    sep: u32,
    cache: &Path,
) -> Result<Vec<f32>> {
    let weights = std::fs::metadata(t.model_dir().join("model.safetensors"))?.len();
    let path = cache.join(format!("teacher-tokens-{vocab}-{weights}.f32"));
    let dim = t.info().dimension;
    if let Some(v) = read_f32(&path).filter(|v| v.len() == vocab * dim) {
        return Ok(v);
    }
    let mut out = Vec::with_capacity(vocab * dim);
    let ids: Vec<u32> = (0..vocab as u32).collect();
    for chunk in ids.chunks(1024) {
        let seqs = chunk.iter().map(|&i| vec![cls, i, sep]).collect();
        let e = t.embed_token_ids(seqs).await?;
        out.extend_from_slice(e.as_flat());
    }
    std::fs::create_dir_all(cache)?;
    write_f32(&path, &out)?;
    Ok(out)
}

/// Token ids a static model pools for `text` (no specials, no `[UNK]`).
fn static_ids(tok: &tokenizers::Tokenizer, unk: u32, texts: &[String]) -> Result<Vec<Vec<u32>>> {
    texts
        .iter()
        .map(|t| {
            let e = tok
                .encode_fast(t.as_str(), false)
                .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
            Ok(e.get_ids().iter().copied().filter(|&i| i != unk).collect())
        })
        .collect()
}

/// Mean of token rows per sentence, normalised.
fn pooled(table: &[f32], d: usize, ids: &[Vec<u32>]) -> Vec<f32> {
    let mut out = vec![0f32; ids.len() * d];
    for (o, s) in out.chunks_exact_mut(d).zip(ids) {
        for &t in s {
            for (a, &b) in o
                .iter_mut()
                .zip(&table[t as usize * d..(t as usize + 1) * d])
            {
                *a += b;
            }
        }
        let n = o.iter().map(|v| v * v).sum::<f32>().sqrt();
        if n > 0.0 {
            o.iter_mut().for_each(|v| *v /= n);
        }
    }
    out
}

/// Spearman over every pair of a set (validation).
fn all_pairs_spearman(student: &[f32], ds: usize, teacher: &[f32], dt: usize) -> f64 {
    let n = student.len() / ds;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..n {
        for j in i + 1..n {
            a.push(train::cosine(
                &student[i * ds..(i + 1) * ds],
                &student[j * ds..(j + 1) * ds],
            ));
            b.push(train::cosine(
                &teacher[i * dt..(i + 1) * dt],
                &teacher[j * dt..(j + 1) * dt],
            ));
        }
    }
    train::spearman(&a, &b)
}

struct Report {
    spearman_pairs: f64,
    spearman_adjacent: f64,
    spearman_random: f64,
    overlap10: f64,
}

/// The quality of `embed` (a function of texts to unit rows of `ds`
/// dimensions) against the teacher on the held-apart sets.
async fn evaluate(
    t: &LocalEmbedder,
    s: &Split,
    cache: &Path,
    embed: impl Fn(&[String]) -> Result<Vec<f32>>,
    ds: usize,
) -> Result<Report> {
    let dt = t.info().dimension;
    let left: Vec<String> = s.eval_pairs.iter().map(|p| p.0.clone()).collect();
    let right: Vec<String> = s.eval_pairs.iter().map(|p| p.1.clone()).collect();
    let (tl, tr) = (
        teacher_vectors(t, &left, cache, "eval-left").await?,
        teacher_vectors(t, &right, cache, "eval-right").await?,
    );
    let (sl, sr) = (embed(&left)?, embed(&right)?);
    let cos = |a: &[f32], b: &[f32], d: usize, k: usize| {
        train::cosine(&a[k * d..(k + 1) * d], &b[k * d..(k + 1) * d])
    };
    let sp = |range: std::ops::Range<usize>| {
        let a: Vec<f64> = range.clone().map(|k| cos(&sl, &sr, ds, k)).collect();
        let b: Vec<f64> = range.map(|k| cos(&tl, &tr, dt, k)).collect();
        train::spearman(&a, &b)
    };
    let n = s.eval_pairs.len();
    let tc = teacher_vectors(t, &s.eval_corpus, cache, "eval-corpus").await?;
    let tq = teacher_vectors(t, &s.eval_queries, cache, "eval-queries").await?;
    let (sc, sq) = (embed(&s.eval_corpus)?, embed(&s.eval_queries)?);
    let mut overlap = 0usize;
    for k in 0..s.eval_queries.len() {
        let a = train::top_k(&sc, ds, &sq[k * ds..(k + 1) * ds], 10);
        let b = train::top_k(&tc, dt, &tq[k * dt..(k + 1) * dt], 10);
        overlap += a.iter().filter(|i| b.contains(i)).count();
    }
    Ok(Report {
        spearman_pairs: sp(0..n),
        spearman_adjacent: sp(0..n / 2),
        spearman_random: sp(n / 2..n),
        overlap10: overlap as f64 / (10 * s.eval_queries.len()) as f64,
    })
}

fn print_report(label: &str, r: &Report) {
    println!(
        "{label:<34} spearman {:.4} (adjacent {:.4}, random {:.4})  top-10 overlap {:.1}%",
        r.spearman_pairs,
        r.spearman_adjacent,
        r.spearman_random,
        100.0 * r.overlap10
    );
}

/// int8 with one scale per row (`max |x| / 127`).
fn quantize(table: &[f32], d: usize) -> (Vec<u8>, Vec<f32>) {
    let mut q = Vec::with_capacity(table.len());
    let mut scales = Vec::with_capacity(table.len() / d);
    for row in table.chunks_exact(d) {
        let m = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s = if m > 0.0 { m / 127.0 } else { 1.0 };
        scales.push(s);
        for &v in row {
            q.push(((v / s).round().clamp(-127.0, 127.0) as i8) as u8);
        }
    }
    (q, scales)
}

fn model_files(
    teacher_tokenizer: &Path,
    q: &[u8],
    scales: &[f32],
    vocab: usize,
) -> Result<BTreeMap<&'static str, Vec<u8>>> {
    use safetensors::{Dtype, tensor::TensorView};
    let mut sbytes = Vec::with_capacity(scales.len() * 4);
    for s in scales {
        sbytes.extend_from_slice(&s.to_le_bytes());
    }
    let tensors = vec![
        (
            "embeddings",
            TensorView::new(Dtype::I8, vec![vocab, DIM], q)?,
        ),
        ("scales", TensorView::new(Dtype::F32, vec![vocab], &sbytes)?),
    ];
    let weights = safetensors::serialize(tensors, None)?;
    let mut tok: serde_json::Value = serde_json::from_slice(&std::fs::read(teacher_tokenizer)?)?;
    tok["truncation"] = serde_json::Value::Null;
    tok["padding"] = serde_json::Value::Null;
    let tokenizer = serde_json::to_vec(&tok)?;
    let config = serde_json::to_vec_pretty(&serde_json::json!({
        "model_type": "model2vec",
        "architectures": ["StaticModel"],
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "hidden_dim": DIM,
        "normalize": true,
        "quantization": "int8, one f32 scale per row (tensor \"scales\")",
        "recipe": "embeddings-distill: token outputs -> uncentred PCA 256 -> SIF -> ridge regression onto MiniLM sentence vectors -> int8",
    }))?;
    let mut m = BTreeMap::new();
    m.insert("model.safetensors", weights);
    m.insert("tokenizer.json", tokenizer);
    m.insert("config.json", config);
    Ok(m)
}

async fn build(a: &Args) -> Result<()> {
    let t = teacher(&a.teacher)?;
    let sentences = corpus::collect(&packages(a)?)?;
    eprintln!("corpus: {} sentences", sentences.len());
    let s = split(sentences, a.train)?;
    eprintln!(
        "train {}, validation {}, evaluation: corpus {}, queries {}, pairs {}",
        s.train.len(),
        s.val.len(),
        s.eval_corpus.len(),
        s.eval_queries.len(),
        s.eval_pairs.len()
    );
    let tok_path = a.teacher.join("tokenizer.json");
    let mut tok = tokenizers::Tokenizer::from_file(&tok_path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", tok_path.display()))?;
    tok.with_padding(None);
    tok.with_truncation(None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let id = |s: &str| tok.token_to_id(s).with_context(|| format!("no {s} token"));
    let (cls, sep, unk) = (id("[CLS]")?, id("[SEP]")?, id("[UNK]")?);
    let vocab = tok.get_vocab_size(true);
    let dt = t.info().dimension;

    let train_t = teacher_vectors(&t, &s.train, &a.cache, "train").await?;
    let val_t = teacher_vectors(&t, &s.val, &a.cache, "val").await?;
    let tokens_t = token_vectors(&t, vocab, cls, sep, &a.cache).await?;
    eprintln!("teacher vectors ready");

    let p = train::pca(&train_t, dt, DIM);
    let y = train::project(&train_t, dt, &p, DIM);
    let train_ids = static_ids(&tok, unk, &s.train)?;
    let val_ids = static_ids(&tok, unk, &s.val)?;
    let mut counts = vec![0u64; vocab];
    for s in &train_ids {
        for &t in s {
            counts[t as usize] += 1;
        }
    }
    let total = counts.iter().sum::<u64>().max(1) as f64;
    let mut e0 = train::project(&tokens_t, dt, &p, DIM);
    for (row, &c) in e0.chunks_exact_mut(DIM).zip(&counts) {
        let w = (SIF_A / (SIF_A + c as f64 / total)) as f32;
        row.iter_mut().for_each(|v| *v *= w);
    }
    let val_score = |table: &[f32]| {
        let sv = pooled(table, DIM, &val_ids);
        all_pairs_spearman(&sv, DIM, &val_t, dt)
    };
    eprintln!("validation spearman of the start: {:.4}", val_score(&e0));

    let bags = train::Bags::new(&train_ids);
    let mut best = (f64::MIN, 0f32, 0usize);
    let lambda = LAMBDA;
    train::ridge(&bags, &y, &e0, DIM, lambda, STEPS, 10, |it, x| {
        let v = val_score(x);
        eprintln!("  lambda {lambda:e} step {it}: validation spearman {v:.4}");
        if v > best.0 {
            best = (v, lambda, it);
        }
    });
    let (score, lambda, steps) = best;
    eprintln!("chosen: lambda {lambda:e}, {steps} steps (validation {score:.4})");
    let table = train::ridge(&bags, &y, &e0, DIM, lambda, steps, 0, |_, _| {});
    let (q, scales) = quantize(&table, DIM);
    let files = model_files(&tok_path, &q, &scales, vocab)?;

    if a.check {
        let mut same = true;
        for (name, bytes) in &files {
            let old = std::fs::read(a.out.join(name)).unwrap_or_default();
            let ok = old == *bytes;
            println!("{name}: {}", if ok { "identical" } else { "DIFFERENT" });
            same &= ok;
        }
        if !same {
            bail!("the distilled files differ from {}", a.out.display());
        }
    } else {
        std::fs::create_dir_all(&a.out)?;
        for (name, bytes) in &files {
            std::fs::write(a.out.join(name), bytes)?;
        }
        println!("wrote {}", a.out.display());
    }

    // What each step gives, on the held-apart sets.
    let eval_ids = |texts: &[String]| static_ids(&tok, unk, texts);
    let start = evaluate(
        &t,
        &s,
        &a.cache,
        |x| Ok(pooled(&e0, DIM, &eval_ids(x)?)),
        DIM,
    )
    .await?;
    print_report("token outputs, PCA 256, SIF", &start);
    let fitted = evaluate(
        &t,
        &s,
        &a.cache,
        |x| Ok(pooled(&table, DIM, &eval_ids(x)?)),
        DIM,
    )
    .await?;
    print_report("+ regression (f32)", &fitted);
    eval_model(&t, &s, &a.cache, &a.out).await
}

async fn eval_model(t: &LocalEmbedder, s: &Split, cache: &Path, dir: &Path) -> Result<()> {
    let m = StaticEmbedder::from_dir(dir)?;
    let d = m.info().dimension;
    let r = evaluate(t, s, cache, |x| Ok(m.embed_sync(x)?.into_flat()), d).await?;
    print_report(&format!("{} (int8, the provider)", dir.display()), &r);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let (cmd, a, model) = parse(std::env::args().skip(1));
    match cmd.as_str() {
        "build" => build(&a).await,
        "eval" => {
            let t = teacher(&a.teacher)?;
            let s = split(corpus::collect(&packages(&a)?)?, a.train)?;
            eval_model(&t, &s, &a.cache, &model.unwrap_or(a.out.clone())).await
        }
        "corpus" => {
            let s = corpus::collect(&packages(&a)?)?;
            for x in &s {
                println!("{x}");
            }
            eprintln!("{} sentences", s.len());
            Ok(())
        }
        "crates" => {
            for (n, v) in corpus::locked_packages(a.lock.as_deref().unwrap_or_else(|| usage()))? {
                println!("{n} {v}");
            }
            Ok(())
        }
        _ => usage(),
    }
}

/// The corpus crates: a lock file's when `--lock` is given, else the pinned list.
fn packages(a: &Args) -> Result<Vec<(String, String)>> {
    match &a.lock {
        Some(lock) => corpus::locked_packages(lock),
        None => corpus::listed_packages(&a.list),
    }
}
