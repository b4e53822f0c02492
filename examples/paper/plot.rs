//! Density pictures for the 2-D tasks: true posterior, Gaussian-base flow, GMM-base flow.

use crate::suite::RunResult;
use lwflow::Flow;
use lwflow_tasks::{Task, BOX};
use plotters::prelude::*;
use std::path::Path;

const GRID: usize = 160;
const PANEL: u32 = 360;

/// Registers DejaVu Sans for labels if the system has it (Debian's fonts-dejavu-core);
/// without it the panels are drawn unlabelled.
pub fn register_font() -> bool {
    let path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
        }
        Err(_) => false,
    }
}

/// Density on the grid's cell centres, row-major from the top (θ₂ = +6) down.
fn density_grid(mut f: impl FnMut(&[f32], &mut [f32])) -> Vec<f64> {
    let h = 2.0 * BOX / GRID as f64;
    let mut out = Vec::with_capacity(GRID * GRID);
    let mut row = vec![0.0f32; 2 * GRID];
    let mut lp = vec![0.0f32; GRID];
    for r in 0..GRID {
        let y = BOX - (r as f64 + 0.5) * h;
        for c in 0..GRID {
            row[2 * c] = (-BOX + (c as f64 + 0.5) * h) as f32;
            row[2 * c + 1] = y as f32;
        }
        f(&row, &mut lp);
        out.extend(lp.iter().map(|&v| (v as f64).exp()));
    }
    out
}

fn flow_grid(run: &RunResult) -> Vec<f64> {
    let flow = Flow::new(run.shape, &run.params).expect("trained model");
    let mut ws = vec![0.0f32; run.shape.eval_workspace_len()];
    density_grid(|x, out| flow.log_prob(x, out, &mut ws).expect("log_prob"))
}

fn truth_grid(task: Task) -> Vec<f64> {
    density_grid(|x, out| {
        for (o, t) in out.iter_mut().zip(x.chunks(2)) {
            *o = task.log_posterior(&[t[0] as f64, t[1] as f64]) as f32;
        }
    })
}

/// Writes `<dir>/<task>.png` with the three densities on a common colour scale (the true
/// posterior's peak = darkest).
pub fn picture(
    task: Task,
    gaussian: &RunResult,
    mixture: &RunResult,
    dir: &Path,
    labels: bool,
) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{}.png", task.name()));
    let panels = [
        (format!("{}: true posterior", task.name()), truth_grid(task)),
        (
            format!(
                "Gaussian base: KL {:.3}, bridge {:.1}%",
                gaussian.kl,
                100.0 * gaussian.bridge
            ),
            flow_grid(gaussian),
        ),
        (
            format!(
                "auto GMM(K={}) base: KL {:.3}, bridge {:.1}%",
                mixture.shape.components(),
                mixture.kl,
                100.0 * mixture.bridge
            ),
            flow_grid(mixture),
        ),
    ];
    let peak = panels[0].1.iter().cloned().fold(0.0, f64::max);
    {
        let root = BitMapBackend::new(&path, (3 * PANEL, PANEL + if labels { 28 } else { 0 }))
            .into_drawing_area();
        root.fill(&WHITE)?;
        let areas = root.split_evenly((1, 3));
        for (area, (title, grid)) in areas.iter().zip(&panels) {
            let area = if labels {
                area.titled(title, ("sans-serif", 15))?
            } else {
                area.clone()
            };
            let cell = (PANEL as f64 / GRID as f64).ceil() as i32 + 1;
            for (i, &v) in grid.iter().enumerate() {
                let (r, c) = ((i / GRID) as i32, (i % GRID) as i32);
                // sqrt scale so the low-density bridges stay visible.
                let t = (v / peak).clamp(0.0, 1.0).sqrt();
                let color = colour(t);
                let (x0, y0) = (
                    c * PANEL as i32 / GRID as i32,
                    r * PANEL as i32 / GRID as i32,
                );
                area.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell, y0 + cell)],
                    color.filled(),
                ))?;
            }
        }
        root.present()?;
    }
    Ok(path)
}

/// White → blue → near-black.
fn colour(t: f64) -> RGBColor {
    let lerp = |a: f64, b: f64, s: f64| (a + (b - a) * s).round() as u8;
    if t < 0.5 {
        let s = t / 0.5;
        RGBColor(
            lerp(255.0, 40.0, s),
            lerp(255.0, 110.0, s),
            lerp(255.0, 200.0, s),
        )
    } else {
        let s = (t - 0.5) / 0.5;
        RGBColor(
            lerp(40.0, 10.0, s),
            lerp(110.0, 20.0, s),
            lerp(200.0, 60.0, s),
        )
    }
}
