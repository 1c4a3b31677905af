//! The SVG plot: start-latency distributions (one curve per subject, runtime and kind) and the
//! kubelets' CPU and memory and the runtimes' memory against pod count. A subject keeps its colour on every runtime; the
//! first runtime draws solid lines and circles, the others dashed lines and triangles.

use crate::error::{BenchError, Result};
use crate::report::SubjectSummary;
use crate::results::SessionResult;
use plotters::prelude::*;
use std::path::Path;

const PALETTE: [RGBColor; 6] = [
    RGBColor(0x33, 0x33, 0x33),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
];

/// How one summary's curves look: its subject's colour, its runtime's stroke.
#[derive(Clone, Copy)]
struct Look {
    color: RGBColor,
    /// Not the first runtime: dashed lines, triangles.
    other_runtime: bool,
}

/// The look of each summary, in order.
fn looks(summaries: &[SubjectSummary]) -> Vec<Look> {
    let mut subjects: Vec<&str> = Vec::new();
    for s in summaries {
        if !subjects.contains(&s.subject.as_str()) {
            subjects.push(&s.subject);
        }
    }
    let first_runtime = summaries.first().map(|s| s.runtime.as_str());
    summaries
        .iter()
        .map(|s| Look {
            color: PALETTE
                [subjects.iter().position(|x| *x == s.subject).unwrap_or(0) % PALETTE.len()],
            other_runtime: Some(s.runtime.as_str()) != first_runtime,
        })
        .collect()
}

/// One curve of the latency panel: sorted samples of one subject on one runtime.
struct Distribution {
    name: String,
    look: Look,
    /// Few samples (one pod, K repeats) read better as points than as a line.
    points_only: bool,
    sorted_ms: Vec<f64>,
}

fn distributions(summaries: &[SubjectSummary], sessions: &[SessionResult]) -> Vec<Distribution> {
    let mut out = Vec::new();
    for (summary, look) in summaries.iter().zip(looks(summaries)) {
        let mine = || {
            sessions
                .iter()
                .filter(|s| s.subject == summary.subject && s.runtime == summary.runtime)
        };
        let single: Vec<f64> = mine().flat_map(|s| s.single_ms.iter().copied()).collect();
        let burst: Vec<f64> = mine()
            .flat_map(|s| s.burst.iter().flat_map(|b| b.latencies_ms.iter().copied()))
            .collect();
        for (kind, mut samples, points_only) in [("one pod", single, true), ("burst", burst, false)]
        {
            if samples.is_empty() {
                continue;
            }
            samples.sort_by(f64::total_cmp);
            out.push(Distribution {
                name: format!("{}: {kind}", summary.label),
                look,
                points_only,
                sorted_ms: samples,
            });
        }
    }
    out
}

