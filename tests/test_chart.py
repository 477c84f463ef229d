"""dqnlab.viz.chart, the plotter of the learning curves: ticks and labels by hand, and what a
drawn figure holds, read back from its pixels."""

import io
import math

import numpy as np
import pytest
from PIL import Image

from dqnlab.viz.chart import (
    DPI,
    MARGIN_LEFT,
    MARGIN_TOP,
    SUPTITLE_ROOM,
    TAB10,
    Figure,
    log_ticks,
    nice_step,
    nice_ticks,
    padded_limits,
    rgb,
    tick_labels,
)


@pytest.mark.parametrize(
    "span, step",
    [
        (500.0, 100.0),  # 500 / 6 = 83: the next of 1, 2, 2.5, 5 x 10^k at least that is 100
        (15_000.0, 2_500.0),  # 2,500 exactly
        (16_500.0, 5_000.0),  # 2,750 -> 5,000
        (1.04, 0.2),  # 0.173 -> 2 x 0.1
        (0.6, 0.1),  # 0.1 exactly
    ],
)
def test_nice_step_by_hand(span, step):
    assert nice_step(span) == pytest.approx(step)


def test_nice_ticks_by_hand():
    assert nice_ticks(-25.0, 525.0) == pytest.approx([0.0, 100.0, 200.0, 300.0, 400.0, 500.0])
    assert nice_ticks(-0.02, 1.02) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert nice_ticks(-750.0, 15_750.0) == pytest.approx([0.0, 5_000.0, 10_000.0, 15_000.0])
    assert nice_ticks(-3.2, -0.4) == pytest.approx([-3.0, -2.5, -2.0, -1.5, -1.0, -0.5])  # 0.47 -> 0.5


def test_log_ticks_by_hand():
    assert log_ticks(0.05, 3.0) == pytest.approx([0.1, 1.0])  # two decades inside: those
    assert log_ticks(0.005, 300.0) == pytest.approx([0.01, 0.1, 1.0, 10.0, 100.0])
    assert log_ticks(1.5, 9.0) == pytest.approx([2.0, 5.0])  # no decade: the 2x and 5x multiples
    assert log_ticks(0.8, 3.0) == pytest.approx([1.0, 2.0])  # one decade: with its multiples


def test_tick_labels_by_hand():
    assert tick_labels([0.0, 5_000.0, 10_000.0, 15_000.0]) == ["0", "5k", "10k", "15k"]
    assert tick_labels([0.0, 2_500.0, 5_000.0, 7_500.0, 10_000.0]) == ["0", "2.5k", "5.0k", "7.5k", "10.0k"]
    assert tick_labels([750.0, 1_000.0, 1_250.0]) == ["750", "1000", "1250"]  # below 10,000: as written
    assert tick_labels([0.0, 0.25, 0.5]) == ["0", "0.25", "0.50"]
    assert tick_labels([-1.0, -0.5, 0.0, 0.5]) == ["-1.0", "-0.5", "0", "0.5"]  # zero never "-0.0"
    assert tick_labels([0.0, 1e6, 2e6]) == ["0", "1M", "2M"]
    assert tick_labels([]) == []


def test_padded_limits_by_hand():
    assert padded_limits(0.0, 100.0) == pytest.approx((-5.0, 105.0))
    assert padded_limits(3.0, 3.0) == (2.5, 3.5)  # one value: a unit around it
    lo, hi = padded_limits(1.0, 100.0, log=True)  # 5% of two decades in log space
    assert (math.log10(lo), math.log10(hi)) == pytest.approx((-0.1, 2.1))


def test_colours():
    assert rgb("C0") == (31, 119, 180)  # matplotlib's first colour, #1f77b4
    assert rgb("C3") == tuple(int(TAB10[3][i : i + 2], 16) for i in (1, 3, 5))
    assert rgb("0.35") == (89, 89, 89)
    assert rgb("#ff8000") == (255, 128, 0)
    with pytest.raises(ValueError):
        rgb("red")


# ---------------------------------------------------------------------------------------------
# Drawn figures, read back from their pixels
# ---------------------------------------------------------------------------------------------


def pixels(fig: Figure) -> np.ndarray:
    png = fig.png()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    assert image.size == (fig.width, fig.height)
    return np.asarray(image.convert("RGB")).astype(int)


def near(pixel: np.ndarray, color: tuple[int, int, int], tol: int = 40) -> bool:
    return bool(np.abs(pixel - np.array(color)).max() <= tol)


