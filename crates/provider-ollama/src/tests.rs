//! Unit tests: parsers (tables and properties), configuration, info.

use std::fmt::Write as _;

use embeddings_core::{Config, Embedder, ErrorKind};
use proptest::prelude::*;

use super::*;
use crate::parse::{parse_legacy_response, parse_show_response, parse_tags_response};

fn body_of(rows: &[Vec<f32>]) -> String {
    serde_json::json!({ "model": "m", "embeddings": rows, "prompt_eval_count": 3 }).to_string()
}

#[test]
fn parses_rows_in_order_into_one_buffer() {
    let rows = vec![
        vec![1.0, -0.5, 0.25],
        vec![0.0, 2.0, -3.5],
        vec![1e-8, -1e8, 0.1],
    ];
    let body = body_of(&rows);
    for dim in [None, Some(3)] {
        let e = parse_embed_response(body.as_bytes(), 3, dim).unwrap();
        assert_eq!((e.len(), e.dim()), (3, 3));
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(e.row(i), r.as_slice());
        }
        assert_eq!(e.usage().unwrap().prompt_tokens, 3);
    }
}

#[test]
fn accepts_integers_exponents_whitespace_and_unknown_fields() {
    let body = br#" { "total_duration": 123, "embeddings" : [ [ 0 , 1 , -2 ] ,
        [1E2, -1.5e-3, 7] ], "extra": {"nested": [1, "x", null]}, "model": "m" } "#;
    let e = parse_embed_response(body, 2, None).unwrap();
    assert_eq!(e.row(0), &[0.0, 1.0, -2.0]);
    assert_eq!(e.row(1), &[100.0, -0.0015, 7.0]);
    assert_eq!(e.usage(), None);
}

