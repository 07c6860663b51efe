//! Small arithmetic problems: the arithmetic genre of the corpus, SFT examples, the arithmetic probe and
//! the RL prompts, all drawn from one distribution. Problems are identified by (operation, a, b) so the
//! probe's problems can be reserved and kept out of everything the model trains on.

use crate::rng::{Draw, Rng};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Add,
    Sub,
    Mul,
}

/// One problem: `a op b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Problem {
    pub op: Op,
    pub a: i64,
    pub b: i64,
}

impl Problem {
    /// A random problem: sums and differences below 100, products up to 12 x 12.
    pub fn random(rng: &mut Rng) -> Problem {
        match rng.int(0, 9) {
            0..=3 => Problem { op: Op::Add, a: rng.int(1, 60), b: rng.int(1, 39) },
            4..=6 => {
                let a = rng.int(2, 99);
                Problem { op: Op::Sub, a, b: rng.int(1, a) }
            }
            _ => Problem { op: Op::Mul, a: rng.int(2, 12), b: rng.int(2, 12) },
        }
    }

    /// A random problem not in `reserved`, counting `b + a` as the same problem as `a + b` (and likewise
    /// for products), so a probe is not answered by its commuted twin in the training data.
    pub fn random_except(rng: &mut Rng, reserved: &BTreeSet<Problem>) -> Problem {
        loop {
            let p = Problem::random(rng);
            if !p.is_reserved(reserved) {
                return p;
            }
        }
    }

    /// Whether this problem, or its commuted twin for sums and products, is in `reserved`.
    pub fn is_reserved(&self, reserved: &BTreeSet<Problem>) -> bool {
        let twin = Problem { a: self.b, b: self.a, ..*self };
        reserved.contains(self) || (self.op != Op::Sub && reserved.contains(&twin))
    }

    pub fn answer(&self) -> i64 {
        match self.op {
            Op::Add => self.a + self.b,
            Op::Sub => self.a - self.b,
            Op::Mul => self.a * self.b,
        }
    }

    /// The symbol used in equations.
    pub fn symbol(&self) -> &'static str {
        match self.op {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
        }
    }

    /// "12 + 5".
    pub fn expression(&self) -> String {
        format!("{} {} {}", self.a, self.symbol(), self.b)
    }

    /// "12 + 5 = 17".
    pub fn equation(&self) -> String {
        format!("{} = {}", self.expression(), self.answer())
    }

    /// A question asking for the result, in one of several wordings.
    pub fn question(&self, rng: &mut Rng) -> String {
        let (a, b) = (self.a, self.b);
        let forms: [String; 4] = match self.op {
            Op::Add => [
                format!("What is {a} + {b}?"),
                format!("What is {a} plus {b}?"),
                format!("Add {a} and {b}."),
                format!("Calculate {a} + {b}."),
            ],
            Op::Sub => [
                format!("What is {a} - {b}?"),
                format!("What is {a} minus {b}?"),
                format!("Subtract {b} from {a}."),
                format!("Calculate {a} - {b}."),
            ],
            Op::Mul => [
                format!("What is {a} times {b}?"),
                format!("What is {a} * {b}?"),
                format!("Multiply {a} by {b}."),
                format!("Calculate {a} * {b}."),
            ],
        };
        rng.pick(&forms).clone()
    }

    /// A word problem about a named person, with its worked answer.
    pub fn word_problem(&self, who: &str, pronoun: &str, rng: &mut Rng) -> (String, String) {
        let thing = *rng.pick(&["apples", "books", "coins", "stamps", "shells", "pencils", "eggs"]);
        let (a, b, c) = (self.a, self.b, self.answer());
        match self.op {
            Op::Add => (
                format!("{who} has {a} {thing} and gets {b} more. How many {thing} does {pronoun} have now?"),
                format!("{who} has {a} + {b} = {c} {thing}."),
            ),
            Op::Sub => (
                format!("{who} has {a} {thing} and gives away {b}. How many {thing} are left?"),
                format!("{who} has {a} - {b} = {c} {thing} left."),
            ),
            Op::Mul => (
                format!("{who} has {a} boxes with {b} {thing} in each box. How many {thing} is that in total?"),
                format!("That is {a} * {b} = {c} {thing}."),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Stream, stream};

    #[test]
    fn answers_and_ranges() {
        let mut rng = stream(1, Stream::Probes);
        for _ in 0..500 {
            let p = Problem::random(&mut rng);
            assert!(p.answer() >= 0 && p.answer() <= 144, "{p:?}");
            assert!(p.equation().ends_with(&p.answer().to_string()));
        }
        let reserved: BTreeSet<Problem> = (0..50).map(|_| Problem::random(&mut rng)).collect();
        for _ in 0..500 {
            let p = Problem::random_except(&mut rng, &reserved);
            assert!(!reserved.contains(&p));
            if p.op != Op::Sub {
                assert!(!reserved.contains(&Problem { a: p.b, b: p.a, ..p }));
            }
        }
    }
}
