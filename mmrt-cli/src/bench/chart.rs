//! The SVG chart of a [`Report`]: per-stage latency, one bar per execution
//! provider (median, with a min–max whisker), on a log scale so a 0.05 ms
//! projector and a 2 s decode share one picture. Drawn with `plotters`'
//! SVG backend only.

use plotters::prelude::*;

use super::stats::Summary;
use super::Report;
use mmrt::error::{Error, Result};

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 560;
/// One colour per provider, in report order (cycled).
const COLORS: [RGBColor; 4] = [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40)];

/// Per provider: its name and one latency per charted name (`None`: not run).
type Bars = Vec<(String, Vec<Option<Summary>>)>;

/// The latencies charted for each provider: every stage, then time to first
/// token and the per-token decode time.
fn latencies(report: &Report) -> (Vec<String>, Bars) {
    let mut names: Vec<String> = Vec::new();
    let measured: Vec<_> = report.providers.iter().filter_map(|p| p.figures.as_ref().map(|f| (p.ep, f))).collect();
    // Union of the providers' stages, each new one placed after its predecessor
    // in that provider's (pipeline) order.
    for (_, f) in &measured {
        let mut at = 0;
        for (name, _) in &f.stages_ms {
            match names.iter().position(|n| n == name) {
                Some(i) => at = i + 1,
                None => {
                    names.insert(at, name.clone());
                    at += 1;
                }
            }
        }
    }
    names.push("time_to_first_token".into());
    names.push("decode ms/token".into());
    let per_ep = measured
        .iter()
        .map(|(ep, f)| {
            let values = names
                .iter()
                .map(|n| match n.as_str() {
                    "time_to_first_token" => Some(f.time_to_first_token_ms.clone()),
                    "decode ms/token" => Some(f.decode_ms_per_token.clone()),
                    _ => f.stages_ms.iter().find(|(s, _)| s == n).map(|(_, s)| s.clone()),
                })
                .collect();
            (ep.cli_name().to_string(), values)
        })
        .collect();
    (names, per_ep)
}

/// Render the chart as an SVG document.
pub fn svg(report: &Report) -> Result<String> {
    let mut out = String::new();
    draw(report, &mut out).map_err(|e| Error::Bench(format!("drawing the chart: {e}")))?;
    Ok(out)
}

fn draw(report: &Report, out: &mut String) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let (names, per_ep) = latencies(report);
    let root = SVGBackend::with_string(out, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let env = &report.environment;
    let title = format!(
        "mmrt bench: {} ({}) · {} · onnxruntime {}",
        env.bundle, env.quantization, env.cpu_model, env.onnxruntime_version
    );
    let all = per_ep.iter().flat_map(|(_, v)| v.iter().flatten());
    let (lo, hi) = all.fold((f64::INFINITY, 0.0f64), |(lo, hi), s| (lo.min(s.min), hi.max(s.max)));
    let (lo, hi) = if lo.is_finite() && lo > 0.0 { (lo / 2.0, hi * 2.0) } else { (1e-3, 1.0) };

    let n = names.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(70)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_desc("milliseconds (median; whisker: min-max)")
        .draw()?;

    let groups = per_ep.len().max(1) as f64;
    let width = 0.8 / groups;
    for (j, (ep, values)) in per_ep.iter().enumerate() {
        let color = COLORS[j % COLORS.len()];
        let bars = values.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i, s))).map(|(i, s)| {
            let x0 = i as f64 + 0.1 + j as f64 * width;
            Rectangle::new([(x0, lo), (x0 + width * 0.9, s.median.max(lo))], color.filled())
        });
        chart.draw_series(bars)?.label(ep.as_str()).legend(move |(x, y)| {
            Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
        });
        let whiskers = values.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i, s))).map(|(i, s)| {
            let x = i as f64 + 0.1 + j as f64 * width + width * 0.45;
            PathElement::new(vec![(x, s.min.max(lo)), (x, s.max.max(lo))], BLACK.stroke_width(1))
        });
        chart.draw_series(whiskers)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    // Stage names under each group, in pixel coordinates below the plot.
    let style = TextStyle::from(("sans-serif", 13)).pos(plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Top,
    ));
    for (i, name) in names.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, lo));
        root.draw(&Text::new(name.clone(), (px, py + 8), style.clone()))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn chart_has_a_bar_per_provider_and_stage_and_every_label() {
        let report = crate::bench::sample_report();
        let svg = super::svg(&report).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for label in ["preprocess", "vision_encoder", "denoiser", "prefill", "decode", "time_to_first_token", "cpu", "cuda"] {
            assert!(svg.contains(&format!(">\n{label}\n<")) || svg.contains(&format!(">{label}<")), "no label {label}");
        }
        assert!(!svg.contains("coreml"), "a skipped provider has no bars");
        let at = |label: &str| svg.find(&format!("\n{label}\n")).unwrap_or_else(|| panic!("{label}"));
        assert!(at("vision_encoder") < at("denoiser") && at("denoiser") < at("prefill"), "pipeline order kept");
        // Each provider's bars are filled with its own colour.
        for color in ["#1F77B4", "#FF7F0E"] {
            assert!(svg.contains(&format!("fill=\"{color}\"")), "no bars in {color}");
        }
    }
}
