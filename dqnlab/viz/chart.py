"""A small raster plotter on Pillow: the learning curves of runs, drawn without matplotlib.

Why: a training run ends by writing curves.png, and matplotlib made that the most expensive part
of the end of a run: about 0.3 s to import and 0.3 s for its tick, text and layout machinery,
for four panels of a few hundred points (BENCHMARKS.md, "The end of a run"). This draws the same
figure in well under 0.1 s, with Pillow, which the episode GIF already uses.

It offers the subset of matplotlib's object-oriented API that ``dqnlab.viz.curves`` uses, under
the same names and keywords, so that a figure reads as matplotlib code: ``Figure.subplot_mosaic``
and ``subplots``, ``suptitle``; on ``Axes``: ``plot`` (solid or dashed lines, dot and circle
markers), ``scatter``, ``fill_between``, ``axhline``, ``errorbar`` (a diamond with a capped
vertical bar), ``text`` (centred at a place given in fractions of the panel), ``twinx`` (a second
y axis on the right), ``set_title``, ``set_xlabel``, ``set_ylabel``, ``set_ylim``,
``set_yscale("log")``, ``grid``, ``legend`` (``loc="best"``: the free corner that covers the
fewest points) and their getters. Colours: "C0" to
"C9" (matplotlib's tab10), grey levels as strings ("0.35"), "#rrggbb". All of a figure's panels
share one x range (the run figures ask for that). Keywords that only tune matplotlib's look
(font sizes, the grid's alpha, scatter's edge widths) are accepted and ignored.

Everything is drawn at SUPERSAMPLE times the pixel size and halved once at the end (a box
filter), which anti-aliases lines, dots and text. Lines and bands are clipped to their panel
before they are drawn (``clip_polyline``, ``clip_polygon``: a value of 1e15 on a [0, 1] axis
must not become a 1e15-pixel stroke), and thinned to at most four points per pixel column
(``decimate``); non-finite values break a line (a gap, as in matplotlib).
"""

from __future__ import annotations

import importlib.util
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # Pillow is imported when a figure is drawn: `import dqnlab.viz.curves` stays light
    from PIL import Image, ImageDraw, ImageFont

DPI = 100  # pixels per inch of the figure size, as matplotlib's figures here
SUPERSAMPLE = 2
TAB10 = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
"""matplotlib's default colour cycle, so that "C0".."C9" look as they did."""

# Sizes in output pixels (the figure is drawn SUPERSAMPLE times larger).
SUPTITLE_PX, TITLE_PX, LABEL_PX, TICK_PX = 15, 14, 13, 12
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 58, 26, 44
"""Room around each panel's plotting area for its y tick labels and label (left), a second
axis's (right), its title (top), and its x tick labels and label (bottom)."""
SUPTITLE_ROOM = 34
TICKS = 6  # at most about this many ticks per axis


# ---------------------------------------------------------------------------------------------
# Ticks: pure functions
# ---------------------------------------------------------------------------------------------


def nice_step(span: float, target: int = TICKS) -> float:
    """A tick spacing of 1, 2, 2.5 or 5 times a power of ten that cuts `span` into about `target`
    parts (the smallest such spacing at least span / target); 1 for a span that is not a
    positive finite number."""
    raw = span / target
    if not (math.isfinite(raw) and raw > 0):
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0):
        if m * power >= raw * (1 - 1e-9):
            return m * power
    return 10.0 * power


def nice_ticks(lo: float, hi: float, target: int = TICKS) -> list[float]:
    """Tick positions: the multiples of ``nice_step(hi - lo)`` in [lo, hi]; just [lo, hi] where
    floating point cannot tell those multiples apart (a range far narrower than its values)."""
    step = nice_step(hi - lo, target)
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    ticks = [k * step for k in range(first, min(last, first + 4 * target) + 1)]
    if len(set(ticks)) < len(ticks) or not ticks or last - first > 4 * target:
        return [lo, hi]
    return ticks


def log_ticks(lo: float, hi: float, target: int = TICKS) -> list[float]:
    """Tick positions on a log axis over [lo, hi] (0 < lo < hi): the powers of ten inside (every
    k-th of them if there are more than `target`), and with fewer than two of them also their
    2x and 5x multiples."""
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    decades = [10.0**k for k in range(k0, k1 + 1) if lo <= 10.0**k <= hi]
    if len(decades) > target:
        return decades[:: math.ceil(len(decades) / target)]
    if len(decades) >= 2:
        return decades
    return [m * 10.0**k for k in range(k0, k1 + 1) for m in (1.0, 2.0, 5.0) if lo <= m * 10.0**k <= hi]


