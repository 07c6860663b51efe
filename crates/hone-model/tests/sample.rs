//! The sampler and the attention layouts behind it: cached decoding gives the logits of a full
//! forward pass; padding and packing change nothing for the real tokens; sampling is reproducible
//! from a seed, independent of batching, stops where asked, and streams whole characters.

use hone_data::tokenizer::{Tokenizer, TokenizerConfig, train};
use hone_model::burn::tensor::{Device, Tensor};
use hone_model::llama::ids_tensor;
use hone_model::{Finish, KvCache, Layout, Llama, LlamaConfig, ModelConfig, SampleConfig, generate};

fn tokenizer() -> Tokenizer {
    let docs: Vec<String> = (0..40)
        .map(|i| {
            format!("The river Varnok {i} runs past the old mill. Crème brûlée, 日本, 🦀 and more text number {i}.")
        })
        .collect();
    train(docs.into_iter(), &TokenizerConfig { vocab_size: 300, ..Default::default() }).unwrap()
}

fn config(vocab: usize, tie: bool, qk_norm: bool) -> LlamaConfig {
    let m = ModelConfig {
        preset: "micro".into(),
        max_position_embeddings: 128,
        tie_word_embeddings: tie,
        qk_norm,
        // A wider init than training uses, so a random model's distribution is far from flat and
        // cache or mask mistakes show in the logits.
        initializer_range: 0.2,
        ..Default::default()
    };
    m.resolve(Some(vocab)).unwrap()
}

fn model(tie: bool, qk_norm: bool) -> Llama {
    Llama::init(&config(300, tie, qk_norm), 7, &Device::flex()).unwrap()
}