#[test]
fn escaped_keys_are_decoded_and_other_values_are_checked() {
    let e = parse_embed_response(br#"{"embe\u0064dings":[[1.5]],"k\"":"v"}"#, 1, None).unwrap();
    assert_eq!(e.row(0), &[1.5]);
    for bad in [
        // (Like serde_json, the bytes of a skipped string are not checked
        // for UTF-8; everything else about it is.)
        &b"{\"s\":\"a\nb\",\"embeddings\":[[1]]}"[..],
        b"{\"s\":\"\\q\",\"embeddings\":[[1]]}",
        b"{\"\xff\":1,\"embeddings\":[[1]]}",
        b"{\"n\":1.,\"embeddings\":[[1]]}",
    ] {
        let Err(e) = parse_embed_response(bad, 1, None) else {
            panic!("accepted {}", String::from_utf8_lossy(bad));
        };
        assert_eq!(
            e.kind(),
            ErrorKind::InvalidResponse,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn zero_rows_expected_and_given() {
    let e = parse_embed_response(br#"{"embeddings":[]}"#, 0, Some(4)).unwrap();
    assert!(e.is_empty());
    assert_eq!(e.dim(), 4);
}

#[test]
fn bad_answers_are_invalid_response_with_a_clear_message() {
    let cases: &[(&str, usize, Option<usize>, &str)] = &[
        (
            r#"{"embeddings":[[1,2],[3,4]]}"#,
            3,
            None,
            "expected 3 vectors, got 2",
        ),
        (
            r#"{"embeddings":[[1,2],[3,4]]}"#,
            1,
            None,
            "expected 1 vectors, got 2",
        ),
        (
            r#"{"embeddings":[[1,2],[3,4],[5,6],[7,8]]}"#,
            2,
            None,
            "got 4",
        ),
        (
            r#"{"embeddings":[[1,2],[3,4,5]]}"#,
            2,
            None,
            "vector 1 has 3 values, expected 2",
        ),
        (
            r#"{"embeddings":[[1,2],[3]]}"#,
            2,
            None,
            "vector 1 has 1 values, expected 2",
        ),
        (
            r#"{"embeddings":[[1,2,3]]}"#,
            1,
            Some(2),
            "vector 0 has 3 values, expected 2",
        ),
        (
            r#"{"embeddings":[[1]]}"#,
            1,
            Some(2),
            "vector 0 has 1 values, expected 2",
        ),
        (r#"{"embeddings":[[]]}"#, 1, None, "vector 0 is empty"),
        (r#"{"embeddings":[[1e39]]}"#, 1, None, "non-finite"),
        (r#"{"embeddings":[[1, NaN]]}"#, 1, None, "not a number"),
        (
            r#"{"embeddings":[[1, null]]}"#,
            1,
            None,
            "vector 0 holds a value that is not a number at index 1",
        ),
        (
            r#"{"embeddings":[[1],[1, "2"]]}"#,
            2,
            None,
            "vector 1 holds a value that is not a number",
        ),
        (r#"{"embeddings":[[1e999]]}"#, 1, None, "non-finite"),
        (r#"{"embeddings":[[-3.5e38]]}"#, 1, None, "non-finite"),
        (
            r#"{"embeddings":[[1,2,3,4]]}"#,
            1,
            Some(2),
            "vector 0 has 4 values, expected 2",
        ),
        (
            r#"{"embeddings":[1,2]}"#,
            1,
            None,
            "vector 0 is not an array",
        ),
        (r#"{"embeddings":[[[1]]]}"#, 1, None, "not a number"),
        (r#"{"embeddings":[[1,2]]"#, 1, None, "malformed"),
        (
            r#"{"embeddings":[[1,2]]} x"#,
            1,
            None,
            "trailing characters",
        ),
        (
            r#"{"embeddings":[[1,2]],"embeddings":[[1,2]]}"#,
            1,
            None,
            "duplicate",
        ),
        (r#"{"embeddings":null}"#, 1, None, "not an array"),
        (r#"{"embeddings":{"0":[1]}}"#, 1, None, "not an array"),
        (r#"{"model":"m"}"#, 1, None, "no `embeddings`"),
        (r#"{"embedding":[1,2]}"#, 1, None, "no `embeddings`"),
        (r#"[[1,2]]"#, 1, None, "not a JSON object"),
        ("", 1, None, "not a JSON object"),
        ("{\"embeddings\":[[1]],}", 1, None, "malformed JSON"),
        (
            "{\"a\":tru,\"embeddings\":[[1]]}",
            1,
            None,
            "malformed JSON",
        ),
        ("{\"a\\u0062\":1,\"embeddings\":[[1]]", 1, None, "malformed"),
        ("{\"embeddings\":[[1] [2]]}", 2, None, "malformed"),
        ("{\"embeddings\":[[1 2]]}", 1, None, "malformed"),
        ("{\"embeddings\":[[01]]}", 1, None, "not a number"),
        ("{\"error\":\"boom\"}", 1, None, "no `embeddings`"),
    ];
    let mut bad = Vec::new();
    for (body, rows, dim, want) in cases {
        let e = parse_embed_response(body.as_bytes(), *rows, *dim).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidResponse, "{body}");
        if !e.message().contains(want) {
            bad.push(format!("{body}: {e}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn surplus_rows_are_refused_before_being_stored() {
    // 1000 extra rows of a wrong shape are only counted.
    let mut body = String::from(r#"{"embeddings":[[1,2]"#);
    for _ in 0..1000 {
        body.push_str(r#",["x",{}]"#);
    }
    body.push_str("]}");
    let e = parse_embed_response(body.as_bytes(), 1, None).unwrap_err();
    assert!(e.message().contains("got 1001"), "{e}");
}

#[test]
fn legacy_answers() {
    assert_eq!(
        parse_legacy_response(br#"{"embedding":[0.5,-1,2e1]}"#).unwrap(),
        vec![0.5, -1.0, 20.0]
    );
    for bad in [
        &br#"{"embedding":[]}"#[..],
        br#"{"embeddings":[[1]]}"#,
        br#"{"embedding":[1,"x"]}"#,
        br#"{"embedding":[1],"embedding":[2]}"#,
        b"nope",
    ] {
        let e = parse_legacy_response(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidResponse);
    }
}

#[test]
fn show_answers() {
    let body = br#"{"license":"..","modelfile":"..","details":{"family":"nomic-bert"},
        "model_info":{"general.architecture":"nomic-bert","general.parameter_count":136727040,
        "nomic-bert.attention.head_count":12,"nomic-bert.context_length":2048,
        "nomic-bert.embedding_length":768,"tokenizer.ggml.tokens":null,
        "other.embedding_length":5}}"#;
    let info = parse_show_response(body).unwrap();
    assert_eq!(info.embedding_length, Some(768));
    assert_eq!(info.context_length, Some(2048));
    // Without the architecture, a single candidate is used.
    let info = parse_show_response(br#"{"model_info":{"bert.embedding_length":384}}"#).unwrap();
    assert_eq!(info.embedding_length, Some(384));
    // Ambiguous or absent: none.
    let info =
        parse_show_response(br#"{"model_info":{"a.embedding_length":1,"b.embedding_length":2}}"#)
            .unwrap();
    assert_eq!(info.embedding_length, None);
    assert_eq!(parse_show_response(b"{}").unwrap().embedding_length, None);
    assert_eq!(
        parse_show_response(
            br#"{"model_info":{"general.architecture":"x","x.embedding_length":0}}"#
        )
        .unwrap()
        .embedding_length,
        None
    );
    assert!(parse_show_response(b"[").is_err());
}

#[test]
fn tags_answers_and_latest_matching() {
    let names = parse_tags_response(
        br#"{"models":[{"name":"nomic-embed-text:latest","model":"nomic-embed-text:latest","size":1},
        {"name":"all-minilm:33m"},{"name":"hf.co/org/repo"}]}"#,
    )
    .unwrap();
    let has = |m: &str| names.iter().any(|n| same_model(n, m));
    assert!(has("nomic-embed-text"));
    assert!(has("nomic-embed-text:latest"));
    assert!(has("all-minilm:33m"));
    assert!(!has("all-minilm"));
    assert!(has("hf.co/org/repo:latest"));
    assert!(!has("nomic-embed"));
    assert!(same_model(
        "registry.local:5000/x",
        "registry.local:5000/x:latest"
    ));
    assert!(parse_tags_response(b"{}").unwrap().is_empty());
    assert!(parse_tags_response(b"nope").is_err());
}

fn ollama(toml: &str) -> Result<OllamaEmbedder> {
    OllamaEmbedder::from_config(&Config::from_toml_str(toml)?)
}

#[test]
fn config_section_is_read_and_validated() {
    let e = ollama(
        "provider = \"ollama\"\nmodel = \"all-minilm\"\nbase_url = \"gpu:1234\"\n\
         [ollama]\ntruncate = false\nkeep_alive = \"10m\"\nmax_batch_size = 32\n\
         headers = { \"X-Team\" = \"search\" }\n[ollama.options]\nnum_ctx = 512\ntemperature = 0\n",
    )
    .unwrap();
    assert_eq!(e.host(), "http://gpu:1234");
    assert_eq!(e.model(), "all-minilm");
    let s = e.section();
    assert_eq!(s.truncate, Some(false));
    assert_eq!(s.keep_alive, Some(KeepAlive::Duration("10m".into())));
    assert_eq!(s.options.as_ref().unwrap()["num_ctx"], 512);
    let info = e.info();
    assert_eq!(
        (info.dimension, info.max_batch_size, info.max_input_tokens),
        (0, 32, 512)
    );
    assert!(info.normalized);
    assert_eq!(info.provider, NAME);

    for (bad, key) in [
        ("[ollama]\nbogus = 1", "bogus"),
        ("[ollama]\nkeep_alive = \"forever\"", "forever"),
        ("[ollama]\nmax_batch_size = 0", "ollama.max_batch_size"),
        (
            "[ollama]\nheaders = { \"bad header\" = \"x\" }",
            "bad header",
        ),
        ("[ollama]\noptions = 3", "options"),
        ("base_url = \"ftp://x\"", "base_url"),
    ] {
        let err = ollama(&format!("provider = \"ollama\"\n{bad}")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{bad}");
        assert!(err.to_string().contains(key), "{bad}: {err}");
    }
}

#[test]
fn default_model_and_dimension_from_config() {
    let e = ollama("provider = \"ollama\"\nbase_url = \"h\"\ndimensions = 64").unwrap();
    assert_eq!(e.model(), DEFAULT_MODEL);
    assert_eq!(e.dimension(), 64);
    assert_eq!(e.info().dimension, 64);
    assert_eq!(e.info().max_batch_size, DEFAULT_MAX_BATCH_SIZE);
}

#[test]
fn registered_as_ollama() {
    let reg = embeddings_core::registry::find("Ollama").unwrap();
    assert_eq!(reg.name, NAME);
    let mut c = Config::for_provider("ollama");
    c.base_url = Some("127.0.0.1:1".into());
    c.model = Some("all-minilm".into());
    let e = (reg.build)(&c).unwrap();
    assert_eq!(e.info().model, "all-minilm");
}

#[test]
fn keys_and_header_values_never_show_in_debug() {
    let mut c = Config::from_toml_str(
        "provider = \"ollama\"\nbase_url = \"https://proxy.example\"\n\
         [ollama]\nheaders = { \"X-Secret\" = \"hunter3\" }",
    )
    .unwrap();
    c.api_key = Some("sk-hunter4".to_owned().into());
    let e = OllamaEmbedder::from_config(&c).unwrap();
    let d = format!("{e:?}");
    for secret in ["hunter3", "hunter4"] {
        assert!(!d.contains(secret), "{d}");
    }
    assert!(d.contains("[redacted]"), "{d}");
    assert_eq!(e.host(), "https://proxy.example");
}

#[tokio::test]
async fn empty_input_sends_nothing() {
    // Nothing listens on port 1: any request would fail.
    let e = OllamaEmbedder::new("127.0.0.1:1", "m").unwrap();
    let out = e.embed_documents(&[]).await.unwrap();
    assert!(out.is_empty());
}

#[tokio::test]
async fn connection_refused_names_the_host() {
    // Bind then drop a listener to find a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = OllamaEmbedder::new(&format!("127.0.0.1:{port}"), "m").unwrap();
    for err in [
        e.embed_documents(&["a"]).await.unwrap_err(),
        e.health_check().await.unwrap_err(),
        e.discover_dimension().await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
        assert!(err.is_retryable());
        assert!(
            err.message().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
        assert!(err.message().contains("Ollama may not be running"), "{err}");
    }
}

/// Formats like Go's encoding/json does float32 (shortest round-trip form).
fn json_matrix(rows: &[Vec<f32>], pretty: bool) -> String {
    let mut s = String::from("{\"model\":\"m\",\"embeddings\":[");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('[');
        for (j, x) in r.iter().enumerate() {
            if j > 0 {
                s.push(',');
                if pretty {
                    s.push(' ');
                }
            }
            write!(s, "{x:?}").unwrap();
        }
        s.push(']');
    }
    s.push_str("],\"prompt_eval_count\":7}");
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_on_arbitrary_bytes(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        rows in 0usize..4,
        dim in proptest::option::of(0usize..4),
    ) {
        if let Err(e) = parse_embed_response(&body, rows, dim) {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidResponse);
        }
        let _ = parse_legacy_response(&body);
        let _ = parse_show_response(&body);
        let _ = parse_tags_response(&body);
        let e = parse_error(500, &body, None, "m");
        prop_assert_eq!(e.kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn parser_never_panics_on_json_like_bodies(
        body in r#"\{"embeddings":\[(\[((-?[0-9]{0,3}(\.[0-9]{0,3})?(e-?[0-9]{1,3})?|null|"x"|\[\]),?){0,4}\],?){0,4}\]?\}?"#,
        rows in 0usize..5,
        dim in proptest::option::of(0usize..5),
    ) {
        match parse_embed_response(body.as_bytes(), rows, dim) {
            Ok(e) => {
                prop_assert_eq!(e.len(), rows);
                if let Some(d) = dim { if rows > 0 { prop_assert_eq!(e.dim(), d); } }
                prop_assert!(e.as_flat().iter().all(|x| x.is_finite()));
            }
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidResponse),
        }
    }

    #[test]
    fn any_finite_f32_matrix_round_trips(
        (rows, dim) in (1usize..6, 1usize..12),
        seed in proptest::collection::vec(
            any::<f32>().prop_filter("finite", |x| x.is_finite()), 72),
        pretty in any::<bool>(),
    ) {
        let m: Vec<Vec<f32>> = (0..rows)
            .map(|r| (0..dim).map(|c| seed[(r * dim + c) % seed.len()]).collect())
            .collect();
        let body = json_matrix(&m, pretty);
        for expected_dim in [None, Some(dim)] {
            let e = parse_embed_response(body.as_bytes(), rows, expected_dim).unwrap();
            prop_assert_eq!((e.len(), e.dim()), (rows, dim));
            for (i, r) in m.iter().enumerate() {
                // Bitwise, so -0.0 stays -0.0.
                let got: Vec<u32> = e.row(i).iter().map(|x| x.to_bits()).collect();
                let want: Vec<u32> = r.iter().map(|x| x.to_bits()).collect();
                prop_assert_eq!(got, want);
            }
            prop_assert_eq!(e.usage().unwrap().prompt_tokens, 7);
        }
        // serde_json's own encoding parses the same.
        let e = parse_embed_response(body_of(&m).as_bytes(), rows, Some(dim)).unwrap();
        prop_assert_eq!(e.into_vecs(), m.clone());
        // One row fewer or more, or a wrong dimension: refused.
        prop_assert!(parse_embed_response(body.as_bytes(), rows + 1, None).is_err());
        prop_assert!(parse_embed_response(body.as_bytes(), rows, Some(dim + 1)).is_err());
    }
}
