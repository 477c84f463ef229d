"""What ran this folder's tuning runs (issue #16, session 12), kept as it ran, tidied for the linter:

    python probe.py plain 4,5,6 [KEY=VALUE ...]   # `default` as it was
    python probe.py clamp 4,5,6 [KEY=VALUE ...]   # TD targets clamped to +-1 / (1 - gamma)

benchmarks/stability.py's protocol (60k steps, early stopping off, 100 episodes every 2k). The
clamp became `dqn.bound_targets` (on in `default`), which repeats these runs: today "plain" is
`stability.py --set dqn.bound_targets=false` and "clamp" is `stability.py` as it is.
"""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # benchmarks/, for stability.py
from stability import run_one

import dqnlab.algos.dqn as dqn_module

mode, seeds, overrides = sys.argv[1], [int(s) for s in sys.argv[2].split(",")], sys.argv[3:]
if mode.startswith("clamp"):
    plain = dqn_module.DQNLearner.targets

    @torch.no_grad()
    def targets(self, batch):
        b = 1.0 / (1.0 - self.cfg.gamma)
        return plain(self, batch).clamp(-b, b)

    dqn_module.DQNLearner.targets = targets
rows = []
for s in seeds:
    r = run_one("default", overrides, s, 60000, 2000)
    rows.append(r)
    print(
        f"{mode} {overrides} seed {s}: first {r['first_solve']} share {r['share_after']} "
        f"lowest {r['min_after']} qmax {r['q_max']:.0f} t {r['train_seconds']:.1f}",
        flush=True,
    )
name = f"{mode}_{'_'.join(overrides).replace('/', '')}_{sys.argv[2]}.json"
Path(name).write_text(json.dumps(rows))
