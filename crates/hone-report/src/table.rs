//! The stage table: every task metric (and its per-group breakdown) for every evaluated policy
//! stage, with the change from the previous stage and whether that change is beyond the noise.
//!
//! A change is judged on its 95% interval, combined from the two stages' intervals as independent
//! normal estimates (half-width √(h_a² + h_b²)); it counts only when the interval excludes zero. This is
//! the same test as a two-proportion z-test for the Wilson intervals of rates, and it reads the same
//! way for bootstrapped means.

use crate::gather::RunFacts;
use hone_tasks::result::Metric;

/// One stage's value of a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
}

/// The change of a metric from the previous evaluated stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub delta: f64,
    pub lo: f64,
    pub hi: f64,
    /// The interval excludes zero.
    pub significant: bool,
    /// The metric moved in its good direction.
    pub better: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub task: String,
    pub description: String,
    pub metric: String,
    pub group: Option<String>,
    pub headline: bool,
    pub higher_is_better: bool,
    /// One per column of the table.
    pub cells: Vec<Option<Cell>>,
    /// One per column; the first is always `None`.
    pub changes: Vec<Option<Change>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StageTable {
    /// `(stage, label)` of the evaluated stages, in pipeline order.
    pub columns: Vec<(String, String)>,
    pub rows: Vec<Row>,
}

impl StageTable {
    /// Rows where a stage is significantly worse than the stage before it: `(row, column)`.
    pub fn regressions(&self) -> Vec<(&Row, usize)> {
        let mut v = Vec::new();
        for r in &self.rows {
            for (c, ch) in r.changes.iter().enumerate() {
                if let Some(ch) = ch
                    && ch.significant
                    && !ch.better
                {
                    v.push((r, c));
                }
            }
        }
        v
    }
}

/// The change from `a` to `b` with its combined 95% interval.
pub fn change(a: &Cell, b: &Cell, higher_is_better: bool) -> Change {
    let half = |c: &Cell| ((c.hi - c.lo) / 2.0).max(0.0);
    let h = (half(a).powi(2) + half(b).powi(2)).sqrt();
    let delta = b.value - a.value;
    let (lo, hi) = (delta - h, delta + h);
    let significant = (lo > 0.0 || hi < 0.0) && hone_tasks::compare::testable(a.n, b.n);
    Change { delta, lo, hi, significant, better: (delta > 0.0) == higher_is_better && delta != 0.0 }
}

fn cell(m: &Metric) -> Cell {
    Cell { value: m.value, lo: m.lo, hi: m.hi, n: m.n }
}

/// Builds the table from the evaluations found in the run.
pub fn build_table(facts: &RunFacts) -> StageTable {
    let columns = facts.columns.clone();
    // Rows in the order tasks and metrics first appear, walking the stages in order.
    let mut keys: Vec<(String, String, Option<String>)> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    for (stage, _) in &columns {
        let mut results: Vec<_> = facts.evals[stage].iter().collect();
        results.sort_by(|a, b| a.task.cmp(&b.task));
        for r in results {
            let mut metrics: Vec<&Metric> = r.metrics.iter().collect();
            // Headline first, then the rest of the whole-task metrics, then groups.
            metrics.sort_by_key(|m| (m.group.is_some(), m.name != r.headline));
            for m in metrics {
                let key = (r.task.clone(), m.name.clone(), m.group.clone());
                if !keys.contains(&key) {
                    keys.push(key);
                    rows.push(Row {
                        task: r.task.clone(),
                        description: r.description.clone(),
                        metric: m.name.clone(),
                        group: m.group.clone(),
                        headline: m.name == r.headline && m.group.is_none(),
                        higher_is_better: m.higher_is_better,
                        cells: vec![None; columns.len()],
                        changes: vec![None; columns.len()],
                    });
                }
            }
        }
    }
    // Keep each task's rows together, tasks in name order.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| rows[a].task.cmp(&rows[b].task).then(a.cmp(&b)));
    let mut rows: Vec<Row> = order.into_iter().map(|i| rows[i].clone()).collect();
    for row in &mut rows {
        for (c, (stage, _)) in columns.iter().enumerate() {
            row.cells[c] = facts.evals[stage]
                .iter()
                .find(|r| r.task == row.task)
                .and_then(|r| r.metrics.iter().find(|m| m.name == row.metric && m.group == row.group))
                .map(cell);
        }
        let mut prev: Option<Cell> = None;
        for c in 0..columns.len() {
            if let (Some(a), Some(b)) = (&prev, &row.cells[c]) {
                row.changes[c] = Some(change(a, b, row.higher_is_better));
            }
            if row.cells[c].is_some() {
                prev = row.cells[c].clone();
            }
        }
    }
    StageTable { columns, rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(value: f64, half: f64) -> Cell {
        Cell { value, lo: value - half, hi: value + half, n: 100 }
    }

    #[test]
    fn a_change_counts_only_beyond_the_combined_interval() {
        // Half-widths 0.03 and 0.04 combine to 0.05.
        let ch = change(&c(0.50, 0.03), &c(0.56, 0.04), true);
        assert!((ch.delta - 0.06).abs() < 1e-12 && (ch.lo - 0.01).abs() < 1e-12);
        assert!(ch.significant && ch.better);
        let ch = change(&c(0.50, 0.03), &c(0.54, 0.04), true);
        assert!(!ch.significant);
        // Lower is better: a rise is a significant worsening.
        let ch = change(&c(0.10, 0.03), &c(0.20, 0.04), false);
        assert!(ch.significant && !ch.better);
        let tie = change(&c(0.3, 0.0), &c(0.3, 0.0), true);
        assert!(!tie.significant && !tie.better);
        // One item: a point interval, and no evidence whatever the change.
        let one = |v: f64| Cell { value: v, lo: v, hi: v, n: 1 };
        let ch = change(&one(1e-10), &one(2e-10), false);
        assert!(!ch.significant && !ch.better, "{ch:?}");
        assert!(change(&Cell { n: 5, ..one(1e-10) }, &Cell { n: 5, ..one(2e-10) }, false).significant);
    }
}
