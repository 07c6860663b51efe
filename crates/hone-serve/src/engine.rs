//! One model's decoding loop, on its own thread, with continuous batching: every running sequence
//! advances one token per step through one batched host step ([`HostDecoder::step_batch`]: each
//! weight read once per step for all of them); a request that arrives mid-decode is prefilled and
//! joins at the next step, and a sequence that finishes, times out or whose client went away frees
//! its slot at once. Requests wait in a bounded queue; a full queue is a 429 at submission, never a
//! wait without end.

use crate::error::ApiError;
use hone_data::chat::ChatTemplate;
use hone_data::tokenizer::Tokenizer;
use hone_model::decode::{HostCache, HostDecoder};
use hone_model::llama::ids_tensor;
use hone_model::sample::Decoding;
use hone_model::{Finish, KvCache, Layout, Llama, LoadedModel, SampleConfig};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Most multiply-adds (prompt tokens × the model's per token) of a prompt prefilled on the host
/// rather than through the model's batched pass. The host pass has no per-operation overhead but
/// no GEMM either: on the served world model (2.2M per token) a 20-token prompt took as long as
/// dozens of decoding steps through the batched pass and a fraction of one on the host, while a
/// 30-token SmolLM2 prompt (135M per token) was several times faster through the batched pass.
const HOST_PREFILL_MACS: usize = 1 << 27;

/// A token's log-probability under the model (the raw softmax, before temperature or truncation)
/// and the most likely alternatives at its position, most likely first.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    pub top: Vec<(u32, f32)>,
}

/// What a generation reports, in order: tokens, then `Done` or `Failed`.
#[derive(Debug, Clone)]
pub enum Event {
    /// One generated token and the text it made final (may be empty: an unfinished character, or a
    /// possible start of a stop string).
    Token {
        token: u32,
        piece: String,
        logprob: Option<TokenLogprob>,
    },
    Done {
        finish: Finish,
        tokens: usize,
    },
    Failed(ApiError),
}

/// One completion to generate.
pub struct GenJob {
    pub prompt: Vec<u32>,
    pub sample: SampleConfig,
    /// The sampling stream (choice index): `(seed, stream)` reproduces the choice.
    pub stream: u64,
    /// Report log-probabilities with this many alternatives.
    pub top_logprobs: Option<usize>,
    /// Report tokens as they come; otherwise all at once at the end (one wake-up of the waiting
    /// request instead of one per token: at 8 requests a time, those wake-ups took the CPU the
    /// decoding thread needed).
    pub incremental: bool,
    pub deadline: Instant,
    pub events: mpsc::UnboundedSender<Event>,
}

/// Log-probabilities of every token of `prompt` after the first (lm-evaluation-harness's
/// `loglikelihood` through `echo`).
pub struct ScoreJob {
    pub prompt: Vec<u32>,
    pub top: usize,
    pub reply: oneshot::Sender<Result<Vec<TokenLogprob>, ApiError>>,
}

pub enum Job {
    Generate(GenJob),
    Score(ScoreJob),
}

/// How a model is talked to: a base model continues text, a chat model answers turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Base,
    Chat,
}

/// A served model: what handlers need (tokenizer, template, context) and its engine's queue.
pub struct ModelHandle {
    pub id: String,
    pub kind: Kind,
    pub tokenizer: Arc<Tokenizer>,
    pub template: Arc<ChatTemplate>,
    /// Positions the model can attend over (prompt + completion).
    pub context: usize,
    pub vocab: usize,
    tx: SyncSender<Job>,
    /// Jobs submitted and not yet taken by the engine.
    waiting: Arc<AtomicUsize>,
    /// Sequences in the running batch.
    running: Arc<AtomicUsize>,
    queue: usize,
}

impl ModelHandle {
    /// Loads `m` into an engine thread; the error says why a model cannot be served.
    pub fn start(id: &str, kind: Kind, m: LoadedModel, max_batch: usize, queue: usize) -> anyhow::Result<ModelHandle> {
        let dec = HostDecoder::new(&m.model).ok_or_else(|| {
            anyhow::anyhow!("{id}: serving decodes on the CPU backend (Flex) without autodiff; load the model on `cpu`")
        })?;
        // The queue holds at least a full batch so a burst of `n` choices fits.
        let (tx, rx) = std::sync::mpsc::sync_channel(queue + max_batch);
        let waiting = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(AtomicUsize::new(0));
        let LoadedModel { model, tokenizer, template, .. } = m;
        let tokenizer = Arc::new(tokenizer);
        let handle = ModelHandle {
            id: id.to_string(),
            kind,
            tokenizer: tokenizer.clone(),
            template: Arc::new(template),
            context: model.config.max_position_embeddings,
            vocab: model.config.vocab_size,
            tx,
            waiting: waiting.clone(),
            running: running.clone(),
            queue,
        };
        let engine = Engine { model, tok: tokenizer, dec, max_batch, waiting, running };
        std::thread::Builder::new().name(format!("engine-{id}")).spawn(move || engine.run(rx))?;
        Ok(handle)
    }

