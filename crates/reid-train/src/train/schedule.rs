//! The learning rate at each step: linear warm-up from `warmup_factor * lr`, then either a step
//! schedule (times `gamma` at each milestone epoch, as the bag-of-tricks baseline) or a cosine
//! decay to 0 at the end of the last epoch. Fractional epochs make the warm-up and the cosine
//! smooth within an epoch.

use super::config::{OptimConfig, Schedule};

/// Learning rate at `epoch + step / steps_per_epoch` of a run of `epochs` epochs.
pub fn learning_rate(
    config: &OptimConfig,
    epochs: usize,
    epoch: usize,
    step: usize,
    steps_per_epoch: usize,
) -> f64 {
    let t = epoch as f64 + step as f64 / steps_per_epoch.max(1) as f64;
    let warm = config.warmup_epochs;
    if t < warm {
        let f = config.warmup_factor;
        return config.lr * (f + (1.0 - f) * t / warm);
    }
    match config.schedule {
        Schedule::Step => {
            let passed = config.milestones.iter().filter(|&&m| epoch >= m).count();
            config.lr * config.gamma.powi(passed as i32)
        }
        Schedule::Cosine => {
            let span = (epochs as f64 - warm).max(1e-9);
            let progress = ((t - warm) / span).clamp(0.0, 1.0);
            config.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_then_steps_at_the_milestones() {
        let c = OptimConfig::default(); // 3.5e-4, 10 warm-up epochs from 1%, steps at 40 and 70
        let lr = |e, s| learning_rate(&c, 120, e, s, 10);
        assert!((lr(0, 0) - 3.5e-6).abs() < 1e-12);
        assert!((lr(5, 0) - 3.5e-4 * 0.505).abs() < 1e-12);
        assert!((lr(10, 0) - 3.5e-4).abs() < 1e-12);
        assert!((lr(39, 9) - 3.5e-4).abs() < 1e-12);
        assert!((lr(40, 0) - 3.5e-5).abs() < 1e-12);
        assert!((lr(119, 9) - 3.5e-6).abs() < 1e-12);
    }

    #[test]
    fn cosine_falls_from_the_base_rate_to_zero() {
        let c = OptimConfig {
            schedule: Schedule::Cosine,
            warmup_epochs: 0.0,
            ..OptimConfig::default()
        };
        let lr = |e, s| learning_rate(&c, 20, e, s, 4);
        assert!((lr(0, 0) - 3.5e-4).abs() < 1e-12);
        assert!((lr(10, 0) - 1.75e-4).abs() < 1e-12);
        let mut last = f64::INFINITY;
        for e in 0..20 {
            for s in 0..4 {
                assert!(lr(e, s) <= last);
                last = lr(e, s);
            }
        }
        assert!(last < 1e-5);
    }
}
