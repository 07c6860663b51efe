//! The sampler: one next token at a time from the model's distribution, shaped by temperature,
//! top-k, top-p (nucleus), min-p and a repetition penalty, with a KV cache so each new token costs one
//! position's work. Several prompts are generated together (left-padded into one batch); row `i`
//! draws from its own ChaCha8 stream `(seed, i)`, so a seed reproduces every row regardless of how
//! rows are batched or when others finish. The truncation rules follow Hugging Face `generate`'s
//! logits processors; every part of the project that samples (chat, eval, RL) calls [`generate`].

use crate::llama::{KvCache, Layout, Llama, ids_tensor};
use burn::tensor::Tensor;
use hone_data::tokenizer::Tokenizer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

hone_data::config_section! {
    /// Sampling: how the next token is drawn.
    pub struct SampleConfig {
        /// Most tokens to generate per completion.
        max_new_tokens: usize = 128,
        /// Softmax temperature; 0 = greedy (always the most likely token).
        temperature: f64 = 1.0,
        /// Keep only the k most likely tokens; 0 = off.
        top_k: usize = 0,
        /// Keep the smallest set of most likely tokens whose probability reaches p; 1 = off.
        top_p: f64 = 1.0,
        /// Drop tokens less likely than min_p × the top token's probability; 0 = off.
        min_p: f64 = 0.0,
        /// Divide positive logits (multiply negative ones) of tokens already in the prompt or output
        /// by this (CTRL / Hugging Face style); 1 = off.
        repetition_penalty: f64 = 1.0,
        /// Do not end (special tokens are not drawn) before this many tokens.
        min_new_tokens: usize = 0,
        /// Stop when the text contains one of these strings (not included in the output).
        stop: Vec<String> = vec![],
        /// Seed of the sampling RNG (row i uses stream i).
        seed: u64 = 0,
        /// Reuse keys and values of earlier positions (KV cache); off only to measure what it saves.
        use_cache: bool = true,
    }
}

impl SampleConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        let ok = |c: bool, field: &str, why: &str| {
            if c { Ok(()) } else { Err(anyhow::anyhow!("sample.{field}: {why}")) }
        };
        ok(self.temperature >= 0.0 && self.temperature.is_finite(), "temperature", "must be 0 (greedy) or positive")?;
        ok(self.top_p > 0.0 && self.top_p <= 1.0, "top_p", "must be in (0, 1]")?;
        ok((0.0..1.0).contains(&self.min_p), "min_p", "must be in [0, 1)")?;
        ok(self.repetition_penalty > 0.0, "repetition_penalty", "must be positive (1 = off)")?;
        ok(self.stop.iter().all(|s| !s.is_empty()), "stop", "stop strings must not be empty")
    }

    /// Greedy decoding with at most `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: usize) -> SampleConfig {
        SampleConfig { temperature: 0.0, max_new_tokens, ..Default::default() }
    }
}

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The model produced a special token (`<|end|>`, or `<|bos|>` that starts a new document).
    EndOfTurn,
    /// A stop string appeared.
    Stop,
    /// `max_new_tokens` (or the context length) was reached.
    Length,
}

/// One completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Generated token ids, including the closing special token if there was one.
    pub tokens: Vec<u32>,
    /// The generated text without the closing special token and without a stop string.
    pub text: String,
    pub finish: Finish,
}

/// The logits as f64 with the repetition penalty applied to the tokens of `history`.
fn penalised(logits: &[f32], history: &[u32], cfg: &SampleConfig) -> Vec<f64> {
    let mut l: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
    if cfg.repetition_penalty != 1.0 {
        let mut seen = vec![false; l.len()];
        for &t in history {
            if let Some(s) = seen.get_mut(t as usize) {
                *s = true;
            }
        }
        for (x, s) in l.iter_mut().zip(seen) {
            if s {
                *x = if *x > 0.0 { *x / cfg.repetition_penalty } else { *x * cfg.repetition_penalty };
            }
        }
    }
    l
}