fn host(t: Tensor<3>) -> (Vec<f32>, [usize; 3]) {
    let d = t.dims();
    (t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap(), d)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn ids(n: usize, salt: u32) -> Vec<u32> {
    (0..n as u32).map(|i| (i * 37 + salt * 11 + 5) % 290 + 6).collect()
}

#[test]
fn cached_decoding_gives_the_full_forward_logits() {
    for (tie, qk) in [(false, false), (true, true)] {
        let m = model(tie, qk);
        let dev = m.device().clone();
        let (b, s, prefill) = (2, 14, 5);
        let all: Vec<u32> = [ids(s, 1), ids(s, 2)].concat();
        let (full, [_, _, v]) = host(m.forward(ids_tensor(&all, b, s, &dev)));
        let mut cache = KvCache::new();
        let rows = |from: usize, to: usize| -> Vec<u32> {
            (0..b).flat_map(|r| all[r * s + from..r * s + to].to_vec()).collect()
        };
        let pad = [0, 0];
        let (first, _) = host(m.forward_cached(
            ids_tensor(&rows(0, prefill), b, prefill, &dev),
            &Layout::left_padded(&pad, prefill, &dev),
            &mut cache,
        ));
        for r in 0..b {
            let want = &full[r * s * v..(r * s + prefill) * v];
            assert!(max_diff(&first[r * prefill * v..(r + 1) * prefill * v], want) < 1e-4);
        }
        for t in prefill..s {
            let (step, _) = host(m.forward_cached(
                ids_tensor(&rows(t, t + 1), b, 1, &dev),
                &Layout::left_padded_step(&pad, t, 1, &dev),
                &mut cache,
            ));
            for r in 0..b {
                let want = &full[(r * s + t) * v..(r * s + t + 1) * v];
                let d = max_diff(&step[r * v..(r + 1) * v], want);
                assert!(d < 1e-4, "tie={tie} qk={qk} position {t} row {r}: cached logits differ by {d}");
            }
        }
        assert_eq!(cache.len(), s);
    }
}

#[test]
fn left_padding_changes_nothing_for_real_tokens() {
    let m = model(false, false);
    let dev = m.device().clone();
    let (short, long) = (ids(7, 3), ids(10, 4));
    let (alone, [_, _, v]) = host(m.forward(ids_tensor(&short, 1, 7, &dev)));
    let batch: Vec<u32> = [vec![5, 5, 5], short.clone(), long.clone()].concat();
    let (padded, _) = host(m.forward_with(ids_tensor(&batch, 2, 10, &dev), &Layout::left_padded(&[3, 0], 10, &dev)));
    assert!(max_diff(&padded[3 * v..10 * v], &alone) < 1e-4);
    let (long_alone, _) = host(m.forward(ids_tensor(&long, 1, 10, &dev)));
    assert!(max_diff(&padded[10 * v..], &long_alone) < 1e-4);
    // Without the layout the padding would be attended to and the logits would differ: the check
    // above can fail.
    let (causal, _) = host(m.forward(ids_tensor(&batch, 2, 10, &dev)));
    assert!(max_diff(&causal[3 * v..10 * v], &alone) > 1e-3);
}

#[test]
fn packed_examples_do_not_see_each_other() {
    let m = model(false, true);
    let dev = m.device().clone();
    let (a, c) = (ids(5, 6), ids(7, 8));
    let row: Vec<u32> = [a.clone(), c.clone()].concat();
    let segments: Vec<u32> = [vec![0; 5], vec![1; 7]].concat();
    let (packed, [_, _, v]) =
        host(m.forward_with(ids_tensor(&row, 1, 12, &dev), &Layout::packed(&segments, 1, 12, &dev)));
    let (alone_a, _) = host(m.forward(ids_tensor(&a, 1, 5, &dev)));
    let (alone_c, _) = host(m.forward(ids_tensor(&c, 1, 7, &dev)));
    assert!(max_diff(&packed[..5 * v], &alone_a) < 1e-4);
    assert!(max_diff(&packed[5 * v..], &alone_c) < 1e-4);
}

fn prompts(tok: &Tokenizer) -> Vec<Vec<u32>> {
    vec![tok.encode("The river").unwrap(), tok.encode("Crème brûlée, and the old").unwrap()]
}

fn run(m: &Llama, tok: &Tokenizer, p: &[Vec<u32>], cfg: &SampleConfig) -> Vec<hone_model::Generation> {
    generate(m, tok, p, cfg, &mut |_, _| {}).unwrap()
}

#[test]
fn sampling_is_reproducible_and_independent_of_batching_and_cache() {
    let tok = tokenizer();
    let m = Llama::init(&config(tok.vocab_size(), false, false), 3, &Device::flex()).unwrap();
    let p = prompts(&tok);
    let cfg = SampleConfig { max_new_tokens: 12, temperature: 1.0, top_k: 50, seed: 9, ..Default::default() };
    let a = run(&m, &tok, &p, &cfg);
    let b = run(&m, &tok, &p, &cfg);
    assert_eq!(a, b, "same seed, same samples");
    let alone = run(&m, &tok, &p[..1], &cfg);
    assert_eq!(a[0].tokens, alone[0].tokens, "row 0 does not depend on the other rows of the batch");
    let uncached = run(&m, &tok, &p, &SampleConfig { use_cache: false, ..cfg.clone() });
    assert_eq!(a, uncached, "the KV cache changes nothing");
    let other = run(&m, &tok, &p, &SampleConfig { seed: 10, ..cfg.clone() });
    assert_ne!(a, other, "another seed gives other samples");
}

#[test]
fn stop_strings_end_the_text_and_streaming_gives_the_same_text() {
    let tok = tokenizer();
    let m = Llama::init(&config(tok.vocab_size(), false, false), 5, &Device::flex()).unwrap();
    let p = prompts(&tok);
    let greedy = SampleConfig::greedy(24);
    let free = run(&m, &tok, &p, &greedy);
    // Stop at a piece of row 1's own greedy output: the text must end right before it.
    let text = &free[1].text;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    assert!(chars.len() >= 6, "a random model produces some text: {text:?}");
    let (at, _) = chars[chars.len() / 2];
    let (end, _) = chars[chars.len() / 2 + 2];
    let stop = text[at..end].to_string();
    let first = text.find(&stop).unwrap();
    let cfg = SampleConfig { stop: vec![stop.clone()], ..greedy.clone() };
    let mut streamed = vec![String::new(); 2];
    let got = generate(&m, &tok, &p, &cfg, &mut |i, piece| streamed[i].push_str(piece)).unwrap();
    assert_eq!(got[1].finish, Finish::Stop);
    assert_eq!(got[1].text, text[..first]);
    for (g, s) in got.iter().zip(&streamed) {
        assert_eq!(&g.text, s, "streamed pieces add up to the text");
    }
    assert_eq!(free[0].finish == Finish::Length, free[0].tokens.len() == 24);
}

#[test]
fn multibyte_characters_stream_whole() {
    let tok = tokenizer();
    let text = "日本 🦀 brûlée";
    let mut s = hone_model::sample::Utf8Stream::default();
    let mut out = String::new();
    let ids = tok.encode(text).unwrap();
    // Byte-level BPE splits rare characters across tokens: the stream must hold partial bytes back.
    assert!(
        ids.iter().any(|&t| std::str::from_utf8(&tok.token_bytes(t)).is_err()),
        "some token is a partial character"
    );
    for t in ids {
        let piece = s.push(&tok.token_bytes(t));
        assert!(!piece.contains('\u{fffd}'), "{piece:?}");
        out.push_str(&piece);
    }
    out.push_str(&s.finish());
    assert_eq!(out, text);
}