UNITS = ((1e12, "T", 1e12), (1e9, "G", 1e9), (1e6, "M", 1e6), (1e3, "k", 1e4))
"""(unit, suffix, from): labels count in a unit once the axis's largest |tick| reaches `from`."""


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """The labels of one axis's evenly spaced `ticks`: in thousands ("k") from 10,000, millions
    ("M"), billions ("G") or trillions ("T") from one of them (environment steps: "0, 5k, 10k,
    15k"), with as many decimals as the spacing needs, the same for every label, and "0" for zero."""
    if not ticks:
        return []
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(ticks[0]) or 1.0
    top = max(abs(t) for t in ticks)
    unit, suffix = next(((u, name) for u, name, start in UNITS if top >= start), (1.0, ""))
    digits = _decimals(step / unit)
    labels = []
    for t in ticks:
        text = f"{t / unit:.{digits}f}"
        labels.append("0" if float(text) == 0 else text + suffix)
    return labels


def format_log_tick(value: float) -> str:
    """A log-axis label: 0.01, 0.1, 1, 10, 100 as written; beyond, 1e-05 or 1e+06."""
    if 1e-3 <= value < 1e5:
        return f"{value:g}"
    return f"{value:.0e}"


def _decimals(step: float) -> int:
    """Decimals that tell ticks `step` apart: 0 for whole steps, 1 for 2.5 or 0.5, 2 for 0.25."""
    for d in range(0, 10):
        if abs(round(step, d) - step) <= abs(step) * 1e-6:
            return d
    return 10


TINY = 2.2250738585072014e-308  # the smallest normal float: log10 of anything smaller loses its meaning


def padded_limits(lo: float, hi: float, log: bool = False) -> tuple[float, float]:
    """The data range widened by 5% at each end (matplotlib's margins; on a log axis, in log
    space, and never below the smallest normal float). A single value v gets ±max(0.5, 5% of
    |v|) around it (a factor 10 on a log axis)."""
    if log:
        a, b = padded_limits(math.log10(max(lo, TINY)), math.log10(max(hi, TINY)))
        return 10.0 ** max(a, math.log10(TINY)), 10.0**b
    if hi > lo:
        pad = 0.05 * (hi - lo)
        if lo - pad < hi + pad:
            return lo - pad, hi + pad
    pad = max(0.5, 0.05 * abs(lo))
    return lo - pad, hi + pad


def clip_polyline(x: np.ndarray, y: np.ndarray, box: tuple[float, float, float, float]) -> list[np.ndarray]:
    """The parts of the polyline through (x[i], y[i]) that lie inside `box` (left, top, right,
    bottom, in pixels), as arrays of (k, 2) points: each segment is cut at the box's edges
    (Liang-Barsky), a segment with a non-finite end is left out (a gap), and consecutive
    segments that meet inside the box stay one piece. Pixel coordinates far outside the box
    (a value 1e15 on a [0, 1] axis) thereby never reach the rasteriser, whose coordinates are
    32-bit."""
    if len(x) < 2:
        return []
    left, top, right, bottom = box
    x0, y0, x1, y1 = x[:-1], y[:-1], x[1:], y[1:]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        dx, dy = x1 - x0, y1 - y0
        t0, t1 = np.zeros(len(x0)), np.ones(len(x0))
        keep = np.isfinite(x0) & np.isfinite(y0) & np.isfinite(x1) & np.isfinite(y1)
        for p, q in ((-dx, x0 - left), (dx, right - x0), (-dy, y0 - top), (dy, bottom - y0)):
            keep &= ~((p == 0) & (q < 0))  # parallel to this edge and outside it
            ratio = q / np.where(p == 0, 1.0, p)
            t0 = np.where(p < 0, np.maximum(t0, ratio), t0)
            t1 = np.where(p > 0, np.minimum(t1, ratio), t1)
        keep &= t0 <= t1
        ax, ay = x0 + t0 * dx, y0 + t0 * dy
        bx, by = x0 + t1 * dx, y0 + t1 * dy
    pieces: list[np.ndarray] = []
    run: list[tuple[float, float]] = []
    for i in np.flatnonzero(keep).tolist():
        start = (float(ax[i]), float(ay[i]))
        joined = run and t0[i] == 0.0 and i > 0 and keep[i - 1] and t1[i - 1] == 1.0
        if not joined:
            if len(run) > 1:
                pieces.append(np.array(run))
            run = [start]
        run.append((float(bx[i]), float(by[i])))
    if len(run) > 1:
        pieces.append(np.array(run))
    return pieces