    /// Queues `jobs` together, or none of them when the queue cannot take them all (429).
    pub fn submit(&self, jobs: Vec<Job>) -> Result<(), ApiError> {
        let n = jobs.len();
        let before = self.waiting.fetch_add(n, Ordering::SeqCst);
        if before + n > self.queue.max(n) {
            self.waiting.fetch_sub(n, Ordering::SeqCst);
            return Err(ApiError::busy(&self.id, self.queue));
        }
        for j in jobs {
            if self.tx.try_send(j).is_err() {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                return Err(ApiError::busy(&self.id, self.queue));
            }
        }
        Ok(())
    }

    /// Jobs waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Sequences decoding now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }
}

/// A sequence in the running batch.
struct Seq {
    decoding: Decoding,
    cache: HostCache,
    /// Logits of the next position `[vocab]`.
    logits: Vec<f32>,
    sample: SampleConfig,
    max_new: usize,
    top_logprobs: Option<usize>,
    incremental: bool,
    /// Events held back until the end (not streaming).
    held: Vec<Event>,
    deadline: Instant,
    events: mpsc::UnboundedSender<Event>,
}

impl Seq {
    /// Reports `e` now when streaming, else at the end (`Done` and `Failed` release what is held).
    fn report(&mut self, e: Event) {
        if self.incremental {
            let _ = self.events.send(e);
            return;
        }
        let last = !matches!(e, Event::Token { .. });
        self.held.push(e);
        if last {
            for e in self.held.drain(..) {
                let _ = self.events.send(e);
            }
        }
    }
}

struct Engine {
    model: Llama,
    tok: Arc<Tokenizer>,
    dec: HostDecoder,
    max_batch: usize,
    waiting: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
}

/// `log softmax(logits)`.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let z: f64 = logits.iter().map(|&l| ((l - top) as f64).exp()).sum();
    let lse = top + z.ln() as f32;
    logits.iter().map(|&l| l - lse).collect()
}

/// The `k` largest entries, largest first (lower id first on ties).
pub fn top_k(logp: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<u32> = (0..logp.len() as u32).collect();
    let k = k.min(idx.len());
    if k == 0 {
        return Vec::new();
    }
    let cmp = |a: &u32, b: &u32| logp[*b as usize].total_cmp(&logp[*a as usize]).then(a.cmp(b));
    idx.select_nth_unstable_by(k - 1, cmp);
    idx.truncate(k);
    idx.sort_by(cmp);
    idx.into_iter().map(|i| (i, logp[i as usize])).collect()
}

impl Engine {
    fn run(self, rx: Receiver<Job>) {
        let mut active: Vec<Seq> = Vec::new();
        loop {
            // Admit waiting jobs into free slots; sleep on the queue only when nothing runs.
            while active.len() < self.max_batch {
                let job = if active.is_empty() {
                    match rx.recv() {
                        Ok(j) => j,
                        Err(_) => return, // every handle dropped: the server stopped
                    }
                } else {
                    match rx.try_recv() {
                        Ok(j) => j,
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                };
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                match job {
                    Job::Generate(g) => {
                        if let Some(s) = self.admit(g) {
                            active.push(s);
                        }
                    }
                    Job::Score(s) => {
                        let r = self.score(&s.prompt, s.top);
                        let _ = s.reply.send(r);
                    }
                }
            }
            self.running.store(active.len(), Ordering::SeqCst);
            self.advance(&mut active);
            self.running.store(active.len(), Ordering::SeqCst);
        }
    }

    /// Prefills `g`'s prompt; `None` when it is already finished (no tokens asked for, or failed).
    fn admit(&self, g: GenJob) -> Option<Seq> {
        let context = self.model.config.max_position_embeddings;
        if g.events.is_closed() {
            return None;
        }
        if g.prompt.is_empty() || g.prompt.len() >= context {
            let _ = g.events.send(Event::Failed(ApiError::field(
                "prompt",
                format!("a prompt of {} tokens does not fit the model's context of {context}", g.prompt.len()),
            )));
            return None;
        }
        let max_new = g.sample.max_new_tokens.min(context - g.prompt.len());
        if max_new == 0 {
            let _ = g.events.send(Event::Done { finish: Finish::Length, tokens: 0 });
            return None;
        }
        match self.prefill(&g.prompt) {
            Ok((cache, logits)) => Some(Seq {
                decoding: Decoding::new(&g.prompt, g.sample.seed, g.stream),
                cache,
                logits,
                sample: g.sample,
                max_new,
                top_logprobs: g.top_logprobs,
                incremental: g.incremental,
                held: Vec::new(),
                deadline: g.deadline,
                events: g.events,
            }),
            Err(e) => {
                let _ = g.events.send(Event::Failed(ApiError::internal(format!("prefill failed: {e:#}"))));
                None
            }
        }
    }

    /// The prompt's host cache and its last logits: short prompts on the host, longer ones through
    /// the model's batched forward pass (a GEMM per layer, faster once a prompt has many rows).
    fn prefill(&self, prompt: &[u32]) -> anyhow::Result<(HostCache, Vec<f32>)> {
        if prompt.len() * self.dec.macs_per_token() <= HOST_PREFILL_MACS {
            let mut cache = self.dec.new_cache();
            let logits = self.dec.prefill(prompt, &mut cache);
            return Ok((cache, logits));
        }
        let d = self.model.device().clone();
        let len = prompt.len();
        let mut kv = KvCache::new();
        let last = self.model.forward_last_cached(
            ids_tensor(prompt, 1, len, &d),
            &Layout::left_padded(&[0], len, &d),
            &mut kv,
        );
        let last = last.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok((self.dec.cache_from(&kv), last))
    }

    /// Every token of `prompt` after the first: its log-probability given the tokens before it.
    fn score(&self, prompt: &[u32], top: usize) -> Result<Vec<TokenLogprob>, ApiError> {
        let context = self.model.config.max_position_embeddings;
        if prompt.is_empty() || prompt.len() > context {
            return Err(ApiError::field(
                "prompt",
                format!("a prompt of {} tokens does not fit the model's context of {context}", prompt.len()),
            ));
        }
        let d = self.model.device().clone();
        let len = prompt.len();
        let logits = self.model.forward_with(ids_tensor(prompt, 1, len, &d), &Layout::left_padded(&[0], len, &d));
        let vocab = self.model.config.vocab_size;
        let all = logits
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| ApiError::internal(format!("reading logits: {e:?}")))?;
        Ok((1..len)
            .map(|i| {
                let lp = log_softmax(&all[(i - 1) * vocab..i * vocab]);
                TokenLogprob { token: prompt[i], logprob: lp[prompt[i] as usize], top: top_k(&lp, top) }
            })
            .collect())
    }

