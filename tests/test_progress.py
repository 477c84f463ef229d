"""The training progress bar and its plain-line form: what they show after each evaluation."""

import io

from dqnlab.runtime.progress import Progress


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