def decimate(x: np.ndarray, y: np.ndarray, columns: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """At most four points per pixel column of a series sorted by x that has more points than
    4 x `columns`: each column's first, lowest, highest and last point, in their order
    (columns over [lo, hi]). A line through them looks the same at that width as one through
    every point, at a fraction of the cost. Shorter series come back as they are."""
    if len(x) <= 4 * columns or not np.all(np.diff(x[np.isfinite(x)]) >= 0):
        return x, y
    col = np.floor((x - lo) / (hi - lo) * columns)
    col = np.where(np.isfinite(col), col, -1.0)
    starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
    ends = np.r_[starts[1:], len(x)] - 1
    # argmin/argmax within each column: sort by (column, value) once
    finite_y = np.where(np.isfinite(y), y, np.inf)
    order = np.lexsort((finite_y, np.repeat(np.arange(len(starts)), ends - starts + 1)))
    lowest = order[starts]
    highest = order[ends]
    highest = np.where(np.isfinite(y[highest]), highest, lowest)
    keep = np.unique(np.concatenate([starts, ends, lowest, highest]))
    return x[keep], y[keep]


# ---------------------------------------------------------------------------------------------
# Colours and fonts
# ---------------------------------------------------------------------------------------------


def rgb(color: str) -> tuple[int, int, int]:
    """(r, g, b) 0-255 of "C0".."C9", a grey level "0.35" (0 black, 1 white) or "#rrggbb"."""
    if len(color) == 2 and color[0] == "C" and color[1].isdigit():
        color = TAB10[int(color[1])]
    if color.startswith("#") and len(color) == 7:
        return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)
    level = round(255 * float(color))  # ValueError for anything else
    return level, level, level


