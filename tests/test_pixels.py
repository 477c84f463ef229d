"""Pixel observations: the rasteriser against Gymnasium's own frames, the views' shapes, the frame
history across episode boundaries (NEXT_STEP autoreset), the pixel Q-network and policy files."""

import os

import gymnasium as gym
import numpy as np
import pytest
import torch

import dqnlab
from dqnlab.algos.registry import load_policy
from dqnlab.config import EnvConfig, NetworkConfig, PixelConfig, conv_output_hw
from dqnlab.core.errors import ConfigError, DqnlabError
from dqnlab.envs.make import make_vec_env
from dqnlab.envs.pixels import PixelObservation, PixelVectorEnv, raster
from dqnlab.envs.pixels.frames import FrameStack
from dqnlab.envs.pixels.view import BOTTOM, TOP, TUTORIAL_VIEW_W, render_view, tutorial_left
from dqnlab.envs.state import capture_env_state, restore_env_state
from dqnlab.nn.networks import PixelQNetwork
from dqnlab.runtime.policy import Policy

TRACK = PixelConfig(mode="track")
TUTORIAL = PixelConfig(mode="tutorial", height=40, width=90, color=True, frames=2, input="difference")


# -- the rasteriser ------------------------------------------------------------------------------


def test_interval_coverage_by_hand():
    cov = raster._interval_coverage(np.array([0.0, 1.0, 2.5, 10.0]), 1.0, 0.0, 3.0)
    # windows [-1, 1], [0, 2], [1.5, 3.5], [9, 11] against [0, 3]
    assert np.allclose(cov, [0.5, 1.0, 0.75, 0.0])


