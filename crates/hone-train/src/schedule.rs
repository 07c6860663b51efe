//! Learning-rate schedules as a multiplier of the peak rate: linear warmup, then cosine decay,
//! warmup-stable-decay (WSD, as in MiniCPM), or constant.

use crate::config::{OptimConfig, ScheduleKind};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    Cosine,
    Wsd { decay_fraction: f64 },
    Constant,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub shape: Shape,
    pub warmup_steps: u64,
    pub total_steps: u64,
    pub min_ratio: f64,
}

impl Schedule {
    pub fn from_config(c: &OptimConfig, total_steps: u64) -> anyhow::Result<Schedule> {
        let shape = match c.schedule {
            ScheduleKind::Cosine => Shape::Cosine,
            ScheduleKind::Wsd => Shape::Wsd { decay_fraction: c.decay_fraction },
            ScheduleKind::Constant => Shape::Constant,
        };
        Ok(Schedule { shape, warmup_steps: c.warmup_steps, total_steps, min_ratio: c.min_lr_ratio })
    }

    /// Multiplier of the peak learning rate for optimizer step `step` (0-based).
    pub fn multiplier(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return (step + 1) as f64 / self.warmup_steps as f64;
        }
        let total = self.total_steps.max(self.warmup_steps + 1);
        let floor = self.min_ratio;
        match self.shape {
            Shape::Constant => 1.0,
            Shape::Cosine => {
                let t = ((step - self.warmup_steps) as f64 / (total - 1 - self.warmup_steps).max(1) as f64).min(1.0);
                floor + (1.0 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Shape::Wsd { decay_fraction } => {
                let decay_steps = ((total as f64) * decay_fraction).round() as u64;
                let decay_start = total.saturating_sub(decay_steps).max(self.warmup_steps);
                if step < decay_start {
                    1.0
                } else {
                    let t = ((step - decay_start + 1) as f64 / (total - decay_start).max(1) as f64).min(1.0);
                    1.0 - (1.0 - floor) * t
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(shape: Shape) -> Schedule {
        Schedule { shape, warmup_steps: 10, total_steps: 100, min_ratio: 0.1 }
    }

    #[test]
    fn warmup_then_cosine_ends_at_floor() {
        let s = sched(Shape::Cosine);
        assert!((s.multiplier(0) - 0.1).abs() < 1e-12);
        assert!((s.multiplier(9) - 1.0).abs() < 1e-12);
        assert!((s.multiplier(10) - 1.0).abs() < 1e-12);
        assert!((s.multiplier(99) - 0.1).abs() < 1e-12);
        assert!((0..100).all(|i| (0.0..=1.0).contains(&s.multiplier(i))));
        assert!((10..99).all(|i| s.multiplier(i + 1) <= s.multiplier(i)));
    }

    #[test]
    fn wsd_is_flat_then_decays_linearly() {
        let s = sched(Shape::Wsd { decay_fraction: 0.2 });
        assert_eq!(s.multiplier(50), 1.0);
        assert_eq!(s.multiplier(79), 1.0);
        assert!(s.multiplier(80) < 1.0);
        assert!((s.multiplier(99) - 0.1).abs() < 1e-12);
        assert_eq!(sched(Shape::Constant).multiplier(99), 1.0);
    }
}