    /// One step of the running batch: each sequence draws its next token from its logits and
    /// reports it; finished, cancelled and timed-out sequences leave; the rest run one batched step.
    fn advance(&self, active: &mut Vec<Seq>) {
        let now = Instant::now();
        let mut live = Vec::with_capacity(active.len());
        for mut s in active.drain(..) {
            if s.events.is_closed() {
                continue; // the client went away: free the slot
            }
            if now > s.deadline {
                s.report(Event::Failed(
                    ApiError::internal("the request ran past the server's time limit (serve.timeout_s)")
                        .with_status(axum::http::StatusCode::GATEWAY_TIMEOUT)
                        .with_code("timeout"),
                ));
                continue;
            }
            live.push(s);
        }
        // Every sequence draws its token at once, one per part of the decoding pool: sampling (an
        // exponential per vocabulary entry) was a quarter of the world model's batched step on
        // one thread. Each sequence has its own random stream, so the draws do not depend on the
        // order.
        type Drawn = (anyhow::Result<u32>, Option<Vec<f32>>);
        let cells: Vec<Mutex<(&mut Seq, Option<Drawn>)>> = live.iter_mut().map(|s| Mutex::new((s, None))).collect();
        hone_model::spin::run(cells.len(), &|i| {
            let mut g = cells[i].lock().unwrap_or_else(|e| e.into_inner());
            let (s, out) = &mut *g;
            let lp = s.top_logprobs.map(|_| log_softmax(&s.logits));
            let t = s.decoding.choose(&mut s.logits, &s.sample, &self.tok.special_ids);
            *out = Some((t, lp));
        });
        let drawn: Vec<Drawn> = cells
            .into_iter()
            .map(|c| c.into_inner().unwrap_or_else(|e| e.into_inner()).1.expect("every sequence drew"))
            .collect();
        let mut keep = Vec::with_capacity(live.len());
        for (mut s, (t, lp)) in live.into_iter().zip(drawn) {
            let t = match t {
                Ok(t) => t,
                Err(e) => {
                    s.report(Event::Failed(ApiError::internal(format!("{e:#}"))));
                    continue;
                }
            };
            let last = s.decoding.tokens.len() + 1 >= s.max_new;
            let piece = s.decoding.accept(t, &self.tok, &s.sample, last).to_string();
            let logprob = lp.map(|lp| TokenLogprob {
                token: t,
                logprob: lp[t as usize],
                top: top_k(&lp, s.top_logprobs.unwrap_or(0)),
            });
            s.report(Event::Token { token: t, piece, logprob });
            match s.decoding.finish {
                Some(finish) => {
                    let tokens = s.decoding.tokens.len();
                    s.report(Event::Done { finish, tokens });
                }
                None => keep.push(s),
            }
        }
        *active = keep;
        if active.is_empty() {
            return;
        }
        let tokens: Vec<u32> =
            active.iter().map(|s| *s.decoding.tokens.last().expect("a token was just drawn")).collect();
        let mut caches: Vec<&mut HostCache> = active.iter_mut().map(|s| &mut s.cache).collect();
        let logits = self.dec.step_batch(&tokens, &mut caches);
        let vocab = logits.len() / tokens.len();
        for (s, l) in active.iter_mut().zip(logits.chunks(vocab)) {
            s.logits.clear();
            s.logits.extend_from_slice(l);
        }
    }
}

/// A deadline `seconds` from now.
pub fn deadline(seconds: f64) -> Instant {
    Instant::now() + Duration::from_secs_f64(seconds.min(1e7))
}