def _masks(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Cart and pole pixels of an (H, W, 3) frame, by colour: the cart is black (max channel low),
    the pole is the only shape much redder than blue; a pixel belongs to a shape when the shape
    covers about half of it or more."""
    rgb = rgb.astype(np.float64)
    return {"cart": rgb.max(axis=-1) < 100, "pole": rgb[..., 0] - rgb[..., 2] > 50}


@pytest.mark.parametrize("cfg", [TRACK.model_copy(update={"color": True}), TUTORIAL], ids=["track", "tutorial"])
def test_rasteriser_matches_gymnasium_downscaled(cfg):
    """Over many random states, dqnlab's frame and Gymnasium's 600x400 frame, cropped the same way
    and downscaled by Pillow (box filter = area coverage), agree: the cart and pole masks overlap
    with IoU >= 0.9, and the pixels differ by less than one gray level on average."""
    pytest.importorskip("pygame")
    from PIL import Image

    os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    env = gym.make("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    rng = np.random.default_rng(7)
    inter = {"cart": 0, "pole": 0}
    union = {"cart": 0, "pole": 0}
    per_state = {"cart": [], "pole": []}
    errors = []
    try:
        for _ in range(150):
            state = np.array([rng.uniform(-2.4, 2.4), 0.0, rng.uniform(-0.25, 0.25), 0.0])
            env.unwrapped.state = state
            frame = env.render()[TOP:BOTTOM]
            left = int(tutorial_left(state[:1])[0]) if cfg.mode == "tutorial" else 0
            view_w = TUTORIAL_VIEW_W if cfg.mode == "tutorial" else raster.SCREEN_W
            patch = Image.fromarray(np.ascontiguousarray(frame[:, left : left + view_w]))
            theirs = np.asarray(patch.resize((cfg.width, cfg.height), Image.Resampling.BOX))
            ours = render_view(cfg, state[None])[0].transpose(1, 2, 0)
            errors.append(np.abs(theirs.astype(float) - ours).mean())
            a, b = _masks(theirs), _masks(ours)
            for name in inter:
                inter[name] += int((a[name] & b[name]).sum())
                union[name] += int((a[name] | b[name]).sum())
                per_state[name].append((a[name] & b[name]).sum() / max(1, (a[name] | b[name]).sum()))
    finally:
        env.close()
    for name in inter:
        assert inter[name] / union[name] >= 0.9, name
        assert np.mean(per_state[name]) >= 0.9, name
    assert np.mean(errors) < 1.0


def test_gray_frames_are_pillows_luma_of_the_colour_ones():
    from PIL import Image

    obs = np.array([[0.3, 0.0, 0.1, 0.0], [-2.0, 0.0, -0.2, 0.0]])
    colour = render_view(TRACK.model_copy(update={"color": True}), obs)
    gray = render_view(TRACK, obs)
    for c, g in zip(colour, gray, strict=True):
        luma = np.asarray(Image.fromarray(c.transpose(1, 2, 0)).convert("L")).astype(int)
        assert np.abs(luma - g[0].astype(int)).max() <= 1


def test_upright_pole_at_full_resolution_is_where_gymnasium_draws_it():
    # One output pixel per screen pixel: the pole of an upright cart at x = 0.3 fills columns
    # 332..342 and rows 172..297 of the screen (read off Gymnasium's frame).
    cov = raster.coverage(np.array([0.3]), np.array([0.0]), np.array([0.0]), 0, 1, 1, 400, 600)
    rows, cols = np.nonzero((cov["pole"][0] >= 0.5) & (cov["axle"][0] < 0.5))
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (172, 297, 332, 342)
    assert np.all(cov["track"][0, 299] == 1.0) and np.all(cov["track"][0, 298] == 0.0)


# -- views and shapes ------------------------------------------------------------------------------


def test_view_shapes_and_dtype():
    obs = np.zeros((5, 4))
    assert render_view(TRACK, obs).shape == (5, 1, 32, 96)
    assert render_view(TUTORIAL, obs).shape == (5, 3, 40, 90)
    assert render_view(TRACK, obs).dtype == np.uint8
    assert TRACK.obs_shape() == (2, 32, 96) and TUTORIAL.obs_shape() == (6, 40, 90)
    assert PixelConfig(mode="track", frames=4, height=48, width=48, input="frames").obs_shape() == (4, 48, 48)


def test_tutorial_crop_follows_the_cart_and_clamps_at_the_edges():
    # cart column = 125 x + 300, truncated; window 360 wide, clamped to [0, 600]
    left = tutorial_left(np.array([0.0, 0.5, -2.4, 2.4, -0.96]))
    assert left.tolist() == [120.0, 182.0, 0.0, 240.0, 0.0]


def test_track_view_sees_the_cart_move_and_tutorial_view_does_not():
    # cart columns 300 and 350 (whole screen pixels): the tutorial's window moves with the cart
    a, b = np.array([[0.0, 0, 0, 0]]), np.array([[0.4, 0, 0, 0]])
    assert not np.array_equal(render_view(TRACK, a), render_view(TRACK, b))
    assert np.array_equal(render_view(TUTORIAL, a), render_view(TUTORIAL, b))  # both centred on the cart


def test_conv_output_size_by_hand():
    assert conv_output_hw(40, 90, [(16, 5, 2), (32, 5, 2), (32, 5, 2)]) == (2, 8)  # S1: 32 * 2 * 8 = 512
    assert conv_output_hw(32, 96, [(16, 4, 2), (32, 4, 2), (32, 3, 2)]) == (2, 10)


# -- frame history ----------------------------------------------------------------------------------


def test_frame_stack_push_and_restart():
    stack = FrameStack(2, 3, (1, 1, 2))
    f = lambda a, b: np.array([[[[a, a]]], [[[b, b]]]], dtype=np.uint8)  # noqa: E731 (N=2, C=1, H=1, W=2)
    stack.restart(f(1, 5))
    stack.push(f(2, 6))
    assert stack.observation()[:, :, 0, 0].tolist() == [[1, 1, 2], [5, 5, 6]]
    stack.push(f(3, 7))
    stack.restart(f(9, 9)[1:], np.array([1]))  # env 1 starts a new episode
    obs = stack.observation()
    assert obs[:, :, 0, 0].tolist() == [[1, 2, 3], [9, 9, 9]]
    obs[:] = 0  # observations are copies: the history is untouched
    assert stack.observation()[0, :, 0, 0].tolist() == [1, 2, 3]


def test_pixel_env_stacks_frames_and_restarts_them_after_the_next_step_autoreset():
    """Observations are [previous frame, current frame] of the same episode; the step after an
    episode ends (NEXT_STEP autoreset) shows the new episode's first frame twice."""
    cfg = EnvConfig(id="CartPole-v1", max_episode_steps=4)
    plain = make_vec_env(cfg, 2)
    pix = make_vec_env(cfg.model_copy(update={"pixels": TRACK}), 2)
    assert isinstance(pix, PixelVectorEnv) and pix.single_observation_space.shape == (2, 32, 96)
    state, _ = plain.reset(seed=3)
    obs, _ = pix.reset(seed=3)
    first = render_view(TRACK, state)
    assert np.array_equal(obs, np.concatenate([first, first], axis=1))
    prev_frame, prev_done = first, np.zeros(2, dtype=bool)
    rng = np.random.default_rng(0)
    restarts = 0
    for _ in range(12):
        actions = rng.integers(0, 2, 2)
        state, _, term, trunc, _ = plain.step(actions)
        obs, _, term2, trunc2, _ = pix.step(actions)
        assert np.array_equal(term, term2) and np.array_equal(trunc, trunc2)
        frame = render_view(TRACK, state)
        expected_prev = np.where(prev_done[:, None, None, None], frame, prev_frame)
        assert np.array_equal(obs, np.concatenate([expected_prev, frame], axis=1))
        restarts += int(prev_done.sum())
        prev_frame, prev_done = frame, term | trunc
    assert restarts >= 2  # the 4-step limit forced autoresets
    plain.close()
    pix.close()


def test_pixel_env_state_round_trip_resumes_bit_exactly():
    cfg = EnvConfig(id="CartPole-v1", pixels=PixelConfig(mode="track", frames=3, input="frames"))
    a, b = make_vec_env(cfg, 3), make_vec_env(cfg, 3)
    a.reset(seed=1)
    b.reset(seed=99)
    actions = np.random.default_rng(0).integers(0, 2, (30, 3))
    for act in actions[:10]:
        a.step(act)
    saved = capture_env_state(a)
    assert "pixels" in saved
    restore_env_state(b, saved)
    for act in actions[10:]:
        assert np.array_equal(a.step(act)[0], b.step(act)[0])


def test_single_env_wrapper_matches_the_vector_env():
    env = PixelObservation(gym.make("CartPole-v1"), TRACK)
    obs, _ = env.reset(seed=5)
    assert obs.shape == (2, 32, 96) and env.observation_space.contains(obs)
    state = env.unwrapped.state
    assert np.array_equal(obs[1:], render_view(TRACK, np.asarray(state)[None])[0])
    obs2, *_ = env.step(1)
    assert np.array_equal(obs2[:1], obs[1:])  # the previous frame moved back one slot


# -- network, config, policy ----------------------------------------------------------------------


def test_difference_input_is_last_frame_minus_previous():
    net = PixelQNetwork(NetworkConfig(conv=[(4, 5, 2)], hidden=[8]), TUTORIAL, 2).eval()
    frames = torch.randint(0, 256, (3, 6, 40, 90), dtype=torch.uint8)
    diff = (frames[:, 3:].float() - frames[:, :3].float()) / 255
    with torch.no_grad():
        assert torch.allclose(net(frames), net.head(net.conv(diff).flatten(1)), atol=1e-5)
        same = torch.cat([frames[:, 3:], frames[:, 3:]], dim=1)  # an episode start: zero difference
        zero = net.head(net.conv(torch.zeros(3, 3, 40, 90)).flatten(1))
        assert torch.allclose(net(same), zero, atol=1e-6)
        assert torch.allclose(net(frames), net(frames.float()))  # uint8 or float intensities alike


def test_network_inputs_by_hand():
    from dqnlab.nn.networks import DIFFERENCE_GAIN

    x = torch.tensor([[[[255.0, 0.0]], [[51.0, 0.0]]]], dtype=torch.float32)  # (1, 2 frames, 1, 2)
    nc = NetworkConfig(conv=[(1, 1, 1)], hidden=[])
    both = PixelQNetwork(nc, PixelConfig(mode="track", height=8, width=8), 2)
    stack = PixelQNetwork(nc, PixelConfig(mode="track", height=8, width=8, input="frames"), 2)
    # ink of the last frame (1 - 51/255 = 0.8, 1 - 0 = 1), then gain * (last - previous) = gain * (-0.8, 0)
    expected = torch.tensor([[[[0.8, 1.0]], [[-0.8 * DIFFERENCE_GAIN, 0.0]]]])
    assert torch.allclose(both.features(x), expected)
    assert torch.allclose(stack.features(x), torch.tensor([[[[0.0, 1.0]], [[0.8, 1.0]]]]))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_channels_last_network_computes_what_the_plain_layout_does(batch_norm):
    # The convolutions run channels-last for speed (a 3x faster weight gradient of the first one):
    # Q-values and parameter gradients must be those of the same layers in the plain NCHW layout,
    # and a state dict saved in the plain layout (checkpoints before the change) must load as is.
    cfg = dqnlab.build_config(preset="pixels", **{"network.batch_norm": batch_norm})
    net = PixelQNetwork(cfg.network, cfg.env.pixels, 2)
    frames = torch.randint(0, 256, (16, 2, 32, 96), dtype=torch.uint8)
    assert net.features(frames).is_contiguous(memory_format=torch.channels_last)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in net.conv.parameters() if p.dim() == 4)

    def plain(x):
        h = net.features(x).contiguous()
        for layer in net.conv:
            if isinstance(layer, torch.nn.Conv2d):
                h = torch.nn.functional.conv2d(h, layer.weight.contiguous(), layer.bias, layer.stride)
            else:
                h = layer(h)
        return net.head(h.flatten(1))

    grads = []
    for forward in (net, plain):
        net.zero_grad()
        q = forward(frames)
        (q[:, 0] - 2 * q[:, 1]).square().mean().backward()
        grads.append((q.detach(), [p.grad.clone() for p in net.parameters()]))
    (q_cl, g_cl), (q_plain, g_plain) = grads
    assert torch.allclose(q_cl, q_plain, rtol=1e-5, atol=1e-5)
    # (a bias before BatchNorm has a gradient of zero up to rounding: tolerances on the largest one)
    scale = max(g.abs().max().item() for g in g_plain)
    for a, b in zip(g_cl, g_plain, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * scale)
    old_layout = {k: v.contiguous() for k, v in net.state_dict().items()}
    other = PixelQNetwork(cfg.network, cfg.env.pixels, 2)
    other.load_state_dict(old_layout)  # copies into the channels-last parameters, keeping their layout
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in other.conv.parameters() if p.dim() == 4)
    with torch.no_grad():
        assert torch.equal(other.eval()(frames), net.eval()(frames))


