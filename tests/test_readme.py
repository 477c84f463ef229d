"""README.md works: every ```bash and ```python block of it runs here as a user would run it.

- A block right after an HTML comment ``<!-- not run: WHY -->`` is skipped, and the skip says why
  (the pip install lines, a Ray cluster, a PostgreSQL server).
- A bash block of command synopses (placeholders such as RUN_DIR, FILE.yaml or N, ``...``, or
  ``[--option ...]``) is checked, not run: each ``dqnlab CMD`` it shows must answer ``--help``, and
  every option it lists must be in that help. A block may not mix synopses and commands.
- Any other bash block runs line by line (comment lines skipped, ``> FILE`` honoured) in a
  temporary folder of its own holding a copy of ``examples/``, and every line must exit 0.
- A python block runs twice in a fresh interpreter in a temporary folder: once as a user would,
  and again, since a README snippet should be safe to run twice. One right after
  ``<!-- runs after the block above -->`` reads what the bash block above it writes: that block's
  commands run first, in the same folder.

Small budgets (so that the README costs a couple of minutes, not an hour): before a command runs,
``small_budget`` rewrites it: ``train`` gets ``--total-steps 1500`` (200 for pixel presets, whose
gradient steps on frames are slow on a CPU), ``compare`` the same budget through ``--set``, both
5 evaluation episodes and no plots (``artifacts=false``); ``--seeds`` is cut to two seeds,
``--episodes`` to 10, a sweep to 2 trials of one seed, and the sweep's search space in the copy of
``examples/`` gets the same budget in its ``fixed:`` section. A python block runs after a prelude
that gives ``dqnlab.train`` the same budget (``PRELUDE``).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from dqnlab.cli.main import main
from dqnlab.config.presets import preset_names

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

TRAIN_STEPS = 1500
PIXEL_STEPS = 200
EVAL = ["--set", "artifacts=false", "--set", "eval.episodes=5", "--set", "eval.final_episodes=5"]

NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(.*?)\s*-->\s*$")
AFTER_ABOVE = re.compile(r"^\s*<!--\s*runs after the block above\s*-->\s*$")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
SYNOPSIS = re.compile(r"\.\.\.|\[--|\b[A-Z][A-Z0-9_]*[A-Z0-9]\b|\b[A-Z]\b")
"""What only a synopsis holds: `...`, an optional `[--option]`, a placeholder (RUN_DIR, FILE.yaml, N)."""
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


@dataclass(frozen=True)
class Block:
    lang: str
    line: int  # 1-based line of the opening fence
    code: str  # dedented
    not_run: str | None  # the marker's reason
    after: Block | None = None  # the bash block whose commands run first, in the same folder

    @property
    def id(self) -> str:
        return f"{self.lang}-line{self.line}"


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of `text` (any indentation), with the `not run` marker just above each."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, lang = opening.groups()
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.match(above)
        code = "\n".join(line.removeprefix(indent) for line in lines[i + 1 : end])
        after = blocks[-1] if AFTER_ABOVE.match(above) and blocks else None
        blocks.append(Block(lang, i + 1, code, marker.group(1) if marker else None, after))
        i = end + 1
    return blocks


BLOCKS = [b for b in readme_blocks(README.read_text(encoding="utf-8")) if b.lang in ("bash", "python")]


def shell_lines(code: str) -> list[str]:
    """The command lines of a bash block: comments removed, backslash continuations joined; a
    line that starts with blanks continues the previous one (a synopsis wrapped over lines)."""
    lines: list[str] = []
    joining = False
    for raw in code.splitlines():
        line = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0].rstrip()
        if not line.strip():
            joining = False
            continue
        if lines and (joining or raw[:1].isspace()):
            lines[-1] += " " + line.strip()
        else:
            lines.append(line.strip())
        joining = lines[-1].endswith("\\")
        lines[-1] = lines[-1].removesuffix("\\").rstrip()
    return lines


def _set_option(argv: list[str], flag: str, value: str) -> list[str]:
    """`argv` with `flag value` replaced, or appended when absent."""
    if flag in argv:
        i = argv.index(flag)
        return [*argv[: i + 1], value, *argv[i + 2 :]]
    return [*argv, flag, value]


def small_budget(argv: list[str]) -> list[str]:
    """A README command on a small budget (see the module docstring); other commands unchanged."""
    command = argv[1] if len(argv) > 1 else ""
    if "--seeds" in argv:
        argv = _set_option(argv, "--seeds", "1" if command == "sweep" else "0-1")
    if command == "train" and "--resume" not in argv:
        steps = PIXEL_STEPS if any("pixels" in arg for arg in argv) else TRAIN_STEPS
        argv = [*_set_option(argv, "--total-steps", str(steps)), *EVAL]
    elif command == "compare":
        argv = [*argv, "--set", f"total_steps={TRAIN_STEPS}", *EVAL]
    elif command == "sweep":
        argv = _set_option(argv, "--trials", "2")
    elif command == "evaluate" and "--episodes" in argv:
        argv = _set_option(argv, "--episodes", "10")
    return argv


def _env() -> dict[str, str]:
    """This checkout first on the path, for the commands and the interpreters the test starts."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def _folder_for_commands(tmp_path: Path) -> Path:
    """A temporary folder laid out like the repository root for the README's commands: a copy of
    examples/, the sweep's search space on a small budget."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("*.ipynb"))
    space_file = tmp_path / "examples" / "sweep_space.yaml"
    space = yaml.safe_load(space_file.read_text())
    space["fixed"] = {
        **space.get("fixed", {}),
        "total_steps": TRAIN_STEPS,
        "artifacts": False,
        "eval.episodes": 5,
        "eval.final_episodes": 5,
    }
    space_file.write_text(yaml.safe_dump(space, sort_keys=False))
    return tmp_path


def run_line(line: str, cwd: Path) -> None:
    """Run one README command line (a `dqnlab` command, maybe with `> FILE`) on a small budget."""
    words = shlex.split(line)
    out_file = None
    if ">" in words:
        i = words.index(">")
        words, out_file = words[:i], words[i + 1]
    if any(op in words for op in ("|", "&&", ";", ">>", "<")) or words[0] != "dqnlab":
        pytest.fail(f"README line {line!r}: tests/test_readme.py runs `dqnlab` commands, one per line")
    argv = small_budget(words)
    with open(cwd / out_file, "w") if out_file else contextlib.nullcontext() as stdout:
        done = subprocess.run(
            [sys.executable, "-m", "dqnlab", *argv[1:]],
            cwd=cwd,
            env=_env(),
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=600,
        )
    assert done.returncode == 0, f"README command failed: {line}\n(run as: {shlex.join(argv)})\n{done.stderr[-3000:]}"
    assert "Warning" not in done.stderr, f"README command warned: {line}\n{done.stderr[-3000:]}"


_HELP: dict[str, str] = {}


def command_help(command: str) -> str:
    """`dqnlab COMMAND --help`'s text (which must exit 0)."""
    if command not in _HELP:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0, f"dqnlab {command} --help failed"
        _HELP[command] = out.getvalue()
    return _HELP[command]


