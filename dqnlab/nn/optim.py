"""Small optimizers and gradient clipping on torch's multi-tensor (foreach) kernels.

Why not torch.optim: its first construction imports torch._dynamo (about 1.4 s here, half the
time budget of a CartPole run) and every step passes through a dynamo-disable wrapper. These
implement exactly the same update rules (tests compare them with torch.optim step by step: Adam
with the fused kernel that torch.optim uses with fused=True, where torch has it) for
the three optimizers dqnlab offers. State dicts hold tensors and numbers only.

``denormals_flushed``, around training, keeps Adam's decaying moments out of the CPU's slow
denormal arithmetic.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch

# The fused CPU kernels behind torch.optim.Adam(fused=True); private, so checked for.
_FUSED = hasattr(torch, "_fused_adam_") and hasattr(torch, "_fused_adamw_")


def _with_grads(params: list[torch.Tensor], *states: list[torch.Tensor]) -> tuple[list[torch.Tensor], ...]:
    """(params, their grads, *states) restricted to the parameters that have a gradient. A trainable
    parameter the loss does not reach has grad None; torch.optim skips it (its state untouched),
    and so do these. (One step count serves all of Adam's parameters, where torch keeps one per
    parameter: they differ only for a parameter that has a gradient on some steps and not others.)"""
    grads = [g for p in params if (g := p.grad) is not None]
    if len(grads) == len(params):  # the usual case: no copies
        return (params, grads, *states)
    keep = [i for i, p in enumerate(params) if p.grad is not None]
    return ([params[i] for i in keep], grads, *[[s[i] for i in keep] for s in states])


class Adam:
    """Adam (Kingma & Ba), torch.optim.Adam's defaults; `weight_decay` > 0 gives AdamW
    (decoupled decay, as torch.optim.AdamW)."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.step_count = 0
        self._step_tensor = torch.zeros((), dtype=torch.float32)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        params, grads, exp_avg, exp_avg_sq = _with_grads(self.params, self.exp_avg, self.exp_avg_sq)
        if not params:
            return
        beta1, beta2 = self.betas
        self.step_count += 1
        if _FUSED:
            # One kernel for the whole update (torch.optim.Adam(fused=True)'s): ~3x fewer
            # microseconds than the seven foreach calls below, which remain the fallback.
            kernel = torch._fused_adamw_ if self.weight_decay else torch._fused_adam_
            self._step_tensor.fill_(self.step_count)
            kernel(
                params,
                grads,
                exp_avg,
                exp_avg_sq,
                [],
                [self._step_tensor] * len(params),
                lr=self.lr,
                beta1=beta1,
                beta2=beta2,
                weight_decay=self.weight_decay,
                eps=self.eps,
                amsgrad=False,
                maximize=False,
            )
            return
        if self.weight_decay:
            torch._foreach_mul_(params, 1.0 - self.lr * self.weight_decay)
        torch._foreach_lerp_(exp_avg, grads, 1.0 - beta1)
        torch._foreach_mul_(exp_avg_sq, beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, 1.0 - beta2)
        bias1 = 1.0 - beta1**self.step_count
        bias2_sqrt = math.sqrt(1.0 - beta2**self.step_count)
        denom = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_div_(denom, bias2_sqrt)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, exp_avg, denom, -self.lr / bias1)

    def state_dict(self) -> dict:
        return {
            "step": self.step_count,
            "exp_avg": [t.clone() for t in self.exp_avg],
            "exp_avg_sq": [t.clone() for t in self.exp_avg_sq],
        }

    def load_state_dict(self, state: dict) -> None:
        self.step_count = int(state["step"])
        for dst, src in zip(
            self.exp_avg + self.exp_avg_sq, list(state["exp_avg"]) + list(state["exp_avg_sq"]), strict=True
        ):
            dst.copy_(src)


class RMSprop:
    """RMSprop as torch.optim.RMSprop's defaults (alpha 0.99, eps 1e-8, not centered, no momentum)."""

    def __init__(self, params, lr: float, alpha: float = 0.99, eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.alpha, self.eps = lr, alpha, eps
        self.square_avg = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        params, grads, square_avg = _with_grads(self.params, self.square_avg)
        if not params:
            return
        torch._foreach_mul_(square_avg, self.alpha)
        torch._foreach_addcmul_(square_avg, grads, grads, 1.0 - self.alpha)
        avg = torch._foreach_sqrt(square_avg)
        torch._foreach_add_(avg, self.eps)
        torch._foreach_addcdiv_(params, grads, avg, -self.lr)

    def state_dict(self) -> dict:
        return {"square_avg": [t.clone() for t in self.square_avg]}

    def load_state_dict(self, state: dict) -> None:
        for dst, src in zip(self.square_avg, state["square_avg"], strict=True):
            dst.copy_(src)


def make_optimizer(name: str, params, lr: float) -> Adam | RMSprop:
    if name == "adam":
        return Adam(params, lr)
    if name == "adamw":
        return Adam(params, lr, weight_decay=0.01)  # torch.optim.AdamW's default decay
    if name == "rmsprop":
        return RMSprop(params, lr)
    raise ValueError(f"unknown optimizer {name!r}")


def _grads(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The gradients of `params` that exist. A frozen parameter, or one the loss does not reach,
    has none (grad None) and is skipped, as torch.nn.utils' clipping functions skip it."""
    return [p.grad for p in params if p.grad is not None]


@torch.no_grad()
def clip_grad_norm_(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale all gradients so their global L2 norm is at most `max_norm` (torch's rule, eps 1e-6).
    Returns the norm before clipping (0 if no parameter has a gradient), as torch does."""
    grads = _grads(params)
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))
    return total


@torch.no_grad()
def clip_grad_value_(params: Sequence[torch.Tensor], clip: float) -> None:
    """Clamp every gradient element to [-clip, clip] (parameters without a gradient are skipped)."""
    grads = _grads(params)
    if not grads:  # the foreach kernels refuse an empty list
        return
    torch._foreach_clamp_min_(grads, -clip)
    torch._foreach_clamp_max_(grads, clip)


def flushing_denormals() -> bool:
    """Whether this thread's CPU flushes denormal floats to zero now (torch has no getter)."""
    tiny = torch.full((1,), torch.finfo(torch.float32).tiny)
    return bool((tiny * 0.5).item() == 0.0)


@contextlib.contextmanager
def denormals_flushed() -> Iterator[None]:
    """Flush denormal floats (|x| < 1.2e-38) to zero in the calling thread inside the block; its
    mode before is restored after. Training runs in that thread with one torch thread (the
    default); with more, torch's worker threads keep computing denormals (a smaller gain).

    Why: Adam's first moment of a weight whose gradient is 0 (a dead relu unit; 9,348 of the
    16,384 gradients of `default`'s 128 x 128 layer at one count) decays by beta1 = 0.9 a step
    into denormals, on which this CPU's arithmetic runs many times slower: the fused Adam step
    of `default` took about 120 us instead of 32, and training 1.06-1.11x as long
    (benchmarks/denormals.py). A denormal moment moves no weight (its step is far below a
    float's resolution): the runs compared went through the same evaluations to the same step.
    Where the CPU cannot flush, nothing changes.
    """
    before = flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)
