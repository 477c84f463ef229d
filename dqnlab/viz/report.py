"""report.html: one self-contained page per run (summary, learning curves, an episode of the
delivered policy, the resolved config).

Self-contained means one file that opens anywhere, offline and forever: images are embedded as
base64 ``data:`` URIs, the CSS is inline, and the page loads nothing (no scripts, fonts or
stylesheets from a network), so it can be mailed or archived with the run.
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path
from typing import Any

from dqnlab.core.errors import DqnlabError
from dqnlab.core.version import __version__
from dqnlab.runtime.rundir import CONFIG_FILE, MARKER_FILE, SUMMARY_FILE, is_run_dir
from dqnlab.viz.metrics import read_summary
from dqnlab.viz.output import REPORT_FILE, write_output

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0; background: #f6f7f9; color: #1d2330; line-height: 1.45; }
main { max-width: 1160px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.5rem; margin: 0 0 4px; word-break: break-all; }
h2 { font-size: 1.1rem; margin: 0 0 12px; }
.sub { color: #5b6475; margin: 0 0 20px; }
section { background: #fff; border: 1px solid #e1e4ea; border-radius: 8px; padding: 18px 20px; margin: 0 0 18px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 999px; font-weight: 600; font-size: 0.9rem; }
.yes { background: #dcf5e3; color: #13612e; } .no { background: #fde7e4; color: #8c1d13; }
.unknown { background: #eceef2; color: #434a59; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 4px 18px 4px 0; vertical-align: top; }
th { font-weight: 600; color: #434a59; white-space: nowrap; }
img { max-width: 100%; height: auto; display: block; }
.anim img { border: 1px solid #e1e4ea; image-rendering: auto; }
figcaption { color: #5b6475; font-size: 0.9rem; margin-top: 8px; }
pre { background: #f3f4f7; border-radius: 6px; padding: 12px 14px; overflow-x: auto; font-size: 0.85rem; }
details summary { cursor: pointer; color: #434a59; margin-top: 10px; }
.note { color: #5b6475; }
"""


def data_uri(data: bytes, mime: str) -> str:
    """`data` as a ``data:`` URI, for embedding an image in the page itself."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _num(x: Any, fmt: str = "{:.1f}") -> str:
    return "–" if x is None else fmt.format(x)


def summary_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary.json fields a reader wants first, as (label, text) rows."""
    threshold = s.get("threshold")
    rows = [
        ("environment", f"{s.get('env_id', '–')}  (preset {s.get('preset') or '–'}, seed {s.get('seed', '–')})"),
        (
            "final evaluation",
            f"mean {_num(s.get('eval_mean'))} ± {_num(s.get('eval_std'))} over "
            f"{s.get('eval_episodes') or '–'} fresh episodes "
            f"(min {_num(s.get('eval_min'), '{:g}')}, max {_num(s.get('eval_max'), '{:g}')})",
        ),
        ("solve threshold", "none" if threshold is None else f"{threshold:g}"),
    ]
    if s.get("success_rate") is not None:
        goal = s.get("success_threshold")
        rows.append(
            (
                "task success",
                f"{s['success_rate']:.0%} of the final episodes"
                + ("" if goal is None else f" (solved at {goal:.0%}: this replaces the return threshold)"),
            )
        )
    rows += [
        (
            "best evaluation in training" if not s.get("shortlist") else "delivered network's evaluation",
            f"{_num(s.get('best_eval_mean'))} at env step {s.get('best_eval_step', '–')} (the delivered policy"
            + ("" if not s.get("shortlist") else ": the best of a second look at the best evaluations, eval.shortlist")
            + ")",
        ),
        ("threshold reached at", "–" if s.get("steps_to_threshold") is None else f"env step {s['steps_to_threshold']}"),
        (
            "budget used",
            f"{s.get('env_steps', '–')} env steps, {s.get('episodes', '–')} episodes, "
            f"{s.get('grad_steps', '–')} gradient steps",
        ),
        (
            "time",
            f"{_num(s.get('train_seconds'), '{:.2f}')} s training, "
            f"{_num(s.get('final_eval_seconds'), '{:.2f}')} s final evaluation",
        ),
        ("status", f"{s.get('status', '–')} (stopped by {s.get('stop_reason', '–')})"),
    ]
    if s.get("q_max") is not None:
        scale = f"largest |Q| at an evaluation {s['q_max']:.4g}, at most {_num(s.get('q_bound'), '{:.4g}')} possible"
        if s.get("value_warning") is not None:  # a mapping in summary.json, shown as text once cleaned
            scale += f"; diverging: {s['value_warning']}"
        rows.append(("value scale", scale))
    versions = s.get("versions")
    if isinstance(versions, dict):
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    return rows


