"""Watching the delivered greedy policy: episodes rendered to GIF or MP4, or shown in a window.

Frames of CartPole and the target task are drawn by dqnlab itself (dqnlab.viz.scene: the scene
Gymnasium draws, straight at the output size, from the states of the kept steps); other
environments' come from Gymnasium's ``render_mode="rgb_array"`` (pygame) and are downscaled.
Every frame carries the step count and the running return. GIFs are written with Pillow (one
palette shared by all frames, so colours do not flicker, and each frame stores only the pixels
that changed); MP4 with the ffmpeg binary that the ``imageio-ffmpeg`` package ships (the optional
extra ``dqnlab[video]``).

Frame ``i`` of an episode of ``L`` steps shows the state after ``i`` steps, ``i = 0..L``. With
``every = k`` the frames kept are ``0, k, 2k, ...`` and always the last one, so the end of the
episode (the pole falling, or the time limit) is never skipped. Playback speed stays real time:
each kept frame lasts ``every / fps`` seconds, where ``fps`` is in environment steps per second
(default: the environment's ``render_fps``, 50 for CartPole).

Episodes run on the environment as the policy's run evaluated it (Policy.evaluation_env): a run
capped at 10,000 steps on CartPole-v0 is shown past v0's 200, and the target task with the run's
margin.
"""

from __future__ import annotations

import functools
import io
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dqnlab.core.errors import DqnlabError
from dqnlab.envs.make import env_spec
from dqnlab.envs.pixels.raster import SCREEN_H, SCREEN_W
from dqnlab.runtime.policy import Policy
from dqnlab.viz import scene
from dqnlab.viz.output import write_output

GIF_EVERY, GIF_WIDTH = 2, 300  # a 500-step CartPole episode: 251 frames, well under 1 MB
MP4_EVERY, MP4_WIDTH = 1, 600  # video codecs make full frame rate and size cheap
GIF_COLORS = 64  # one palette for all frames
MIN_GIF_FRAME_MS = 20  # browsers play shorter GIF frames at 100 ms, i.e. far too slowly
END_HOLD_MS = 1000  # the last frame of each episode stays up a second, so the end can be seen
MAX_STEPS = 10_000  # a safety cap for environments without a time limit, and the most `max_steps` allows
MAX_FRAME_SECONDS = 655.35  # GIF stores a frame's duration in centiseconds, in 16 bits
MAX_FRAME_BYTES = 2 * 10**9  # all kept frames are held in memory until the file is written
# dqnlab depends on pygame through Gymnasium's classic-control extra (pyproject.toml), which
# installs pygame up to Gymnasium 1.2 and pygame-ce from 1.3: naming either package here could
# pull in the one that clashes with the other, both being imported as `pygame`.
_PYGAME_HINT = 'rendering needs pygame, which Gymnasium brings: pip install "gymnasium[classic-control]>=1.0,<2"'


@dataclass(frozen=True)
class Episode:
    """One rendered episode: its seed, outcome and kept, annotated frames."""

    seed: int
    total_return: float
    length: int  # environment steps
    frames: list[np.ndarray]  # each (height, width, 3) uint8


def kept_frame_indices(length: int, every: int) -> list[int]:
    """Indices of the frames kept of an episode of `length` steps (frames 0..length):
    every `every`-th frame from 0, plus the last frame if that step is not a multiple."""
    if length < 0 or every < 1:
        raise ValueError("length must be >= 0 and every >= 1")
    kept = list(range(0, length + 1, every))
    if kept[-1] != length:
        kept.append(length)
    return kept


def scaled_size(width: int, height: int, target_width: int, even: bool = False) -> tuple[int, int]:
    """(width, height) scaled to `target_width`, keeping the aspect ratio; never upscaled.
    `even` rounds both down to even numbers (H.264 with 4:2:0 colour needs them)."""
    w = min(target_width, width)
    h = max(1, round(height * w / width))
    if even:
        w, h = max(2, w - w % 2), max(2, h - h % 2)
    return w, h


