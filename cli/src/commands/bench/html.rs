//! The HTML page of a `flint bench` report: one self-contained file (inline
//! CSS and SVG charts, no script but the report's own JSON, no URL at all)
//! that a browser opens from disk.
//!
//! It reads the `--json` report loosely: a missing or null field shows as
//! "—", never as a panic.

use super::human_us;
use crate::output::human_size;
use serde_json::Value;

const STYLE: &str = "body{font-family:sans-serif;margin:2em auto;max-width:960px;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #999;padding:.3em .6em}
td{text-align:right}td:first-child{text-align:left}th{background:#eee}
td.skipped{color:#777;font-style:italic;text-align:left}dt{font-weight:bold}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}
.failure{border:3px solid #c00;background:#fee;padding:.5em 1em;white-space:pre-wrap}
.failure{font-size:1.2em}svg{font-size:12px;display:block;margin:1em 0}
.grid{stroke:#ddd}.axis{stroke:#333}";

/// Width of both charts, in pixels.
const W: f64 = 860.0;

/// The colour of a start kind or load mode: fixed for known names, else by position.
fn colour(name: &str, i: usize) -> &'static str {
    const KNOWN: [&str; 5] = ["disk", "fresh", "warm", "cold", "reuse"];
    const PALETTE: [&str; 6] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    ];
    PALETTE[KNOWN.iter().position(|k| *k == name).unwrap_or(i) % PALETTE.len()]
}

/// Escapes text for HTML content and quoted attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A JSON value as escaped text; "—" for null or missing.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => esc(s),
        other => esc(&other.to_string()),
    }
}

