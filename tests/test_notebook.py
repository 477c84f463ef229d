"""examples/quickstart.ipynb runs top to bottom in a Jupyter kernel (nbclient), and progress in a
notebook is a notebook progress bar."""

import importlib.util
import io
import os
import sys
import types
from pathlib import Path

import pytest

from dqnlab.runtime import progress

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def _fake_ipython(monkeypatch, shell_class: str) -> None:
    """Pretend this process is an IPython shell of class `shell_class`."""
    shell = type(shell_class, (), {})()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))


def test_progress_is_a_notebook_bar_in_a_jupyter_kernel_with_widgets(monkeypatch):
    from tqdm.notebook import tqdm as notebook_tqdm

    _fake_ipython(monkeypatch, "ZMQInteractiveShell")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "ipywidgets" else real_find_spec(name, *a)
    )
    assert progress.bar_class(sys.stderr) is notebook_tqdm
    assert progress.bar_class(io.StringIO()) is None  # a stream of the caller's own: plain lines


def test_progress_is_lines_in_a_kernel_without_widgets_and_in_terminal_ipython(monkeypatch):
    _fake_ipython(monkeypatch, "ZMQInteractiveShell")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ipywidgets" else real_find_spec(name, *a)
    )
    assert progress.bar_class(io.StringIO()) is None
    _fake_ipython(monkeypatch, "TerminalInteractiveShell")
    assert progress.bar_class(io.StringIO()) is None


def test_progress_is_a_text_bar_on_a_terminal(monkeypatch):
    from tqdm import tqdm

    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    tty = io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    assert progress.bar_class(tty) is tqdm
    assert progress.bar_class(io.StringIO()) is None


@pytest.mark.slow
def test_the_quickstart_notebook_runs(tmp_path):
    nbformat = pytest.importorskip(
        "nbformat", reason="the notebook test needs the test extra: pip install -e '.[test]'"
    )
    nbclient = pytest.importorskip(
        "nbclient", reason="the notebook test needs the test extra: pip install -e '.[test]'"
    )
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel is a fresh Python in a temporary folder; it imports this checkout of dqnlab.
    env_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env_path
    try:
        client = nbclient.NotebookClient(
            notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        )
        client.execute()
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.output_type == "error"]
    images = [out for out in outputs if "image/png" in out.get("data", {}) or "image/gif" in out.get("data", {})]
    assert any("image/png" in out["data"] for out in images), "curves.png is not shown inline"
    assert any("image/gif" in out["data"] for out in images), "episode.gif is not shown inline"
    assert (tmp_path / "runs" / "quickstart" / "policy.pt").is_file()
    # training's progress is a widget (tqdm's notebook bar), not text lines
    widget = "application/vnd.jupyter.widget-view+json"
    assert any(widget in out.get("data", {}) for out in outputs), "no notebook progress bar"
    assert not any("[dqnlab] step" in out.get("text", "") for out in outputs)