/// The distribution the next token is drawn from, after the penalty, temperature and truncations:
/// `(token, probability)` pairs, most likely first, probabilities summing to 1. Greedy (temperature 0)
/// gives the single most likely token.
pub fn next_token_distribution(logits: &[f32], history: &[u32], cfg: &SampleConfig) -> Vec<(u32, f64)> {
    let l = penalised(logits, history, cfg);
    if cfg.temperature == 0.0 {
        // Greedy: the most likely token, the lower id on ties; no sort of the whole vocabulary.
        let best = (0..l.len()).filter(|&i| l[i].is_finite()).fold(None, |b: Option<usize>, i| match b {
            Some(j) if l[j] >= l[i] => Some(j),
            _ => Some(i),
        });
        return best.map(|i| vec![(i as u32, 1.0)]).unwrap_or_default();
    }
    let mut order: Vec<u32> = (0..l.len() as u32).filter(|&i| l[i as usize].is_finite()).collect();
    // Ties keep the lower id first, so draws are deterministic.
    order.sort_by(|&a, &b| l[b as usize].total_cmp(&l[a as usize]).then(a.cmp(&b)));
    if order.is_empty() {
        return Vec::new();
    }
    let top = l[order[0] as usize];
    let mut p: Vec<(u32, f64)> = order.iter().map(|&i| (i, ((l[i as usize] - top) / cfg.temperature).exp())).collect();
    normalise(&mut p);
    if cfg.top_k > 0 && cfg.top_k < p.len() {
        p.truncate(cfg.top_k);
        normalise(&mut p);
    }
    if cfg.top_p < 1.0 {
        let mut cum = 0.0;
        let mut keep = p.len();
        for (n, &(_, q)) in p.iter().enumerate() {
            cum += q;
            if cum >= cfg.top_p - 1e-12 {
                keep = n + 1;
                break;
            }
        }
        p.truncate(keep);
        normalise(&mut p);
    }
    if cfg.min_p > 0.0 {
        let floor = cfg.min_p * p[0].1;
        p.retain(|&(_, q)| q >= floor);
        normalise(&mut p);
    }
    p
}

fn normalise(p: &mut [(u32, f64)]) {
    let z: f64 = p.iter().map(|x| x.1).sum();
    for x in p.iter_mut() {
        x.1 /= z;
    }
}

/// Draws a token from a distribution of [`next_token_distribution`] (inverse CDF on one uniform draw).
pub fn draw(dist: &[(u32, f64)], rng: &mut impl Rng) -> u32 {
    let u: f64 = rng.random::<f64>();
    let mut cum = 0.0;
    for &(t, q) in dist {
        cum += q;
        if u < cum {
            return t;
        }
    }
    dist.last().map(|x| x.0).expect("a distribution has at least one token")
}

/// [`draw`] from [`next_token_distribution`] when nothing truncates the distribution (temperature
/// only), without sorting the whole vocabulary: the walk down the tokens in order of likelihood
/// usually ends within the first few, so the most likely tokens are selected and sorted a block at
/// a time (64, then 4x more). The same order and the same uniform draw as the full sort; only the
/// normaliser is summed in id order, which moves a draw only when it lands within rounding of a
/// boundary. (Sorting 8,192 logits per token was the largest cost of serving several requests at a
/// time on the world's model.)
pub fn draw_from_logits(
    logits: &[f32],
    history: &[u32],
    cfg: &SampleConfig,
    rng: &mut impl Rng,
) -> anyhow::Result<u32> {
    let l = penalised(logits, history, cfg);
    let mut order: Vec<u32> = (0..l.len() as u32).filter(|&i| l[i as usize].is_finite()).collect();
    anyhow::ensure!(!order.is_empty(), "the model produced no finite logit (a diverged checkpoint?)");
    let top = order.iter().map(|&i| l[i as usize]).fold(f64::NEG_INFINITY, f64::max);
    let p = |i: u32| ((l[i as usize] - top) / cfg.temperature).exp();
    let z: f64 = order.iter().map(|&i| p(i)).sum();
    let u: f64 = rng.random::<f64>();
    // Most likely first, the lower id first on ties: the order of the full sort.
    let cmp = |a: &u32, b: &u32| l[*b as usize].total_cmp(&l[*a as usize]).then(a.cmp(b));
    let mut cum = 0.0;
    let mut done = 0;
    let mut block = 64;
    while done < order.len() {
        let end = (done + block).min(order.len());
        let rest = &mut order[done..];
        if end - done < rest.len() {
            rest.select_nth_unstable_by(end - done - 1, cmp);
        }
        rest[..end - done].sort_unstable_by(cmp);
        for &t in &order[done..end] {
            cum += p(t) / z;
            if u < cum {
                return Ok(t);
            }
        }
        done = end;
        block *= 4;
    }
    Ok(*order.last().expect("not empty"))
}

