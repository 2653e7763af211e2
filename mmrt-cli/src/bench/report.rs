//! Renderings of a [`Report`]: a table for people (stdout), JSON with every
//! figure and sample, and CSV with one row per figure (environment repeated on
//! each row, so files from several machines concatenate into one table).

use super::device::Measured;
use super::stats::Summary;
use super::{Figures, ProviderResult, Report};

/// One figure of a provider, as every rendering lists them.
pub struct Row {
    /// Figure name (`load_cold`, a stage name, `decode`, ...).
    pub figure: String,
    /// Unit (`ms`, `tokens/s`, ...).
    pub unit: &'static str,
    /// Median, min, max.
    pub summary: Summary,
}

const MIB: f64 = (1u64 << 20) as f64;

/// The figures of one measured provider, in display order.
pub fn rows(f: &Figures, result: &ProviderResult) -> Vec<Row> {
    let row = |figure: &str, unit, summary: Summary| Row { figure: figure.to_string(), unit, summary };
    let single = |v: f64| Summary::from_samples(vec![v]).unwrap_or(Summary { median: v, min: v, max: v, samples: vec![v] });
    let mut rows = vec![
        row("runtime_init", "ms", single(f.runtime_init_ms)),
        row("load_cold", "ms", single(f.load_cold_ms)),
        row("load_warm", "ms", f.load_warm_ms.clone()),
    ];
    rows.extend(f.stages_ms.iter().map(|(name, s)| row(name, "ms", s.clone())));
    rows.push(row("prefill", "tokens/s", f.prefill_tokens_per_s.clone()));
    rows.push(row("time_to_first_token", "ms", f.time_to_first_token_ms.clone()));
    rows.push(row("decode", "tokens/s", f.decode_tokens_per_s.clone()));
    rows.push(row("decode", "ms/token", f.decode_ms_per_token.clone()));
    if let Some(p) = &f.token_latency_ms {
        for (name, v) in [("token_latency_p50", p.p50), ("token_latency_p95", p.p95), ("token_latency_p99", p.p99), ("token_latency_max", p.max)] {
            rows.push(row(name, "ms", single(v)));
        }
    }
    if let Some(v) = &f.video {
        rows.push(row("video_decode", "ms/request", v.decode_ms.clone()));
        rows.push(row("video_preprocess", "ms/frame", v.preprocess_ms_per_frame.clone()));
        rows.push(row("video_encode", "ms/frame", v.encode_ms_per_frame.clone()));
        rows.push(row("embedding_cache_hit_rate", "repeat", single(v.cache_hit_rate)));
        rows.push(row("encode_with_cache", "ms/request", single(v.cached_encode_ms)));
    }
    if let Some(b) = f.peak_rss_bytes {
        rows.push(row("peak_rss", "MiB", single(b as f64 / MIB)));
    }
    if let Some(b) = f.rss_after_load {
        rows.push(row("rss_after_load_anon", "MiB", single(b.anon_bytes as f64 / MIB)));
        rows.push(row("rss_after_load_file", "MiB", single(b.file_bytes as f64 / MIB)));
    }
    if let Some(Measured::Value(m)) = &f.device_memory {
        rows.push(row("device_memory_peak", "MiB", single(m.peak_bytes as f64 / MIB)));
    }
    if let Some(Measured::Value(bw)) = &f.device_bandwidth {
        rows.push(row("device_bandwidth", "GB/s", bw.bytes_per_s.map(|v| v / 1e9)));
    }
    if let Some(st) = &result.start {
        rows.push(row("start_to_first_token_warm", "ms", st.warm_ms.clone()));
        if let Some(cold) = &st.cold_ms {
            rows.push(row("start_to_first_token_cold", "ms", cold.clone()));
        }
    }
    if let Some(Measured::Value(r)) = &result.roofline {
        rows.push(row("decode_weight_read", "GB/s", single(r.achieved_bytes_per_s / 1e9)));
        rows.push(row("roofline_fraction", "of bandwidth", single(r.fraction)));
    }
    rows
}