/// The elements of a JSON array; none for anything else.
fn arr(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// A JSON object as escaped `key{sep}value` pairs joined by commas; "—" otherwise.
fn pairs(v: &Value, sep: &str) -> String {
    let pair = |(k, v): (&String, &Value)| format!("{}{sep}{}", esc(k), text(v));
    let items: Option<Vec<_>> = v.as_object().map(|o| o.iter().map(pair).collect());
    items.map_or("—".into(), |i| i.join(", "))
}

/// Microseconds in the unit that suits them: `(value, unit)`.
fn in_unit(v: f64) -> (f64, &'static str) {
    if v < 1e3 {
        (v, "µs")
    } else if v < 1e6 {
        (v / 1e3, "ms")
    } else {
        (v / 1e6, "s")
    }
}

/// Microseconds as an axis label: `10 µs`, `2 ms`, `1 s`.
fn us_tick(v: f64) -> String {
    let (n, unit) = in_unit(v);
    format!("{} {unit}", short(n))
}

/// A JSON number of microseconds as [`us`]; "—" otherwise.
fn us_of(v: &Value) -> String {
    v.as_f64().map_or("—".into(), human_us)
}

/// A JSON number of bytes as B, KiB, MiB or GiB; "—" otherwise.
fn bytes_of(v: &Value) -> String {
    v.as_u64().map_or("—".into(), human_size)
}

/// A number with at most two decimals, trailing zeros dropped.
fn short(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Ticks from 0 in steps of 1, 2 or 5 times a power of ten; the last one is
/// at or above `max`.
fn linear_ticks(max: f64) -> Vec<f64> {
    let max = if max > 0.0 { max } else { 1.0 };
    let raw = max / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let steps = [1.0, 2.0, 5.0, 10.0].map(|m| m * mag);
    let step = *steps.iter().find(|s| **s >= raw).unwrap_or(&steps[3]);
    let n = (max / step - 1e-9).ceil() as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

/// A log scale over the whole decades `lo ..= hi` around `min ..= max` (both
/// positive) onto `x0 ..= x1`: `(lo, hi, mapping)`.
fn log_scale(min: f64, max: f64, x0: f64, x1: f64) -> (i32, i32, impl Fn(f64) -> f64) {
    let lo = min.log10().floor() as i32;
    let hi = (max.log10().ceil() as i32).max(lo + 1);
    let span = f64::from(hi - lo);
    (lo, hi, move |v: f64| {
        x0 + (v.log10() - f64::from(lo)) / span * (x1 - x0)
    })
}

/// Opens an `<svg>` of the charts' width and height `h`.
fn svg_open(id: &str, h: f64) -> String {
    format!(r#"<svg id="{id}" width="{W}" height="{h}" viewBox="0 0 {W} {h}" aria-label="{id}">"#)
}

/// A `<line>` from `(x1, y1)` to `(x2, y2)` with more attributes.
fn line(x1: f64, y1: f64, x2: f64, y2: f64, attrs: &str) -> String {
    format!(r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" {attrs}/>"#)
}

/// A `<text>` at `(x, y)`, anchored `start`, `middle` or `end`; `s` is escaped.
fn label(x: f64, y: f64, anchor: &str, s: &str) -> String {
    let s = esc(s);
    format!(r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}">{s}</text>"#)
}

/// A row of coloured squares with names, from `x` at baseline `y`.
fn legend<'a>(names: impl Iterator<Item = &'a str>, x: f64, y: f64) -> String {
    let mut out = String::new();
    for (i, name) in names.enumerate() {
        let (x, top, fill) = (x + 120.0 * i as f64, y - 11.0, colour(name, i));
        out += &format!(r#"<rect x="{x}" y="{top}" width="12" height="12" fill="{fill}"/>"#);
        out += &label(x + 16.0, y, "start", name);
    }
    out
}

/// The `q` quantile (0..=1) of sorted, non-empty `s` (nearest rank).
fn quantile(s: &[f64], q: f64) -> f64 {
    s[((s.len() - 1) as f64 * q).round() as usize]
}

/// Attributes of a grid line at a tick, and of one between ticks.
const GRID: &str = r#"class="grid""#;
const MINOR: &str = r#"class="grid" stroke-dasharray="2 3""#;

/// Box-and-strip plot of each kind's samples on a log-scale x axis: whisker
/// from min to max, box from p25 to p75, a bar at the median, a dot a sample.
fn latency_chart(out: &mut String, kinds: &[Value]) {
    let mut rows: Vec<(&str, Vec<f64>)> = Vec::new();
    for k in kinds {
        let s = arr(&k["samples_us"]).iter().filter_map(Value::as_f64);
        let mut s: Vec<f64> = s.filter(|v| v.is_finite() && *v > 0.0).collect();
        s.sort_by(f64::total_cmp);
        if !s.is_empty() {
            rows.push((k["kind"].as_str().unwrap_or("?"), s));
        }
    }
    let (left, right, top, row) = (90.0, W - 30.0, 40.0, 44.0);
    let bottom = top + row * rows.len().max(1) as f64;
    *out += &svg_open("latency-chart", bottom + 46.0);
    if rows.is_empty() {
        *out += &label(left, top + 20.0, "start", "no samples");
        *out += "</svg>";
        return;
    }
    let min = rows.iter().map(|r| r.1[0]).fold(f64::INFINITY, f64::min);
    let max = rows.iter().map(|r| r.1[r.1.len() - 1]).fold(0.0, f64::max);
    let (lo, hi, sx) = log_scale(min, max, left, right);
    for d in lo..=hi {
        let (v, x) = (10f64.powi(d), sx(10f64.powi(d)));
        *out += &line(x, top, x, bottom, GRID);
        *out += &label(x, bottom + 16.0, "middle", &us_tick(v));
        for m in [2.0, 5.0].into_iter().filter(|_| d < hi) {
            *out += &line(sx(m * v), top, sx(m * v), bottom, MINOR);
        }
    }
    *out += &line(left, bottom, right, bottom, r#"class="axis""#);
    let mid = (left + right) / 2.0;
    *out += &label(mid, bottom + 40.0, "middle", "latency (log scale)");
    *out += &legend(rows.iter().map(|r| r.0), left, 20.0);
    for (i, (name, s)) in rows.iter().enumerate() {
        let (c, y, name_e) = (colour(name, i), top + row * (i as f64 + 0.5), esc(name));
        let x = |q: f64| sx(quantile(s, q));
        *out += &format!(r#"<g class="kind" data-kind="{name_e}">"#);
        *out += &label(left - 8.0, y + 4.0, "end", name);
        *out += &line(x(0.0), y, x(1.0), y, &format!(r#"stroke="{c}""#));
        let (x0, y0, width) = (x(0.25), y - 10.0, (x(0.75) - x(0.25)).max(1.0));
        let style = format!(r#"fill="{c}" fill-opacity="0.2" stroke="{c}""#);
        *out += &format!(r#"<rect x="{x0:.1}" y="{y0}" width="{width:.1}" height="20" {style}/>"#);
        let style = format!(r#"stroke="{c}" stroke-width="3""#);
        *out += &line(x(0.5), y - 13.0, x(0.5), y + 13.0, &style);
        for (j, v) in s.iter().enumerate().step_by(s.len().div_ceil(1000)) {
            let (cx, cy) = (sx(*v), y + ((j * 7919) % 17) as f64 - 8.0);
            *out += &format!(r#"<circle cx="{cx:.1}" cy="{cy}" r="2" fill="{c}" opacity="0.5"/>"#);
        }
        let (median, n) = (human_us(quantile(s, 0.5)), s.len());
        *out += &format!("<title>{name_e}: median {median}, {n} samples</title></g>");
    }
    *out += "</svg>";
}

/// Requests per second over time, one line per load mode.
fn throughput_chart(out: &mut String, modes: &[Value]) {
    let point = |p: &Value| Some((p["t_s"].as_f64()?, p["req_per_s"].as_f64()?));
    let mut series: Vec<(&str, Vec<(f64, f64)>)> = Vec::new();
    for m in modes {
        let points = arr(&m["timeline"]).iter().filter_map(point).collect();
        series.push((m["mode"].as_str().unwrap_or("?"), points));
    }
    let all = || series.iter().flat_map(|s| s.1.iter());
    let xt = linear_ticks(all().map(|p| p.0).fold(0.0, f64::max));
    let yt = linear_ticks(all().map(|p| p.1).fold(0.0, f64::max));
    let (left, right, top, bottom) = (70.0, W - 30.0, 40.0, 274.0);
    let (xmax, ymax) = (xt[xt.len() - 1], yt[yt.len() - 1]);
    let sx = |t: f64| left + t / xmax * (right - left);
    let sy = |v: f64| bottom - v / ymax * (bottom - top);
    *out += &svg_open("throughput-chart", bottom + 46.0);
    for t in xt {
        *out += &line(sx(t), top, sx(t), bottom, GRID);
        *out += &label(sx(t), bottom + 16.0, "middle", &short(t));
    }
    for v in yt {
        *out += &line(left, sy(v), right, sy(v), GRID);
        *out += &label(left - 6.0, sy(v) + 4.0, "end", &short(v));
    }
    *out += &format!(r#"<path class="axis" fill="none" d="M{left} {top}V{bottom}H{right}"/>"#);
    *out += &label((left + right) / 2.0, bottom + 40.0, "middle", "time (s)");
    *out += &label(left - 6.0, top - 16.0, "end", "req/s");
    *out += &legend(series.iter().map(|s| s.0), left, 20.0);
    for (i, (name, points)) in series.iter().enumerate() {
        let (c, name_e) = (colour(name, i), esc(name));
        *out += &format!(r#"<g class="mode" data-mode="{name_e}">"#);
        let (mut xy, mut dots) = (String::new(), String::new());
        for (x, y) in points.iter().map(|(t, v)| (sx(*t), sy(*v))) {
            xy += &format!("{x:.1},{y:.1} ");
            dots += &format!(r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{c}"/>"#);
        }
        if !xy.is_empty() {
            let style = format!(r#"fill="none" stroke="{c}" stroke-width="2""#);
            *out += &format!(r#"<polyline {style} points="{}"/>"#, xy.trim_end());
        }
        *out += &format!("{dots}</g>");
    }
    *out += "</svg>";
}

/// A table row of `cells` (already escaped), each in a `<tag>`.
fn row<S: AsRef<str>>(tag: &str, cells: impl IntoIterator<Item = S>) -> String {
    let cell = |c: S| format!("<{tag}>{}</{tag}>", c.as_ref());
    let cells: String = cells.into_iter().map(cell).collect();
    format!("<tr>{cells}</tr>")
}

/// The table of start kinds: compile time first, then each measured kind.
fn kinds_table(out: &mut String, bench: &Value) {
    *out += r#"<table id="kinds">"#;
    *out += &row("th", "kind,p50,p90,p99,samples,memory".split(','));
    let (compile, n) = match bench["compile_ms"].as_f64() {
        Some(ms) => (human_us(ms * 1e3), "1"),
        None => ("—".into(), "—"),
    };
    *out += &row("td", ["compile", &compile, "—", "—", n, "—"]);
    for k in arr(&bench["kinds"]) {
        let (kind, why) = (text(&k["kind"]), text(&k["skipped"]));
        if k["skipped"].is_null() {
            let [p50, p90, p99] = ["p50_us", "p90_us", "p99_us"].map(|p| us_of(&k[p]));
            let (n, mem) = (text(&k["samples"]), bytes_of(&k["memory_bytes"]));
            *out += &row("td", [kind, p50, p90, p99, n, mem]);
        } else {
            *out += &format!(r#"<tr><td>{kind}</td><td colspan="5" class="skipped">"#);
            *out += &format!("skipped: {why}</td></tr>");
        }
    }
    *out += "</table>";
}

/// The load run's settings, its table per mode and its throughput chart.
fn load_section(out: &mut String, load: &Value) {
    let (c, d) = (text(&load["connections"]), text(&load["duration_s"]));
    let rate = load["rate"].as_f64().map(|r| format!("{} req/s", short(r)));
    let rate = rate.unwrap_or("unlimited".into());
    *out += &format!("<h2>Load</h2><p>{c} connections for {d} s, rate {rate}</p>");
    *out += r#"<table id="load">"#;
    let head = "mode,requests,errors,req/s,p50,p90,p99,max,statuses,starts cold / warm";
    *out += &row("th", head.split(','));
    for m in arr(&load["modes"]) {
        let (mode, n, errors) = (text(&m["mode"]), text(&m["requests"]), text(&m["errors"]));
        let rps = m["req_per_s"].as_f64().map(|v| format!("{v:.0}"));
        let rps = rps.unwrap_or("—".into());
        let [p50, p90, p99, max] = ["p50_us", "p90_us", "p99_us", "max_us"].map(|p| us_of(&m[p]));
        let (cold, warm) = (text(&m["starts"]["cold"]), text(&m["starts"]["warm"]));
        let (statuses, starts) = (pairs(&m["statuses"], ": "), format!("{cold} / {warm}"));
        let cells = [mode, n, errors, rps, p50, p90, p99, max, statuses, starts];
        *out += &row("td", cells);
    }
    *out += "</table>";
    throughput_chart(out, arr(&load["modes"]));
}

/// Renders `report` (the `--json` output of `flint bench`) as one
/// self-contained HTML page.
pub fn render(report: &Value) -> String {
    let bench = &report["bench"];
    let pick = |k: &str| match &report[k] {
        Value::Null => text(&bench[k]),
        v => text(v),
    };
    let name = format!("flint bench: {}@{}", pick("function"), pick("version"));
    let mut out = r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">"#.to_string();
    out += &format!("<title>{name}</title><style>{STYLE}</style></head><body><h1>{name}</h1>");
    let (req, resp) = (&bench["request"], &bench["response"]);
    let (method, path) = (text(&req["method"]), text(&req["path"]));
    let body = text(&req["body_bytes"]);
    let (size, digest) = (bytes_of(&bench["size_bytes"]), text(&bench["digest"]));
    let (status, r_bytes) = (text(&resp["status"]), text(&resp["body_bytes"]));
    let elapsed = bench["elapsed_ms"]
        .as_f64()
        .map_or_else(|| "—".to_string(), |ms| human_us(ms * 1000.0));
    let stopped_by = text(&bench["stopped_by"]);
    out += "<dl>";
    for (term, def) in [
        ("server", text(&report["server"])),
        ("request", format!("{method} {path} ({body} body bytes)")),
        ("config", pairs(&bench["config"], " = ")),
        ("component", format!("{size} ({digest})")),
        ("response", format!("status {status}, {r_bytes} body bytes")),
        ("run", format!("{elapsed}, stopped by {stopped_by}")),
    ] {
        out += &format!("<dt>{term}</dt><dd>{def}</dd>");
    }
    out += "</dl>";
    let f = &bench["failure"];
    if !f.is_null() {
        let (kind, code, msg) = (text(&f["kind"]), text(&f["code"]), text(&f["message"]));
        out += r#"<div class="failure" id="failure"><strong>Failure</strong>"#;
        out += &format!(" in the {kind} start: {code}: {msg}</div>");
    }
    out += "<h2>Start kinds</h2>";
    kinds_table(&mut out, bench);
    latency_chart(&mut out, arr(&bench["kinds"]));
    let rc = &bench["reuse_check"];
    let (verdict, n) = (text(&rc["verdict"]), text(&rc["compared"]));
    let detail = text(&rc["detail"]);
    out += &format!(r#"<p id="reuse-check">Reuse check: <strong>{verdict}</strong>"#);
    out += &format!(" ({n} compared): {detail}</p>");
    if !report["load"].is_null() {
        load_section(&mut out, &report["load"]);
    }
    out += r#"<h2>Advice</h2><ul id="advice">"#;
    for a in arr(&report["advice"]) {
        out += &format!("<li>{}</li>", text(a));
    }
    // `<` as \u003c: no `</script>` or `<!--` in the data can end the block.
    let json = serde_json::to_string(report).unwrap_or_default();
    let json = json.replace('<', "\\u003c");
    out += &format!(r#"</ul><script type="application/json" id="flint-bench-data">{json}"#);
    out += "</script></body></html>\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(name: &str, samples: &[f64]) -> Value {
        json!({"kind": name, "samples": samples.len(), "p50_us": samples.first(), "p90_us": null,
               "memory_bytes": 1_114_112, "samples_us": samples, "skipped": null})
    }

    fn fixture(load: Value) -> Value {
        let skipped = json!({"kind": "reuse", "samples": 0, "skipped": "max_requests is 1"});
        let kinds = json!([
            kind("disk", &[1200.5, 1100.0]),
            kind("cold", &[50_000.0]),
            kind("warm", &[5.0; 3]),
            kind("empty", &[]),
            skipped
        ]);
        json!({"function": "hello", "version": 1, "server": "http://127.0.0.1:7070",
               "bench": {"compile_ms": 44.6, "kinds": kinds}, "load": load, "advice": []})
    }

    #[test]
    fn hostile_text_is_escaped() {
        let evil = r#"<script>alert("x")</script>&'"#;
        let mut r = fixture(Value::Null);
        r["function"] = evil.into();
        r["advice"] = json!([evil]);
        r["bench"]["kinds"][0]["kind"] = evil.into();
        r["bench"]["config"] = json!({ evil: evil });
        r["bench"]["failure"] = json!({"kind": "cold", "code": "trap", "message": evil});
        let page = render(&r);
        assert_eq!(page.matches("<script").count(), 1, "only the data block");
        assert!(!page.contains("alert(\"x\")"));
        assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"));
        assert!(page.contains(r#"id="failure""#));
    }

    #[test]
    fn embedded_json_cannot_close_its_script() {
        let mut r = fixture(Value::Null);
        r["advice"] = json!(["</script><script>alert(1)</script><!--"]);
        let page = render(&r);
        let open = r#"id="flint-bench-data">"#;
        let start = page.find(open).unwrap() + open.len();
        let data = &page[start..start + page[start..].find("</script>").unwrap()];
        assert!(!data.contains('<'));
        assert_eq!(serde_json::from_str::<Value>(data).unwrap(), r);
    }

    #[test]
    fn one_group_per_kind_with_samples() {
        let page = render(&fixture(Value::Null));
        assert_eq!(page.matches(r#"<g class="kind""#).count(), 3);
        for k in ["disk", "cold", "warm"] {
            assert!(page.contains(&format!(r#"<g class="kind" data-kind="{k}">"#)));
        }
        assert!(page.contains("skipped: max_requests is 1"));
        assert!(page.contains("<td>compile</td><td>44.60 ms</td>"));
        assert!(!page.contains("NaN") && !page.contains("inf"));
    }

    #[test]
    fn throughput_chart_only_with_load() {
        assert!(!render(&fixture(Value::Null)).contains("throughput-chart"));
        let timeline = json!([{"t_s": 0.25, "req_per_s": 2.4e4}, {"t_s": 0.5, "req_per_s": 2.6e4}]);
        let mode = |m: &str| {
            json!({"mode": m, "requests": 1000, "statuses": {"200": 997, "429": 3},
                   "starts": {"cold": 990, "warm": 10}, "timeline": timeline})
        };
        let modes = [mode("fresh"), mode("reuse"), json!({"mode": "x"})];
        let page = render(&fixture(json!({"connections": 8, "modes": modes})));
        assert!(page.contains(r#"<svg id="throughput-chart""#));
        assert_eq!(page.matches("<polyline").count(), 2);
        assert!(page.contains(r#"<g class="mode" data-mode="reuse">"#));
        assert!(page.contains("200: 997, 429: 3") && page.contains("990 / 10"));
    }

    #[test]
    fn almost_empty_report_renders() {
        let page = render(&json!({}));
        assert!(page.contains("flint bench: —@—") && page.contains("no samples"));
        assert!(page.contains(r#"<ul id="advice">"#) && page.ends_with("</html>\n"));
        render(&json!({"bench": {"kinds": [{}, null, 3]}, "load": {"modes": [{}]}, "advice": [0]}));
    }

    #[test]
    fn formats_units_and_ticks() {
        let t = [human_us(12.34), human_us(1234.0), human_us(1.5e6)];
        assert_eq!(t, ["12.3 µs", "1.23 ms", "1.50 s"]);
        assert_eq!(
            [us_tick(10.0), us_tick(1e4), us_tick(2e6)],
            ["10 µs", "10 ms", "2 s"]
        );
        let b = [json!(99000), json!(1_114_112), Value::Null].map(|v| bytes_of(&v));
        assert_eq!(b, ["96.7 KiB", "1.1 MiB", "—"]);
        let ticks = [0.0, 5e3, 1e4, 1.5e4, 2e4, 2.5e4, 3e4];
        assert_eq!(
            (linear_ticks(26e3), linear_ticks(0.0).len()),
            (ticks.to_vec(), 6)
        );
        assert_eq!(short(0.6000000000000001), "0.6");
    }
}