/// Turns a stream of bytes into text without ever splitting a character: bytes of an unfinished UTF-8
/// sequence wait for the next token; invalid bytes become U+FFFD.
#[derive(Debug, Default, Clone)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Appends bytes and returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..good]).expect("validated"));
                    match e.error_len() {
                        // An unfinished sequence at the end: keep it for the next push.
                        None => {
                            self.pending.drain(..good);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..good + bad);
                        }
                    }
                }
            }
        }
    }

    /// Whatever is left at the end (an unfinished sequence becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

/// One sequence being decoded: its sampling stream, the tokens so far, and the text that is final.
/// [`generate`] keeps one per row; the server keeps one per request in its running batch.
pub struct Decoding {
    rng: ChaCha8Rng,
    history: Vec<u32>,
    pub tokens: Vec<u32>,
    utf8: Utf8Stream,
    /// Complete text so far.
    pub text: String,
    /// Bytes of `text` already handed out by [`Decoding::accept`].
    emitted: usize,
    pub finish: Option<Finish>,
}

impl Decoding {
    /// Decoding after `prompt`, drawing from ChaCha8 stream `(seed, stream)`.
    pub fn new(prompt: &[u32], seed: u64, stream: u64) -> Decoding {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Decoding {
            rng,
            history: prompt.to_vec(),
            tokens: Vec::new(),
            utf8: Utf8Stream::default(),
            text: String::new(),
            emitted: 0,
            finish: None,
        }
    }