def test_pixel_td_targets_build_the_next_input_once_and_equal_the_plain_computation(monkeypatch):
    from dqnlab.algos.dqn import DQNLearner, next_state_value, td_target
    from dqnlab.algos.replay import Batch

    calls = []
    features = PixelQNetwork.features
    monkeypatch.setattr(PixelQNetwork, "features", lambda net, x: calls.append(1) or features(net, x))
    cfg = dqnlab.build_config(preset="pixels")
    learner = DQNLearner(PixelQNetwork(cfg.network, cfg.env.pixels, 2), cfg.dqn)
    with torch.no_grad():
        learner.target.head[0].bias += 0.5  # a target network that differs from the online one
    g = torch.Generator().manual_seed(0)
    obs, next_obs = (torch.randint(0, 256, (16, 2, 32, 96), dtype=torch.uint8, generator=g) for _ in range(2))
    batch = Batch(
        obs, torch.randint(0, 2, (16,), generator=g), torch.ones(16), next_obs, torch.zeros(16), torch.full((16,), 0.97)
    )
    calls.clear()
    y = learner.targets(batch)
    assert len(calls) == 1  # once for both networks
    with torch.no_grad():
        next_q = next_state_value(learner.online, learner.target, batch.next_obs, double=True)
    assert len(calls) == 3  # the plain way: once per network
    assert torch.equal(y, td_target(batch.rewards, next_q, batch.terminated, batch.discounts))


