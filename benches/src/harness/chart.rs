//! The PNG chart of a run: requests/s per variant at each connection count,
//! and server CPU per request. Text is drawn with a font compiled into the
//! binary (Ubuntu Light, from `epaint_default_fonts`), so the chart needs no
//! system fonts or fontconfig.

use super::report::{Report, fmt_us};
use anyhow::anyhow;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use std::path::Path;
use std::sync::Once;

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 760;
/// One colour per connection count (64, 1, ...).
const SERIES_COLOURS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
];

/// Registers the bundled font as plotters' `sans-serif`. plotters is built
/// with its `ab_glyph` feature (no system fonts), so every process that draws
/// with it, criterion's report plots included, must call this first.
pub fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // Cannot fail: the bytes are a valid TrueType font.
            let _ = register_font("sans-serif", style, epaint_default_fonts::UBUNTU_LIGHT);
        }
    });
}

/// Draws the chart of `report` into `path` (PNG).
pub fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    register_fonts();
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let (title, body) = root.split_vertically(80);
    title
        .draw(&Text::new(
            "Flint vs wasmtime serve vs native hyper: hello over HTTP on loopback (wrk)",
            (20, 10),
            ("sans-serif", 22).into_font(),
        ))
        .map_err(|e| anyhow!("{e}"))?;
    let grey = RGBColor(90, 90, 90);
    for (i, line) in [report.machine_line(), report.versions_line()]
        .iter()
        .enumerate()
    {
        title
            .draw(&Text::new(
                truncate(line, 190),
                (20, 40 + 17 * i as i32),
                ("sans-serif", 14).into_font().color(&grey),
            ))
            .map_err(|e| anyhow!("{e}"))?;
    }

    let (left, right) = body.split_horizontally(WIDTH * 3 / 5);
    let keys: Vec<(char, &str)> = {
        let mut keys: Vec<(char, &str)> = Vec::new();
        for s in &report.summaries {
            if !keys.iter().any(|(k, _)| *k == s.key) {
                keys.push((s.key, s.name));
            }
        }
        keys
    };
    let labels: Vec<String> = keys.iter().map(|(k, n)| format!("({k}) {n}")).collect();
    // The narrower panel names variants by key only; the wide one spells them out.
    let short_labels: Vec<String> = keys.iter().map(|(k, _)| format!("({k})")).collect();
    let connections = &report.settings.connections;

    // Left: requests/s, one bar per connection count.
    let max_rps = report
        .summaries
        .iter()
        .map(|s| s.rps)
        .fold(0.0, f64::max)
        .max(1.0);
    bars(
        &left,
        "requests/s (median over rounds)",
        &labels,
        max_rps * 1.15,
        connections
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let values = keys
                    .iter()
                    .map(|(k, _)| report.summary(*k, c).map(|s| s.rps))
                    .collect();
                (connections_label(c), SERIES_COLOURS[i % 3], values)
            })
            .collect(),
        |v| format!("{:.1}k", v / 1000.0),
    )?;

    // Right: server CPU per request at the first (highest) connection count.
    let c = connections.first().copied().unwrap_or(64);
    let cpu: Vec<Option<f64>> = keys
        .iter()
        .map(|(k, _)| report.summary(*k, c).map(|s| s.cpu_us_per_request))
        .collect();
    let max_cpu = cpu.iter().flatten().copied().fold(0.0, f64::max).max(1.0);
    bars(
        &right,
        &format!("server CPU per request ({})", connections_label(c)),
        &short_labels,
        max_cpu * 1.15,
        vec![(connections_label(c), SERIES_COLOURS[0], cpu)],
        fmt_us,
    )?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

type Series = (String, RGBColor, Vec<Option<f64>>);

/// A grouped bar chart: one group per label, one bar per series.
fn bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    labels: &[String],
    y_max: f64,
    series: Vec<Series>,
    value_label: impl Fn(f64) -> String,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let n = labels.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 17))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n as f64, 0f64..y_max)
        .map_err(|e| anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            // Labels sit at group centres (i + 0.5).
            let i = (x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| value_label(*y))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;

    let per_group = series.len().max(1) as f64;
    let bar_width = 0.8 / per_group;
    for (s, (name, colour, values)) in series.iter().enumerate() {
        let colour = *colour;
        let rects = values.iter().enumerate().filter_map(|(i, v)| {
            let v = (*v)?;
            let x0 = i as f64 + 0.1 + s as f64 * bar_width;
            Some(Rectangle::new(
                [(x0, 0.0), (x0 + bar_width * 0.95, v)],
                colour.filled(),
            ))
        });
        chart
            .draw_series(rects)
            .map_err(|e| anyhow!("{e:?}"))?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
        let texts = values.iter().enumerate().filter_map(|(i, v)| {
            let v = (*v)?;
            let x0 = i as f64 + 0.1 + s as f64 * bar_width;
            Some(Text::new(
                value_label(v),
                (x0, v + y_max * 0.015),
                ("sans-serif", 12).into_font(),
            ))
        });
        chart.draw_series(texts).map_err(|e| anyhow!("{e:?}"))?;
    }
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|e| anyhow!("{e:?}"))?;
    }
    Ok(())
}

fn connections_label(c: u32) -> String {
    if c == 1 {
        "1 connection".into()
    } else {
        format!("{c} connections")
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}
