//! The loss curve of a stage (training loss and held-out loss against the step), drawn from
//! `metrics.jsonl` with plotters as SVG into the stage's folder (SVG only: a bitmap would need a font
//! rasteriser and the system font libraries behind it).

use crate::log::read_series;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Draws `<out_dir>/loss.svg`; returns its path.
pub fn loss_curve(metrics: &Path, stage: &str, out_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let train = read_series(metrics, stage, "train", "loss");
    let val = read_series(metrics, stage, "eval", "val_loss");
    let svg = out_dir.join("loss.svg");
    draw(SVGBackend::new(&svg, (900, 540)).into_drawing_area(), stage, &train, &val)
        .map_err(|e| anyhow::anyhow!("{}: {e}", svg.display()))?;
    Ok(vec![svg])
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    stage: &str,
    train: &[(u64, f64)],
    val: &[(u64, f64)],
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let all = || train.iter().chain(val).filter(|p| p.1.is_finite());
    let x_max = all().map(|p| p.0).max().unwrap_or(1).max(1);
    let y_min = all().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let y_max = all().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let (y_min, y_max) = if y_min.is_finite() { (y_min * 0.95, y_max * 1.02 + 1e-9) } else { (0.0, 1.0) };
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{stage}: loss (nats/token)"), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(0u64..x_max, y_min..y_max)?;
    chart.configure_mesh().x_desc("step").y_desc("loss").draw()?;
    chart
        .draw_series(LineSeries::new(train.iter().copied(), &BLUE))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(val.iter().copied(), RED.stroke_width(2)))?
        .label("held-out")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart.draw_series(val.iter().map(|&p| Circle::new(p, 3, RED.filled())))?;
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
    root.present()?;
    Ok(())
}
