#!/usr/bin/env python3
"""SVG charts of benchmark results (no dependency beyond Python's standard library).

    bench/charts.py .bench/results.json                 # what bench/bench.py just wrote
    bench/charts.py bench/results/2026-12-01.json --out docs/charts

Input: the JSON `bench/bench.py` writes (`{"date", "machine", "ceiling_kind", "results": [...]}`,
or a bare list of records as older runs wrote). Each record has a `section` (push, pull, use,
bulk, mixed, charge, ws-idle, ws-notify, idle) and the figures bench.py records for it; a
record may carry its own `run` (date) and `ceiling_kind` ("least SQL" or "same SQL": what
pgbench ran; default the file's `ceiling_kind`) when a file gathers several runs.

Output, into --out (default docs/charts):
  ratio.svg      service throughput ÷ PostgreSQL's (pgbench or psql running the SQL) per scenario,
                 a bar per run when the file gathers several, and where recorded the ratio a
                 service costing no CPU would reach with k6 on the same cores (`bound`)
  latency.svg    p50 / p95 / p99 per scenario (ms)
  rss.svg        resident memory of the service per scenario (MB)
  throughput.svg service against PostgreSQL, per scenario (log scale)
  mixed.svg      the mixed scenario's push / pull / all-requests p95 and p99 against its k6
                 thresholds, a bar per run
"""
import argparse
import json
import math
import sys
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"
COLORS = {"service": "#3b6fb6", "ceiling": "#9aa5b1", "same SQL": "#e0a030", "least SQL": "#3b6fb6",
          "p50": "#7fb3e6", "p95": "#3b6fb6", "p99": "#1d3f73", "rss": "#5a9e6f", "bound": "#e8b4ad"}
# One colour per run when a file gathers several (before, after): the last run is the darkest.
RUN_COLOURS = ["#c9d6e8", "#7fa3d6", "#3b6fb6"]


def load(path):
    data = json.loads(Path(path).read_text())
    if isinstance(data, list):
        data = {"results": data}
    default_ceiling = data.get("ceiling_kind", "least SQL")
    for record in data["results"]:
        record.setdefault("ceiling_kind", default_ceiling)
        record.setdefault("run", data.get("date", ""))
    return data


def label(record):
    """A short scenario name."""
    section = record["section"]
    if section == "push":
        return f"push, batch {record['batch']}, {record['clients']} client{'s' if record['clients'] != 1 else ''}"
    if section == "pull":
        return f"pull, 1,000-change pages, {record['clients']} client{'s' if record['clients'] != 1 else ''}"
    if section == "use":
        return f"credits use, {record['users']}, {record['clients']} clients"
    if section == "bulk":
        return f"bulk push, {record['changes']:,} changes in one request"
    if section == "ws-notify":
        return f"push → sync-available, {record['load']}"
    if section == "charge":
        return f"charge-recurring, {record['subscriptions']:,} due, {record['concurrency']} at a time"
    if section == "ws-idle":
        return f"{record['sockets']:,} idle WebSockets"
    if section == "mixed":
        return "mixed load (ramp to 200 VUs)"
    return section