    /// Draws the next token from `logits` (special tokens masked before `min_new_tokens`).
    pub fn choose(&mut self, logits: &mut [f32], cfg: &SampleConfig, specials: &[u32]) -> anyhow::Result<u32> {
        if self.tokens.len() < cfg.min_new_tokens {
            for &t in specials {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        if cfg.temperature > 0.0 && cfg.top_k == 0 && cfg.top_p >= 1.0 && cfg.min_p == 0.0 {
            return draw_from_logits(logits, &self.history, cfg, &mut self.rng);
        }
        let dist = next_token_distribution(logits, &self.history, cfg);
        anyhow::ensure!(!dist.is_empty(), "the model produced no finite logit (a diverged checkpoint?)");
        Ok(if dist.len() == 1 { dist[0].0 } else { draw(&dist, &mut self.rng) })
    }

    /// Takes token `t`: ends at a special token, a stop string or when `last`; returns the text that
    /// became final (complete characters, never a part that might grow into a stop string).
    pub fn accept(&mut self, t: u32, tok: &Tokenizer, cfg: &SampleConfig, last: bool) -> &str {
        let from = self.emitted;
        self.tokens.push(t);
        self.history.push(t);
        if tok.special_ids.contains(&t) {
            self.finish = Some(Finish::EndOfTurn);
        } else {
            let piece = self.utf8.push(&tok.token_bytes(t));
            self.text.push_str(&piece);
            if let Some(cut) = find_stop(&self.text, &cfg.stop) {
                self.text.truncate(cut);
                self.finish = Some(Finish::Stop);
            }
        }
        if self.finish.is_none() && last {
            self.finish = Some(Finish::Length);
        }
        if self.finish.is_some() && self.finish != Some(Finish::Stop) {
            let rest = self.utf8.finish();
            self.text.push_str(&rest);
        }
        let upto = if self.finish.is_some() { self.text.len() } else { safe_end(&self.text, &cfg.stop) };
        self.emitted = upto.max(from);
        &self.text[from..self.emitted]
    }

    /// The finished generation.
    pub fn generation(self) -> Generation {
        Generation { tokens: self.tokens, text: self.text, finish: self.finish.unwrap_or(Finish::Length) }
    }
}

/// Generates one completion per prompt; see the module header. `on_text(i, piece)` receives row
/// `i`'s text as it becomes final: complete characters only, and never a part that might still turn
/// out to be the start of a stop string.
pub fn generate(
    model: &Llama,
    tok: &Tokenizer,
    prompts: &[Vec<u32>],
    cfg: &SampleConfig,
    on_text: &mut dyn FnMut(usize, &str),
) -> anyhow::Result<Vec<Generation>> {
    cfg.validate()?;
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    anyhow::ensure!(prompts.iter().all(|p| !p.is_empty()), "cannot generate from an empty prompt");
    let device = model.device().clone();
    let max_pos = model.config.max_position_embeddings;
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    anyhow::ensure!(
        longest < max_pos,
        "a prompt of {longest} tokens leaves no room to generate within the model's context of {max_pos}"
    );
    let max_new = cfg.max_new_tokens.min(max_pos - longest);
    let specials: &[u32] = &tok.special_ids;
    let pad_id = tok.pad_id;
    let b = prompts.len();
    let pad: Vec<usize> = prompts.iter().map(|p| longest - p.len()).collect();
    let mut rows: Vec<Decoding> =
        prompts.iter().enumerate().map(|(i, p)| Decoding::new(p, cfg.seed, i as u64)).collect();
    // [batch, longest]: prompts left-padded
    let mut seq: Vec<u32> = Vec::with_capacity(b * (longest + max_new));
    for (p, &n) in prompts.iter().zip(&pad) {
        seq.extend(std::iter::repeat_n(pad_id, n));
        seq.extend_from_slice(p);
    }
    let vocab = model.config.vocab_size;
    let mut cache = KvCache::new();
    let mut len = longest;
    let mut logits = model
        .forward_last_cached(ids_tensor(&seq, b, len, &device), &Layout::left_padded(&pad, len, &device), &mut cache)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))?;
    let mut host = match (b, cfg.use_cache, crate::decode::HostDecoder::new(model)) {
        (1, true, Some(dec)) => {
            let hc = dec.cache_from(&cache);
            Some((dec, hc))
        }
        _ => None,
    };
    for step in 0..max_new {
        let mut next = vec![pad_id; b];
        for (i, row) in rows.iter_mut().enumerate() {
            if row.finish.is_some() {
                continue;
            }
            let t = row.choose(&mut logits[i * vocab..(i + 1) * vocab], cfg, specials)?;
            next[i] = t;
            let piece = row.accept(t, tok, cfg, step + 1 == max_new);
            if !piece.is_empty() {
                on_text(i, piece);
            }
        }
        if rows.iter().all(|r| r.finish.is_some()) {
            break;
        }
        // One sequence with Q8_0 weights: the host decoder continues the prompt's cache.
        if let Some((dec, hc)) = host.as_mut() {
            len += 1;
            logits = dec.step(next[0], hc);
            continue;
        }
        // Rows already finished are fed padding; their outputs are ignored.
        let step_ids = ids_tensor(&next, b, 1, &device);
        let out = if cfg.use_cache {
            model.forward_cached(step_ids, &Layout::left_padded_step(&pad, len, 1, &device), &mut cache)
        } else {
            let mut full = Vec::with_capacity(b * (len + 1));
            for (r, &t) in next.iter().enumerate() {
                full.extend_from_slice(&seq[r * len..(r + 1) * len]);
                full.push(t);
            }
            seq = full;
            model.forward_with(ids_tensor(&seq, b, len + 1, &device), &Layout::left_padded(&pad, len + 1, &device))
        };
        len += 1;
        logits = last_logits(out, vocab)?;
    }
    Ok(rows.into_iter().map(Decoding::generation).collect())
}