/// The figures of a measured provider that are missing, each with why, and
/// a failure of its process after the figures were written:
/// `(figure, "not measured (why)" or "failed: why")`, in display order.
pub fn missing(result: &ProviderResult) -> Vec<(&'static str, String)> {
    let not = |figure, why: &str| (figure, format!("not measured ({why})"));
    let mut out = Vec::new();
    if let Some(f) = &result.figures {
        if let Some(why) = f.device_memory.as_ref().and_then(Measured::reason) {
            out.push(not("device_memory_peak", why));
        }
        if let Some(why) = f.device_bandwidth.as_ref().and_then(Measured::reason) {
            out.push(not("device_bandwidth", why));
        }
        if let Some(why) = &result.failed {
            out.push(("measuring_process", format!("failed: {why}")));
        }
    }
    if let Some(why) = &result.start_failed {
        out.push(("start_to_first_token", format!("failed: {why}")));
    }
    if let Some(why) = result.roofline.as_ref().and_then(Measured::reason) {
        out.push(not("roofline", why));
    }
    out
}

/// The human-readable table.
pub fn table(report: &Report) -> String {
    let env = &report.environment;
    let bw = &report.memory_bandwidth;
    let w = &report.decoder_weights;
    let mut out = String::new();
    let threads = env.threads.map_or("ONNX Runtime default".to_string(), |t| t.to_string());
    out += &format!(
        "mmrt bench · bundle {} ({}) · onnxruntime {} · {} · {} logical cores · threads {}\n",
        env.bundle, env.quantization, env.onnxruntime_version, env.cpu_model, env.logical_cores, threads
    );
    out += &format!(
        "request: {} new tokens (greedy, stop tokens ignored), {} image(s), {} video(s), {} warm-up + {} measured runs\n",
        report.settings.new_tokens,
        report.settings.images.len(),
        report.settings.videos.len(),
        report.settings.warmup,
        report.settings.runs
    );
    out += &format!(
        "memory bandwidth: {:.1} GB/s (copy probe, {} thread(s), {} MiB; min {:.1}, max {:.1})\n",
        bw.bytes_per_s.median / 1e9,
        bw.threads,
        bw.buffer_bytes >> 20,
        bw.bytes_per_s.min / 1e9,
        bw.bytes_per_s.max / 1e9
    );
    out += &format!(
        "decoder weights read per token: {:.2} MiB of {:.2} MiB ({} tensors in {}; tables looked up in count one row)\n",
        w.info.bytes_per_step as f64 / MIB,
        w.info.bytes as f64 / MIB,
        w.info.tensors,
        w.graph
    );
    for result in &report.providers {
        out += "\n";
        match &result.figures {
            None => out += &format!("{}: {}: {}\n", result.ep.cli_name(), result.status(), result.reason().unwrap_or_default()),
            Some(f) => {
                out += &format!(
                    "{} ({} prompt tokens)        {:>12} {:>12} {:>12}\n",
                    result.ep.cli_name(),
                    f.prompt_tokens,
                    "median",
                    "min",
                    "max"
                );
                for r in rows(f, result) {
                    let label = format!("  {} [{}]", r.figure, r.unit);
                    let s = &r.summary;
                    out += &format!("{label:<34} {:>12} {:>12} {:>12}\n", num(s.median), num(s.min), num(s.max));
                }
                for (figure, text) in missing(result) {
                    out += &format!("  {figure}: {text}\n");
                }
                for line in &f.nodes_on_cpu {
                    out += &format!("  nodes on the CPU: {line}\n");
                }
                if let Some(lib) = f.onnxruntime_library.as_ref().filter(|l| **l != env.onnxruntime_library) {
                    out += &format!("  onnxruntime library: {}\n", lib.display());
                }
            }
        }
    }
    out
}