def test_pixel_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="env.pixels is for algo dqn"):
        dqnlab.build_config(preset="ppo", **{"env.pixels.mode": "track"})
    with pytest.raises(ConfigError, match="network.conv needs pixel observations"):
        dqnlab.build_config(**{"network.conv": [[8, 3, 1]]})
    with pytest.raises(ConfigError, match="shrinks the 32x96 frames"):
        dqnlab.build_config(preset="pixels", **{"network.conv": [[8, 40, 2]]})
    with pytest.raises(ConfigError, match="env.pixels.frames has no effect"):
        dqnlab.build_config(**{"env.pixels.frames": 3})
    with pytest.raises(ConfigError, match="needs env.pixels.frames 2"):
        dqnlab.build_config(preset="s1-pixels", **{"env.pixels.frames": 3})
    with pytest.raises(ConfigError, match="needs env.pixels.frames 2"):
        dqnlab.build_config(preset="pixels", **{"env.pixels.frames": 4})
    assert dqnlab.build_config(preset="pixels", **{"env.pixels.frames": 4, "env.pixels.input": "frames"})
    with pytest.raises(ConfigError, match="CartPole-v0 or CartPole-v1"):
        make_vec_env(EnvConfig(id="Acrobot-v1", pixels=TRACK), 1)


