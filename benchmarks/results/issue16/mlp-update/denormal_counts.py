"""Zero and denormal values in the online network's gradients, Adam moments, policy average and
target after N steps of `default` (early stopping off), with the denormal flush or without it.

    python benchmarks/results/issue16/mlp-update/denormal_counts.py SEED STEPS [kept|flushed]

Prints per tensor (first layer weight, bias, 128 x 128 weight, bias, output weight, bias):
[denormal count], [exact-zero count].
"""

import contextlib
import importlib
import sys

import torch

from dqnlab.algos import dqn

torch.set_num_threads(1)
captured = {}
build = dqn.DQNLearner.__init__


def keep(self, *args, **kwargs):
    build(self, *args, **kwargs)
    captured["learner"] = self


dqn.DQNLearner.__init__ = keep
train_module = importlib.import_module("dqnlab.train")
if len(sys.argv) > 3 and sys.argv[3] == "kept":
    train_module.denormals_flushed = contextlib.nullcontext
cfg = {"seed": int(sys.argv[1]), "artifacts": False, "eval": {"early_stop": False}, "total_steps": int(sys.argv[2])}
train_module.train(cfg, "/tmp/denormal_counts_run", overwrite=True, progress=False)
learner = captured["learner"]
tiny = torch.finfo(torch.float32).tiny


def denormals(t):
    return int(((t != 0) & (t.abs() < tiny)).sum())


opt = learner.optimizer
for name, tensors in [
    ("grads", [p.grad for p in opt.params]),
    ("exp_avg", opt.exp_avg),
    ("exp_avg_sq", opt.exp_avg_sq),
    ("average", list(learner.average.parameters())),
    ("target", list(learner.target.parameters())),
]:
    print(name, [denormals(t) for t in tensors], [int((t == 0).sum()) for t in tensors])