def test_a_line_lands_where_its_data_says_and_a_nan_breaks_it():
    fig = Figure(4, 3)
    (ax,) = fig.subplots(1, 1)
    x = np.arange(0.0, 11.0)
    y = np.full(11, 0.5)
    y[5] = np.nan  # a gap around x = 5
    ax.plot(x, y, color="C3", linewidth=2)
    ax.set_ylim(0.0, 1.0)
    img = pixels(fig)
    left, top, right, bottom = ax.box
    xlo, xhi = padded_limits(0.0, 10.0)
    row = round((top + bottom) / 2)  # y = 0.5 on a [0, 1] axis: the middle row
    col = lambda v: round(left + (v - xlo) / (xhi - xlo) * (right - left))  # noqa: E731
    assert near(img[row, col(2.0)], rgb("C3"))
    assert near(img[row, col(8.0)], rgb("C3"))
    assert near(img[row, col(5.0)], (255, 255, 255))  # the NaN's gap
    assert near(img[row - 20, col(2.0)], (255, 255, 255))  # nothing above the line


def test_data_beyond_the_axis_range_is_clipped_to_the_panel():
    fig = Figure(4, 3)
    (ax,) = fig.subplots(1, 1)
    ax.plot([0.0, 1.0], [5.0, 5.0], color="C0", linewidth=3)  # far above set_ylim's range
    ax.set_ylim(0.0, 1.0)
    img = pixels(fig)
    left, top, right, bottom = ax.box
    blue = np.all(np.abs(img - np.array(rgb("C0"))) <= 40, axis=2)
    assert not blue.any()


def test_a_band_fills_between_its_edges_translucently():
    fig = Figure(4, 3)
    (ax,) = fig.subplots(1, 1)
    ax.fill_between([0.0, 10.0], [0.25, 0.25], [0.75, 0.75], color="C2", alpha=0.5)
    ax.set_ylim(0.0, 1.0)
    img = pixels(fig)
    left, top, right, bottom = ax.box
    inside = img[round((top + bottom) / 2), round((left + right) / 2)]
    below = img[round(bottom - 0.1 * (bottom - top)), round((left + right) / 2)]
    green = np.array(rgb("C2"))
    assert near(inside, tuple((green + 255) // 2), tol=8)  # half-way between green and white
    assert near(below, (255, 255, 255), tol=0)


def test_panels_share_the_x_range_and_a_mosaic_row_can_span():
    fig = Figure(8, 6)
    panels = fig.subplot_mosaic([["a", "b"], ["c", "c"]])
    assert [name for name in panels] == ["a", "b", "c"]
    a, b, c = panels["a"], panels["b"], panels["c"]
    assert a.box[1] == b.box[1] == MARGIN_TOP + SUPTITLE_ROOM  # the first row starts under the title
    assert a.box[0] == c.box[0] == MARGIN_LEFT and c.box[2] == b.box[2]  # "c" spans both columns
    assert fig.width == 8 * DPI and fig.height == 6 * DPI
    twin = c.twinx()
    assert fig.axes == [a, b, c, twin]  # a second axis is listed after its panel, as in matplotlib


def test_the_legend_goes_to_the_emptiest_corner():
    # Points crowd the upper left and the lower right quarters: the legend's (black) text is
    # drawn in the upper right or the lower left quarter, and not in the crowded ones.
    fig = Figure(5, 4)
    (ax,) = fig.subplots(1, 1)
    x = np.linspace(0.0, 0.4, 100)
    ax.scatter(x, 1.0 - x, color="C0", label="upper left")
    ax.scatter(1.0 - x, x, color="C0", label="lower right")
    ax.set_ylim(0.0, 1.0)
    ax.legend(loc="best")
    img = pixels(fig)
    left, top, right, bottom = ax.box
    mx, my = (left + right) // 2, (top + bottom) // 2
    quarters = {  # inside the frame by 8 px: its black edge is not text
        "upper left": img[top + 8 : my, left + 8 : mx],
        "upper right": img[top + 8 : my, mx : right - 8],
        "lower left": img[my : bottom - 8, left + 8 : mx],
        "lower right": img[my : bottom - 8, mx : right - 8],
    }
    text = {name: int(np.all(q < 80, axis=2).sum()) for name, q in quarters.items()}
    assert text["upper left"] == text["lower right"] == 0
    assert text["upper right"] + text["lower left"] > 50
