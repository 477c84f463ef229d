import sys, json
sys.path.insert(0, "/work/main/benchmarks")
import torch
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
    print(f"{mode} {overrides} seed {s}: first {r['first_solve']} share {r['share_after']} lowest {r['min_after']} qmax {r['q_max']:.0f} t {r['train_seconds']:.1f}", flush=True)
json.dump(rows, open(f"/tmp/t16/{mode}_{'_'.join(overrides).replace('/','')}_{sys.argv[2]}.json", "w"))
