"""The training progress bar and its plain-line form: what they show after each evaluation, and
between evaluations."""

import io
import re

from dqnlab.runtime.progress import HEARTBEAT_SECONDS, TICK_SECONDS, Progress


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal, so Progress draws a tqdm bar into it."""

    def isatty(self) -> bool:
        return True


def last_frame(stream: FakeTerminal) -> str:
    """The bar as a terminal shows it now: the text after the last carriage return."""
    return stream.getvalue().rstrip("\n").split("\r")[-1]


def test_bar_shows_the_evaluation_just_done_with_labelled_returns():
    stream = FakeTerminal()
    prog = Progress(3000, stream=stream)
    prog.update(1000, 21.5, 0.5, 30.0)
    frame = last_frame(stream)
    assert "1000/3000" in frame and "eval=30.0" in frame and "train_ret(20)=21.5" in frame and "eps=0.500" in frame
    prog.update(2000, 80.25, 0.1, 120.0)  # at once, well within tqdm's minimum refresh interval
    frame = last_frame(stream)
    assert "2000/3000" in frame and "eval=120.0" in frame and "train_ret(20)=80.2" in frame
    assert "return=" not in frame
    prog.close()


def test_plain_lines_label_the_training_return_and_omit_epsilon_where_there_is_none():
    stream = io.StringIO()
    prog = Progress(3000, stream=stream)
    prog.update(1000, None, None, 30.0)
    prog.update(2000, 42.0, None, 55.5)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "[dqnlab] step 1000/3000 train_ret(20)=- eval=30.0",
        "[dqnlab] step 2000/3000 train_ret(20)=42.0 eval=55.5",
    ]


def test_disabled_progress_writes_nothing():
    stream = FakeTerminal()
    prog = Progress(3000, stream=stream, enabled=False)
    prog.update(1000, 1.0, 0.5, 2.0)
    prog.close()
    assert stream.getvalue() == ""


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_between_evaluations_the_bar_count_moves_and_keeps_the_last_evaluation():
    stream, clock = FakeTerminal(), FakeClock()
    prog = Progress(3000, stream=stream, clock=clock)
    prog.update(1000, 21.5, 0.5, 30.0)
    prog.tick(1100, lambda: 22.0)  # within TICK_SECONDS of the update: not redrawn
    assert "1000/3000" in last_frame(stream)
    clock.now += TICK_SECONDS
    prog.tick(1500, lambda: 22.0)
    frame = last_frame(stream)
    assert "1500/3000" in frame and "eval=30.0" in frame
    prog.close()


def test_plain_lines_between_evaluations_come_only_after_a_silence():
    stream, clock = io.StringIO(), FakeClock()
    prog = Progress(3000, stream=stream, clock=clock)
    calls = []

    def recent() -> float:
        calls.append(1)
        return 12.25

    for step in range(1, 200):
        clock.now += HEARTBEAT_SECONDS / 400
        prog.tick(step, recent)
    assert stream.getvalue() == "" and calls == []  # no line, and the mean was never computed
    clock.now += HEARTBEAT_SECONDS
    prog.tick(200, recent)
    prog.tick(201, recent)  # right after a line: nothing
    prog.note("final evaluation of the delivered policy: 100 episodes")
    assert stream.getvalue().splitlines() == [
        "[dqnlab] step 200/3000 train_ret(20)=12.2",
        "[dqnlab] final evaluation of the delivered policy: 100 episodes",
    ]


def test_a_note_on_a_terminal_is_written_above_the_bar():
    stream = FakeTerminal()
    prog = Progress(3000, stream=stream)
    prog.update(1000, 21.5, 0.5, 30.0)
    prog.note("final evaluation of the delivered policy: 100 episodes")
    assert "[dqnlab] final evaluation of the delivered policy: 100 episodes\n" in stream.getvalue()
    assert "1000/3000" in last_frame(stream)
    prog.close()


def test_a_long_evaluation_redraws_the_bar_and_writes_a_plain_line_after_a_silence():
    stream, clock = FakeTerminal(), FakeClock()
    prog = Progress(3000, stream=stream, clock=clock)
    prog.update(1000, 21.5, 0.5, 30.0)
    drawn = stream.getvalue()
    prog.evaluating(1000)  # within TICK_SECONDS: nothing
    assert stream.getvalue() == drawn
    clock.now += TICK_SECONDS
    prog.evaluating(1000)
    assert stream.getvalue() != drawn and "1000/3000" in last_frame(stream)
    prog.close()

    plain = io.StringIO()
    prog = Progress(3000, stream=plain, clock=clock)
    prog.evaluating(1000)
    assert plain.getvalue() == ""
    clock.now += HEARTBEAT_SECONDS
    prog.evaluating(1000)
    prog.evaluating(1000)
    assert plain.getvalue().splitlines() == ["[dqnlab] step 1000/3000 evaluating ..."]


def test_a_training_run_shows_progress_between_and_during_its_evaluations(tmp_path, monkeypatch, capsys):
    """With no time allowed between lines, every step between evaluations and every step of an
    evaluation writes a plain line: the loop calls the display from both."""
    import dqnlab
    from dqnlab.runtime import progress

    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.0)
    cfg = dqnlab.build_config(total_steps=600, overrides=["eval.every_steps=500", "eval.episodes=2", "artifacts=false"])
    dqnlab.train(cfg, tmp_path / "run", progress=True)
    lines = capsys.readouterr().err.splitlines()
    between = [line for line in lines if re.fullmatch(r"\[dqnlab\] step \d+/600 train_ret\(20\)=\S+", line)]
    assert len(between) > 10  # one per vector step, with none of an evaluation's fields
    assert any(line.startswith("[dqnlab] step 50") and line.endswith(" evaluating ...") for line in lines)
    assert "[dqnlab] final evaluation of the delivered policy: 100 episodes" in lines
