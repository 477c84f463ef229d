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
    clip_polygon,
    clip_polyline,
    decimate,
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


def test_degenerate_ranges_still_get_ticks():
    assert nice_step(0.0) == nice_step(float("nan")) == 1.0
    assert nice_ticks(1e15, 1e15 + 0.5) == [1e15, 1e15 + 0.5]  # too narrow for floats to tell steps apart
    lo, hi = padded_limits(5e-324, 5e-324, log=True)  # a denormal loss on a log axis
    assert 0 < lo < hi and math.isfinite(math.log10(lo))
    assert padded_limits(1000.0, 1000.0) == (950.0, 1050.0)  # one evaluation: 5% around it


def test_log_ticks_by_hand():
    assert log_ticks(0.05, 3.0) == pytest.approx([0.1, 1.0])  # two decades inside: those
    assert log_ticks(0.005, 300.0) == pytest.approx([0.01, 0.1, 1.0, 10.0, 100.0])
    assert log_ticks(1.5, 9.0) == pytest.approx([2.0, 5.0])  # no decade: the 2x and 5x multiples
    assert log_ticks(0.8, 3.0) == pytest.approx([1.0, 2.0])  # one decade: with its multiples
    assert log_ticks(1e-15, 1e15) == pytest.approx([10.0**k for k in range(-15, 16, 6)])  # every 6th of 31


def test_tick_labels_by_hand():
    assert tick_labels([0.0, 5_000.0, 10_000.0, 15_000.0]) == ["0", "5k", "10k", "15k"]
    assert tick_labels([0.0, 2_500.0, 5_000.0, 7_500.0, 10_000.0]) == ["0", "2.5k", "5.0k", "7.5k", "10.0k"]
    assert tick_labels([750.0, 1_000.0, 1_250.0]) == ["750", "1000", "1250"]  # below 10,000: as written
    assert tick_labels([0.0, 0.25, 0.5]) == ["0", "0.25", "0.50"]
    assert tick_labels([-1.0, -0.5, 0.0, 0.5]) == ["-1.0", "-0.5", "0", "0.5"]  # zero never "-0.0"
    assert tick_labels([0.0, 1e6, 2e6]) == ["0", "1M", "2M"]
    assert tick_labels([0.0, 5e14, 1e15]) == ["0", "500T", "1000T"]  # the largest a metrics value may be
    assert tick_labels([]) == []


def test_padded_limits_by_hand():
    assert padded_limits(0.0, 100.0) == pytest.approx((-5.0, 105.0))
    assert padded_limits(3.0, 3.0) == (2.5, 3.5)  # one value: a unit around it
    lo, hi = padded_limits(1.0, 100.0, log=True)  # 5% of two decades in log space
    assert (math.log10(lo), math.log10(hi)) == pytest.approx((-0.1, 2.1))


def test_clip_polyline_by_hand():
    box = (0.0, 0.0, 4.0, 10.0)  # left, top, right, bottom
    (piece,) = clip_polyline(np.array([-10.0, 10.0]), np.array([5.0, 5.0]), box)
    np.testing.assert_allclose(piece, [[0.0, 5.0], [4.0, 5.0]])  # cut at both side edges
    # two segments meeting inside stay one piece; a NaN breaks the line; all-outside is nothing
    (piece,) = clip_polyline(np.array([1.0, 2.0, 3.0]), np.array([1.0, 9.0, 1.0]), box)
    np.testing.assert_allclose(piece, [[1.0, 1.0], [2.0, 9.0], [3.0, 1.0]])
    a, b = clip_polyline(np.array([1.0, 2.0, 2.5, 3.0, 3.5]), np.array([1.0, 2.0, np.nan, 3.0, 4.0]), box)
    np.testing.assert_allclose(a, [[1.0, 1.0], [2.0, 2.0]])
    np.testing.assert_allclose(b, [[3.0, 3.0], [3.5, 4.0]])
    assert clip_polyline(np.array([5.0, 6.0]), np.array([1.0, 2.0]), box) == []
    # a point 1e16 pixels away: only the part inside is kept, at coordinates a rasteriser takes
    (piece,) = clip_polyline(np.array([2.0, 2.0]), np.array([5.0, -1e16]), box)
    np.testing.assert_allclose(piece, [[2.0, 5.0], [2.0, 0.0]])


def test_clip_polygon_by_hand():
    square = np.array([[-1.0, -1.0], [3.0, -1.0], [3.0, 3.0], [-1.0, 3.0]])
    clipped = clip_polygon(square, (0.0, 0.0, 2.0, 2.0))
    assert {tuple(p) for p in clipped.tolist()} == {(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)}
    assert len(clip_polygon(square + 10.0, (0.0, 0.0, 2.0, 2.0))) == 0


def test_decimate_keeps_each_columns_first_lowest_highest_and_last():
    x = np.arange(100.0)
    y = np.zeros(100)
    y[7], y[13] = 5.0, -3.0  # column 0 (x 0-19): highest at 7, lowest at 13
    dx, dy = decimate(x, y, columns=5, lo=0.0, hi=100.0)
    assert dx[:4].tolist() == [0.0, 7.0, 13.0, 19.0] and dy[:4].tolist() == [0.0, 5.0, -3.0, 0.0]
    assert len(dx) <= 4 * 5
    short = np.arange(10.0)
    assert decimate(short, short, columns=5, lo=0.0, hi=10.0)[0] is short  # few points: as they are


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
    ax.plot([0.0, 1.0], [1.1, 1.1], color="C0", linewidth=3)  # a tenth of the range above it: in the margin
    ax.set_ylim(0.0, 1.0)
    img = pixels(fig)
    blue = np.all(np.abs(img - np.array(rgb("C0"))) <= 40, axis=2)
    assert not blue.any()