@functools.lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # a scalable font bundled with Pillow >= 10.1
    except TypeError:  # an older Pillow: its fixed bitmap font
        return ImageFont.load_default()


def draw_label(frame: np.ndarray, text: str) -> None:
    """Write `text` into the top-left corner of `frame` (H, W, 3) uint8, in place: black with a
    white outline, so it reads on light and dark backgrounds alike, sized to the frame's width.

    As Pillow's stroked text, at a fraction of its cost (a frame's label is drawn at every kept
    step): the text's mask is put together from glyphs drawn once (``text_mask``) and the
    outline is that mask widened by the stroke width."""
    font_px = max(10, frame.shape[1] // 22)
    stroke = max(1, font_px // 7)
    ink = np.pad(text_mask(text, font_px), stroke)  # (h, w) text coverage in [0, 1], room for the outline
    outline = _widen(ink, stroke)
    y0, x0 = font_px // 3 - stroke, font_px // 2 - stroke  # the text's top-left at (font_px // 2, font_px // 3)
    h, w = min(ink.shape[0], frame.shape[0] - y0), min(ink.shape[1], frame.shape[1] - x0)
    if h <= 0 or w <= 0:
        return
    region = frame[y0 : y0 + h, x0 : x0 + w].astype(np.float32)
    region += outline[:h, :w, None] * (np.float32(255) - region)  # white outline
    region *= np.float32(1) - ink[:h, :w, None]  # black text over it
    frame[y0 : y0 + h, x0 : x0 + w] = np.rint(region).astype(np.uint8)


def text_mask(text: str, font_px: int) -> np.ndarray:
    """Coverage (h, w) float32 in [0, 1] of `text` in Pillow's default font at `font_px`, its
    top-left corner at the text's anchor (Pillow's "la"): each glyph drawn once (and cached) and
    placed at the running sum of the advances before it, as Pillow's basic layout places it."""
    glyphs = [_glyph(ch, font_px) for ch in text]
    x = np.concatenate([[0.0], np.cumsum([advance for _, advance in glyphs])])
    left = np.round(x[:-1]).astype(int)
    height = max((g.shape[0] for g, _ in glyphs), default=1)
    mask = np.zeros(
        (height, max((lo + g.shape[1] for (g, _), lo in zip(glyphs, left, strict=True)), default=1)), np.float32
    )
    for (g, _), lo in zip(glyphs, left, strict=True):
        dst = mask[: g.shape[0], lo : lo + g.shape[1]]
        np.maximum(dst, g, out=dst)  # overlapping glyphs: the darker wins, as in Pillow's text
    return mask


@functools.lru_cache(maxsize=512)
def _glyph(ch: str, font_px: int) -> tuple[np.ndarray, float]:
    """Character `ch` drawn at the anchor (0, 0) of an image as tall as the font's line: its
    coverage (h, w) float32 and its advance in pixels."""
    from PIL import Image, ImageDraw

    font = _font(font_px)
    ascent, descent = font.getmetrics()
    right = max(1, font.getbbox(ch)[2])
    img = Image.new("L", (right, ascent + descent), 0)
    ImageDraw.Draw(img).text((0, 0), ch, fill=255, font=font)
    return np.asarray(img, dtype=np.float32) * np.float32(1 / 255), float(font.getlength(ch))


def _widen(mask: np.ndarray, radius: int) -> np.ndarray:
    """`mask` (h, w) under a maximum filter over a disc of `radius` pixels (corners included at 1)."""
    out = mask.copy()
    h, w = mask.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if (dy or dx) and dx * dx + dy * dy <= radius * radius + radius:
                dst = out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
                np.maximum(dst, mask[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)], out=dst)
    return out


def annotate(frame: np.ndarray, text: str, size: tuple[int, int]) -> np.ndarray:
    """`frame` resized to `size` (width, height) with `text` in its top-left corner (see
    ``draw_label``; text is drawn after resizing so it stays sharp)."""
    from PIL import Image

    img = Image.fromarray(frame).convert("RGB")
    if img.size != size:
        img = img.resize(size, Image.Resampling.LANCZOS)
    out = np.array(img)
    draw_label(out, text)
    return out


def _make_env(env_id: str, render_mode: str, evaluated: dict[str, Any] | None = None):
    """Gymnasium's `env_id` drawing in `render_mode`, with the time limit and constructor kwargs of
    `evaluated` (a policy's Policy.evaluation_env(): how its run evaluated, e.g. the target task's
    margin) where it sets them."""
    import gymnasium as gym

    evaluated = evaluated or {}
    options: dict[str, Any] = dict(evaluated.get("kwargs") or {})
    if evaluated.get("max_episode_steps"):
        options["max_episode_steps"] = evaluated["max_episode_steps"]
    env_spec(env_id)  # an unknown id becomes a ConfigError naming the closest one
    # On a headless machine SDL's probing prints ALSA and XDG_RUNTIME_DIR "errors" (audio, then
    # Wayland) before it falls back to drawing off screen. We never play sound, and without a
    # display off-screen drawing is all rgb_array needs. A user's own settings win.
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    if render_mode == "rgb_array" and not has_display():
        os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # CartPole-v0's deprecation notice
            return gym.make(env_id, render_mode=render_mode, **options)
    except gym.error.DependencyNotInstalled as exc:
        raise DqnlabError(f"environment {env_id} needs an extra dependency: {exc}") from None


def _is_missing_pygame(exc: BaseException) -> bool:
    """Gymnasium imports pygame only when the first frame is drawn, and says so with its own error."""
    import gymnasium as gym

    return isinstance(exc, (ImportError, gym.error.DependencyNotInstalled)) and "pygame" in str(exc)


def _label(episode: int, episodes: int, step: int, total: float) -> str:
    prefix = f"episode {episode + 1}/{episodes}   " if episodes > 1 else ""
    return f"{prefix}step {step}   return {total:g}"


def record_episodes(
    policy: Policy,
    episodes: int = 1,
    seed: int = 0,
    every: int = GIF_EVERY,
    width: int = GIF_WIDTH,
    even: bool = False,
    max_steps: int | None = None,
) -> list[Episode]:
    """Play `episodes` greedy episodes of `policy` on its environment (episode ``i`` reset with
    ``seed + i``) and return their kept, annotated frames (see the module docstring). An episode
    ends at the run's time limit or after `max_steps` steps, whichever comes first.

    CartPole and the target task are drawn by dqnlab.viz.scene from the states of the kept steps,
    straight at the output size; any other environment by its own render(), downscaled."""
    if episodes < 1 or every < 1 or width < 16:
        raise DqnlabError("episodes and every must be at least 1, and width at least 16 pixels")
    limit = _step_limit(max_steps)
    # A pixel policy draws its own frames from the environment's states.
    env = policy.wrap_env(_make_env(policy.env_id, "rgb_array", policy.evaluation_env()))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one observation at a time: more threads only wait for each other
    try:
        out: list[Episode] = []
        for i in range(episodes):
            held = sum(f.nbytes for ep in out for f in ep.frames)
            out.append(_record_episode(env, policy, i, episodes, seed, every, width, even, held, limit))
        return out
    except Exception as exc:
        if _is_missing_pygame(exc):
            raise DqnlabError(_PYGAME_HINT) from None
        raise
    finally:
        torch.set_num_threads(threads)
        env.close()


def _step_limit(max_steps: int | None) -> int:
    if max_steps is not None and not 1 <= max_steps <= MAX_STEPS:
        raise DqnlabError(f"max_steps must be between 1 and {MAX_STEPS:,}")
    return max_steps or MAX_STEPS


def _record_episode(
    env, policy: Policy, i: int, episodes: int, seed: int, every: int, width: int, even: bool, held: int, limit: int
) -> Episode:
    """Episode `i` of `episodes` (see ``record_episodes``), after frames of `held` bytes, cut
    after `limit` steps."""
    obs, _ = env.reset(seed=seed + i)
    drawn = scene.can_draw(env)
    if drawn:
        size = scaled_size(SCREEN_W, SCREEN_H, width, even)
        states = [scene.scene_state(env)]
        frames = []
    else:
        first = env.render()
        if first is None:
            raise DqnlabError(f"environment {policy.env_id} renders no image")
        size = scaled_size(first.shape[1], first.shape[0], width, even)
        frames = [annotate(first, _label(i, episodes, 0, 0.0), size)]
    labels = [_label(i, episodes, 0, 0.0)]
    frame_bytes = size[0] * size[1] * 3
    total, step, done = 0.0, 0, False
    while not done and step < limit:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        total += float(reward)
        step += 1
        done = terminated or truncated
        if step % every == 0 or done or step == limit:  # = kept_frame_indices
            labels.append(_label(i, episodes, step, total))
            if held + len(labels) * frame_bytes > MAX_FRAME_BYTES:
                raise DqnlabError(
                    f"the frames would take more than {MAX_FRAME_BYTES / 1e9:.0f} GB of memory; "
                    "use fewer --episodes, a larger --every or a smaller --width",
                    exit_code=1,
                )
            if drawn:
                states.append(scene.scene_state(env))
            else:
                frames.append(annotate(env.render(), labels[-1], size))
    if drawn:
        frames = list(scene.draw_frames(np.array(states), size, scene.pole_length(env)))
        for frame, text in zip(frames, labels, strict=True):
            draw_label(frame, text)
    return Episode(seed + i, total, step, frames)


def default_fps(env_id: str) -> float:
    """The environment's own playback rate (render_fps), or 30 if it declares none."""
    env = _make_env(env_id, "rgb_array")
    try:
        return float(env.metadata.get("render_fps") or 30)
    finally:
        env.close()


def gif_frame_ms(fps: float, every: int) -> int:
    """Milliseconds per GIF frame for real-time playback at `fps` steps per second with one frame
    every `every` steps; a DqnlabError if browsers would not honour it (see MIN_GIF_FRAME_MS)."""
    seconds = frame_seconds(fps, every)
    if seconds * 1000 < MIN_GIF_FRAME_MS:
        raise DqnlabError(
            f"GIF frames of {seconds * 1000:.0f} ms play slowly in browsers (at least "
            f"{MIN_GIF_FRAME_MS} ms); use a larger --every or a lower --fps"
        )
    return round(seconds * 1000)


def frame_seconds(fps: float, every: int) -> float:
    """How long each kept frame shows (`every` steps at `fps` steps per second); a DqnlabError
    beyond MAX_FRAME_SECONDS, which a GIF cannot store and ffmpeg refuses as a frame rate."""
    if not (fps > 0 and math.isfinite(fps)) or every < 1:
        raise DqnlabError(f"--fps must be a finite number > 0 and --every at least 1, got {fps:g} and {every}")
    seconds = every / fps
    if seconds > MAX_FRAME_SECONDS:
        raise DqnlabError(
            f"frames of {seconds:.3g} s are longer than a GIF or video can show (at most "
            f"{MAX_FRAME_SECONDS:.0f} s); use a smaller --every or a higher --fps"
        )
    return seconds


def gif_bytes(episodes: Sequence[Episode], frame_ms: int) -> bytes:
    """An endlessly looping GIF of all episodes' frames, each shown `frame_ms` milliseconds (the
    last frame of each episode for END_HOLD_MS).

    One palette of GIF_COLORS for all frames (from the first, middle and last frame), so colours
    do not flicker; every pixel is its frame's colour in that palette. After the first frame, the
    pixels equal to the previous frame's are written as a transparent index that shows the
    previous frame through (and Pillow crops each frame to the box of changes), so a still
    background costs nothing."""
    from PIL import Image

    frames = [f for ep in episodes for f in ep.frames]
    durations = [END_HOLD_MS if j == len(ep.frames) - 1 else frame_ms for ep in episodes for j in range(len(ep.frames))]
    height, width = frames[0].shape[:2]
    sample = np.concatenate([frames[0], frames[len(frames) // 2], frames[-1]])  # (3 * height, width, 3)
    palette = Image.fromarray(sample).quantize(colors=GIF_COLORS, method=Image.Quantize.MEDIANCUT)
    # All frames in one image: one call instead of one per frame.
    paletted = Image.fromarray(np.concatenate(frames)).quantize(palette=palette, dither=Image.Dither.NONE)
    counts = paletted.histogram()
    indices = np.asarray(paletted).reshape(len(frames), height, width)
    colors = palette.getpalette() or []
    unused = [i for i in range(len(colors) // 3) if counts[i] == 0]
    unchanged = unused[0] if unused else len(colors) // 3  # a spare index, or one more entry
    colors += [] if unused else [0, 0, 0]
    images = []
    for j, frame in enumerate(indices):
        if j > 0:
            frame = np.where(frame == indices[j - 1], np.uint8(unchanged), frame)
        im = Image.fromarray(frame)  # mode "L" ...
        im.putpalette(colors)  # ... made "P"
        images.append(im)
    buf = io.BytesIO()
    images[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=durations,
        loop=0,
        optimize=False,  # the palette is already one for all: no per-frame palettes to compare
        transparency=unchanged,
        disposal=1,  # keep each frame on screen: the next one draws only what changed
    )
    return buf.getvalue()


def write_gif(path: str | Path, episodes: Sequence[Episode], fps: float, every: int) -> Path:
    """Write the episodes as a GIF at `fps` environment steps per second."""
    return write_output(path, gif_bytes(episodes, gif_frame_ms(fps, every)))


def write_mp4(path: str | Path, episodes: Sequence[Episode], fps: float, every: int) -> Path:
    """Write the episodes as an H.264 MP4 at `fps` environment steps per second (frame sizes
    must be even: record with ``even=True``). Needs the optional imageio-ffmpeg package."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise DqnlabError(
            'MP4 needs the video extra: pip install "dqnlab[video]" (or write a GIF with --gif)'
        ) from None
    p = Path(path)
    frames = [f for ep in episodes for f in ep.frames]
    height, width = frames[0].shape[:2]
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".mp4", dir=p.parent if p.parent.is_dir() else None)
    os.close(fd)
    try:
        writer = imageio_ffmpeg.write_frames(
            tmp,
            (width, height),
            fps=fps / every,
            codec="libx264",
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=["-movflags", "+faststart"],
        )
        writer.send(None)  # start ffmpeg
        for f in frames:
            writer.send(np.ascontiguousarray(f))
        writer.close()
        os.replace(tmp, p)
    except (OSError, RuntimeError) as exc:
        raise DqnlabError(f"cannot write {p}: {str(exc).strip().splitlines()[0][:200]}", exit_code=1) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def has_display() -> bool:
    """Whether a window can be opened: on Linux and the BSDs an X11 or Wayland display must be set."""
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True  # macOS and Windows always have their window system


def play_in_window(
    policy: Policy, episodes: int = 1, seed: int = 0, fps: float | None = None, max_steps: int | None = None
) -> list[tuple[float, int]]:
    """Show `episodes` greedy episodes in a window at `fps` steps per second (default: the
    environment's render_fps), each ending as in ``record_episodes``; returns (return, length)
    per episode. Raises DqnlabError without a display."""
    limit = _step_limit(max_steps)
    if not has_display():
        raise DqnlabError("--human needs a display (DISPLAY is not set); write a file instead with --gif or --mp4")
    env = policy.wrap_env(_make_env(policy.env_id, "human", policy.evaluation_env()))
    if fps is not None:
        env.unwrapped.metadata = {**env.unwrapped.metadata, "render_fps": fps}  # read at each frame
    results = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            total, step, done = 0.0, 0, False
            while not done and step < limit:
                obs, reward, terminated, truncated, _ = env.step(policy(obs))
                total += float(reward)
                step += 1
                done = terminated or truncated
            results.append((total, step))
    except Exception as exc:
        if _is_missing_pygame(exc):
            raise DqnlabError(_PYGAME_HINT) from None
        if type(exc).__module__ == "pygame":  # pygame.error: no window could be opened
            raise DqnlabError(f"cannot open a window: {exc}") from None
        raise
    finally:
        env.close()
    return results