@cache
def font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans at `px` pixels, the font matplotlib draws with (its file, found without
    importing matplotlib); else Pillow's own (Aileron, which lacks Greek letters such as the
    gamma of a legend); its bitmap font where Pillow was built without FreeType."""
    from PIL import ImageFont

    path = _dejavu_path()
    if path is not None:
        try:
            return ImageFont.truetype(path, px)
        except OSError:
            pass
    return ImageFont.load_default(size=px)


@cache
def _dejavu_path() -> str | None:
    spec = importlib.util.find_spec("matplotlib")  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = os.path.join(root, "mpl-data", "fonts", "ttf", "DejaVuSans.ttf")
        if os.path.isfile(path):
            return path
    return None


# ---------------------------------------------------------------------------------------------
# The figure
# ---------------------------------------------------------------------------------------------


@dataclass
class _Artist:
    kind: str  # line, dots, band, hline, errorbar
    x: np.ndarray
    y: np.ndarray
    color: str
    alpha: float = 1.0
    width: float = 1.5  # line width in points (1/72 inch, as matplotlib's)
    dashed: str | None = None  # "--" or ":"
    marker: str | None = None  # "o", ".", "D"
    size: float = 3.0  # marker size (points)
    y2: np.ndarray | None = None  # the band's upper edge; the error bar's (lower, upper) extents, (2, n)
    label: str | None = None
    cap: float = 0.0  # the error bar's cap half-width (points)


@dataclass
class _Note:
    text: str
    color: str
    x: float  # fractions of the panel's width and height, from its lower left corner
    y: float


@dataclass
class Axes:
    """One panel: a plotting area in the figure (output pixels) and what is drawn in it."""

    box: tuple[int, int, int, int]  # left, top, right, bottom of the plotting area
    artists: list[_Artist] = field(default_factory=list)
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    ylim: tuple[float, float] | None = None
    log: bool = False
    has_grid: bool = False
    legend_loc: str | None = None
    notes: list[_Note] = field(default_factory=list)
    twin: Axes | None = None  # the second y axis drawn on the right, if any

    # -- what a figure draws (matplotlib's names) ----------------------------------------------
    def plot(
        self,
        x: Any,
        y: Any,
        *,
        color: str = "C0",
        linewidth: float = 1.5,
        linestyle: str = "-",
        marker: str | None = None,
        markersize: float = 3.0,
        alpha: float = 1.0,
        label: str | None = None,
    ) -> None:
        dashed = linestyle if linestyle in ("--", ":") else None
        self.artists.append(
            _Artist("line", _arr(x), _arr(y), color, alpha, linewidth, dashed, marker, markersize, label=label)
        )

    def scatter(
        self, x: Any, y: Any, s: float = 4.0, color: str = "C0", alpha: float = 1.0, linewidths: float = 0, label=None
    ) -> None:
        # s is the marker's area in points^2 (matplotlib's); its diameter is sqrt(s).
        self.artists.append(_Artist("dots", _arr(x), _arr(y), color, alpha, marker="o", size=math.sqrt(s), label=label))

    def fill_between(
        self, x: Any, y1: Any, y2: Any, color: str = "C0", alpha: float = 1.0, linewidth: float = 0, label=None
    ) -> None:
        self.artists.append(_Artist("band", _arr(x), _arr(y1), color, alpha, y2=_arr(y2), label=label))

    def axhline(self, y: float, color: str = "0", linestyle: str = "-", linewidth: float = 1.0, label=None) -> None:
        dashed = linestyle if linestyle in ("--", ":") else None
        self.artists.append(
            _Artist("hline", np.empty(0), np.array([float(y)]), color, 1.0, linewidth, dashed, label=label)
        )

    def errorbar(
        self,
        x: Sequence[float],
        y: Sequence[float],
        yerr: Any = None,
        fmt: str = "D",
        color: str = "C0",
        capsize: float = 3.0,
        markersize: float = 6.0,
        label: str | None = None,
    ) -> None:
        """Markers at (x, y) with vertical bars: `yerr` one value for all, one per point, or two
        rows (below, above) of one per point, as matplotlib takes it."""
        xs, ys = _arr(x), _arr(y)
        err = np.zeros(len(xs)) if yerr is None else np.asarray(yerr, dtype=np.float64)
        extents = np.broadcast_to(err if err.ndim == 2 else err.reshape(1, -1) if err.ndim else err, (2, len(xs)))
        self.artists.append(
            _Artist(
                "errorbar", xs, ys, color, marker=fmt, size=markersize, y2=np.abs(extents), label=label, cap=capsize
            )
        )

    def text(self, x: float, y: float, s: str, color: str = "0") -> None:
        """`s` centred at (x, y) in fractions of the panel, (0, 0) its lower left corner (as
        matplotlib's text with transform=ax.transAxes, ha and va "center")."""
        self.notes.append(_Note(s, color, x, y))

    def twinx(self) -> Axes:
        if self.twin is None:
            self.twin = Axes(self.box)
        return self.twin

    def set_title(self, title: str, fontsize: float = 10) -> None:
        self.title = title

    def set_xlabel(self, label: str) -> None:
        self.xlabel = label

    def set_ylabel(self, label: str) -> None:
        self.ylabel = label

    def set_ylim(self, lo: float, hi: float) -> None:
        """The y range, drawn increasing upwards whichever way it is given; a range that is not
        finite is ignored (the data's is used), an empty one is widened as ``padded_limits``."""
        if math.isfinite(lo) and math.isfinite(hi):
            lo, hi = min(lo, hi), max(lo, hi)
            self.ylim = (lo, hi) if hi > lo else padded_limits(lo, hi)

    def set_yscale(self, scale: str) -> None:
        self.log = scale == "log"

    def grid(self, visible: bool = True, alpha: float = 0.3) -> None:
        self.has_grid = visible

    def legend(self, loc: str = "best", fontsize: float = 8) -> None:
        self.legend_loc = loc

    def get_title(self) -> str:
        return self.title

    def get_ylabel(self) -> str:
        return self.ylabel

    def get_legend_handles_labels(self) -> tuple[list[_Artist], list[str]]:
        shown = [a for a in self.artists if a.label]
        return shown, [a.label or "" for a in shown]

    # -- limits ------------------------------------------------------------------------------
    def x_range(self) -> tuple[float, float] | None:
        """(lowest, highest) finite x of everything drawn, None if nothing is (for the shared x range)."""
        xs = np.concatenate([a.x for a in self.artists] or [np.empty(0)])
        xs = xs[np.isfinite(xs)]
        return (float(xs.min()), float(xs.max())) if len(xs) else None

    def y_limits(self) -> tuple[float, float]:
        """The y range: set_ylim's, or the data's (horizontal lines included) with 5% margins."""
        if self.ylim is not None and not (self.log and self.ylim[0] <= 0):
            return self.ylim
        values = []
        for a in self.artists:
            if a.kind == "band" and a.y2 is not None:
                values += [a.y, a.y2]
            elif a.kind == "errorbar" and a.y2 is not None:
                values += [a.y - a.y2[0], a.y + a.y2[1]]
            else:
                values.append(a.y)
        ys = np.concatenate(values) if values else np.empty(0)
        ys = ys[np.isfinite(ys) & (ys > 0)] if self.log else ys[np.isfinite(ys)]
        if not len(ys):
            return (1.0, 10.0) if self.log else (0.0, 1.0)
        return padded_limits(float(ys.min()), float(ys.max()), self.log)


def _arr(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


class Figure:
    """A figure of `width` x `height` inches at DPI: panels laid out on a grid, a title on top."""

    def __init__(self, width: float, height: float):
        self.width, self.height = round(width * DPI), round(height * DPI)
        self.panels: list[Axes] = []  # the grid's panels, in the order they were laid out
        self.title = ""

    def suptitle(self, title: str, fontsize: float = 11) -> None:
        self.title = title

    def subplot_mosaic(self, mosaic: Sequence[Sequence[str]], sharex: bool = True) -> dict[str, Axes]:
        """Named panels on the grid `mosaic` (rows of names; a name repeated in consecutive
        cells of one row spans them; one name in two rows is not supported), every panel on the
        same x range (`sharex` is always true here). ValueError for a name in two rows, or rows
        of different lengths, rather than a layout that silently drops a cell."""
        rows, cols = len(mosaic), len(mosaic[0])
        if any(len(row) != cols for row in mosaic):
            raise ValueError("subplot_mosaic: every row needs the same number of cells")
        for r, row in enumerate(mosaic):
            for name in set(row):
                if any(name in other for other in mosaic[r + 1 :]):
                    raise ValueError(f"subplot_mosaic: panel {name!r} spans two rows, which this chart does not draw")
                cells = [c for c, n in enumerate(row) if n == name]
                if cells[-1] - cells[0] + 1 != len(cells):
                    raise ValueError(f"subplot_mosaic: panel {name!r} is in cells of a row that do not touch")
        cell_w = self.width / cols
        cell_h = (self.height - SUPTITLE_ROOM) / rows
        named: dict[str, Axes] = {}
        for r, row in enumerate(mosaic):
            for c, name in enumerate(row):
                if name in named:
                    continue
                span = 1
                while c + span < cols and row[c + span] == name:
                    span += 1
                left, top = c * cell_w, SUPTITLE_ROOM + r * cell_h
                box = (
                    round(left + MARGIN_LEFT),
                    round(top + MARGIN_TOP),
                    round(left + span * cell_w - MARGIN_RIGHT),
                    round(top + cell_h - MARGIN_BOTTOM),
                )
                named[name] = Axes(box)
                self.panels.append(named[name])
        return named

    def subplots(self, nrows: int, ncols: int, sharex: bool = True) -> list[Axes]:
        """A row-major list of nrows x ncols panels."""
        names = [[f"{r},{c}" for c in range(ncols)] for r in range(nrows)]
        panels = self.subplot_mosaic(names, sharex)
        return [panels[n] for row in names for n in row]

    @property
    def axes(self) -> list[Axes]:
        """Every panel and, after each, its second y axis if it has one (as ``fig.axes`` lists
        them in matplotlib)."""
        out = []
        for ax in self.panels:
            out.append(ax)
            if ax.twin is not None:
                out.append(ax.twin)
        return out

    # -- drawing -------------------------------------------------------------------------------
    def png(self) -> bytes:
        """The figure as PNG bytes."""
        from PIL import Image, ImageDraw

        s = SUPERSAMPLE
        image = Image.new("RGB", (self.width * s, self.height * s), "white")
        draw = ImageDraw.Draw(image, "RGBA")
        ranges = [r for ax in self.axes if (r := ax.x_range()) is not None]
        xlim = padded_limits(min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else (0.0, 1.0)
        for ax in self.panels:
            _draw_panel(image, draw, ax, xlim)
        if self.title:
            f = font(SUPTITLE_PX * s)
            w = draw.textlength(self.title, font=f)
            draw.text(((self.width * s - w) / 2, 8 * s), self.title, fill=(0, 0, 0), font=f)
        out = io.BytesIO()
        image.reduce(s).save(out, format="PNG")
        return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Drawing one panel (in supersampled pixels)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    """Maps data to supersampled pixels inside a panel's plotting area."""

    left: float
    top: float
    right: float
    bottom: float
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    log: bool

    def px(self, x: np.ndarray) -> np.ndarray:
        lo, hi = self.xlim
        return self.left + (x - lo) / (hi - lo) * (self.right - self.left)

    def py(self, y: np.ndarray) -> np.ndarray:
        lo, hi = self.ylim
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                y, lo, hi = np.log10(np.where(y > 0, y, np.nan)), math.log10(lo), math.log10(hi)
        return self.bottom - (y - lo) / (hi - lo) * (self.bottom - self.top)


def _frame(ax: Axes, xlim: tuple[float, float]) -> _Frame:
    s = SUPERSAMPLE
    left, top, right, bottom = (v * s for v in ax.box)
    return _Frame(left, top, right, bottom, xlim, ax.y_limits(), ax.log)


def _draw_panel(image: Image.Image, draw: ImageDraw.ImageDraw, ax: Axes, xlim: tuple[float, float]) -> None:
    from PIL import ImageDraw

    s = SUPERSAMPLE
    frame = _frame(ax, xlim)
    grey, black = (128, 128, 128), (0, 0, 0)
    tick_font, label_font = font(TICK_PX * s), font(LABEL_PX * s)
    # x ticks (and grid) below, y ticks left; the twin's y ticks right
    x_ticks = nice_ticks(*xlim)
    for t, label in zip(x_ticks, tick_labels(x_ticks), strict=True):
        x = float(frame.px(np.array([t]))[0])
        if ax.has_grid:
            draw.line([(x, frame.top), (x, frame.bottom)], fill=(*grey, 60), width=s)
        draw.line([(x, frame.bottom), (x, frame.bottom + 4 * s)], fill=black, width=s)
        _text(draw, label, x, frame.bottom + 6 * s, tick_font, "top")
    _y_ticks(draw, ax, frame, right=False)
    # the data, clipped to the plotting area: drawn on a layer of its size, then pasted
    panels = [(ax, frame)] if ax.twin is None else [(ax, frame), (ax.twin, _frame(ax.twin, xlim))]
    layer = image.crop((int(frame.left), int(frame.top), int(frame.right), int(frame.bottom)))
    layer_draw = ImageDraw.Draw(layer, "RGBA")
    for panel, f in panels:
        local = _Frame(0, 0, f.right - f.left, f.bottom - f.top, f.xlim, f.ylim, f.log)
        for a in panel.artists:
            _draw_artist(layer_draw, a, local)
    image.paste(layer, (int(frame.left), int(frame.top)))
    draw.rectangle([frame.left, frame.top, frame.right, frame.bottom], outline=black, width=s)
    if ax.twin is not None:
        _y_ticks(draw, ax.twin, panels[1][1], right=True)
    # title, labels, centred notes
    if ax.title:
        _text(draw, ax.title, (frame.left + frame.right) / 2, frame.top - 6 * s, font(TITLE_PX * s), "bottom")
    if ax.xlabel:
        _text(draw, ax.xlabel, (frame.left + frame.right) / 2, frame.bottom + 24 * s, label_font, "top")
    for note in ax.notes:
        x = frame.left + note.x * (frame.right - frame.left)
        y = frame.bottom - note.y * (frame.bottom - frame.top)
        _text(draw, note.text, x, y, label_font, "middle", rgb(note.color))
    # The second axis's legend first: the panel's "best" corner avoids it and its points.
    taken: list[str] = []
    points = [_points(panel, f) for panel, f in panels]
    if ax.twin is not None and ax.twin.legend_loc is not None:
        taken.append(_legend(draw, ax.twin, panels[1][1], points, taken))
    if ax.legend_loc is not None:
        _legend(draw, ax, frame, points, taken)


def _points(ax: Axes, frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
    """The pixel positions of the data points drawn in `ax` (horizontal lines left out)."""
    drawn = [a for a in ax.artists if a.kind != "hline" and len(a.x)]
    if not drawn:
        return np.empty(0), np.empty(0)
    return np.concatenate([frame.px(a.x) for a in drawn]), np.concatenate([frame.py(a.y) for a in drawn])


def _y_ticks(draw: ImageDraw.ImageDraw, ax: Axes, frame: _Frame, right: bool) -> None:
    s = SUPERSAMPLE
    lo, hi = frame.ylim
    ticks = log_ticks(lo, hi) if ax.log else []
    if len(ticks) >= 2:
        labels = [format_log_tick(t) for t in ticks]
    else:  # linear, or a log axis spanning less than a factor 2.5: evenly spaced values
        ticks = nice_ticks(lo, hi)
        labels = tick_labels(ticks)
    tick_font = font(TICK_PX * s)
    widest = 0.0
    for t, label in zip(ticks, labels, strict=True):
        y = float(frame.py(np.array([t]))[0])
        widest = max(widest, draw.textlength(label, font=tick_font))
        if right:
            draw.line([(frame.right, y), (frame.right + 4 * s, y)], fill=(0, 0, 0), width=s)
            _text(draw, label, frame.right + 6 * s, y, tick_font, "left")
        else:
            if ax.has_grid:
                draw.line([(frame.left, y), (frame.right, y)], fill=(128, 128, 128, 60), width=s)
            draw.line([(frame.left - 4 * s, y), (frame.left, y)], fill=(0, 0, 0), width=s)
            _text(draw, label, frame.left - 6 * s, y, tick_font, "right")
    if ax.ylabel:
        offset = widest + 10 * s
        x = frame.right + offset if right else frame.left - offset
        _vertical_text(draw, ax.ylabel, x, (frame.top + frame.bottom) / 2, font(LABEL_PX * s), right)


def _dash(points: list[tuple[float, float]], on: float, off: float) -> list[list[tuple[float, float]]]:
    """A polyline cut into dashes of length `on` with gaps of `off` (pixels), along its length."""
    dashes: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = [points[0]]
    drawing, left = True, on
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        length = math.hypot(x1 - x0, y1 - y0)
        pos = 0.0
        while length - pos > left:
            pos += left
            p = (x0 + (x1 - x0) * pos / length, y0 + (y1 - y0) * pos / length)
            if drawing:
                current.append(p)
                dashes.append(current)
            else:
                current = [p]
            drawing, left = not drawing, off if drawing else on
        left -= length - pos
        if drawing:
            current.append((x1, y1))
    if drawing and len(current) > 1:
        dashes.append(current)
    return dashes


def _dash_pattern(style: str, width: int) -> tuple[float, float]:
    """(dash, gap) in pixels for a line `width` pixels wide: matplotlib's "--" and ":" patterns."""
    on, off = (3.7, 1.6) if style == "--" else (1.0, 1.65)
    return on * width * 1.5, off * width * 1.5


def clip_polygon(points: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The part of the polygon `points` (k, 2) inside `box` (left, top, right, bottom), as a
    polygon (m, 2), possibly empty (Sutherland-Hodgman, one box edge at a time)."""
    left, top, right, bottom = box
    edges = ((0, left, 1.0), (0, right, -1.0), (1, top, 1.0), (1, bottom, -1.0))  # axis, bound, inside sign
    poly = [(float(px), float(py)) for px, py in points]
    for axis, bound, sign in edges:
        if not poly:
            break
        out: list[tuple[float, float]] = []
        for k, cur in enumerate(poly):
            prev = poly[k - 1]
            cur_in, prev_in = sign * (cur[axis] - bound) >= 0, sign * (prev[axis] - bound) >= 0
            if cur_in != prev_in:  # the edge crosses the bound: add the crossing
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if cur_in:
                out.append(cur)
        poly = out
    return np.array(poly).reshape(-1, 2)


def _draw_artist(draw: ImageDraw.ImageDraw, a: _Artist, frame: _Frame) -> None:
    """`a` on a layer of its panel's size: `frame` maps data to the layer's own pixels."""
    s = SUPERSAMPLE
    color = (*rgb(a.color), round(255 * a.alpha))
    width = max(1, round(a.width * s * DPI / 72))  # matplotlib's widths are in points
    radius = a.size * s * DPI / 72 / 2 / (2 if a.marker == "." else 1)
    margin = width + radius + 2
    box = (frame.left - margin, frame.top - margin, frame.right + margin, frame.bottom + margin)
    columns = max(1, round(frame.right - frame.left) // s)  # output pixels across
    if a.kind == "band" and a.y2 is not None:
        ok = np.isfinite(a.x) & np.isfinite(a.y) & np.isfinite(a.y2)
        # each finite stretch is one polygon: along the lower edge, back along the upper one
        for stretch in np.split(np.arange(len(ok)), np.flatnonzero(np.diff(ok)) + 1):
            if len(stretch) < 2 or not ok[stretch[0]]:
                continue
            xs = a.x[stretch]
            lx, ly = decimate(xs, a.y[stretch], columns, *frame.xlim)
            ux, uy = decimate(xs, -a.y2[stretch], columns, *frame.xlim)  # the upper edge's highest
            edge = np.concatenate([np.c_[frame.px(lx), frame.py(ly)], np.c_[frame.px(ux), frame.py(-uy)][::-1]])
            polygon = clip_polygon(edge, box)
            if len(polygon) >= 3:
                draw.polygon([(float(u), float(v)) for u, v in polygon], fill=color)
        return
    if a.kind == "hline":  # across the whole panel, at y
        lines = clip_polyline(np.array([frame.left, frame.right]), np.repeat(frame.py(a.y), 2), box)
    elif a.kind == "line":
        x, y = decimate(a.x, a.y, columns, *frame.xlim) if a.marker is None else (a.x, a.y)
        lines = clip_polyline(frame.px(x), frame.py(y), box)
    else:
        lines = []
    for piece in lines:
        points = [(float(u), float(v)) for u, v in piece]
        for dash in _dash(points, *_dash_pattern(a.dashed, width)) if a.dashed else [points]:
            if len(dash) > 1:
                draw.line(dash, fill=color, width=width, joint="curve")
    px, py = frame.px(a.x), frame.py(a.y)
    shown = np.isfinite(px) & np.isfinite(py) & (px >= box[0]) & (px <= box[2]) & (py >= box[1]) & (py <= box[3])
    if a.kind == "errorbar" and a.y2 is not None:  # a bar from y - lower to y + upper, capped
        ends = np.clip(np.stack([frame.py(a.y - a.y2[0]), frame.py(a.y + a.y2[1])]), box[1], box[3])
        cap = a.cap * s * DPI / 72
        bar = max(1, round(1.5 * s))
        for i in np.flatnonzero(np.isfinite(px) & np.all(np.isfinite(ends), axis=0)).tolist():
            bx, low, high = float(px[i]), float(ends[0, i]), float(ends[1, i])
            draw.line([(bx, low), (bx, high)], fill=color, width=bar)
            for end in (low, high):
                if box[1] < end < box[3]:  # a cap only where the bar ends inside
                    draw.line([(bx - cap, end), (bx + cap, end)], fill=color, width=bar)
    if a.marker is not None:
        r = radius
        for x, y in zip(px[shown].tolist(), py[shown].tolist(), strict=True):
            if a.marker == "D":
                draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=color)
            else:
                draw.ellipse([x - r, y - r, x + r, y + r], fill=color)


def _legend(
    draw: ImageDraw.ImageDraw,
    ax: Axes,
    frame: _Frame,
    points: list[tuple[np.ndarray, np.ndarray]],
    taken: list[str],
) -> str:
    """The labelled artists of `ax` in a box at its legend_loc, a corner's name; "best" picks,
    of the corners not `taken`, the one whose box covers the fewest of `points` (pixel x and y
    arrays; the first such in upper left, upper right, lower left, lower right). Returns the corner."""
    s = SUPERSAMPLE
    shown, labels = ax.get_legend_handles_labels()
    if not shown:
        return ""
    f = font(round(11 * s))
    row, sample, pad = 15 * s, 22 * s, 5 * s
    width = sample + 6 * s + max(draw.textlength(t, font=f) for t in labels) + 2 * pad
    height = row * len(labels) + 2 * pad - 2 * s
    corners = {
        "upper left": (frame.left + 6 * s, frame.top + 6 * s),
        "upper right": (frame.right - 6 * s - width, frame.top + 6 * s),
        "lower left": (frame.left + 6 * s, frame.bottom - 6 * s - height),
        "lower right": (frame.right - 6 * s - width, frame.bottom - 6 * s - height),
    }
    loc = ax.legend_loc
    if loc not in corners:
        px = np.concatenate([p[0] for p in points])
        py = np.concatenate([p[1] for p in points])

        def covered(corner: str) -> int:
            x0, y0 = corners[corner]
            return int(np.count_nonzero((px >= x0) & (px <= x0 + width) & (py >= y0) & (py <= y0 + height)))

        loc = min((c for c in corners if c not in taken), key=covered)
    x0, y0 = corners[loc]
    draw.rectangle([x0, y0, x0 + width, y0 + height], fill=(255, 255, 255, 204), outline=(204, 204, 204), width=s)
    for k, (a, label) in enumerate(zip(shown, labels, strict=True)):
        yc = y0 + pad + k * row + row / 2 - s
        color = (*rgb(a.color), round(255 * max(a.alpha, 0.3)))
        xs = x0 + pad
        if a.kind == "band":
            draw.rectangle([xs, yc - 4 * s, xs + sample, yc + 4 * s], fill=color)
        elif a.kind == "dots":
            r = 2.5 * s
            draw.ellipse([xs + sample / 2 - r, yc - r, xs + sample / 2 + r, yc + r], fill=color)
        else:
            w = max(1, round(a.width * s * DPI / 72))  # the line's own width and dashes, opaque
            line = [(xs, yc), (xs + sample, yc)]
            pieces = _dash(line, *_dash_pattern(a.dashed, w)) if a.dashed else [line]
            for piece in pieces:
                draw.line(piece, fill=(*rgb(a.color), 255), width=w)
            if a.marker is not None:
                r = (a.size if a.kind != "errorbar" else 4.0) * s * DPI / 72 / 2
                cx = xs + sample / 2
                if a.marker == "D":
                    draw.polygon([(cx, yc - r), (cx + r, yc), (cx, yc + r), (cx - r, yc)], fill=(*rgb(a.color), 255))
                else:
                    draw.ellipse([cx - r, yc - r, cx + r, yc + r], fill=(*rgb(a.color), 255))
        _text(draw, label, xs + sample + 6 * s, yc, f, "left")
    return loc


def _text(
    draw: ImageDraw.ImageDraw,
    text: str,
    x: float,
    y: float,
    f: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    anchor: str,
    color: tuple[int, int, int] = (0, 0, 0),
) -> None:
    """`text` placed by `anchor`: "top"/"bottom"/"middle" centre it on x (below, above, at y);
    "left"/"right" put its start/end at x, centred on y."""
    code = {"top": "mt", "bottom": "mb", "middle": "mm", "left": "lm", "right": "rm"}[anchor]
    try:
        draw.text((x, y), text, fill=color, font=f, anchor=code)
    except ValueError:  # a bitmap font takes no anchor: place it by its size
        w = draw.textlength(text, font=f)
        box = draw.textbbox((0, 0), text, font=f)
        h = box[3] - box[1]
        dx = {"m": -w / 2, "l": 0.0, "r": -w}[code[0]]
        dy = {"t": 0.0, "b": -h, "m": -h / 2}[code[1]]
        draw.text((x + dx, y + dy), text, fill=color, font=f)


def _vertical_text(
    draw: ImageDraw.ImageDraw,
    text: str,
    x: float,
    y: float,
    f: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    right: bool,
) -> None:
    """A y-axis label, read bottom to top, centred on y, its nearer edge at x (right: its left
    edge, else its right edge)."""
    from PIL import Image, ImageDraw

    box = draw.textbbox((0, 0), text, font=f)
    w, h = box[2] - box[0] + 4, box[3] - box[1] + 4
    label = Image.new("L", (int(w), int(h)), 0)
    ImageDraw.Draw(label).text((-box[0] + 2, -box[1] + 2), text, fill=255, font=f)
    rotated = label.rotate(90, expand=True)
    left = x if right else x - rotated.width
    top = y - rotated.height / 2
    draw.bitmap((round(left), round(top)), rotated, fill=(0, 0, 0))
