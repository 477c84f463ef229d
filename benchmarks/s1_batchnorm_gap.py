"""BatchNorm's two faces in a trained DQN (issue #18, S1): training mode vs evaluation mode.

In training, the loss reads the online network's Q(s, a) in training mode, normalised with the
statistics of the sampled batch; the targets, the evaluations and the actions read the network
in evaluation mode, normalised with the running statistics. For each run directory given, this
loads the delivered policy, draws 128 environments of the run's own environment playing random
actions, and on four batches of their observations (after 15, 30, 45 and 60 steps) compares
the two modes with the size of the decision the network makes, the action gap
|Q(s, 1) - Q(s, 0)|:

    python benchmarks/s1_batchnorm_gap.py RUN_DIR [RUN_DIR ...]

The states come from random play, not from the run's replay, so they are the early,
near-upright states a replay batch is made of in the first thousands of steps.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch

from dqnlab.algos.registry import load_policy
from dqnlab.config import build_config
from dqnlab.envs.make import make_vec_env

NUM_ENVS = 128
STEPS = 60
EVERY = 15


def batchnorm_gap(run_dir: str, seed: int = 0) -> dict[str, float]:
    """Means over the batches: |Q_train - Q_eval|, |Q_eval|, the action gap |Q(s,1) - Q(s,0)| in
    evaluation mode, and the share of states whose greedy action differs between the modes."""
    policy = load_policy(run_dir)
    cfg = build_config(config_file=f"{run_dir}/config.yaml")
    envs = make_vec_env(cfg.env, NUM_ENVS)
    rng = np.random.default_rng(seed)
    obs, _ = envs.reset(seed=seed)
    rows = []
    for t in range(1, STEPS + 1):
        obs, *_ = envs.step(rng.integers(0, policy.n_actions, size=NUM_ENVS))
        if t % EVERY:
            continue
        x = torch.as_tensor(np.asarray(obs))  # frames stay uint8: the network scales them
        net = copy.deepcopy(policy.net)  # training mode updates the running statistics
        with torch.no_grad():
            q_eval = net.eval()(x)
            q_train = net.train()(x)
        top2 = q_eval.topk(2, dim=1).values
        rows.append(
            (
                (q_train - q_eval).abs().mean().item(),
                q_eval.abs().mean().item(),
                (top2[:, 0] - top2[:, 1]).mean().item(),
                (q_eval.argmax(1) != q_train.argmax(1)).float().mean().item(),
            )
        )
    envs.close()
    gap, scale, action_gap, differs = np.mean(rows, axis=0)
    return {"train_vs_eval": gap, "q_eval": scale, "action_gap": action_gap, "greedy_differs": differs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| run | mean abs(Q_train - Q_eval) | mean abs(Q_eval) | action gap | greedy action differs |")
    print("| --- | --- | --- | --- | --- |")
    for run in args.run_dirs:
        r = batchnorm_gap(run)
        print(
            f"| {run} | {r['train_vs_eval']:.2f} | {r['q_eval']:.2f} | {r['action_gap']:.2f} "
            f"| {100 * r['greedy_differs']:.0f}% |"
        )


if __name__ == "__main__":
    main()
