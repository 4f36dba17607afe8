//! PNG plots of an evaluation report (plotters on an RGB buffer, encoded with `png`): success
//! per task and condition with Wilson intervals, success per instruction template, and the
//! distribution of chunk-boundary jumps. Text is drawn with the embedded DejaVu Sans
//! (assets/fonts), so nothing depends on the fonts of the machine.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::eval::{Condition, EvalReport};

static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded plot font does not parse"))
    }
}

fn colour(c: Condition) -> RGBColor {
    match c {
        Condition::Policy => RGBColor(31, 119, 180),
        Condition::Paraphrase => RGBColor(44, 160, 44),
        Condition::Shuffled => RGBColor(214, 39, 40),
        Condition::NoPlan => RGBColor(148, 103, 189),
        Condition::Expert => RGBColor(127, 127, 127),
    }
}

fn perr<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the plot: {e:?}")
}

const W: u32 = 900;
const H: u32 = 480;

/// Draws with `draw` on a W×H white canvas and writes the PNG atomically.
fn save_png(
    path: &Path,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    register_font()?;
    let mut buf = vec![255u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        draw(&root)?;
        root.present().map_err(perr)?;
    }
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, W, H);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().context("encoding the plot")?;
        w.write_image_data(&buf).context("encoding the plot")?;
    }
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Success rate per task (groups) and condition (bars) with Wilson 95 % whiskers.
fn success_plot(r: &EvalReport, path: &Path) -> Result<()> {
    let mut tasks: Vec<&str> = r.summaries.iter().map(|s| s.task.as_str()).collect();
    tasks.dedup();
    tasks.sort_by_key(|t| (*t == "all", *t));
    tasks.dedup();
    let mut conds: Vec<Condition> = r.summaries.iter().map(|s| s.condition).collect();
    conds.sort();
    conds.dedup();
    let nt = tasks.len().max(1) as f64;
    let nc = conds.len().max(1) as f64;
    save_png(path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Success rate (Wilson 95 % interval)", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..nt, 0.0..1.05)
            .map_err(perr)?;
        let labels = tasks.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(tasks.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 0.01 {
                    labels.get(i).map_or(String::new(), |s| s.to_string())
                } else {
                    String::new()
                }
            })
            .y_desc("success rate")
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(perr)?;
        let width = 0.8 / nc;
        for (ci, &c) in conds.iter().enumerate() {
            let col = colour(c);
            let rows: Vec<(f64, f64, f64, f64)> = tasks
                .iter()
                .enumerate()
                .filter_map(|(ti, t)| {
                    let s = r
                        .summaries
                        .iter()
                        .find(|s| s.condition == c && s.task == *t)?;
                    let x0 = ti as f64 + 0.1 + ci as f64 * width;
                    Some((x0, s.success_rate, s.ci95_low, s.ci95_high))
                })
                .collect();
            chart
                .draw_series(rows.iter().map(|&(x0, y, _, _)| {
                    Rectangle::new([(x0, 0.0), (x0 + width * 0.9, y)], col.filled())
                }))
                .map_err(perr)?
                .label(c.name())
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], col.filled()));
            chart
                .draw_series(rows.iter().map(|&(x0, _, lo, hi)| {
                    let xc = x0 + width * 0.45;
                    PathElement::new(vec![(xc, lo), (xc, hi)], BLACK.stroke_width(2))
                }))
                .map_err(perr)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(perr)?;
        Ok(())
    })
}

/// Success per instruction template (T1, T2, … as numbered in the markdown table).
fn template_plot(r: &EvalReport, path: &Path, templates: &[String]) -> Result<()> {
    let conds: Vec<Condition> = [
        Condition::Policy,
        Condition::Paraphrase,
        Condition::Shuffled,
    ]
    .into_iter()
    .filter(|c| r.summaries.iter().any(|s| s.condition == *c))
    .collect();
    let n = templates.len().max(1) as f64;
    save_png(path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Success per instruction template", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..n, 0.0..1.05)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(templates.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 0.01 && i < templates.len() {
                    format!("T{}", i + 1)
                } else {
                    String::new()
                }
            })
            .y_desc("success rate")
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(perr)?;
        let width = 0.8 / conds.len().max(1) as f64;
        for (ci, &c) in conds.iter().enumerate() {
            let col = colour(c);
            let mut bars = Vec::new();
            for (ti, t) in templates.iter().enumerate() {
                let (mut n, mut k) = (0usize, 0usize);
                for s in r
                    .summaries
                    .iter()
                    .filter(|s| s.condition == c && s.task != "all")
                {
                    if let Some((a, b)) = s.templates.get(t) {
                        n += a;
                        k += b;
                    }
                }
                if n > 0 {
                    let x0 = ti as f64 + 0.1 + ci as f64 * width;
                    bars.push((x0, k as f64 / n as f64));
                }
            }
            chart
                .draw_series(bars.iter().map(|&(x0, y)| {
                    Rectangle::new([(x0, 0.0), (x0 + width * 0.9, y)], col.filled())
                }))
                .map_err(perr)?
                .label(c.name())
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], col.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(perr)?;
        Ok(())
    })
}

/// Empirical CDF of the chunk-boundary jumps per condition.
fn boundary_plot(r: &EvalReport, path: &Path) -> Result<()> {
    let mut conds: Vec<Condition> = r.results.iter().map(|e| e.condition).collect();
    conds.sort();
    conds.dedup();
    let series: Vec<(Condition, Vec<f64>)> = conds
        .into_iter()
        .map(|c| {
            let mut v: Vec<f64> = r
                .results
                .iter()
                .filter(|e| e.condition == c)
                .flat_map(|e| e.boundary_jumps_rad.iter().copied())
                .collect();
            v.sort_by(f64::total_cmp);
            (c, v)
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let xmax = series
        .iter()
        .map(|(_, v)| v[((v.len() as f64 * 0.99) as usize).min(v.len() - 1)])
        .fold(1e-3, f64::max)
        * 1.05;
    save_png(path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Chunk-boundary jump: max |new − old chunk| at the switch",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..xmax, 0.0..1.0)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_desc("jump (rad)")
            .y_desc("fraction of switches ≤ jump")
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(perr)?;
        for (c, v) in &series {
            let col = colour(*c);
            let n = v.len() as f64;
            chart
                .draw_series(LineSeries::new(
                    v.iter()
                        .enumerate()
                        .map(|(i, &x)| (x.min(xmax), (i + 1) as f64 / n)),
                    col.stroke_width(2),
                ))
                .map_err(perr)?
                .label(c.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], col.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(perr)?;
        Ok(())
    })
}

/// Writes the three plots next to `json` (`<stem>_success.png`, `<stem>_templates.png`,
/// `<stem>_boundary.png`); returns their file names.
pub fn write_plots(r: &EvalReport, json: &Path, templates: &[String]) -> Result<Vec<String>> {
    let stem = json
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("eval")
        .to_string();
    let dir = json.parent().unwrap_or(Path::new("."));
    let names = [
        format!("{stem}_success.png"),
        format!("{stem}_templates.png"),
        format!("{stem}_boundary.png"),
    ];
    success_plot(r, &dir.join(&names[0]))?;
    template_plot(r, &dir.join(&names[1]), templates)?;
    boundary_plot(r, &dir.join(&names[2]))?;
    Ok(names.to_vec())
}
