//! Small arithmetic problems: the arithmetic genre of the corpus, SFT examples, the arithmetic probe and
//! the RL prompts, all drawn from one distribution. Problems are identified by (operation, a, b) so the
//! probe's problems can be reserved and kept out of everything the model trains on.
//!
//! Training text shows its work ([`Problem::worked`]): every problem is broken into one-digit facts
//! (tens and ones apart, a product from its neighbour), as a tutor or a GSM8K solution would. A
//! reserved problem is then answered by composing facts that other problems teach, so the probe
//! measures computation, not recall; a small model cannot infer an unseen `6 * 5 = 30` otherwise.

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

    /// Whether this problem, or its commuted twin for sums and products, is in `reserved`, or its
    /// worked answer ends in one that is ("10 + 12 = … = 20 + 2 = 22" works out 20 + 2).
    pub fn is_reserved(&self, reserved: &BTreeSet<Problem>) -> bool {
        let hit = |p: &Problem| {
            let twin = Problem { a: p.b, b: p.a, ..*p };
            reserved.contains(p) || (p.op != Op::Sub && reserved.contains(&twin))
        };
        hit(self) || self.last_step().is_some_and(|p| hit(&p))
    }

    /// The worked answer's last step when it is a problem of its own: "60 + 13" in
    /// "38 + 35 = 30 + 30 + 8 + 5 = 60 + 13 = 73".
    pub fn last_step(&self) -> Option<Problem> {
        let w = self.worked();
        let steps: Vec<&str> = w.split(" = ").collect();
        let t: Vec<&str> = steps.get(steps.len().checked_sub(2)?.max(1))?.split(' ').collect();
        let op = match t.as_slice() {
            [_, "+", _] => Op::Add,
            [_, "-", _] => Op::Sub,
            [_, "*", _] => Op::Mul,
            _ => return None,
        };
        Some(Problem { op, a: t[0].parse().ok()?, b: t[2].parse().ok()? })
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

    /// The worked equation: "38 + 35 = 30 + 30 + 8 + 5 = 60 + 13 = 73",
    /// "62 - 39 = 50 - 30 + 12 - 9 = 20 + 3 = 23", "12 * 7 = 10 * 7 + 2 * 7 = 70 + 14 = 84",
    /// "7 * 8 = 6 * 8 + 8 = 48 + 8 = 56". Each step left to right is true; steps that would repeat
    /// the previous one are left out, so one-step problems ("7 + 8 = 15") stay one equation.
    pub fn worked(&self) -> String {
        let (a, b, c) = (self.a, self.b, self.answer());
        let terms = |xs: &[i64], ops: &[&str]| -> String {
            let mut out = String::new();
            for (k, x) in xs.iter().enumerate() {
                if k > 0 {
                    out.push_str(&format!(" {} ", ops[k - 1]));
                }
                out.push_str(&x.to_string());
            }
            out
        };
        let plus = |xs: &[i64]| -> String {
            let nz: Vec<i64> = xs.iter().copied().filter(|&x| x != 0).collect();
            if nz.is_empty() { "0".to_string() } else { terms(&nz, &vec!["+"; nz.len() - 1]) }
        };
        let mut steps: Vec<String> = vec![self.expression()];
        match self.op {
            Op::Add => {
                let (ta, oa, tb, ob) = (a / 10 * 10, a % 10, b / 10 * 10, b % 10);
                steps.push(plus(&[ta, tb, oa, ob]));
                steps.push(plus(&[ta + tb, oa + ob]));
            }
            Op::Sub => {
                let (ta, oa, tb, ob) = (a / 10 * 10, a % 10, b / 10 * 10, b % 10);
                // Borrow a ten when the ones do not suffice: 62 - 39 = 50 - 30 + 12 - 9.
                let (ta, oa) = if oa < ob { (ta - 10, oa + 10) } else { (ta, oa) };
                if a >= 10 && b > 0 {
                    let mut xs = vec![ta];
                    let mut ops = Vec::new();
                    if tb > 0 {
                        xs.push(tb);
                        ops.push("-");
                    }
                    if oa > 0 || ob > 0 {
                        xs.push(oa);
                        ops.push("+");
                        if ob > 0 {
                            xs.push(ob);
                            ops.push("-");
                        }
                    }
                    if xs[0] == 0 && ops.first() == Some(&"+") {
                        xs.remove(0);
                        ops.remove(0);
                    }
                    steps.push(terms(&xs, &ops));
                    steps.push(plus(&[ta - tb, oa - ob]));
                }
            }
            Op::Mul => {
                let (lo, hi) = (a.min(b), a.max(b));
                if hi > 10 {
                    // 12 * 7 = 10 * 7 + 2 * 7: split the operand above ten.
                    let (x, y) = if a > 10 {
                        (format!("10 * {b} + {} * {b}", a - 10), (10 * b, (a - 10) * b))
                    } else {
                        (format!("{a} * 10 + {a} * {}", b - 10), (a * 10, a * (b - 10)))
                    };
                    steps.push(x);
                    steps.push(format!("{} + {}", y.0, y.1));
                } else if hi < 10 && lo > 2 {
                    // 7 * 8 = 6 * 8 + 8: one row of the table from the row before.
                    steps.push(format!("{} * {b} + {b}", a - 1));
                    steps.push(format!("{} + {b}", (a - 1) * b));
                } else if lo == 2 && hi < 10 {
                    steps.push(format!("{} + {}", hi, hi));
                }
            }
        }
        steps.push(c.to_string());
        steps.dedup();
        steps.join(" = ")
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
        let (a, b, w) = (self.a, self.b, self.worked());
        match self.op {
            Op::Add => (
                format!("{who} has {a} {thing} and gets {b} more. How many {thing} does {pronoun} have now?"),
                format!("{who} has {w} {thing}."),
            ),
            Op::Sub => (
                format!("{who} has {a} {thing} and gives away {b}. How many {thing} are left?"),
                format!("{who} has {w} {thing} left."),
            ),
            Op::Mul => (
                format!("{who} has {a} boxes with {b} {thing} in each box. How many {thing} is that in total?"),
                format!("That is {w} {thing}."),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Stream, stream};

    /// Value of "a op b op c …" with `*` before `+` and `-`.
    fn value(expr: &str) -> i64 {
        let mut total = 0;
        let mut sign = 1;
        let mut product = 1;
        for tok in expr.split_whitespace() {
            match tok {
                "+" | "-" => {
                    total += sign * product;
                    sign = if tok == "+" { 1 } else { -1 };
                    product = 1;
                }
                "*" => {}
                n => product *= n.parse::<i64>().unwrap(),
            }
        }
        total + sign * product
    }

    #[test]
    fn worked_steps_are_true_and_end_in_the_answer() {
        let mut all = Vec::new();
        for a in 1..=99 {
            for b in 1..=a {
                all.push(Problem { op: Op::Sub, a, b });
            }
        }
        for a in 1..=60 {
            for b in 1..=39 {
                all.push(Problem { op: Op::Add, a, b });
            }
        }
        for a in 2..=12 {
            for b in 2..=12 {
                all.push(Problem { op: Op::Mul, a, b });
            }
        }
        for p in all {
            let w = p.worked();
            let steps: Vec<&str> = w.split(" = ").collect();
            assert_eq!(steps[0], p.expression(), "{w}");
            assert_eq!(steps.last().unwrap().parse::<i64>().unwrap(), p.answer(), "{w}");
            for s in &steps {
                assert_eq!(value(s), p.answer(), "step `{s}` of {w}");
            }
            assert!(steps.windows(2).all(|x| x[0] != x[1]), "{w}");
            assert!(steps.len() <= 4, "{w}");
        }
        let last = |op, a, b| Problem { op, a, b }.last_step();
        assert_eq!(last(Op::Add, 38, 35), Some(Problem { op: Op::Add, a: 60, b: 13 }));
        assert_eq!(last(Op::Add, 7, 8), None);
        assert_eq!(last(Op::Sub, 62, 39), Some(Problem { op: Op::Add, a: 20, b: 3 }));
        let reserved = BTreeSet::from([Problem { op: Op::Add, a: 3, b: 20 }]);
        assert!(Problem { op: Op::Sub, a: 62, b: 39 }.is_reserved(&reserved), "ends in 20 + 3, the twin of 3 + 20");
        let p = |op, a, b| Problem { op, a, b }.worked();
        assert_eq!(p(Op::Add, 38, 35), "38 + 35 = 30 + 30 + 8 + 5 = 60 + 13 = 73");
        assert_eq!(p(Op::Add, 7, 8), "7 + 8 = 15");
        assert_eq!(p(Op::Sub, 62, 39), "62 - 39 = 50 - 30 + 12 - 9 = 20 + 3 = 23");
        assert_eq!(p(Op::Sub, 68, 12), "68 - 12 = 60 - 10 + 8 - 2 = 50 + 6 = 56");
        assert_eq!(p(Op::Sub, 12, 9), "12 - 9 = 3");
        assert_eq!(p(Op::Sub, 40, 40), "40 - 40 = 0");
        assert_eq!(p(Op::Mul, 12, 7), "12 * 7 = 10 * 7 + 2 * 7 = 70 + 14 = 84");
        assert_eq!(p(Op::Mul, 7, 8), "7 * 8 = 6 * 8 + 8 = 48 + 8 = 56");
        assert_eq!(p(Op::Mul, 7, 2), "7 * 2 = 7 + 7 = 14");
        assert_eq!(p(Op::Mul, 10, 7), "10 * 7 = 70");
    }

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
