//! The status page: one self-contained HTML document (inline CSS and SVG, no script, no
//! external assets) that refreshes itself.

use std::fmt::Write;

use crate::observability::health::{HealthStatus, StatusReport};
use crate::observability::telemetry::{OpStats, PoolHistory};
use crate::runtime::Runtime;

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn ms_text(us: u64) -> String {
    if us == u64::MAX {
        return "&gt;5 s".to_owned();
    }
    let ms = us as f64 / 1000.0;
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

fn level(pct: f64, threshold: f64) -> &'static str {
    if pct >= 95.0 {
        "bad"
    } else if pct > threshold {
        "warn"
    } else {
        "good"
    }
}

fn status_class(s: HealthStatus) -> &'static str {
    match s {
        HealthStatus::Healthy => "good",
        HealthStatus::Degraded => "warn",
        HealthStatus::Unhealthy => "bad",
    }
}

fn state_class(state: &str) -> &'static str {
    match state {
        "closed" => "good",
        "half_open" | "metrics_only" | "disabled" => "warn",
        _ => "bad",
    }
}

const CSS: &str = r#"
:root{--bg:#0f1419;--panel:#161d26;--line:#243040;--text:#e6edf3;--muted:#8b98a8;
--good:#3fb950;--warn:#d29922;--bad:#f85149;--accent:#58a6ff}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
header{display:flex;align-items:center;gap:24px;padding:18px 28px;border-bottom:1px solid var(--line);background:#121a23}
header h1{font-size:18px;margin:0;font-weight:600;letter-spacing:.2px}
header h1 span{color:var(--muted);font-weight:400}
.pill{display:inline-block;padding:2px 10px;border-radius:999px;font-size:12px;font-weight:600;text-transform:uppercase;letter-spacing:.5px}
.pill.good{background:rgba(63,185,80,.15);color:var(--good)}
.pill.warn{background:rgba(210,153,34,.15);color:var(--warn)}
.pill.bad{background:rgba(248,81,73,.15);color:var(--bad)}
.big{font-size:30px;font-weight:700;line-height:1}
.score{display:flex;align-items:baseline;gap:6px}
.score small{color:var(--muted)}
.meta{color:var(--muted);font-size:13px;margin-left:auto;text-align:right}
.meta b{color:var(--text);font-weight:500}
main{padding:20px 28px 28px;display:grid;gap:20px}
section h2{font-size:13px;text-transform:uppercase;letter-spacing:.8px;color:var(--muted);margin:0 0 10px;font-weight:600}
.advice{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:10px 14px;margin:0;list-style:none}
.advice li{padding:6px 0 6px 12px;border-left:3px solid var(--warn);margin:4px 0}
.advice.ok li{border-left-color:var(--good);color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:14px 16px}
.card .top{display:flex;justify-content:space-between;align-items:baseline}
.card .name{font-weight:600;font-size:15px}
.util{font-size:24px;font-weight:700}
.util.good{color:var(--good)}.util.warn{color:var(--warn)}.util.bad{color:var(--bad)}
.bar{height:6px;background:#0d1117;border-radius:3px;margin:8px 0 10px;overflow:hidden}
.bar i{display:block;height:100%;border-radius:3px}
.bar i.good{background:var(--good)}.bar i.warn{background:var(--warn)}.bar i.bad{background:var(--bad)}
.facts{display:grid;grid-template-columns:repeat(4,1fr);gap:4px 10px;font-size:12px;color:var(--muted)}
.facts b{display:block;color:var(--text);font-size:14px;font-weight:600}
.chart{margin-top:12px;position:relative}
.chart svg{display:block;width:100%;height:70px;background:#0d1117;border-radius:4px}
.axis{display:flex;justify-content:space-between;font-size:11px;color:var(--muted);margin-top:3px}
table{width:100%;border-collapse:collapse;background:var(--panel);border:1px solid var(--line);border-radius:8px;overflow:hidden}
th,td{padding:8px 12px;text-align:left;border-bottom:1px solid var(--line);font-variant-numeric:tabular-nums}
th{font-size:11px;text-transform:uppercase;letter-spacing:.6px;color:var(--muted);font-weight:600;background:#121a23}
td.num,th.num{text-align:right}
tr:last-child td{border-bottom:none}
.muted{color:var(--muted)}
.err{color:var(--bad);font-weight:600}
.two{display:grid;grid-template-columns:1fr 1fr;gap:20px}
.alerts .t{color:var(--muted);font-size:12px;white-space:nowrap}
footer{padding:0 28px 24px;color:var(--muted);font-size:12px}
footer a{color:var(--accent);text-decoration:none;margin-right:14px}
"#;

/// Renders the page.
pub(crate) fn render(s: &StatusReport, rt: &Runtime) -> String {
    let h = &s.health;
    let threshold = rt.config().settings.monitor.utilization_pct;
    let mut o = String::with_capacity(32 * 1024);
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"5\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} · sqlx-resilience</title><style>{CSS}</style></head><body>",
        h.status
    );

    // Header: status, score, database.
    let db = h.databases.first();
    let version = db
        .and_then(|d| d.server_version.as_deref())
        .map(|v| format!("PostgreSQL {}", esc(v)))
        .unwrap_or_else(|| "PostgreSQL (no answer)".to_owned());
    let rtt = h
        .round_trip_ms()
        .map(|r| format!("{r:.1} ms round trip"))
        .unwrap_or_else(|| "unreachable".to_owned());
    let servers: Vec<String> = h.databases.iter().map(|d| esc(&d.server)).collect();
    let _ = write!(
        o,
        "<header><h1>sqlx-resilience <span>status</span></h1>\
         <span class=\"pill {cls}\" id=\"overall\">{status}</span>\
         <div class=\"score\"><span class=\"big\">{score}</span><small>/ 100 health score</small></div>\
         <div class=\"meta\"><b>{version}</b> · {rtt}<br>{servers} · checked in {took:.0} ms · \
         refreshes every 5 s</div></header><main>",
        cls = status_class(h.status),
        status = h.status,
        score = h.score,
        servers = servers.join(", "),
        took = h.took_ms,
    );

    // Recommendations.
    let normal = h.penalties.is_empty();
    let _ = write!(
        o,
        "<section><h2>Recommendations</h2><ul class=\"advice{}\">",
        if normal { " ok" } else { "" }
    );
    for r in &h.recommendations {
        let _ = write!(o, "<li>{}</li>", esc(r));
    }
    o.push_str("</ul></section>");

    // Pools.
    o.push_str("<section id=\"pools\"><h2>Pools</h2><div class=\"cards\">");
    for p in &h.pools {
        let st = &p.stats;
        let lvl = level(p.utilization_pct, threshold);
        let history = s.history.iter().find(|x| x.pool == p.name);
        let _ = write!(
            o,
            "<div class=\"card pool\" data-pool=\"{name}\"><div class=\"top\"><span class=\"name\">{name}</span>\
             <span class=\"util {lvl}\">{util:.0}%</span></div>\
             <div class=\"bar\"><i class=\"{lvl}\" style=\"width:{w:.1}%\"></i></div>\
             <div class=\"facts\"><span><b>{in_use} / {max}</b>in use</span><span><b>{idle}</b>idle</span>\
             <span><b>{waiting}</b>waiting</span><span><b>{timeouts}</b>timeouts</span>\
             <span><b>{p50}</b>wait p50</span><span><b>{p99}</b>wait p99</span>\
             <span><b>{opened}</b>opened</span><span><b>{errors}</b>errors</span></div>",
            name = esc(&p.name),
            util = p.utilization_pct,
            w = p.utilization_pct.clamp(0.0, 100.0),
            in_use = st.in_use,
            max = st.max,
            idle = st.idle,
            waiting = st.waiting,
            timeouts = st.acquire_timeouts,
            p50 = ms_text(st.acquire_wait.p50_us.min(st.acquire_wait.max_us)),
            p99 = ms_text(st.acquire_wait.p99_us.min(st.acquire_wait.max_us)),
            opened = st.opened,
            errors = st.errors,
        );
        chart(&mut o, history, threshold);
        pool_servers(&mut o, p);
        o.push_str("</div>");
    }
    o.push_str("</div></section>");

    // Breakers and other policies.
    o.push_str("<div class=\"two\"><section id=\"breakers\"><h2>Circuit breakers</h2>");
    if h.breakers.is_empty() {
        o.push_str("<table><tr><td class=\"muted\">no breakers declared</td></tr></table>");
    } else {
        o.push_str(
            "<table><tr><th>breaker</th><th>state</th><th class=\"num\">failure rate</th>\
             <th class=\"num\">in a row</th><th class=\"num\">rejected</th><th class=\"num\">transitions</th></tr>",
        );
        for b in &h.breakers {
            let _ = write!(
                o,
                "<tr class=\"breaker\" data-breaker=\"{name}\"><td>{name}</td><td><span class=\"pill {cls}\">{state}</span>{probe}</td>\
                 <td class=\"num\">{rate}</td><td class=\"num\">{row}</td><td class=\"num\">{rej}</td><td class=\"num\">{tr}</td></tr>",
                name = esc(&b.name),
                cls = state_class(&b.state),
                state = esc(&b.state.replace('_', " ")),
                probe = b
                    .half_open_in_ms
                    .map(|ms| format!(
                        " <span class=\"muted\">probe in {:.1} s</span>",
                        ms as f64 / 1000.0
                    ))
                    .unwrap_or_default(),
                rate = b
                    .failure_rate
                    .map(|r| format!("{r:.0}%"))
                    .unwrap_or_else(|| "–".into()),
                row = b.consecutive_failures,
                rej = b.rejected_total,
                tr = b.transitions_total,
            );
        }
        o.push_str("</table>");
    }
    if let Some(faults) = &h.faults {
        o.push_str("<h2>Injected faults</h2><table id=\"faults\">");
        if faults.is_empty() {
            o.push_str("<tr><td class=\"muted\">fault injection enabled; no fault armed</td></tr>");
        } else {
            o.push_str(
                "<tr><th>fault</th><th>op</th><th>pool</th><th class=\"num\">hits</th><th class=\"num\">left</th></tr>",
            );
        }
        for f in faults {
            let _ = write!(
                o,
                "<tr class=\"fault\"><td>{fault}</td><td>{op}</td><td>{pool}</td><td class=\"num\">{hits}</td><td class=\"num\">{left}</td></tr>",
                fault = esc(&f.fault),
                op = esc(f.op.as_deref().unwrap_or("every op")),
                pool = esc(f.pool.as_deref().unwrap_or("every pool")),
                hits = f.hits,
                left = f.left.map_or_else(|| "–".to_owned(), |n| n.to_string()),
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</section><section><h2>Limiters, bulkheads, retries</h2><table>");
    o.push_str("<tr><th>policy</th><th>kind</th><th class=\"num\">passed</th><th class=\"num\">rejected</th><th>now</th></tr>");
    let mut any = false;
    for l in &s.limiters {
        any = true;
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"muted\">limiter</td><td class=\"num\">{}</td><td class=\"num{}\">{}</td><td class=\"muted\">{} waited</td></tr>",
            esc(&l.name),
            l.permitted,
            if l.rejected > 0 { " err" } else { "" },
            l.rejected,
            l.waited
        );
    }
    for b in &s.bulkheads {
        any = true;
        let rejected = b.shed + b.timed_out;
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"muted\">bulkhead</td><td class=\"num\">{}</td><td class=\"num{}\">{}</td><td class=\"muted\">{} / {} running, {} queued</td></tr>",
            esc(&b.name),
            b.admitted,
            if rejected > 0 { " err" } else { "" },
            rejected,
            b.running,
            b.max_concurrent,
            b.queued
        );
    }
    for r in &s.retries {
        any = true;
        let total: u64 = r.retries.iter().map(|(_, n)| n).sum();
        let kinds: Vec<String> = r
            .retries
            .iter()
            .map(|(k, n)| format!("{} {n}", esc(k)))
            .collect();
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"muted\">retry</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"muted\">{} retries{}</td></tr>",
            esc(&r.name),
            r.calls,
            if r.budget_exhausted > 0 {
                format!("{} over budget", r.budget_exhausted)
            } else {
                "–".to_owned()
            },
            total,
            if kinds.is_empty() {
                String::new()
            } else {
                format!(": {}", kinds.join(", "))
            }
        );
    }
    if !any {
        o.push_str("<tr><td colspan=\"5\" class=\"muted\">none declared</td></tr>");
    }
    o.push_str("</table></section></div>");

    // Ops.
    ops_table(&mut o, &s.ops);

    // Alerts.
    o.push_str("<section class=\"alerts\" id=\"alerts\"><h2>Recent alerts</h2><table>");
    if s.alerts.is_empty() {
        o.push_str("<tr><td class=\"muted\">no alerts (the monitor sends them; start it with Runtime::start_monitor)</td></tr>");
    }
    for a in s.alerts.iter().rev().take(12) {
        let age = crate::observability::clock::unix_ms().saturating_sub(a.at_unix_ms) / 1000;
        let _ = write!(
            o,
            "<tr><td class=\"t\">{age} s ago</td><td><span class=\"pill {}\">{}</span></td><td>{}</td></tr>",
            if a.severity == crate::observability::alerts::Severity::Critical {
                "bad"
            } else {
                "warn"
            },
            a.kind,
            esc(&a.message)
        );
    }
    o.push_str("</table></section></main>");
    o.push_str(
        "<footer><a href=\"health\">health</a><a href=\"ready\">ready</a><a href=\"live\">live</a>\
         <a href=\"status\">status.json</a><a href=\"pool-config\">pool-config</a>\
         <a href=\"metrics\">metrics</a><a href=\"pg-stats\">pg-stats</a></footer></body></html>",
    );
    o
}

fn ops_table(o: &mut String, ops: &[OpStats]) {
    o.push_str("<section id=\"ops\"><h2>Ops</h2><table><tr><th>op</th><th>pool</th><th class=\"num\">calls</th>\
        <th class=\"num\">errors</th><th class=\"num\">p50</th><th class=\"num\">p99</th><th class=\"num\">max</th><th>failures</th></tr>");
    if ops.is_empty() {
        o.push_str("<tr><td colspan=\"8\" class=\"muted\">no op has run yet</td></tr>");
    }
    let mut ops: Vec<&OpStats> = ops.iter().collect();
    ops.sort_by_key(|o| std::cmp::Reverse(o.calls));
    for op in ops {
        let pct = op.error_pct();
        let failures: Vec<String> = op
            .failures
            .iter()
            .map(|(k, n)| format!("{} {n}", esc(k)))
            .collect();
        let _ = write!(
            o,
            "<tr class=\"op\"><td>{}</td><td class=\"muted\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num{}\">{} <span class=\"muted\">({pct:.1}%)</span></td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"muted\">{}</td></tr>",
            esc(&op.op),
            esc(&op.pool),
            op.calls,
            if pct >= 1.0 { " err" } else { "" },
            op.failed,
            ms_text(op.latency.p50_us),
            ms_text(op.latency.p99_us),
            ms_text(op.latency.max_us),
            if failures.is_empty() {
                "–".to_owned()
            } else {
                failures.join(", ")
            },
        );
    }
    o.push_str("</table></section>");
}

/// The utilization chart: an area of `in_use / max` over the samples, the alert threshold as
/// a dashed line, waiting callers as red ticks. Drawn in a 300 x 70 box stretched to the
/// card's width.
fn chart(o: &mut String, history: Option<&PoolHistory>, threshold: f64) {
    const W: f64 = 300.0;
    const H: f64 = 70.0;
    let samples = history.map(|h| h.samples.as_slice()).unwrap_or(&[]);
    let y = |pct: f64| H - (pct.clamp(0.0, 100.0) / 100.0) * (H - 4.0) - 2.0;
    let _ = write!(
        o,
        "<div class=\"chart\"><svg viewBox=\"0 0 {W} {H}\" preserveAspectRatio=\"none\" role=\"img\" \
         aria-label=\"utilization over time\">\
         <line x1=\"0\" x2=\"{W}\" y1=\"{t:.1}\" y2=\"{t:.1}\" stroke=\"#d29922\" stroke-width=\"1\" \
         stroke-dasharray=\"4 3\" vector-effect=\"non-scaling-stroke\" opacity=\".7\"/>",
        t = y(threshold)
    );
    if samples.len() >= 2 {
        let n = samples.len() as f64 - 1.0;
        let pts: Vec<(f64, f64)> = samples
            .iter()
            .enumerate()
            .map(|(i, s)| (i as f64 / n * W, y(s.utilization_pct)))
            .collect();
        let line: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(
            o,
            "<polygon points=\"0,{H} {} {W},{H}\" fill=\"rgba(88,166,255,.18)\"/>\
             <polyline points=\"{}\" fill=\"none\" stroke=\"#58a6ff\" stroke-width=\"2\" \
             vector-effect=\"non-scaling-stroke\" stroke-linejoin=\"round\"/>",
            line.join(" "),
            line.join(" ")
        );
        for ((x, _), s) in pts.iter().zip(samples) {
            if s.waiting > 0 {
                let _ = write!(
                    o,
                    "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{H}\" y2=\"{:.1}\" stroke=\"#f85149\" \
                     stroke-width=\"2\" vector-effect=\"non-scaling-stroke\"/>",
                    H - 8.0
                );
            }
        }
    }
    let span_s = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => b.at_unix_ms.saturating_sub(a.at_unix_ms) / 1000,
        _ => 0,
    };
    let ago = if span_s >= 120 {
        format!("{} min ago", span_s / 60)
    } else {
        format!("{span_s} s ago")
    };
    let _ = write!(
        o,
        "</svg><div class=\"axis\"><span>{ago}</span><span>utilization · dashed: {threshold:.0}% alert · \
         red: callers waiting</span><span>now</span></div></div>"
    );
}

/// A pool's hosts (multi-host URL) and read replicas, one line each, inside its card.
fn pool_servers(o: &mut String, p: &crate::health::PoolHealth) {
    if let Some(hosts) = &p.hosts {
        let _ = write!(
            o,
            "<table class=\"hosts\"><tr><th>host</th><th>role</th><th>state</th><th>breaker</th></tr>"
        );
        for h in hosts {
            let _ = write!(
                o,
                "<tr class=\"host\"><td>{addr}:{port}</td><td>{role}</td><td>{state}</td>\
                 <td>{breaker}</td></tr>",
                addr = esc(&h.address),
                port = h.port,
                role = h.role.as_str(),
                state = match (h.current, h.down) {
                    (_, true) => "down",
                    (true, false) => "in use",
                    (false, false) => "standing by",
                },
                breaker = h.breaker.as_str(),
            );
        }
        let _ = write!(
            o,
            "</table><div class=\"muted\">{} failovers</div>",
            p.failovers.unwrap_or(0)
        );
    }
    if let Some(r) = &p.replicas {
        let _ = write!(
            o,
            "<table class=\"replicas\"><tr><th>replica</th><th>state</th><th class=\"num\">lag</th>\
             <th class=\"num\">reads</th></tr>"
        );
        for rep in &r.replicas {
            let _ = write!(
                o,
                "<tr class=\"replica\"><td>{server}</td><td>{state}</td><td class=\"num\">{lag}</td>\
                 <td class=\"num\">{share:.0}%</td></tr>",
                server = esc(&rep.server),
                state = esc(rep.state),
                lag = rep
                    .lag_ms
                    .map_or_else(|| "–".to_owned(), |ms| format!("{ms:.0} ms")),
                share = rep.share_of_reads_pct,
            );
        }
        o.push_str("</table>");
        if let Some(d) = &r.discovery {
            let asked = match (&d.answered_by, d.last_answer_ms_ago) {
                (Some(api), Some(ago)) => {
                    format!("{} answered {:.1} s ago", esc(api), ago / 1000.0)
                }
                _ => "no answer yet".to_owned(),
            };
            let _ = write!(
                o,
                "<div class=\"muted discovery\">members from Patroni: {asked}; {} failed rounds{}</div>",
                d.failures,
                d.last_error
                    .as_deref()
                    .map(|e| format!(" (last: {})", esc(e)))
                    .unwrap_or_default(),
            );
        }
    }
}
