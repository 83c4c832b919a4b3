"""The benchmark's report: the machine, a markdown table, two plots."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

LOADS = (0.25, 0.5, 0.75, 1.0)  # open-loop offered load, as shares of the single-image peak


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_average_at_start": os.getloadavg()}


def served(r: dict[str, Any]) -> str:
    """The model the run served, named by its checkpoint (the folder says which of the models it
    is; the architecture alone does not tell compact_ens from compact)."""
    c = r["ceiling"]
    return f"model `{r['config'].get('checkpoint') or c['arch']}` ({c['arch']}, version {c.get('model_version', '?')})"


def markdown(r: dict[str, Any]) -> str:
    naive = r.get("naive", {}).get("end_to_end_images_per_second") or 0
    ceil = max(r["ceiling"]["images_per_second"].values())
    lines = [f"Machine: {r['machine']['cpu']}, {r['machine']['cores']} cores; load average at start "
             f"{', '.join(f'{x:.1f}' for x in r['machine']['load_average_at_start'])}. "
             f"{r['config']['processes']} worker processes per variant, {served(r)}. "
             f"Command: `{r['config']['command']}`.", "",
             "| variant | images/s | vs naive | mean batch | note |", "|---|---:|---:|---:|---|"]

    def row(name: str, rate: float, batch: Any = "", note: str = "") -> None:
        ratio = f"{rate / naive:.1f}x" if naive else ""
        lines.append(f"| {name} | {rate:,.0f} | {ratio} | {batch} | {note} |")

    row("ceiling: model alone in process (best batch size)", ceil, "", f"{r['ceiling']['threads']} threads")
    if "naive" in r:
        row("naive: a task per image, end to end", naive, 1, f"producer {r['naive']['producer_publishes_per_second']:,.0f} publishes/s")
        row("naive: draining a pre-filled queue", r["naive"]["drain_images_per_second"], 1)
    if "celery_batches" in r:
        cb = r["celery_batches"]
        row("celery-batches: end to end", cb["end_to_end_images_per_second"], "", "delay() per job")
        row("celery-batches: draining a pre-filled queue", cb["drain_images_per_second"])
    s = r["service"]
    row("service, bulk (`submit_many`), end to end", s["bulk"]["images_per_second"], s["bulk"]["mean_batch_size"],
        f"{s['bulk']['images_per_second'] / ceil:.0%} of the ceiling")
    row("service, single-image jobs, end to end", s["single"]["images_per_second"], s["single"]["mean_batch_size"],
        "one message and one call per job")
    if "against" in s:  # the same closed loops with workers from another revision, in the same run
        o = s["against"]
        for key, label in (("bulk", "bulk"), ("single", "single-image jobs")):
            row(f"service at `{o['rev']}` ({o['commit']}), {label}, end to end", o[key]["images_per_second"],
                o[key]["mean_batch_size"], f"this checkout / {o['rev']}: {o[f'{key}_ratio']:.3f}")
    if "events_on" in s:  # the same closed loops with task events on (-E)
        e = s["events_on"]
        for key, label in (("bulk", "bulk"), ("single", "single-image jobs")):
            row(f"service with task events on (-E), {label}, end to end", e[key]["images_per_second"],
                e[key]["mean_batch_size"], f"events on / off: {e[f'{key}_ratio']:.3f}")
    if "single_drain" in s:  # not measured with --external-workers
        row("service, single-image jobs, draining", s["single_drain"]["images_per_second"],
            s["single_drain"]["mean_batch_size"])
    lines += ["", f"Open loop, single-image jobs, Poisson arrivals (max batch wait {r['config']['max_batch_wait_ms']} ms):",
              "", "| load | offered/s | achieved/s | p50 ms | p95 ms | p99 ms | queue wait p50 | compute p50 | mean batch |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for frac, o in zip(LOADS, s["open_loop"]):
        lines.append(f"| {frac:.0%} | {o['offered_per_second']:,.0f} | {o['achieved_per_second']:,.0f} | "
                     f"{o['latency_ms']['p50']} | {o['latency_ms']['p95']} | {o['latency_ms']['p99']} | "
                     f"{o['queue_wait_ms_p50']} | {o['compute_ms_p50']} | {o['mean_batch_size']} |")
    lines += ["", "Where an image's time goes (microseconds per image, closed loop):", "",
              "| stage | bulk | single |", "|---|---:|---:|"]
    for k in s["bulk"]["time_per_image_us"]:
        lines.append(f"| {k} | {s['bulk']['time_per_image_us'][k]} | {s['single']['time_per_image_us'].get(k, '')} |")
    variants = [(name, v) for name, v in (("this checkout", s), ("task events on (-E)", s.get("events_on")),
                                          (f"`{s.get('against', {}).get('rev')}`", s.get("against"))) if v]
    if len(variants) > 1:  # CPU time is steadier than throughput on a shared machine
        lines += ["", "CPU per image, closed loop (microseconds; the same runs as the rows above):", "",
                  "| variant | bulk: consumer | bulk: pool | single: consumer | single: pool |", "|---|---:|---:|---:|---:|"]
        for name, v in variants:
            cpu = [v[loop]["time_per_image_us"].get(f"{proc} process CPU", "")
                   for loop in ("bulk", "single") for proc in ("consumer", "pool")]
            lines.append(f"| {name} | " + " | ".join(str(c) for c in cpu) + " |")
    if rss := s.get("peak_rss_mb"):  # not measured with --external-workers
        lines += ["", f"Peak resident memory, service worker: consumer {rss['consumer']} MB, pool processes "
                  f"{rss['pool']} MB."]
    if "preprocessing" in r:
        lines += ["", "Preprocessing, one core: " + "; ".join(f"{k} {v:,.0f}/s" for k, v in r["preprocessing"].items())]
    if "photos" in r:
        lines += photos_markdown(r["photos"], s.get("against", {}).get("rev"))
    return "\n".join(lines) + "\n"


def photos_markdown(p: dict[str, Any], rev: str | None) -> list[str]:
    """The photo variants, Redis bytes per queued job and the cost of waiting (devtools.bench.photos)."""
    e = p["end_to_end"]
    lines = ["", f"Photos, closed loop ({p['photos']:,} photo-mix images, mean {p['mean_file_bytes']:,} bytes; "
             f"{p['jpeg_photos']:,} JPEGs of 1,000 px, mean {p['jpeg_mean_file_bytes']:,} bytes):", "",
             "| variant | images/s | vs " + (rev or "-") + " | mean batch | fetch µs | decode µs | forward µs |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    best = f"best of {p.get('rounds', 1)} alternating with `{rev}`" if rev else "best of the rounds"
    names = {"mix_bytes": f"photo mix by bytes ({best})", "mix_urls": "photo mix by URL",
             "jpeg_bytes": f"JPEG 1,000 px by bytes ({best})",
             "mix_bytes_colours_on": "photo mix by bytes, colours on (best of the colour rounds)",
             "mix_bytes_no_colours": "photo mix by bytes, colours off (best of the colour rounds)",
             "jpeg_bytes_colours_on": "JPEG 1,000 px by bytes, colours on (best of the colour rounds)",
             "jpeg_bytes_no_colours": "JPEG 1,000 px by bytes, colours off (best of the colour rounds)",
             "rev_mix_bytes": f"`{rev}`: photo mix by bytes (best)", "rev_jpeg_bytes": f"`{rev}`: JPEG 1,000 px by bytes (best)"}
    for key, name in names.items():
        if key not in e:
            continue
        stages = e[key]["time_per_image_us"]
        ratio = e.get(f"{key}_ratio")
        lines.append(f"| {name} | {e[key]['images_per_second']:,.0f} | {f'{ratio:.2f}x' if ratio else ''} | "
                     f"{e[key]['mean_batch_size']} | {stages.get('pool: fetch', '')} | {stages.get('pool: decode', '')}"
                     f" | {stages.get('pool: forward', '')} |")
    if "mix_bytes_colour_cost" in e:
        lines += ["", f"Naming colours costs {e['mix_bytes_colour_cost']:.1%} of the photo mix's end-to-end "
                  f"throughput and {e['jpeg_bytes_colour_cost']:.1%} of the JPEGs' (colours on vs `TAGGER_COLOURS=0`)."]
    m = p["redis_bytes_per_queued_job"]
    lines += ["", "Redis bytes per queued job (INFO memory, client closed): photo bytes job "
              f"{m['bytes_job_this']:,.0f} ({m['per_file_byte_this']:.2f} per file byte)"
              + (f", with `{rev}`'s client {m['bytes_job_rev']:,.0f} ({m['per_file_byte_rev']:.2f})"
                 if "bytes_job_rev" in m else "") + f"; URL job {m['url_job_this']:,.0f}."]
    w = p["wait"]
    lines += ["", f"The wait: `python -m producer submit <{w['this']['jobs']:,} PNGs> --wait`, seed model, "
              f"Redis CPU and commands for the whole run, each side on a private Redis with only its own workers, "
              f"best of {w['rounds']} alternating rounds:", "",
              "| client and workers | CLI seconds | images/s | Redis CPU µs/job | Redis commands/job | MGET | XREAD |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name in ("this", "rev"):
        if name in w:
            x = w[name]
            lines.append(f"| {'this checkout' if name == 'this' else f'`{rev}`'} | {x['cli_seconds']} | "
                         f"{x['images_per_second']:,.0f} | {x['redis_cpu_us_per_job']} | {x['redis_commands_per_job']} | "
                         f"{x['wait_commands']['mget']} | {x['wait_commands']['xread']} |")
    if "cli_speedup" in w:
        lines.append(f"\n`{rev}` / this checkout: CLI time {w['cli_speedup']:.2f}x, Redis CPU per job "
                     f"{w['redis_cpu_ratio']:.2f}x. Every round (seconds): this checkout {w['this']['cli_seconds_all']}, "
                     f"`{rev}` {w['rev']['cli_seconds_all']}; (Redis CPU µs/job): this checkout "
                     f"{w['this']['redis_cpu_us_per_job_all']}, `{rev}` {w['rev']['redis_cpu_us_per_job_all']}.")
    return lines


def plots(r: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    rates = r["ceiling"]["images_per_second"]
    ax.plot([int(k) for k in rates], list(rates.values()), "o-", label="model alone, in process")
    for name, value, style in (("service, bulk", r["service"]["bulk"]["images_per_second"], "--"),
                               ("service, single-image jobs", r["service"]["single"]["images_per_second"], ":"),
                               ("naive task per image", r.get("naive", {}).get("end_to_end_images_per_second"), "-.")):
        if value:
            ax.axhline(value, ls=style, color="gray")
            ax.text(1, value, f" {name}: {value:,.0f}/s", va="bottom", fontsize=8)
    ax.set(xscale="log", xlabel="batch size", ylabel="images per second",
           title=f"Throughput ({r['ceiling']['arch']}, {r['config']['processes']} processes / threads)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.savefig(out / "throughput.png", dpi=120, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    ol = r["service"]["open_loop"]
    x = [o["offered_per_second"] for o in ol]
    for q in ("p50", "p95", "p99"):
        ax.plot(x, [o["latency_ms"][q] for o in ol], "o-", label=q)
    ax.axhline(r["config"]["max_batch_wait_ms"] + 100, ls="--", color="gray", label="target for p99 at 50%")
    ax.set(xlabel="offered load (single-image jobs per second, Poisson)", ylabel="submit -> result (ms)",
           title="Latency versus offered load", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(out / "latency.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