def test_presets_resolve():
    s1 = dqnlab.build_config(preset="s1-pixels")
    assert s1.env.pixels.mode == "tutorial" and s1.env.pixels.obs_shape() == (6, 40, 90)
    assert s1.network.batch_norm and s1.dqn.optimizer == "rmsprop" and s1.total_episodes == 50
    px = dqnlab.build_config(preset="pixels")
    assert px.env.pixels.mode == "track" and px.env.id == "CartPole-v1"


def test_pixel_policy_round_trip_and_state_observations_refused(tmp_path):
    cfg = dqnlab.build_config(preset="pixels")
    net = PixelQNetwork(cfg.network, cfg.env.pixels, 2)
    policy = Policy(
        net,
        "CartPole-v1",
        cfg.env.pixels.obs_shape(),
        2,
        cfg.network,
        extra={"pixels": cfg.env.pixels.model_dump(mode="json")},
    )
    policy.save(tmp_path / "policy.pt")
    loaded = load_policy(tmp_path / "policy.pt")  # weights_only loading
    assert loaded.pixels == cfg.env.pixels and loaded.obs_shape == (2, 32, 96)
    env = loaded.wrap_env(gym.make("CartPole-v1"))
    obs, _ = env.reset(seed=0)
    batch = np.stack([obs, obs])
    assert np.array_equal(loaded.q_values(batch), policy.q_values(batch))
    assert isinstance(loaded(obs), int) and loaded(batch).shape == (2,)
    with pytest.raises(DqnlabError, match="pixel policy.*wrap_env"):
        loaded(np.zeros(4, dtype=np.float32))
    result = dqnlab.evaluate(loaded, episodes=3, seed=0)  # builds pixel envs from the policy
    assert len(result.returns) == 3 and result.max_abs_x is not None
