//! Goals: `task.metric >= value` (or `<=`), checked against whole-task metrics of an evaluation.

use hone_eval::TaskResult;

/// Which side of the bound is good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    AtLeast,
    AtMost,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    pub task: String,
    pub metric: String,
    pub bound: Bound,
    pub value: f64,
}

impl Goal {
    /// Parses `task.metric >= 0.5`; the error quotes the goal and says what form it takes.
    pub fn parse(text: &str) -> anyhow::Result<Goal> {
        let bad = |why: &str| {
            anyhow::anyhow!(
                "iterate.goals: `{text}`: {why}; a goal reads `task.metric >= value` or `task.metric <= value`, \
                 e.g. `world_format_json.compliance >= 0.5`"
            )
        };
        let (lhs, bound, rhs) = if let Some((l, r)) = text.split_once(">=") {
            (l, Bound::AtLeast, r)
        } else if let Some((l, r)) = text.split_once("<=") {
            (l, Bound::AtMost, r)
        } else {
            return Err(bad("no `>=` or `<=`"));
        };
        let (task, metric) = lhs.trim().rsplit_once('.').ok_or_else(|| bad("no `.` between task and metric"))?;
        let value: f64 = rhs.trim().parse().map_err(|_| bad(&format!("`{}` is not a number", rhs.trim())))?;
        anyhow::ensure!(!task.is_empty() && !metric.is_empty(), bad("empty task or metric"));
        anyhow::ensure!(value.is_finite(), bad("the value is not finite"));
        Ok(Goal { task: task.to_string(), metric: metric.to_string(), bound, value })
    }

    /// The goal as written back.
    pub fn text(&self) -> String {
        let op = if self.bound == Bound::AtLeast { ">=" } else { "<=" };
        format!("{}.{} {op} {}", self.task, self.metric, self.value)
    }

    /// Whether `value` meets the goal.
    pub fn met(&self, value: f64) -> bool {
        match self.bound {
            Bound::AtLeast => value >= self.value,
            Bound::AtMost => value <= self.value,
        }
    }

    /// The goal's metric in `results`; an unknown task or metric is an error naming what there is.
    pub fn find<'a>(&self, results: &'a [TaskResult]) -> anyhow::Result<&'a hone_eval::Metric> {
        let Some(r) = results.iter().find(|r| r.task == self.task) else {
            let tasks: Vec<&str> = results.iter().map(|r| r.task.as_str()).collect();
            anyhow::bail!(
                "iterate.goals: `{}` names task `{}`, which the development split does not have (tasks: {})",
                self.text(),
                self.task,
                tasks.join(", ")
            );
        };
        r.metrics.iter().find(|m| m.name == self.metric && m.group.is_none()).ok_or_else(|| {
            let mut names: Vec<&str> =
                r.metrics.iter().filter(|m| m.group.is_none()).map(|m| m.name.as_str()).collect();
            names.dedup();
            anyhow::anyhow!(
                "iterate.goals: `{}` names metric `{}`, which task {} does not have (its metrics: {})",
                self.text(),
                self.metric,
                self.task,
                names.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_parse_and_bad_ones_say_why() {
        let g = Goal::parse("world_format_json.compliance >= 0.5").unwrap();
        assert_eq!(
            (g.task.as_str(), g.metric.as_str(), g.bound, g.value),
            ("world_format_json", "compliance", Bound::AtLeast, 0.5)
        );
        assert!(g.met(0.5) && !g.met(0.49));
        let g = Goal::parse("world_benign.over_refusal_rate<=0.1").unwrap();
        assert!(g.met(0.1) && !g.met(0.2));
        for (bad, why) in [("world_benign.rate = 3", "no `>=`"), ("arith >= 1", "no `.`"), ("a.b >= x", "not a number")]
        {
            let e = Goal::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(bad), "{e}");
        }
    }
}