def test_a_line_from_far_outside_crosses_the_panel_and_a_far_dashed_line_is_quick():
    fig = Figure(4, 3)
    (ax,) = fig.subplots(1, 1)
    ax.plot([0.0, 1e-9, 1.0], [1.0, -1e7, -1e7], color="C3", linewidth=2)  # straight down at x = 0
    ax.plot([0.5, 1.0], [0.5, 1e15], color="C0", linestyle="--")  # dashes along 1e15 of length, if not clipped
    ax.set_ylim(0.0, 1.0)
    img = pixels(fig)
    left, top, right, bottom = ax.box
    xlo, xhi = padded_limits(0.0, 1.0)
    col = round(left + (0.0 - xlo) / (xhi - xlo) * (right - left))
    red = np.all(np.abs(img[top + 2 : bottom - 2, col - 2 : col + 3] - np.array(rgb("C3"))) <= 60, axis=2)
    assert red.any(axis=1).mean() > 0.9  # the line runs through the panel's height


def test_log_scale_and_a_second_axis_place_their_data_on_their_own_scales():
    fig = Figure(4, 3)
    (ax,) = fig.subplots(1, 1)
    ax.axhline(10.0, color="C0", linewidth=2)
    ax.set_yscale("log")
    ax.set_ylim(1.0, 100.0)  # 10 is half-way up on a log axis (9% on a linear one)
    twin = ax.twinx()
    twin.axhline(75.0, color="C3", linewidth=2)
    twin.set_ylim(0.0, 100.0)  # three quarters up on the second axis, whatever the first's scale
    img = pixels(fig)
    left, top, right, bottom = ax.box
    mid = (left + right) // 2
    at = lambda frac: img[round(bottom - frac * (bottom - top)), mid]  # noqa: E731
    assert near(at(0.5), rgb("C0")) and near(at(0.75), rgb("C3"))


def test_dashed_lines_have_gaps():
    fig = Figure(4, 3)
    (ax,) = fig.subplots(1, 1)
    ax.axhline(0.5, color="C1", linestyle="--", linewidth=2)
    ax.set_ylim(0.0, 1.0)
    img = pixels(fig)
    left, top, right, bottom = ax.box
    row = img[round((top + bottom) / 2), left + 5 : right - 5]
    orange = np.all(np.abs(row - np.array(rgb("C1"))) <= 40, axis=1)
    assert 0.4 < orange.mean() < 0.9  # dashes and gaps, not a solid line and not nothing


def test_error_bars_may_be_asymmetric():
    fig = Figure(4, 3)
    (ax,) = fig.subplots(1, 1)
    ax.errorbar([1.0], [5.0], yerr=[[1.0], [3.0]], color="C3")  # 4 to 8
    assert ax.y_limits() == pytest.approx(padded_limits(4.0, 8.0))
    ax.errorbar([1.0, 2.0], [5.0, 6.0], yerr=0.5)  # one value for every point
    assert ax.y_limits() == pytest.approx(padded_limits(4.0, 8.0))
    pixels(fig)


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


def test_panels_share_the_x_range():
    fig = Figure(8, 3)
    a, b = fig.subplots(1, 2)
    a.plot([0.0, 10.0], [0.5, 0.5], color="C0")
    b.plot([0.0, 5.0], [0.5, 0.5], color="C3", linewidth=2)  # ends half-way along the shared 0-10
    b.set_ylim(0.0, 1.0)
    img = pixels(fig)
    left, top, right, bottom = b.box
    xlo, xhi = padded_limits(0.0, 10.0)
    col = lambda v: round(left + (v - xlo) / (xhi - xlo) * (right - left))  # noqa: E731
    row = round((top + bottom) / 2)
    assert near(img[row, col(4.5)], rgb("C3")) and near(img[row, col(5.5)], (255, 255, 255))


def test_a_mosaic_row_can_span():
    fig = Figure(8, 6)
    panels = fig.subplot_mosaic([["a", "b"], ["c", "c"]])
    assert [name for name in panels] == ["a", "b", "c"]
    a, b, c = panels["a"], panels["b"], panels["c"]
    assert a.box[1] == b.box[1] == MARGIN_TOP + SUPTITLE_ROOM  # the first row starts under the title
    assert a.box[0] == c.box[0] == MARGIN_LEFT and c.box[2] == b.box[2]  # "c" spans both columns
    assert fig.width == 8 * DPI and fig.height == 6 * DPI
    twin = c.twinx()
    assert fig.axes == [a, b, c, twin]  # a second axis is listed after its panel, as in matplotlib


@pytest.mark.parametrize("mosaic", [[["a", "b"], ["a", "c"]], [["a", "b"], ["c"]], [["a", "b", "a"]]])
def test_a_mosaic_it_cannot_draw_is_refused(mosaic):
    with pytest.raises(ValueError, match="subplot_mosaic"):
        Figure(4, 3).subplot_mosaic(mosaic)


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