def report_html(
    title: str,
    summary: dict[str, Any] | None,
    config_text: str | None,
    curves_png: bytes | None,
    animation_gif: bytes | None,
    animation_caption: str = "",
) -> str:
    """The whole page as one string. Every text from the run is HTML-escaped; absent parts are
    replaced by a one-line note saying how to produce them."""
    e = html.escape
    if summary is None:
        badge = '<span class="badge unknown">no summary yet</span>'
    elif summary.get("solved"):
        badge = '<span class="badge yes">solved</span>'
    else:
        badge = '<span class="badge no">not solved</span>'
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)} · dqnlab report</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<h1>{e(title)}</h1>",
        f'<p class="sub">dqnlab run report {badge}</p>',
        "<section><h2>Summary</h2>",
    ]
    if summary is None:
        parts.append(
            f'<p class="note">This run has no {SUMMARY_FILE} yet: it is still training, or it stopped '
            "before the end.</p>"
        )
    else:
        parts.append("<table>")
        parts += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in summary_rows(summary)]
        parts.append("</table>")
        parts.append(
            f"<details><summary>all of {SUMMARY_FILE}</summary><pre>{e(json.dumps(summary, indent=2))}</pre></details>"
        )
    parts.append("</section>")

    parts.append("<section><h2>Learning curves</h2>")
    if curves_png is None:
        parts.append('<p class="note">No curves: <code>dqnlab plot RUN_DIR</code> draws them.</p>')
    else:
        parts.append(f'<img src="{data_uri(curves_png, "image/png")}" alt="learning curves">')
    parts.append("</section>")

    parts.append('<section class="anim"><h2>The delivered policy playing</h2>')
    if animation_gif is None:
        parts.append('<p class="note">No animation: <code>dqnlab play RUN_DIR</code> records one.</p>')
    else:
        parts.append(
            f'<figure style="margin:0"><img src="{data_uri(animation_gif, "image/gif")}" '
            f'alt="an episode of the delivered policy">'
            f"<figcaption>{e(animation_caption)}</figcaption></figure>"
        )
    parts.append("</section>")

    parts.append(f"<section><h2>Configuration ({CONFIG_FILE})</h2>")
    if config_text is None:
        parts.append(f'<p class="note">No {CONFIG_FILE} in the run directory.</p>')
    else:
        parts.append(f"<pre>{e(config_text)}</pre>")
    parts.append("</section>")

    parts.append(f'<p class="note">Written by dqnlab {e(__version__)} on {e(time.strftime("%Y-%m-%d %H:%M"))}.</p>')
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


MAX_CONFIG_SHOWN = 100_000
"""Bytes of config.yaml shown in the page (a real one is about 3 kB)."""


def _read(path: Path, limit: int | None = None) -> bytes | None:
    """The bytes of `path` (at most `limit` + 1 of them), or None if it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read(-1 if limit is None else limit + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DqnlabError(f"cannot read {path}: {exc.strerror or exc}", exit_code=1) from None


def write_report(
    run_dir: str | Path,
    curves_png: Path | None = None,
    animation_gif: Path | None = None,
    animation_caption: str = "",
    out: str | Path | None = None,
) -> Path:
    """Write the report of `run_dir` (to RUN_DIR/report.html unless `out`), embedding the given
    PNG and GIF files, and return its path. Raises DqnlabError if `run_dir` is not a run
    directory or a file cannot be read or written."""
    run = Path(run_dir)
    if out is None and not is_run_dir(run):  # the default output replaces RUN_DIR/report.html: ours only
        raise DqnlabError(f"{run} is not a dqnlab run directory (no {MARKER_FILE} marker)")
    summary = read_summary(run)  # damaged: the page says there is no summary rather than failing
    config = _read(run / CONFIG_FILE, MAX_CONFIG_SHOWN)
    config_text: str | None = None
    if config is not None:
        config_text = config.decode("utf-8", errors="replace")
        if len(config) > MAX_CONFIG_SHOWN:
            config_text = config_text[:MAX_CONFIG_SHOWN] + f"\n... ({CONFIG_FILE} is longer; the rest is not shown)"
    page = report_html(
        title=run.resolve().name,
        summary=summary,
        config_text=config_text,
        curves_png=None if curves_png is None else _read(curves_png),
        animation_gif=None if animation_gif is None else _read(animation_gif),
        animation_caption=animation_caption,
    )
    return write_output(Path(out) if out is not None else run / REPORT_FILE, page.encode("utf-8"))
