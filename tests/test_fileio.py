"""Atomic writes and code-free loading of torch files."""

import json
import os
import pickle

import pytest
import torch

from dqnlab.algos.registry import load_policy
from dqnlab.core.errors import DqnlabError
from dqnlab.core.fileio import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    safe_torch_load,
)


def listing(directory):
    return sorted(p.name for p in directory.iterdir())


def test_atomic_write_bytes_creates_and_replaces(tmp_path):
    path = tmp_path / "data.bin"
    atomic_write_bytes(path, b"first version, longer than the second")
    assert path.read_bytes() == b"first version, longer than the second"
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"  # replaced, not appended or overlaid
    assert listing(tmp_path) == ["data.bin"]  # no temporary files left behind


def test_atomic_write_text_and_json(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "héllo\n")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    obj = {"b": 1, "a": [1.5, None, "x"]}
    atomic_write_json(tmp_path / "s.json", obj)
    atomic_write_json(tmp_path / "s.json", {"c": 2})
    assert json.loads((tmp_path / "s.json").read_text()) == {"c": 2}
    assert listing(tmp_path) == ["a.txt", "s.json"]


def test_atomic_torch_save_round_trip(tmp_path):
    path = tmp_path / "t.pt"
    obj = {"w": torch.arange(6.0).reshape(2, 3), "n": 3, "names": ["a", "b"]}
    atomic_torch_save(path, obj)
    atomic_torch_save(path, obj)  # overwriting an existing file
    loaded = safe_torch_load(path, "test file")
    torch.testing.assert_close(loaded["w"], obj["w"], rtol=0, atol=0)
    assert loaded["n"] == 3 and loaded["names"] == ["a", "b"]
    assert listing(tmp_path) == ["t.pt"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "keep.txt"
    atomic_write_bytes(path, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # fails inside the write, after the temp file exists
    assert path.read_bytes() == b"old"
    assert listing(tmp_path) == ["keep.txt"]


def test_failed_json_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "s.json"
    atomic_write_json(path, {"ok": True})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": True}
    assert listing(tmp_path) == ["s.json"]


def test_safe_torch_load_errors_are_single_lines(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "junk.pt").write_bytes(b"\x80\x02not really a pickle" * 10)
    (tmp_path / "dir.pt").mkdir()
    for name, fragment in [
        ("missing.pt", "not found"),
        ("empty.pt", "empty"),
        ("junk.pt", "cannot load"),
        ("dir.pt", "directory"),
    ]:
        with pytest.raises(DqnlabError) as info:
            safe_torch_load(tmp_path / name, "test file")
        msg = str(info.value)
        assert fragment in msg and "\n" not in msg, msg


# ---------------------------------------------------------------------------------------------
# Malicious pickles: loading must refuse them without running their code.
# ---------------------------------------------------------------------------------------------


class CreatesMarker:
    """Unpickling this calls builtins.open(marker, 'w'), creating the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class RunsShell:
    """Unpickling this runs a shell command that creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


PAYLOADS = [CreatesMarker, RunsShell]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_really_execute_with_plain_pickle(tmp_path, payload):
    # Control: the payloads are live, so the refusals below are meaningful.
    marker = tmp_path / "control-marker"
    result = pickle.loads(pickle.dumps(payload(marker)))
    if hasattr(result, "close"):
        result.close()
    assert marker.exists()


def malicious_files(tmp_path, payload, marker):
    obj = payload(marker)
    files = []
    # torch.save: inside a policy-looking dict, and as the whole object.
    p = tmp_path / "torch_dict.pt"
    torch.save({"format": "dqnlab.policy", "format_version": 1, "state_dict": {"x": obj}}, p)
    files.append(p)
    p = tmp_path / "torch_obj.pt"
    torch.save(obj, p)
    files.append(p)
    # A raw pickle file (not torch's zip format).
    p = tmp_path / "raw.pkl"
    p.write_bytes(pickle.dumps({"state_dict": obj}, protocol=2))  # the legacy format torch reads
    files.append(p)
    return files


@pytest.mark.parametrize("payload", PAYLOADS)
def test_safe_torch_load_refuses_malicious_pickle(tmp_path, payload):
    marker = tmp_path / "pwned"
    for path in malicious_files(tmp_path, payload, marker):
        with pytest.raises(DqnlabError) as info:
            safe_torch_load(path, "policy file")
        msg = str(info.value)
        assert "\n" not in msg
        assert str(path) in msg
        assert "refused for safety" in msg
        assert not marker.exists(), f"loading {path.name} ran the payload"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_load_policy_refuses_malicious_pickle(tmp_path, payload):
    marker = tmp_path / "pwned"
    for path in malicious_files(tmp_path, payload, marker):
        with pytest.raises(DqnlabError) as info:
            load_policy(path)
        assert "\n" not in str(info.value)
        assert not marker.exists(), f"loading {path.name} ran the payload"