/// The JSON document: the whole report plus, per provider, its `status`
/// (`measured`, `skipped` or `failed`; the reason is in `skipped` or `failed`)
/// and a flat `medians` map (figure name → median) for quick reading.
pub fn json(report: &Report) -> serde_json::Value {
    let mut value = serde_json::to_value(report).expect("the report serializes");
    if let Some(providers) = value.get_mut("providers").and_then(|p| p.as_array_mut()) {
        for (json, result) in providers.iter_mut().zip(&report.providers) {
            if let Some(obj) = json.as_object_mut() {
                obj.insert("status".into(), result.status().into());
            }
            if let (Some(f), Some(obj)) = (&result.figures, json.as_object_mut()) {
                let medians: serde_json::Map<_, _> = rows(f, result)
                    .into_iter()
                    .map(|r| (format!("{}_{}", r.figure, unit_key(r.unit)), serde_json::json!(r.summary.median)))
                    .collect();
                obj.insert("medians".into(), serde_json::Value::Object(medians));
            }
        }
    }
    value
}

/// CSV: one row per figure and provider; a skipped or failed provider gets one
/// row with the reason, a figure not measured one row with why.
pub fn csv(report: &Report) -> String {
    let env = &report.environment;
    let mut out = String::from(
        "bundle,quantization,cpu_model,logical_cores,threads,onnxruntime,ep,figure,unit,median,min,max,samples,note\n",
    );
    let prefix = [
        field(&env.bundle),
        field(&env.quantization),
        field(&env.cpu_model),
        env.logical_cores.to_string(),
        env.threads.map_or(String::new(), |t| t.to_string()),
        field(&env.onnxruntime_version),
    ]
    .join(",");
    for result in &report.providers {
        let ep = result.ep.cli_name();
        if let (None, Some(reason)) = (&result.figures, result.reason()) {
            out += &format!("{prefix},{ep},{},,,,,0,{}\n", result.status(), field(reason));
        }
        if let Some(f) = &result.figures {
            for r in rows(f, result) {
                let s = &r.summary;
                out += &format!(
                    "{prefix},{ep},{},{},{},{},{},{},\n",
                    field(&r.figure),
                    field(r.unit),
                    s.median,
                    s.min,
                    s.max,
                    s.samples.len()
                );
            }
            for (figure, text) in missing(result) {
                out += &format!("{prefix},{ep},{figure},,,,,0,{}\n", field(&text));
            }
        }
    }
    out
}

fn unit_key(unit: &str) -> String {
    unit.replace('/', "_per_").replace(' ', "_")
}

