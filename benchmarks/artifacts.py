"""The cost of the end of a run (issue #16): curves.png, episode.gif and report.html, alone and
inside the whole `dqnlab train` command.

    python benchmarks/artifacts.py [--repeats 5] [--before SRC] [--run RUN_DIR] [--json OUT.json]
                                   [--set KEY=VALUE ...]

Two measurements, each in fresh processes (imports are part of the cost: matplotlib and Pillow
are imported only when the artifacts are drawn), `--repeats` times, alternating between source
trees so that a change in the machine's load hits both alike:

- artifacts: ``dqnlab.viz.write_run_artifacts`` on one finished run (trained once, the `default`
  preset with seed 0, whose greedy episode lasts the full 500 steps: 251 GIF frames), timed from
  the call to its return, on one torch thread as `dqnlab train` runs it; plus the size of the
  files;
- command: ``python -m dqnlab train --seed 0 --quiet`` (plus `--set`), timed from process start
  to exit, with its training seconds and final evaluation from summary.json, and the rest
  (process start, imports, final evaluation, artifacts, exit) as the difference.

`--before SRC` names a second source tree to measure the same way (e.g. the commit before the
change, exported with ``git archive COMMIT | tar -x -C SRC``). The machine's load average is
recorded before and after. Prints one JSON object (medians and every sample).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ARTIFACTS_CODE = """
import json, sys, time
import dqnlab
assert dqnlab.__file__.startswith(sys.argv[2]), (dqnlab.__file__, sys.argv[2])
from pathlib import Path
import torch
torch.set_num_threads(1)
from dqnlab.viz import write_run_artifacts
t0 = time.perf_counter()
paths = write_run_artifacts(Path(sys.argv[1]))
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "bytes": {p.name: p.stat().st_size for p in paths}}))
"""


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "SDL_VIDEODRIVER": "offscreen", "SDL_AUDIODRIVER": "dummy"}


def train_run(src: Path, run_dir: Path, extra: list[str]) -> dict:
    """`dqnlab train` from `src` into `run_dir`: wall seconds from process start to exit, and
    summary.json's training and final-evaluation seconds."""
    cmd = [sys.executable, "-m", "dqnlab", "train", "--seed", "0", "--quiet", "--run-dir", str(run_dir), *extra]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=run_dir.parent, env=_env(src), capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "wall_seconds": wall,
        "train_seconds": summary["train_seconds"],
        "final_eval_seconds": summary["final_eval_seconds"],
        "rest_seconds": wall - summary["train_seconds"],
        "eval_mean": summary["eval_mean"],
    }


def artifacts_run(src: Path, run_dir: Path) -> dict:
    done = subprocess.run(  # run outside any source tree: `python -c` puts the working folder first on sys.path
        [sys.executable, "-c", ARTIFACTS_CODE, str(run_dir), str(src)],
        cwd=run_dir.parent,
        env=_env(src),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"write_run_artifacts from {src} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median(rows: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in rows), 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", type=Path, help="a second source tree to measure (the code before the change)")
    parser.add_argument("--run", type=Path, help="a finished run to draw (default: train one, artifacts off)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to dqnlab train")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    extra = [a for kv in args.set for a in ("--set", kv)]
    trees = {"after": ROOT} | ({"before": args.before.resolve()} if args.before else {})
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="dqnlab-artifacts-") as tmp:
        root = Path(tmp)
        run = args.run
        if run is None:  # one finished run to draw; its artifacts are rewritten by every repeat
            run = root / "run"
            train_run(ROOT, run, [*extra, "--set", "artifacts=false"])
        samples: dict[str, dict[str, list[dict]]] = {name: {"artifacts": [], "command": []} for name in trees}
        for i in range(args.repeats):
            for name, src in trees.items():
                samples[name]["artifacts"].append(artifacts_run(src, run))
                samples[name]["command"].append(train_run(src, root / f"{name}-{i}", extra))
                print(
                    f"[{i + 1}/{args.repeats}] {name}: artifacts {samples[name]['artifacts'][-1]['seconds']:.2f} s, "
                    f"command {samples[name]['command'][-1]['wall_seconds']:.2f} s "
                    f"(training {samples[name]['command'][-1]['train_seconds']:.2f} s)",
                    file=sys.stderr,
                )

    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": [round(v, 2) for v in load_before],
            "load_after": [round(v, 2) for v in os.getloadavg()],
        },
        "repeats": args.repeats,
        "set": args.set,
        "medians": {
            name: {
                "artifacts_seconds": _median(s["artifacts"], "seconds"),
                "command_seconds": _median(s["command"], "wall_seconds"),
                "train_seconds": _median(s["command"], "train_seconds"),
                "final_eval_seconds": _median(s["command"], "final_eval_seconds"),
                "command_minus_training_seconds": _median(s["command"], "rest_seconds"),
                "bytes": s["artifacts"][-1]["bytes"],
            }
            for name, s in samples.items()
        },
        "samples": samples,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
