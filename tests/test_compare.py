"""`dqnlab compare`: runs every entry on every seed, tabulates, plots, resumes, refuses to clobber."""

import json

import pytest

from dqnlab.cli.main import main
from dqnlab.config import build_config
from dqnlab.core.errors import ConfigError
from dqnlab.experiments.compare import entry_stats, format_table, resolve_entries

TINY = [
    "--set",
    "total_steps=1500",
    "--set",
    "eval.every_steps=500",
    "--set",
    "eval.episodes=3",
    "--set",
    "eval.final_episodes=5",
    "--set",
    "artifacts=false",
]


def _yaml_entry(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("algo: baseline\nbaseline:\n  controller: lqr\n")
    return path


def test_compare_end_to_end_and_rerun_skips_finished_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = tmp_path / "cmp"
    entry = _yaml_entry(tmp_path)
    args = ["compare", "random", str(entry), "--seeds", "0-1", "--out", str(out), "--workers", "2", *TINY]
    assert main(args) == 0
    printed = capsys.readouterr()
    # the plan first, then a line per run with its count (runs finish in any order)
    err = printed.err.splitlines()
    assert err[0] == "[dqnlab] 4 runs (2 entries × 2 seeds) on 2 workers, 0 already finished"
    assert sorted(line.split(" ", 2)[1] for line in err[1:]) == ["1/4", "2/4", "3/4", "4/4"]
    # a terminal-width table on stdout; the Markdown one in compare.md
    table = printed.out.splitlines()[:-1]  # the last line names the output folder
    assert all(len(line) <= 80 for line in table) and "|" not in printed.out
    assert printed.out.splitlines()[0].split()[:4] == ["entry", "solved", "eval", "median"]
    assert printed.out.splitlines()[2].split()[:3] == ["mine", "2/2", "500.0"]
    markdown = (out / "compare.md").read_text()
    assert "| random | baseline | CartPole-v1 | 0/2 |" in markdown
    assert "| mine | baseline | CartPole-v1 | 2/2 |" in markdown
    result = json.loads((out / "compare.json").read_text())
    assert [e["label"] for e in result["entries"]] == ["random", "mine"]
    mine = result["entries"][1]
    assert mine["eval_mean"]["median"] == 500.0 and mine["reached_threshold"] == 2
    # the first evaluation (due at 500 steps: 8 envs x 63 steps = 504) already reached 475
    assert mine["steps_to_solve"]["median"] == 504
    assert (out / "curves.png").stat().st_size > 1000
    assert (out / "compare.md").read_text().startswith("| preset |")
    for label in ("random", "mine"):
        for seed in (0, 1):
            assert (out / label / f"seed-{seed}" / "summary.json").is_file()
    before = (out / "mine" / "seed-0" / "summary.json").stat().st_mtime_ns
    assert main(args) == 0  # the same command again: nothing is retrained
    assert (out / "mine" / "seed-0" / "summary.json").stat().st_mtime_ns == before
    assert capsys.readouterr().err.splitlines() == [
        "[dqnlab] 4 runs (2 entries × 2 seeds) on 1 worker, 4 already finished"
    ]
    assert json.loads((out / "compare.json").read_text())["entries"][1]["solved"] == 2


def test_compare_refuses_a_folder_with_other_runs(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "random", "--seeds", "0", "--out", str(out), "--workers", "1", *TINY]) == 0
    capsys.readouterr()
    code = main(
        [
            "compare",
            "random",
            "--seeds",
            "0",
            "--out",
            str(out),
            "--workers",
            "1",
            *TINY,
            "--set",
            "eval.final_episodes=6",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "different config" in err[0]


def test_bad_entries_are_one_line(tmp_path, capsys):
    assert main(["compare", "defualt", "--out", str(tmp_path / "x")]) != 0
    assert "did you mean 'default'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="given twice"):
        resolve_entries(["random", "random"])
    assert main(["compare", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "y")]) != 0
    assert "not found" in capsys.readouterr().err


def test_entry_stats_and_table_by_hand():
    cfg = build_config("random")
    rows = [
        {
            "seed": s,
            "status": "finished",
            "solved": s < 2,
            "eval_mean": m,
            "train_seconds": 1.0,
            "threshold": 475.0,
            "steps_to_solve": st,
            "seconds_to_solve": None if st is None else st / 1000,
        }
        for s, m, st in ((0, 500.0, 1000), (1, 480.0, 3000), (2, 100.0, None))
    ] + [
        {
            "seed": 3,
            "status": "failed",
            "solved": False,
            "eval_mean": None,
            "threshold": None,
            "steps_to_solve": None,
            "seconds_to_solve": None,
            "train_seconds": None,
        }
    ]
    e = entry_stats("random", cfg, rows)
    assert (e["solved"], e["failed"], e["runs"], e["reached_threshold"]) == (2, 1, 4, 2)
    assert e["eval_mean"]["median"] == 480.0
    assert e["steps_to_solve"]["median"] == 2000.0
    table = format_table({"seeds": [0, 1, 2, 3], "entries": [e]})
    assert "| random | baseline | CartPole-v1 | 2/4 (1 failed) | 480.0 |" in table


def test_a_cut_off_run_is_continued_from_its_checkpoint(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "default", "--seeds", "0", "--out", str(out), "--workers", "1", *TINY]
    assert main(args) == 0
    straight = (out / "default" / "seed-0" / "metrics.csv").read_text()
    # As if the comparison was killed at the end of training: no summary.json yet.
    (out / "default" / "seed-0" / "summary.json").unlink()
    assert main(args) == 0
    run = out / "default" / "seed-0"
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    assert (run / "metrics.csv").read_text().count("\n") == straight.count("\n")


def test_compare_of_a_success_task_solves_by_success_and_plots_it(tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "cmp"
    args = [
        "compare",
        "target-lqr",
        "--seeds",
        "0",
        "--out",
        str(out),
        *TINY,
        "--set",
        "eval.episodes=20",
        "--set",
        "eval.final_episodes=20",
    ]
    assert main(args) == 0
    assert "target-lqr: median task success rate" in capsys.readouterr().out
    markdown = (out / "compare.md").read_text()
    assert "| target-lqr | baseline | dqnlab/CartPoleTarget-v0 | 1/1 |" in markdown
    assert "solved here means a success rate of at least 95%" in markdown
    entry = json.loads((out / "compare.json").read_text())["entries"][0]
    assert entry["per_seed"][0]["success_threshold"] == 0.95 and entry["steps_to_solve"]["median"] == 504
    with Image.open(out / "curves.png") as img:
        width, height = img.size
    assert width / height > 3.5  # three panels, the third the success rate (two are 13 x 5)


def test_a_baseline_evaluated_once_is_drawn_as_a_level_line(tmp_path, capsys):
    from dqnlab.viz.compare_figure import compare_figure

    out = tmp_path / "cmp"
    # the LQR reaches the threshold at its first evaluation and stops: one point per seed
    assert main(["compare", str(_yaml_entry(tmp_path)), "--seeds", "0-1", "--out", str(out), *TINY]) == 0
    result = json.loads((out / "compare.json").read_text())
    ax_eval = compare_figure(result, out).axes[0]
    (line,) = [ln for ln in ax_eval.get_lines() if ln.get_label().startswith("mine")]
    assert line.get_label() == "mine (2/2 solved), one evaluation"
    assert list(line.get_xdata()) == [0, 1] and list(line.get_ydata()) == [500.0, 500.0]  # across the panel


def test_terminal_table_fits_the_width():
    from dqnlab.experiments.compare import format_terminal_table

    cfg = build_config("random")
    rows = [
        {"seed": s, "status": "finished", "solved": True, "eval_mean": 500.0 - s, "train_seconds": 1.5}
        | {"threshold": 475.0, "steps_to_solve": 1000 + s, "seconds_to_solve": 0.5}
        for s in range(3)
    ]
    result = {
        "seeds": [0, 1, 2],
        "entries": [entry_stats("default", cfg, rows), entry_stats("a-config-file-with-a-long-name-" * 2, cfg, rows)],
    }
    wide = format_terminal_table(result, 300)
    assert wide.splitlines()[0].split("  ")[0].strip() == "entry" and "train s" in wide.splitlines()[0]
    assert "Not shown" not in wide and "a-config-file-with-a-long-name-a-config" in wide
    for width in (140, 100, 80, 60, 40):
        table = format_terminal_table(result, width)
        lines = table.splitlines()
        assert all(len(line) <= width for line in lines), (width, table)
        assert lines[1].startswith("default ") and {"3/3", "499.0"} <= set(lines[1].split())  # always shown
        assert lines[2].startswith("a-config") and {"3/3", "499.0"} <= set(lines[2].split())
    assert "Not shown at this width: algo, env" in format_terminal_table(result, 80).replace("\n", " ")
