use base64::Engine as _;
fn main() {
    let which = std::env::args().nth(1).unwrap();
    let n: usize = std::env::args().nth(2).unwrap().parse().unwrap();
    let v = embeddings_mock::vector("text-embedding-3-small", "x", 1536);
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let b64 = format!(
        r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":"{}"}}],"model":"m","usage":{{"prompt_tokens":5,"total_tokens":5}}}}"#,
        base64::engine::general_purpose::STANDARD.encode(bytes)
    );
    let arr = serde_json::to_string(&v).unwrap();
    let fl = format!(
        r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":{arr}}}],"model":"m"}}"#
    );
    let wide: Vec<f64> = v.iter().map(|x| f64::from(*x)).collect();
    let warr = serde_json::to_string(&wide).unwrap();
    let wfl = format!(
        r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":{warr}}}],"model":"m"}}"#
    );
    let mut out = vec![0f32; 1536];
    let mut acc = 0usize;
    for _ in 0..n {
        match which.as_str() {
            "b64" => {
                acc += embeddings_openai::decode::decode_response(
                    std::hint::black_box(b64.as_bytes()),
                    1,
                    1536,
                )
                .unwrap()
                .dim()
            }
            "float" => {
                acc += embeddings_openai::decode::decode_response(
                    std::hint::black_box(fl.as_bytes()),
                    1,
                    1536,
                )
                .unwrap()
                .dim()
            }
            "wide" => {
                acc += embeddings_openai::decode::decode_response(
                    std::hint::black_box(wfl.as_bytes()),
                    1,
                    1536,
                )
                .unwrap()
                .dim()
            }
            "wserde" => {
                acc += serde_json::from_str::<Vec<f32>>(std::hint::black_box(&warr))
                    .unwrap()
                    .len()
            }
            "serde" => {
                acc += serde_json::from_str::<Vec<f32>>(std::hint::black_box(&arr))
                    .unwrap()
                    .len()
            }
            "row" => {
                embeddings_openai::decode::parse_float_row(std::hint::black_box(&arr), &mut out)
                    .unwrap();
                acc += 1
            }
            _ => {}
        }
    }
    if which == "show" {
        println!("{}", &arr[..200]);
        println!("{}", &warr[..200]);
    }
    println!("{acc}");
}