def check_synopsis(line: str) -> None:
    """Each `dqnlab CMD` of a synopsis line answers --help, and lists every option shown."""
    words = line.split()
    assert words[0] == "dqnlab" and len(words) > 1, f"README synopsis {line!r} does not start with `dqnlab CMD`"
    for command in words[1].split("|"):
        help_text = command_help(command)
        missing = [opt for opt in OPTION.findall(line) if not re.search(re.escape(opt) + r"(?![\w-])", help_text)]
        assert not missing, f"README shows {missing} for `dqnlab {command}`, which has no such option"


PRELUDE = f"""
# tests/test_readme.py: the README's Python on a small budget (dqnlab.train wrapped)
import dqnlab
from dqnlab.config import validate_config

_readme_train = dqnlab.train


def _small_train(config=None, run_dir=None, **kwargs):
    data = dqnlab.build_config().to_dict() if config is None else dict(config if isinstance(config, dict) else config.to_dict())
    evaluation = {{**data.get("eval", {{}}), "episodes": 5, "final_episodes": 5}}
    data = {{**data, "total_steps": {TRAIN_STEPS}, "artifacts": False, "eval": evaluation}}
    return _readme_train(validate_config(data), run_dir, **kwargs)


dqnlab.train = _small_train
del _small_train
"""


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block(block: Block, tmp_path: Path):
    if block.not_run is not None:
        pytest.skip(f"README line {block.line}: not run: {block.not_run}")
    if block.lang == "python":
        cwd = tmp_path
        if block.after is not None:
            assert block.after.lang == "bash", f"README line {block.line}: the block above is not a bash block"
            cwd = _folder_for_commands(tmp_path)
            for line in shell_lines(block.after.code):
                run_line(line, cwd)
        for attempt in ("first run", "second run"):
            done = subprocess.run(
                [sys.executable, "-c", PRELUDE + "\n" + block.code],
                cwd=cwd,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, f"README python block at line {block.line}, {attempt}:\n{done.stderr[-3000:]}"
            assert "Warning" not in done.stderr, (
                f"README python block at line {block.line} warned:\n{done.stderr[-3000:]}"
            )
        return
    lines = shell_lines(block.code)
    assert lines, f"README bash block at line {block.line} holds no command"
    synopses = [bool(SYNOPSIS.search(line)) for line in lines]
    if any(synopses):
        assert all(synopses), (
            f"README bash block at line {block.line} mixes synopses and commands: a command to run "
            f"names real values ({[ln for ln, s in zip(lines, synopses, strict=True) if not s]})"
        )
        for line in lines:
            check_synopsis(line)
        return
    cwd = _folder_for_commands(tmp_path)
    for line in lines:
        run_line(line, cwd)


def test_the_readme_has_its_blocks_and_every_skip_says_why():
    kinds = {
        "skipped": [b for b in BLOCKS if b.not_run is not None],
        "python": [b for b in BLOCKS if b.lang == "python" and b.not_run is None],
        "commands": [
            b
            for b in BLOCKS
            if b.lang == "bash" and b.not_run is None and not any(SYNOPSIS.search(ln) for ln in shell_lines(b.code))
        ],
    }
    assert all(len(v) >= 1 for v in kinds.values()), {k: len(v) for k, v in kinds.items()}
    assert all(len(b.not_run or "") >= 10 for b in kinds["skipped"]), "a `not run` marker must say why"
    text = README.read_text(encoding="utf-8")
    markers = [i for i, line in enumerate(text.splitlines(), 1) if NOT_RUN.match(line)]
    assert len(markers) == len(kinds["skipped"]), "a `not run` marker that stands above no bash or python block"
    after = [i for i, line in enumerate(text.splitlines(), 1) if AFTER_ABOVE.match(line)]
    assert len(after) == len([b for b in BLOCKS if b.after is not None]) >= 1, (
        "a `runs after` marker with no block above"
    )
    assert all(b.after.lang == "bash" and b.after.not_run is None for b in BLOCKS if b.after is not None)


def test_every_preset_the_readme_names_exists():
    text = README.read_text(encoding="utf-8")
    table = text.split("| preset | what |", 1)[1].split("\n\n", 1)[0]
    in_table = [name for cell in re.findall(r"^\| ([^|]+) \|", table, re.M) for name in re.findall(r"`([\w-]+)`", cell)]
    in_commands = re.findall(r"--preset\s+([\w-]+)", text) + re.findall(r"presets --show\s+([\w-]+)", text)
    named = set(in_table + in_commands) - {"NAME"}
    assert "default" in named and "s1-pixels" in named
    assert named <= set(preset_names()), sorted(named - set(preset_names()))


def test_budget_rewriting():
    assert small_budget(["dqnlab", "train", "--env", "Acrobot-v1", "--total-steps", "50000"]) == [
        "dqnlab",
        "train",
        "--env",
        "Acrobot-v1",
        "--total-steps",
        str(TRAIN_STEPS),
        *EVAL,
    ]
    assert small_budget(["dqnlab", "train", "--preset", "s1-pixels"])[4:6] == ["--total-steps", str(PIXEL_STEPS)]
    assert small_budget(["dqnlab", "compare", "a", "b", "--seeds", "0-9"])[:6] == [
        "dqnlab",
        "compare",
        "a",
        "b",
        "--seeds",
        "0-1",
    ]
    assert small_budget(["dqnlab", "sweep", "s.yaml", "--trials", "40", "--seeds", "5"]) == [
        "dqnlab",
        "sweep",
        "s.yaml",
        "--trials",
        "2",
        "--seeds",
        "1",
    ]
    assert small_budget(["dqnlab", "presets", "--show", "default"]) == ["dqnlab", "presets", "--show", "default"]
    assert shell_lines("# a comment\ndqnlab a \\\n    --b c   # note\n\ndqnlab d [--e]\n     [--f N]\n") == [
        "dqnlab a --b c",
        "dqnlab d [--e] [--f N]",
    ]
