//! Token rows for the stages that train on sequences with a mask: a tokenized example (ids and which
//! tokens are targets), and rows of examples, right-padded or packed, as inputs, next-token targets
//! and target weights. SFT trains on them, RL scores its samples with them.

/// A tokenized conversation: `mask[t]` is true when token `t` is the assistant's (a training target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub ids: Vec<u32>,
    pub mask: Vec<bool>,
}

/// Rows of inputs, next-token targets and target weights (1 on assistant targets), `[rows, seq]`
/// row-major. `segments` (packed rows) holds the example index of each input token.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    pub rows: usize,
    pub seq: usize,
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
    pub weights: Vec<f32>,
    pub segments: Option<Vec<u32>>,
    /// Tokens that are not padding.
    pub real_tokens: u64,
}

impl Rows {
    /// One right-padded row per example (`pad` fills; padded positions weigh 0).
    pub fn padded(examples: &[&Example], pad: u32) -> Rows {
        let seq = examples.iter().map(|e| e.ids.len() - 1).max().unwrap_or(1);
        let mut b = Rows::empty(examples.len(), seq, pad);
        for (r, e) in examples.iter().enumerate() {
            b.place(r * seq, e);
        }
        b
    }

    /// The examples packed first-fit into rows of `max_len - 1` input tokens.
    pub fn packed(examples: &[&Example], pad: u32, max_len: usize) -> Rows {
        let cap = max_len - 1;
        let mut rows: Vec<(usize, Vec<usize>)> = Vec::new(); // (used, example indices)
        for (i, e) in examples.iter().enumerate() {
            let n = e.ids.len() - 1;
            match rows.iter_mut().find(|(used, _)| used + n <= cap) {
                Some(row) => {
                    row.0 += n;
                    row.1.push(i);
                }
                None => rows.push((n, vec![i])),
            }
        }
        let seq = rows.iter().map(|r| r.0).max().unwrap_or(1);
        let mut b = Rows::empty(rows.len(), seq, pad);
        let mut segments = vec![u32::MAX; rows.len() * seq];
        for (r, (_, members)) in rows.iter().enumerate() {
            let mut at = r * seq;
            for &i in members {
                let n = b.place(at, examples[i]);
                segments[at..at + n].fill(i as u32);
                at += n;
            }
            // Padding forms its own segment so it attends to nothing real.
            for s in &mut segments[at..(r + 1) * seq] {
                *s = examples.len() as u32 + r as u32;
            }
        }
        b.segments = Some(segments);
        b
    }

    fn empty(rows: usize, seq: usize, pad: u32) -> Rows {
        Rows {
            rows,
            seq,
            inputs: vec![pad; rows * seq],
            targets: vec![pad; rows * seq],
            weights: vec![0.0; rows * seq],
            segments: None,
            real_tokens: 0,
        }
    }

    /// Writes `e` at flat position `at`; returns its input length.
    fn place(&mut self, at: usize, e: &Example) -> usize {
        let n = e.ids.len() - 1;
        self.inputs[at..at + n].copy_from_slice(&e.ids[..n]);
        self.targets[at..at + n].copy_from_slice(&e.ids[1..]);
        for t in 0..n {
            self.weights[at + t] = if e.mask[t + 1] { 1.0 } else { 0.0 };
        }
        self.real_tokens += n as u64;
        n
    }
}