/// The logits of each row's last position as one flat host vector `[batch * vocab]`.
fn last_logits(logits: Tensor<3>, vocab: usize) -> anyhow::Result<Vec<f32>> {
    let [b, s, v] = logits.dims();
    debug_assert_eq!(v, vocab);
    let last = logits.narrow(1, s - 1, 1).reshape([b, v]);
    last.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))
}

/// The byte offset of the earliest stop string in `text`.
fn find_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter_map(|s| text.find(s.as_str())).min()
}

/// How much of `text` can be shown: all but a tail that could still grow into a stop string.
fn safe_end(text: &str, stops: &[String]) -> usize {
    let mut end = text.len();
    for s in stops {
        for k in (1..s.len()).rev() {
            if s.is_char_boundary(k) && text.ends_with(&s[..k]) {
                end = end.min(text.len() - k);
                break;
            }
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(f: impl FnOnce(&mut SampleConfig)) -> SampleConfig {
        let mut c = SampleConfig::default();
        f(&mut c);
        c
    }

    /// Logits whose softmax is exactly `probs`.
    fn logits_of(probs: &[f64]) -> Vec<f32> {
        probs.iter().map(|p| p.ln() as f32).collect()
    }

    fn close(a: &[(u32, f64)], b: &[(u32, f64)]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.0, y.0, "{a:?} vs {b:?}");
            assert!((x.1 - y.1).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    /// The partial-sort draw picks the token the full sort's walk picks, for the same uniform draw,
    /// on flat and peaked distributions, with ties and a repetition penalty.
    #[test]
    fn draws_without_a_full_sort_match_the_sorted_walk() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for case in 0..60 {
            let vocab = [5, 300, 8192][case % 3];
            let spread = [0.1, 2.0, 8.0][(case / 3) % 3];
            let mut logits: Vec<f32> = (0..vocab).map(|_| rng.random_range(-spread..spread) as f32).collect();
            logits[vocab / 2] = logits[0]; // a tie
            logits[1] = f32::NEG_INFINITY;
            let c = cfg(|c| {
                c.temperature = [0.7, 1.0, 1.3][case % 3];
                c.repetition_penalty = if case % 2 == 0 { 1.0 } else { 1.3 };
            });
            let history = [0u32, 3, 4];
            for seed in 0..40 {
                let mut a = ChaCha8Rng::seed_from_u64(seed);
                let mut b = ChaCha8Rng::seed_from_u64(seed);
                let want = draw(&next_token_distribution(&logits, &history, &c), &mut a);
                assert_eq!(draw_from_logits(&logits, &history, &c, &mut b).unwrap(), want, "case {case}, seed {seed}");
            }
        }
        let nan = [f32::NAN, f32::NEG_INFINITY];
        assert!(draw_from_logits(&nan, &[], &SampleConfig::default(), &mut rng).is_err());
    }

    #[test]
    fn truncations_on_a_known_distribution() {
        // token:      0     1     2     3     4
        let p = [0.10, 0.40, 0.05, 0.30, 0.15];
        let l = logits_of(&p);
        let full = next_token_distribution(&l, &[], &SampleConfig::default());
        close(&full, &[(1, 0.40), (3, 0.30), (4, 0.15), (0, 0.10), (2, 0.05)]);
        let k2 = next_token_distribution(&l, &[], &cfg(|c| c.top_k = 2));
        close(&k2, &[(1, 0.4 / 0.7), (3, 0.3 / 0.7)]);
        // 0.40 + 0.30 = 0.70 < 0.75, adding 0.15 reaches it: three tokens.
        let p75 = next_token_distribution(&l, &[], &cfg(|c| c.top_p = 0.75));
        close(&p75, &[(1, 0.40 / 0.85), (3, 0.30 / 0.85), (4, 0.15 / 0.85)]);
        // Exactly reaching p keeps no more than needed.
        let p70 = next_token_distribution(&l, &[], &cfg(|c| c.top_p = 0.70));
        close(&p70, &[(1, 0.4 / 0.7), (3, 0.3 / 0.7)]);
        // min_p 0.3 of the top 0.40 = 0.12: drops 0.10 and 0.05.
        let m = next_token_distribution(&l, &[], &cfg(|c| c.min_p = 0.3));
        close(&m, &[(1, 0.40 / 0.85), (3, 0.30 / 0.85), (4, 0.15 / 0.85)]);
        let g = next_token_distribution(&l, &[], &cfg(|c| c.temperature = 0.0));
        close(&g, &[(1, 1.0)]);
        // Temperature 2 takes square roots of the probabilities before renormalising.
        let t2 = next_token_distribution(&l, &[], &cfg(|c| c.temperature = 2.0));
        let z: f64 = p.iter().map(|x: &f64| x.sqrt()).sum();
        close(
            &t2,
            &[
                (1, 0.4f64.sqrt() / z),
                (3, 0.3f64.sqrt() / z),
                (4, 0.15f64.sqrt() / z),
                (0, 0.1f64.sqrt() / z),
                (2, 0.05f64.sqrt() / z),
            ],
        );
    }

    #[test]
    fn repetition_penalty_follows_the_sign_of_the_logit() {
        let l = [2.0f32, -1.0, 1.0];
        let d = next_token_distribution(&l, &[0, 1], &cfg(|c| c.repetition_penalty = 2.0));
        // Logits become [1.0, -2.0, 1.0]: tokens 0 and 2 tie (lower id first), token 1 drops.
        let e = |x: f64| x.exp();
        let z = e(1.0) + e(-2.0) + e(1.0);
        close(&d, &[(0, e(1.0) / z), (2, e(1.0) / z), (1, e(-2.0) / z)]);
    }

    #[test]
    fn draws_follow_the_distribution() {
        let dist = vec![(7u32, 0.5), (3, 0.3), (9, 0.2)];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0usize; 3];
        let n = 20_000;
        for _ in 0..n {
            match draw(&dist, &mut rng) {
                7 => counts[0] += 1,
                3 => counts[1] += 1,
                9 => counts[2] += 1,
                t => panic!("drew {t}"),
            }
        }
        for (c, (_, q)) in counts.iter().zip(&dist) {
            let f = *c as f64 / n as f64;
            // 5 standard deviations of a binomial proportion.
            assert!((f - q).abs() < 5.0 * (q * (1.0 - q) / n as f64).sqrt(), "{counts:?}");
        }
    }

    #[test]
    fn utf8_stream_never_splits_a_character() {
        let text = "née → 日本 🦀";
        let bytes = text.as_bytes();
        let mut s = Utf8Stream::default();
        let mut out = String::new();
        for b in bytes {
            let piece = s.push(&[*b]);
            // Every piece is valid text on its own (a String cannot hold half a character; check
            // that nothing was replaced).
            assert!(!piece.contains(char::REPLACEMENT_CHARACTER));
            out.push_str(&piece);
        }
        out.push_str(&s.finish());
        assert_eq!(out, text);
        // Invalid bytes are replaced, the rest survives.
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(&[b'a', 0xff, b'b']), "a\u{fffd}b");
        assert_eq!(s.push(&[0xe6, 0x97]), "");
        assert_eq!(s.finish(), "\u{fffd}");
    }

    #[test]
    fn stop_strings_are_held_back_until_decided() {
        let stops = vec!["\nQ:".to_string()];
        assert_eq!(safe_end("answer\n", &stops), 6);
        assert_eq!(safe_end("answer\nQ", &stops), 6);
        assert_eq!(safe_end("answer\nx", &stops), 8);
        assert_eq!(find_stop("answer\nQ: next", &stops), Some(6));
        assert_eq!(find_stop("answer", &stops), None);
    }

    #[test]
    fn invalid_settings_name_the_field() {
        let e = cfg(|c| c.top_p = 0.0).validate().unwrap_err().to_string();
        assert!(e.contains("sample.top_p"), "{e}");
        let e = cfg(|c| c.temperature = -1.0).validate().unwrap_err().to_string();
        assert!(e.contains("sample.temperature"), "{e}");
    }
}