def bar_chart(title, subtitle, rows, series, unit, scale="linear", reference=None, legend=None):
    """Horizontal grouped bars. rows: [(label, {series: value})]; series: [(key, colour, name)]."""
    left, right, top, bar, gap = 330, 80, 76, 14, 10
    width = 900
    plot = width - left - right
    group = bar * len(series) + gap
    legend = legend or [(colour, name) for _, colour, name in series]
    # The legend runs on along one line while it fits the width, then on the next.
    places, x, line = [], left, 0
    for _, name in legend:
        size = 24 + 7 * len(name)
        if x > left and x + size > width:
            x, line = left, line + 1
        places.append((x, line))
        x += size
    height = top + group * len(rows) + 56 + 18 * line
    values = [figures[key] for _, figures in rows for key, _, _ in series if figures.get(key) is not None and figures[key] > 0]
    high = max(values + ([reference] if reference else [])) if values else 1
    if scale == "log":
        low = 10 ** math.floor(math.log10(min(values)))
        high = 10 ** math.ceil(math.log10(high))
        position = lambda v: plot * (math.log10(max(v, low)) - math.log10(low)) / (math.log10(high) - math.log10(low))
        ticks = [10 ** e for e in range(int(math.log10(low)), int(math.log10(high)) + 1)]
    else:
        step = nice_step(high / 5)
        high = step * math.ceil(high / step)
        position = lambda v: plot * v / high
        ticks = [step * i for i in range(int(round(high / step)) + 1)]
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' {FONT} font-size='12'>",
           f"<rect width='{width}' height='{height}' fill='white'/>",
           f"<text x='16' y='24' font-size='16' font-weight='bold'>{escape(title)}</text>",
           f"<text x='16' y='44' fill='#555'>{escape(subtitle)}</text>"]
    bottom = top + group * len(rows)
    for tick in ticks:
        x = left + position(tick)
        out.append(f"<line x1='{x:.1f}' y1='{top - 4}' x2='{x:.1f}' y2='{bottom}' stroke='#e3e3e3'/>")
        out.append(f"<text x='{x:.1f}' y='{bottom + 16}' text-anchor='middle' fill='#555'>{escape(number(tick))}</text>")
    out.append(f"<text x='{left + plot / 2:.1f}' y='{bottom + 34}' text-anchor='middle' fill='#333'>{escape(unit)}</text>")
    if reference is not None:
        x = left + position(reference)
        out.append(f"<line x1='{x:.1f}' y1='{top - 8}' x2='{x:.1f}' y2='{bottom}' stroke='#c0392b' stroke-dasharray='4 3'/>")
        out.append(f"<text x='{x - 4:.1f}' y='{top - 10}' text-anchor='end' fill='#c0392b'>{escape(number(reference))} = PostgreSQL alone</text>")
    for index, (name, figures) in enumerate(rows):
        y = top + index * group
        out.append(f"<text x='{left - 8}' y='{y + group / 2:.1f}' text-anchor='end' dominant-baseline='middle'>{escape(name)}</text>")
        for offset, (key, colour, _) in enumerate(series):
            value = figures.get(key)
            if value is None:
                continue
            colour = figures.get("colour", colour) if key == "ratio" else colour
            w = max(1.0, position(value))
            out.append(f"<rect x='{left}' y='{y + offset * bar}' width='{w:.1f}' height='{bar - 2}' fill='{colour}'/>")
            out.append(f"<text x='{left + w + 4:.1f}' y='{y + offset * bar + bar / 2:.1f}' dominant-baseline='middle' "
                       f"font-size='10' fill='#333'>{escape(number(value))}</text>")
    lines = places[-1][1] if places else 0
    for (colour, name), (x, line) in zip(legend, places):
        y = height - 16 - 18 * (lines - line)
        out.append(f"<rect x='{x}' y='{y}' width='10' height='10' fill='{colour}'/>")
        out.append(f"<text x='{x + 14}' y='{y + 9}' font-size='11'>{escape(name)}</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def nice_step(raw):
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def number(value):
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def source(data):
    runs = sorted({r["run"] for r in data["results"] if r.get("run")})
    return f"{data.get('machine', '')} — run{'s' if len(runs) > 1 else ''} {', '.join(runs)}".strip(" —")


def charts(data):
    """{file name: SVG text} for the records of `data`."""
    records = data["results"]
    made = {}
    # Ratio to PostgreSQL: HTTP rows (throughput ÷ pgbench) and bulk (psql seconds ÷ service seconds).
    ratios = []
    for r in records:
        if r["section"] in ("push", "pull", "use") and r.get("ratio") is not None:
            ratios.append((r, r["ratio"]))
        elif r["section"] == "bulk" and r.get("ceiling_seconds"):
            ratios.append((r, r["ceiling_seconds"] / r["seconds"]))
    if ratios:
        runs = list(dict.fromkeys(r["run"] for r, _ in ratios))
        bound_name = "a service costing no CPU, k6 beside it (estimate; rows where CPU is the limit)"
        if len(runs) > 1:
            # Before and after: a bar per run for each scenario, and the latest run's bound.
            figures = {}
            for r, value in ratios:
                row = figures.setdefault(label(r), {})
                row[r["run"]] = value
                if r.get("bound") is not None:
                    row["bound"] = r["bound"]
            rows = list(figures.items())
            palette = RUN_COLOURS[-len(runs):] if len(runs) <= len(RUN_COLOURS) else RUN_COLOURS * len(runs)
            series = [(run, colour, f"{run}: service ÷ PostgreSQL running the least SQL") for run, colour in zip(runs, palette)]
            if any("bound" in row for _, row in rows):
                series.append(("bound", COLORS["bound"], bound_name))
            legend = None
        else:
            kinds = sorted({r["ceiling_kind"] for r, _ in ratios})
            rows = [(f"{label(r)}{' *' if r['ceiling_kind'] == 'same SQL' and len(kinds) > 1 else ''}",
                     {"ratio": value, "colour": COLORS.get(r["ceiling_kind"], COLORS["service"]), "bound": r.get("bound")})
                    for r, value in ratios]
            legend = [(COLORS.get(kind, COLORS["service"]), f"PostgreSQL running the {kind}" + (" (*)" if kind == "same SQL" and len(kinds) > 1 else ""))
                      for kind in kinds]
            series = [("ratio", COLORS["service"], "ratio")]
            if any(row["bound"] is not None for _, row in rows):
                series.append(("bound", COLORS["bound"], bound_name))
                legend.append((COLORS["bound"], bound_name))
        made["ratio.svg"] = bar_chart(
            "Service ÷ PostgreSQL alone, per scenario (1.0 = as fast as the database)",
            source(data), rows, series, "ratio (higher is better)", reference=1.0, legend=legend)
        rows = [(label(r), {"service": r.get("changes_per_s", r.get("debits_per_s")), "ceiling": r.get("ceiling")})
                for r, _ in ratios if r["section"] in ("push", "pull", "use")]
        if rows:
            made["throughput.svg"] = bar_chart(
                "Throughput: the service against PostgreSQL running the SQL alone", source(data), rows,
                [("service", COLORS["service"], "service (changes/s or debits/s)"), ("ceiling", COLORS["ceiling"], "pgbench, same clients")],
                "per second (log scale)", scale="log")
    latencies = [r for r in records if r["section"] in ("push", "pull", "use", "ws-notify") and r.get("p99") is not None]
    if latencies:
        rows = [(label(r), {"p50": r["med"], "p95": r["p95"], "p99": r["p99"]}) for r in latencies]
        made["latency.svg"] = bar_chart(
            "Latency percentiles per scenario", source(data), rows,
            [("p50", COLORS["p50"], "p50"), ("p95", COLORS["p95"], "p95"), ("p99", COLORS["p99"], "p99")], "ms (log scale)", scale="log")
    mixed = [r for r in records if r["section"] == "mixed" and r.get("push_p95")]
    if mixed:
        # The k6 thresholds of bench/sync-mixed.js, and a bar per run.
        kinds = [("push p95", "push_p95", 300), ("pull p95", "pull_p95", 200), ("all requests p95", "all_p95", 500),
                 ("all requests p99", "all_p99", 1000)]
        run_of = lambda r: r.get("run", data.get("date", "run"))
        runs = list(dict.fromkeys(run_of(r) for r in mixed))
        palette = RUN_COLOURS[-len(runs):] if len(runs) <= len(RUN_COLOURS) else RUN_COLOURS * len(runs)
        rows = []
        for name, key, threshold in kinds:
            row = {"threshold": threshold}
            for r in mixed:
                row[run_of(r)] = r[key]
            rows.append((name, row))
        series = [(run, colour, f"{run}") for run, colour in zip(runs, palette)] + [("threshold", COLORS["bound"], "k6 threshold (pass below)")]
        made["mixed.svg"] = bar_chart(
            "Mixed scenario (one user, ramp to 200 VUs): latency against the thresholds", source(data), rows, series, "ms")
    memory = []
    for r in records:
        if r["section"] == "idle":
            memory += [("mana-sync idle", r["sync_rss_mb"]), ("mana-credits idle", r["credits_rss_mb"])]
        elif r["section"] == "bulk" and r.get("peak_rss_mb"):
            memory.append((f"{label(r)} (peak)", r["peak_rss_mb"]))
        elif r["section"] == "ws-idle":
            memory.append((label(r), r["rss_after_mb"]))
        elif r["section"] == "mixed" and r.get("peak_rss_mb"):
            memory.append((f"{label(r)} (peak)", r["peak_rss_mb"]))
        elif r.get("rss_mb") is not None:
            memory.append((label(r), r["rss_mb"]))
    if memory:
        made["rss.svg"] = bar_chart(
            "Resident memory of the service after each scenario", source(data),
            [(name, {"rss": value}) for name, value in memory], [("rss", COLORS["rss"], "RSS MB")], "MB (log scale)",
            scale="log")
    return made


def write(data, out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    made = charts(data)
    for name, text in made.items():
        (out / name).write_text(text)
    return sorted(made)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="results JSON (bench/bench.py's .bench/results.json, or bench/results/*.json)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "charts"), help="folder for the SVG files")
    arguments = parser.parse_args()
    names = write(load(arguments.results), arguments.out)
    if not names:
        sys.exit("no chartable records")
    for name in names:
        print(Path(arguments.out) / name)


if __name__ == "__main__":
    main()