/// Quote a CSV field when it holds a comma, quote or newline.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Four significant digits, without exponent for ordinary magnitudes.
fn num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        return "0.000".into();
    }
    if (0.001..1e7).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(num(1234.5678), "1235");
        assert_eq!(num(12.345678), "12.35");
        assert_eq!(num(0.0123456), "0.01235");
        assert_eq!(num(0.0), "0.000");
    }

    #[test]
    fn every_provider_appears_in_every_rendering() {
        let report = crate::bench::sample_report();
        let table = table(&report);
        assert!(table.contains("cpu (27 prompt tokens)") && table.contains("cuda (27 prompt tokens)"), "{table}");
        assert!(table.contains("coreml: skipped: not in this build"), "{table}");
        assert!(table.contains("tensorrt: failed: loading the decoder: TensorRT could not build an engine"), "{table}");
        let cuda_section = &table[table.find("cuda (").unwrap()..table.find("coreml:").unwrap()];
        for row in ["device_memory_peak [MiB]", "device_bandwidth [GB/s]", "roofline_fraction"] {
            assert!(cuda_section.contains(row), "cuda lacks {row}: {table}");
        }
        assert!(!table[..table.find("cuda (").unwrap()].contains("device_"), "no device rows for the CPU: {table}");
        assert!(table.contains("denoiser [ms]"), "a stage only one provider ran is listed: {table}");

        let csv = csv(&report);
        let header_len = csv.lines().next().unwrap().split(',').count();
        // The CPU model holds a comma: quoted, so every row keeps the header's column count.
        for line in csv.lines() {
            let mut fields = 0;
            let mut quoted = false;
            for c in line.chars() {
                match c {
                    '"' => quoted = !quoted,
                    ',' if !quoted => fields += 1,
                    _ => {}
                }
            }
            assert_eq!(fields + 1, header_len, "{line}");
        }
        assert!(csv.contains(",coreml,skipped,"), "{csv}");
        assert!(csv.contains(",tensorrt,failed,,,,,0,loading the decoder"), "{csv}");
        assert!(csv.contains(",cuda,device_bandwidth,GB/s,2000,"), "{csv}");
        assert!(csv.contains(",cuda,denoiser,ms,"), "{csv}");

        let json = json(&report);
        assert_eq!(json["providers"][1]["figures"]["stages_ms"]["denoiser"]["median"], 2.5);
        assert_eq!(json["providers"][2]["skipped"], "not in this build");
        assert!(json["providers"][2].get("medians").is_none());
        let fraction = json["providers"][0]["medians"]["roofline_fraction_of_bandwidth"].as_f64().unwrap();
        assert!((fraction - 400_000.0 * 4000.0 / 8e9).abs() < 1e-12);
        let statuses: Vec<&str> = (0..4).map(|i| json["providers"][i]["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["measured", "measured", "skipped", "failed"]);
        assert_eq!(json["providers"][3]["failed"], "loading the decoder: TensorRT could not build an engine");
        // A GPU provider's roofline divides by its device bandwidth, not the host's.
        let cuda = &json["providers"][1];
        assert_eq!(cuda["roofline"]["bandwidth_of"], crate::bench::Roofline::DEVICE);
        assert_eq!(cuda["roofline"]["bandwidth_bytes_per_s"], 2e12);
        assert_eq!(json["providers"][0]["roofline"]["bandwidth_of"], crate::bench::Roofline::HOST);
        assert_eq!(cuda["figures"]["device_memory"]["peak_bytes"], 600u64 << 20);
        assert_eq!(cuda["medians"]["device_memory_peak_MiB"], 600.0);
    }

    #[test]
    fn gpu_figures_not_measured_say_why_and_leave_no_roofline() {
        use crate::bench::{device, Roofline};
        let mut report = crate::bench::sample_report();
        let cuda = &mut report.providers[1];
        let f = cuda.figures.as_mut().unwrap();
        f.device_bandwidth = Some(device::Measured::not("no CUDA provider"));
        f.device_memory = Some(device::Measured::not("nvidia-smi could not run"));
        f.onnxruntime_library = Some("/gpu/libonnxruntime.so".into());
        f.nodes_on_cpu = vec!["decoder: 3 of 200 nodes on CPUExecutionProvider".into()];
        cuda.roofline = Some(Roofline::for_provider(cuda.ep, f, 400_000, 8e9));
        cuda.start_failed = Some("the start-up probe failed".into());

        let table = table(&report);
        for line in [
            "  device_memory_peak: not measured (nvidia-smi could not run)",
            "  device_bandwidth: not measured (no CUDA provider)",
            "  start_to_first_token: failed: the start-up probe failed",
            "  roofline: not measured (device bandwidth not measured: no CUDA provider)",
            "  onnxruntime library: /gpu/libonnxruntime.so",
            "  nodes on the CPU: decoder: 3 of 200 nodes on CPUExecutionProvider",
        ] {
            assert!(table.lines().any(|l| l == line), "table lacks {line:?}:\n{table}");
        }
        let cuda_section = &table[table.find("cuda (").unwrap()..table.find("coreml:").unwrap()];
        assert!(!cuda_section.contains("roofline_fraction"), "no roofline against the host bandwidth: {table}");

        let json = json(&report);
        assert_eq!(json["providers"][1]["roofline"]["not_measured"], "device bandwidth not measured: no CUDA provider");
        assert_eq!(json["providers"][1]["figures"]["device_bandwidth"]["not_measured"], "no CUDA provider");
        assert!(json["providers"][1]["medians"].get("roofline_fraction_of_bandwidth").is_none());
        assert!(csv(&report).contains(",cuda,device_bandwidth,,,,,0,not measured (no CUDA provider)"));
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