/// Draws the plot to `path`.
pub fn draw(path: &Path, summaries: &[SubjectSummary], sessions: &[SessionResult]) -> Result<()> {
    let failed = |err: &dyn std::fmt::Display| BenchError::Output {
        path: path.to_path_buf(),
        reason: err.to_string(),
    };
    let root = SVGBackend::new(path, (2000, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let panels = root.split_evenly((1, 4));

    latency_panel(&panels[0], &distributions(summaries, sessions)).map_err(|e| failed(&e))?;
    let cpu = |s: &SubjectSummary| -> Vec<(f64, f64)> {
        s.steady
            .iter()
            .map(|p| (p.pods as f64, p.cpu_cores * 1000.0))
            .collect()
    };
    let rss = |s: &SubjectSummary| -> Vec<(f64, f64)> {
        s.steady
            .iter()
            .map(|p| (p.pods as f64, p.rss_mib_mean))
            .collect()
    };
    cost_panel(&panels[1], summaries, "kubelet CPU", "millicores", &cpu).map_err(|e| failed(&e))?;
    // The same runtime under every kubelet: its memory tells the runtimes apart, not the kubelets.
    let runtime_rss = |s: &SubjectSummary| -> Vec<(f64, f64)> {
        s.steady
            .iter()
            .filter(|p| p.runtime_processes > 0.0)
            .map(|p| (p.pods as f64, p.runtime_rss_mib_mean))
            .collect()
    };
    cost_panel(&panels[2], summaries, "kubelet RSS", "MiB", &rss).map_err(|e| failed(&e))?;
    cost_panel(
        &panels[3],
        summaries,
        "runtime RSS (daemon + shims/monitors)",
        "MiB",
        &runtime_rss,
    )
    .map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// Cumulative distributions: the share of pods running by each latency.
fn latency_panel(area: &Area<'_>, curves: &[Distribution]) -> DrawResult {
    let max = curves
        .iter()
        .filter_map(|c| c.sorted_ms.last().copied())
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption("pod start latency (CDF)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(0.0..max * 1.05, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("ms from manifest written to running")
        .y_desc("share of pods")
        .draw()?;
    for curve in curves {
        let n = curve.sorted_ms.len() as f64;
        let points: Vec<(f64, f64)> = curve
            .sorted_ms
            .iter()
            .enumerate()
            .map(|(i, ms)| (*ms, (i + 1) as f64 / n))
            .collect();
        if curve.points_only {
            points_series(&mut chart, points, curve.look, 3, Some(&curve.name))?;
        } else {
            line_series(&mut chart, points, curve.look, Some(&curve.name))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
}

fn cost_panel(
    area: &Area<'_>,
    summaries: &[SubjectSummary],
    title: &str,
    unit: &str,
    series: &dyn Fn(&SubjectSummary) -> Vec<(f64, f64)>,
) -> DrawResult {
    let all: Vec<(f64, f64)> = summaries.iter().flat_map(series).collect();
    let max_x = all.iter().map(|p| p.0).fold(1.0, f64::max);
    let max_y = all.iter().map(|p| p.1).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{title} against pods running"), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_x * 1.05, 0.0..max_y * 1.15)?;
    chart.configure_mesh().x_desc("pods").y_desc(unit).draw()?;
    for (summary, look) in summaries.iter().zip(looks(summaries)) {
        let points = series(summary);
        if points.is_empty() {
            continue;
        }
        line_series(&mut chart, points.clone(), look, Some(&summary.label))?;
        points_series(&mut chart, points, look, 4, None)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A line through `points`: solid on the first runtime, dashed on the others; with a legend
/// entry that looks the same when `label` is given.
fn line_series<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    points: Vec<(f64, f64)>,
    look: Look,
    label: Option<&str>,
) -> DrawResult {
    let Look {
        color,
        other_runtime,
    } = look;
    let style = color.stroke_width(2);
    let anno = if other_runtime {
        chart.draw_series(DashedLineSeries::new(points, 6, 4, style))?
    } else {
        chart.draw_series(LineSeries::new(points, style))?
    };
    if let Some(label) = label {
        // A short stroke stands for a dashed line.
        let length = if other_runtime { 8 } else { 20 };
        anno.label(label).legend(move |(x, y)| {
            PathElement::new([(x, y), (x + length, y)], color.stroke_width(2))
        });
    }
    Ok(())
}

/// Markers at `points`: circles on the first runtime, triangles on the others; with a legend
/// entry when `label` is given.
fn points_series<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    points: Vec<(f64, f64)>,
    look: Look,
    size: i32,
    label: Option<&str>,
) -> DrawResult {
    let Look {
        color,
        other_runtime,
    } = look;
    let style = color.stroke_width(2);
    let anno = if other_runtime {
        chart.draw_series(
            points
                .into_iter()
                .map(|p| TriangleMarker::new(p, size + 1, style)),
        )?
    } else {
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, size, style)))?
    };
    if let Some(label) = label {
        anno.label(label).legend(move |(x, y)| {
            if other_runtime {
                TriangleMarker::new((x + 10, y), 4, color.stroke_width(2)).into_dyn()
            } else {
                Circle::new((x + 10, y), 3, color.stroke_width(2)).into_dyn()
            }
        });
    }
    Ok(())
}
