"""Test-time training (TTT) of Darestani, Liu & Heckel (ICML 2022), vectorised over slices.

For every slice, a copy of the trained network ``f`` is adapted by Adam on the self-supervised
loss ``|y_T - A_T f(x_0)|_1 / |y_T|_1`` over the training part ``T`` of the sampled k-space
locations; the held-out ~5% ``V`` give the self-validation loss ``|y_V - A_V f(x_0)|_1 / |y_V|_1``.

Two variants (:class:`TTTModel`, ``variant``), both named in every run's details:

* ``d22`` (default), the paper's: the network input ``x_0`` is the zero-filled image of *all*
  measured points (the held-out points are zeroed in the loss only, as their code does), and the
  loop is theirs (:func:`should_stop_d22`): at iteration ``e`` the losses are computed, Adam steps,
  and adaptation stops when ``e > 3W`` and the mean of the last W recorded validation losses
  (``v_{e-W..e-1}``) exceeds the mean of the W before; the network returned is the last one, after
  ``e + 1`` steps; at most ``max_steps`` (2500) steps. Learning rate, W and the cap per shift and
  architecture are data (``ttt_d22.yaml``, :mod:`mribench.workflows.training.ttt_settings`).
* ``fast``, mribench's earlier variant (the ``ttt-fast`` recipe): the held-out points are removed
  from the input too, and the rule (:func:`should_stop`) stops at the first ``k > 3W`` where the
  mean of ``v_{k-W+1..k}`` exceeds that of ``v_{k-2W+1..k-W}`` and returns the parameters after
  ``k`` steps.

Either way the output is ``|f(x)|`` with the stopped parameters and *all* measured points in the
input ``x``, centre-cropped.

Implementations with the same iterates:

* vectorised (default): the per-slice parameter copies are stacked along a leading slice axis and
  every step computes all live slices' gradients in one batched pass, either by one batched
  evaluation of the U-Net (``engine="grouped"``, default:
  :func:`mribench.models.complex_unet.stacked_norm_unet_apply`: slices folded into the channel
  axis, 3x3 convolutions as grouped convolutions, the first convolution, the 2x2 transposed
  convolutions and the 1x1 output convolution as batched matrix products, instance norm as layer
  norm; see there) with the k-space losses restricted to the sampled columns
  (:func:`sampled_selfsup_losses`, one transform for both losses, hand-written backward), or by
  ``torch.func.vmap`` of ``torch.func.grad`` over ``torch.func.functional_call`` and
  :func:`ttt_losses` (``engine="vmap"``; generic, also behind :func:`adapt`, ~1.7x slower per step
  on CPU). Adam is hand-written over the stacked tensors (:class:`StackedAdam`, one buffer, torch's
  fused Adam kernel): ``torch.optim`` optimizers keep state per parameter tensor, cannot run under
  ``vmap`` and cannot drop the rows of slices that have stopped. A stopped slice's parameters are
  frozen (removed from the stack), so the work per step shrinks as slices stop. ``workers`` splits
  the slices into groups adapted concurrently by threads with one intra-op thread each.
* reference (``vectorized=False``): a plain loop over slices, each a deep copy of the network
  called directly and its own ``torch.optim.Adam``: the baseline of ``benchmarks/ttt.py`` and of
  the equivalence tests.

In float64 both give the same stopping steps and outputs to ~1e-10 (tests/test_ttt.py). In
float32 they sum the same terms in other orders; the rounding differences grow through the L1
loss's gradient signs and Adam over hundreds of steps into different trajectories, so per-slice
stopping steps and SSIMs differ either way (a few 1e-3 SSIM per slice; the vectorised path with a
loop-style loss differs from itself by as much), and mean SSIMs over 32 slices differ by ~1e-3
(benchmark: +0.0008 and +0.0017 at 32x32 and 64x48, standard errors 0.0007 and 0.0013; the loop
itself at two intra-op threads instead of one differs from its one-thread run by 0.0022).

Speed (``benchmarks/ttt.py --variant fast``, measured before the ``d22`` variant existed, which runs
the same machinery; 2-core Xeon (AVX-512) VM, nothing else running; the reference is the loop at
its best thread count). Where per-operation overheads bound the loop (small images, a tiny
network) vectorising pays most: 32 slices, 4 coils, U-Net chans 8 / 2 pools, W=20, at most 200
steps, the loop at one thread (two are no faster) takes 19.7-23.5 s at 32x32 and 29.0-31.4 s at
64x48; the vectorised path at one thread is 3.6-3.9x and 2.4-2.9x faster, with ``workers=2``
6.4-6.8x and 4.45-5.6x (three and six runs; run-to-run spread ~10%). Where arithmetic bounds it
(``--preset embedded``: the embedded benchmark's 256x132 slices, 16 coils, chans 16 / 3 pools, 7.8
GFLOP of convolutions and products per slice and step) the loop at two threads runs at ~96 GFLOP/s
(49.5-50.1 s for 8 slices) and the vectorised path with ``workers=2`` at ~151 GFLOP/s: 1.56-1.58x,
against a ceiling of 3.3-3.7x set by the machine's float32 matrix-product rate (322-358 GFLOP/s on
both cores): no implementation of the same float32 arithmetic reaches 5x there.

What bounds the vectorised path (64x48, per step, one thread, 16 slices): convolutions ~55%
(oneDNN's grouped kernels; about a third of their time converts activations between PyTorch's NCHW
and oneDNN's blocked layouts, which cannot be avoided from PyTorch: channels-last inputs avoid the
conversions but the channels-last kernels (weights padded to 16 channels per group) and instance
norms are slower; unfold + batched products are ~4x slower; bfloat16 gains nothing at full
resolution and at most 1.4x deeper), instance norm and leaky ReLU ~16%, the rest ~5% or less each;
per slice and step the vectorised path needs ~2.9 ms of CPU against the loop's ~7.3 ms, and two
workers reach 92-98% parallel efficiency (nothing when another process holds a core). On a GPU,
where the loop is bound by kernel launches, the ratio should be far larger (not measured yet:
``bash benchmarks/gpu.sh`` measures it at the embedded and at the paper's size).
"""

from __future__ import annotations

import copy
import functools
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.func import functional_call, grad, vmap

from mribench.api.model import ModelInfo, SliceMeta
from mribench.errors import ModelError
from mribench.models.complex_unet import (
    ComplexUnetRecon,
    complex_to_net,
    net_to_complex,
    stacked_norm_unet_apply,
    stacked_norm_unet_inputs,
)
from mribench.models.loaded import LoadedModel
from mribench.physics.fft import center_crop
from mribench.physics.masks import volume_seed
from mribench.workflows.training.selfsup import selfsup_loss, split_measurements

ENGINES = ("grouped", "vmap")
Params = dict[str, torch.Tensor]
Batch = Mapping[str, torch.Tensor]
#: ``loss_fn(params, data) -> (train_loss, val_loss)`` for ONE slice (unbatched tensors).
LossFn = Callable[[Params, Batch], tuple[torch.Tensor, torch.Tensor]]


def _window_means_rise(val_losses: Sequence[float], window: int) -> bool:
    """``mean(last W) > mean(the W before)``."""
    last = math.fsum(val_losses[-window:]) / window
    before = math.fsum(val_losses[-2 * window : -window]) / window
    return last > before


def should_stop(val_losses: Sequence[float], window: int) -> bool:
    """The ``fast`` variant's stopping rule (mribench's), checked before the step.

    Args:
        val_losses: ``v_0 .. v_k``, the validation loss after 0..k Adam steps.
        window: W.

    Returns:
        True when ``k > 3W`` and ``mean(v_{k-W+1..k}) > mean(v_{k-2W+1..k-W})``: the parameters
        after ``k`` steps (the last validated ones) are returned.
    """
    return len(val_losses) - 1 > 3 * window and _window_means_rise(val_losses, window)


def should_stop_d22(val_losses: Sequence[float], window: int) -> bool:
    """Darestani et al.'s stopping rule, checked at iteration ("epoch") ``e`` after its Adam step.

    Their loop, per epoch ``e = 0, 1, ...``: compute the losses at the parameters after ``e`` steps
    (``v_e``), take the Adam step, then stop if ``e > 3W`` and the mean of the last W recorded
    validation errors exceeds the mean of the W before, *before* ``v_e`` is recorded; the returned
    network is the last one, after ``e + 1`` steps.

    Args:
        val_losses: the recorded ``v_0 .. v_{e-1}`` (``e`` values).
        window: W.

    Returns:
        True when ``e > 3W`` and ``mean(v_{e-W..e-1}) > mean(v_{e-2W..e-W-1})``.
    """
    return len(val_losses) > 3 * window and _window_means_rise(val_losses, window)


#: Stopping rules by variant: ``d22`` (the paper's loop, last parameters after the step) and
#: ``fast`` (mribench's earlier rule: the parameters whose validation loss completed the window).
RULES = ("d22", "fast")


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"expected a stopping rule in {RULES}, got {rule!r}")


class StackedAdam:
    """Adam over parameters stacked along a leading slice axis, one independent state per slice.

    The update is ``torch.optim.Adam``'s (single-tensor path, no weight decay, no AMSGrad), applied
    elementwise, so row ``i`` follows exactly the iterates ``torch.optim.Adam`` would give slice
    ``i`` alone. Hand-written because ``torch.optim`` cannot run under ``vmap`` and cannot drop the
    rows of stopped slices (:meth:`keep`). Parameters and state live in one (S, P) buffer each, so a
    step is a handful of operations whatever the number of parameter tensors.

    Args:
        params: name -> (S, ...) stacked parameters, one dtype and device; the dict's entries are
            replaced by views into the optimiser's buffer, which every step updates in place.
        lr, betas, eps: as ``torch.optim.Adam``.
    """

    def __init__(self, params: Params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        if lr <= 0:
            raise ValueError(f"expected a positive learning rate, got {lr}")
        if not params or len({(v.dtype, v.device, v.shape[0]) for v in params.values()}) != 1:
            raise ValueError("expected stacked parameters of one dtype, device and leading size")
        self.lr, self.betas, self.eps = lr, betas, eps
        self._shapes = {name: tuple(v.shape[1:]) for name, v in params.items()}
        rows = next(iter(params.values())).shape[0]
        self._flat = torch.cat([v.detach().reshape(rows, -1) for v in params.values()], dim=1)
        self._exp_avg = torch.zeros_like(self._flat)
        self._exp_avg_sq = torch.zeros_like(self._flat)
        self.params = params
        self._bind()
        self.steps = 0  # every live row has taken the same number of steps
        self._fused = True

    def _views(self, flat: torch.Tensor) -> Params:
        sizes = [math.prod(shape) for shape in self._shapes.values()]
        return {
            name: part.view(flat.shape[0], *shape)
            for (name, shape), part in zip(self._shapes.items(), flat.split(sizes, dim=1), strict=True)
        }

    def _bind(self) -> None:
        self.params.update(self._views(self._flat))
        self.exp_avg = self._views(self._exp_avg)
        self.exp_avg_sq = self._views(self._exp_avg_sq)

    @torch.no_grad()
    def step(self, grads: Params) -> None:
        """One Adam step of every row. ``grads``: name -> (S, ...)."""
        self.steps += 1
        beta1, beta2 = self.betas
        bias_correction1 = 1 - beta1**self.steps
        bias_correction2_sqrt = (1 - beta2**self.steps) ** 0.5
        step_size = self.lr / bias_correction1
        rows = self._flat.shape[0]
        g = torch.cat([grads[name].reshape(rows, -1) for name in self._shapes], dim=1)
        m, v = self._exp_avg, self._exp_avg_sq
        if self._fused:
            # torch.optim.Adam(fused=True)'s one-pass kernel, the same update (tested equal to the
            # single-tensor path); the explicit operations below are the fallback
            try:
                step = [torch.tensor(float(self.steps), device=self._flat.device)]  # on the parameters' device (CUDA)
                torch._fused_adam_(
                    [self._flat],
                    [g],
                    [m],
                    [v],
                    [],
                    step,
                    lr=self.lr,
                    beta1=beta1,
                    beta2=beta2,
                    weight_decay=0.0,
                    eps=self.eps,
                    amsgrad=False,
                    maximize=False,
                )
                return
            except (AttributeError, RuntimeError, NotImplementedError):
                self._fused = False
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v.sqrt() / bias_correction2_sqrt).add_(self.eps)
        self._flat.addcdiv_(m, denom, value=-step_size)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` (indices into the leading axis) of parameters and state."""
        rows = rows.to(self._flat.device)
        self._flat, self._exp_avg, self._exp_avg_sq = self._flat[rows], self._exp_avg[rows], self._exp_avg_sq[rows]
        self._bind()

    def take(self, rows: torch.Tensor) -> StackedAdam:
        """A new optimiser with copies of ``rows`` of parameters and state, at the same step count."""
        rows = rows.to(self._flat.device)
        new = copy.copy(self)
        new._flat, new._exp_avg, new._exp_avg_sq = self._flat[rows], self._exp_avg[rows], self._exp_avg_sq[rows]
        new.params = {}
        new._bind()
        return new


@dataclass
class AdaptResult:
    """Outcome of adapting S slices.

    Attributes:
        params: name -> (S, ...) parameters at each slice's stopping point.
        steps: Adam steps per slice.
        stopped: whether the stopping rule fired (False: ``max_steps`` reached).
        val_losses: per slice, the validation losses ``v_0 .. v_steps`` (rule ``fast``) or
            ``v_0 .. v_{steps-1}`` (rule ``d22``: no loss is computed at the returned parameters;
            ``[v_0]`` when ``max_steps`` is 0).
        seconds: per slice, wall time of its adaptation (vectorised: the total divided by S).
    """

    params: Params
    steps: list[int]
    stopped: list[bool]
    val_losses: list[list[float]]
    seconds: list[float]


def _with_aux(loss_fn: LossFn) -> Callable[[Params, Batch], tuple[torch.Tensor, torch.Tensor]]:
    def fn(params: Params, data: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        train, val = loss_fn(params, data)
        return train, val.detach()

    return fn


def _batched_step(loss_fn: LossFn) -> Callable[[Params, Batch], tuple[Params, torch.Tensor]]:
    def step(params: Params, data: Batch) -> tuple[Params, torch.Tensor]:
        with torch.enable_grad():
            leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
            train, val = loss_fn(leaves, data)
            grads = torch.autograd.grad(train.sum(), list(leaves.values()))
        return dict(zip(leaves, grads, strict=True)), val.detach()

    return step


def adapt_vectorized(
    loss_fn: LossFn,
    params: Params,
    data: Batch,
    *,
    lr: float,
    window: int,
    max_steps: int,
    batched: bool = False,
    workers: int = 1,
    rule: str = "d22",
) -> AdaptResult:
    """Adapt independent copies of ``params`` to each of S slices at once.

    Args:
        loss_fn: ``(params, one slice's data) -> (train_loss, val_loss)`` scalars, evaluated for all
            slices with ``vmap(grad(loss_fn))``; or, with ``batched=True``, ``(stacked params (S, ...),
            data (S, ...)) -> (train (S,), val (S,))`` per-slice losses of a computation in which
            slices do not interact (gradients come from the sum).
        params: name -> tensor, the shared starting point.
        data: name -> (S, ...) per-slice data.
        lr: Adam learning rate.
        window: W of :func:`should_stop`.
        max_steps: most Adam steps per slice.
        batched: see ``loss_fn``.
        workers: threads adapting parts of the stack concurrently, each with one intra-op thread
            (torch's intra-op thread count is 1 while they run, then restored); a thread whose
            slices have all stopped takes over half of the live slices of another, so they finish
            together. Slices do not interact, so the iterates do not depend on it. ``loss_fn`` must
            then be safe to call from several threads (``torch.func.functional_call`` on one shared
            module is not: it swaps the module's parameters while it runs).
        rule: ``"d22"`` (:func:`should_stop_d22`) or ``"fast"`` (:func:`should_stop`).

    Returns:
        :class:`AdaptResult`.
    """
    if workers < 1:
        raise ValueError(f"expected workers >= 1, got {workers}")
    _check_rule(rule)
    t0 = time.perf_counter()
    n = _num_slices(data)
    stacked = {k: v.detach().unsqueeze(0).repeat(n, *([1] * v.ndim)) for k, v in params.items()}
    out = _Results({k: v.clone() for k, v in stacked.items()}, [max_steps] * n, [False] * n, [[] for _ in range(n)])
    step_fn = _batched_step(loss_fn) if batched else vmap(grad(_with_aux(loss_fn), has_aux=True))
    stack = _Stack(list(range(n)), StackedAdam(stacked, lr), dict(data))
    parts = min(workers, n)
    if parts <= 1:
        _run_stack(step_fn, stack, out, window, max_steps, None, rule)
    else:
        board = _Board(parts)
        bounds = [round(i * n / parts) for i in range(parts + 1)]
        stacks = [stack.take(list(range(lo, hi))) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # process-wide: each worker thread then runs its operations inline
        try:
            with ThreadPoolExecutor(parts) as pool:
                for f in [pool.submit(_work, step_fn, s, out, window, max_steps, board, rule) for s in stacks]:
                    f.result()
        finally:
            torch.set_num_threads(threads)
    return AdaptResult(out.final, out.steps, out.stopped, out.history, [(time.perf_counter() - t0) / n] * n)


@dataclass
class _Results:
    """Per-slice outcomes, written by whichever stack adapts the slice."""

    final: Params
    steps: list[int]
    stopped: list[bool]
    history: list[list[float]]


@dataclass
class _Stack:
    """Live slices adapted together: their indices, optimiser (parameters and Adam state) and data."""

    ids: list[int]
    opt: StackedAdam
    data: dict[str, torch.Tensor]

    def keep(self, rows: list[int]) -> None:
        index = torch.tensor(rows, dtype=torch.long)
        self.ids = [self.ids[r] for r in rows]
        self.opt.keep(index)
        self.data = {name: t[index.to(t.device)] for name, t in self.data.items()}

    def take(self, rows: list[int]) -> _Stack:
        """A new stack with ``rows`` (same step count); they stay here too until :meth:`keep`."""
        index = torch.tensor(rows, dtype=torch.long)
        return _Stack(
            [self.ids[r] for r in rows],
            self.opt.take(index),
            {name: t[index.to(t.device)] for name, t in self.data.items()},
        )


class _Board:
    """Work sharing between worker threads: one whose slices have all stopped waits for half of
    another's live slices; all return when every worker waits."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.cond = threading.Condition()
        self.waiting = 0
        self.offer: _Stack | None = None
        self.done = False

    def give(self, split: Callable[[], _Stack]) -> bool:
        """Offer ``split()`` to a waiting worker, if one waits and no offer is pending; the check and the
        offer are one step under the lock (checked apart, two workers could both offer and one offer's
        slices would be lost). Returns whether the offer was made."""
        with self.cond:
            if self.waiting == 0 or self.offer is not None or self.done:
                return False
            self.offer = split()
            self.cond.notify()
            return True

    def take(self) -> _Stack | None:
        with self.cond:
            self.waiting += 1
            while self.offer is None and not self.done:
                if self.waiting == self.workers:
                    self.done = True
                    self.cond.notify_all()
                    break
                self.cond.wait()
            self.waiting -= 1
            stack, self.offer = self.offer, None
            return stack


def _work(
    step_fn: Callable[[Params, Batch], tuple[Params, torch.Tensor]],
    stack: _Stack | None,
    out: _Results,
    window: int,
    max_steps: int,
    board: _Board,
    rule: str,
) -> None:
    while stack is not None:
        _run_stack(step_fn, stack, out, window, max_steps, board, rule)
        stack = board.take()


def _run_stack(
    step_fn: Callable[[Params, Batch], tuple[Params, torch.Tensor]],
    stack: _Stack,
    out: _Results,
    window: int,
    max_steps: int,
    board: _Board | None,
    rule: str = "d22",
) -> None:
    """Adapt the slices of ``stack`` until all have stopped (or half are handed to an idle worker)."""
    opt = stack.opt
    while stack.ids:
        k = opt.steps
        grads, val = step_fn(opt.params, stack.data)
        keep: list[int] = []
        if rule == "d22":
            # the paper's order: decide on v_0..v_{k-1}, record v_k, step, return the stepped parameters
            fire = [should_stop_d22(out.history[i], window) for i in stack.ids]
            for i, v in zip(stack.ids, val.tolist(), strict=True):
                out.history[i].append(v)
            if k < max_steps:
                opt.step(grads)
            for row, i in enumerate(stack.ids):
                if fire[row] or opt.steps == max_steps:
                    out.steps[i], out.stopped[i] = opt.steps, fire[row]
                    for name, final in out.final.items():
                        final[i] = opt.params[name][row]
                else:
                    keep.append(row)
            if len(keep) < len(stack.ids):
                stack.keep(keep)
            if not stack.ids:
                break
        else:
            for row, (i, v) in enumerate(zip(stack.ids, val.tolist(), strict=True)):
                out.history[i].append(v)
                early = should_stop(out.history[i], window)
                if early or k == max_steps:
                    out.steps[i], out.stopped[i] = k, early
                    for name, final in out.final.items():
                        final[i] = opt.params[name][row]
                else:
                    keep.append(row)
            if len(keep) < len(stack.ids):
                index = torch.tensor(keep, dtype=torch.long)
                grads = {name: g[index.to(g.device)] for name, g in grads.items()}
                stack.keep(keep)
            if not stack.ids:
                break
            opt.step(grads)
        if board is not None and len(stack.ids) > 1:
            half = len(stack.ids) // 2
            if board.give(functools.partial(stack.take, list(range(half, len(stack.ids))))):
                stack.keep(list(range(half)))


def _run_one(
    compute: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    opt: torch.optim.Optimizer,
    window: int,
    max_steps: int,
    rule: str = "d22",
) -> tuple[int, bool, list[float]]:
    """Adapt one slice with a ``torch.optim`` optimizer; ``compute() -> (train_loss, val_loss)``.

    Rule ``d22`` is Darestani et al.'s loop as their notebooks write it (per epoch: losses, backward,
    Adam step, then the check on the errors recorded so far, then the new error is recorded).

    Returns ``(steps, stopped early, validation losses)``; the parameters are left at the stopping point.
    """
    _check_rule(rule)
    vals: list[float] = []
    k = 0
    while True:
        opt.zero_grad(set_to_none=True)
        train, val = compute()
        if rule == "d22":
            early = should_stop_d22(vals, window)
            vals.append(float(val.detach()))
            if k == max_steps:  # max_steps == 0
                return k, False, vals
            train.backward()
            opt.step()
            k += 1
            if early or k == max_steps:
                return k, early, vals
            continue
        vals.append(float(val.detach()))
        early = should_stop(vals, window)
        if early or k == max_steps:
            return k, early, vals
        train.backward()
        opt.step()
        k += 1


def adapt_loop(
    loss_fn: LossFn, params: Params, data: Batch, *, lr: float, window: int, max_steps: int, rule: str = "d22"
) -> AdaptResult:
    """Reference implementation: slice after slice, each with its own ``torch.optim.Adam``.

    Same arguments, rule and iterates as :func:`adapt_vectorized`.
    """
    n = _num_slices(data)
    final: dict[str, list[torch.Tensor]] = {k: [] for k in params}
    steps, stopped, history, seconds = [], [], [], []
    for i in range(n):
        t0 = time.perf_counter()
        p = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        d = {k: v[i] for k, v in data.items()}
        k, early, vals = _run_one(
            lambda: loss_fn(p, d),  # noqa: B023
            torch.optim.Adam(list(p.values()), lr=lr),
            window,
            max_steps,
            rule,
        )
        steps.append(k)
        stopped.append(early)
        history.append(vals)
        for name, v in p.items():
            final[name].append(v.detach())
        seconds.append(time.perf_counter() - t0)
    return AdaptResult({k: torch.stack(v) for k, v in final.items()}, steps, stopped, history, seconds)


def adapt(
    loss_fn: LossFn,
    params: Params,
    data: Batch,
    *,
    lr: float,
    window: int = 100,
    max_steps: int = 1000,
    vectorized: bool = True,
    workers: int = 1,
    rule: str = "d22",
) -> AdaptResult:
    """Adapt ``params`` to each slice of ``data`` (see :func:`adapt_vectorized`, :func:`adapt_loop`)."""
    if window < 1:
        raise ValueError(f"expected window >= 1, got {window}")
    if max_steps < 0:
        raise ValueError(f"expected max_steps >= 0, got {max_steps}")
    _check_rule(rule)
    if not vectorized:
        return adapt_loop(loss_fn, params, data, lr=lr, window=window, max_steps=max_steps, rule=rule)
    return adapt_vectorized(
        loss_fn, params, data, lr=lr, window=window, max_steps=max_steps, workers=workers, rule=rule
    )


def _num_slices(data: Batch) -> int:
    sizes = {int(v.shape[0]) for v in data.values()}
    if len(sizes) != 1:
        raise ValueError(f"expected per-slice data with one leading size, got sizes {sorted(sizes)}")
    return sizes.pop()


# ---------------------------------------------------------------------------------------------
# TTT for the complex U-Net


def ttt_losses(pred: torch.Tensor, data: Batch, reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) self-supervised losses of a prediction ``pred`` complex (B, H, W).

    ``data``: ``kspace`` complex (B, C, H, W); ``sens`` complex (B, C, H, W); ``train_points`` and
    ``val_points`` (B, 1, H, W). ``reduction``: ``"mean"`` or ``"none"`` (per slice).
    """
    train = selfsup_loss(pred, data["kspace"], data["train_points"], data["sens"], reduction=reduction)
    val = selfsup_loss(pred.detach(), data["kspace"], data["val_points"], data["sens"], reduction=reduction)
    return train, val


def ttt_loss_fn(net: torch.nn.Module) -> LossFn:
    """The TTT loss of one slice for ``ComplexUnetRecon.net`` with parameters ``params``.

    ``data`` of one slice: ``input`` complex (1, H, W) ``A_T^H y`` and the fields of :func:`ttt_losses`
    with a leading 1.
    """

    def loss_fn(params: Params, data: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return ttt_losses(net_to_complex(functional_call(net, params, (complex_to_net(data["input"]),))), data)

    return loss_fn


def adapt_copies_loop(
    net: torch.nn.Module,
    data: Batch,
    full_input: torch.Tensor,
    *,
    lr: float,
    window: int,
    max_steps: int,
    rule: str = "d22",
) -> tuple[torch.Tensor, AdaptResult]:
    """The straightforward TTT: per slice, a deep copy of ``net`` called directly, ``torch.optim.Adam``.

    Args:
        net: ``ComplexUnetRecon.net``.
        data: per-slice TTT data (see :func:`ttt_loss_fn`), leading dim S.
        full_input: complex (S, H, W) the zero-filled input with all measured points (the output's input).
        lr, window, max_steps, rule: as :func:`adapt`.

    Returns:
        ``(images complex (S, H, W), result)`` with the same iterates as the vectorised path.
    """
    n = _num_slices(data)
    images: list[torch.Tensor] = []
    final: dict[str, list[torch.Tensor]] = {name: [] for name, _ in net.named_parameters()}
    steps, stopped, history, seconds = [], [], [], []
    for i in range(n):
        t0 = time.perf_counter()
        copy_i = copy.deepcopy(net)
        d = {k: v[i] for k, v in data.items()}

        def compute(m: torch.nn.Module = copy_i, d: Batch = d) -> tuple[torch.Tensor, torch.Tensor]:
            return ttt_losses(net_to_complex(m(complex_to_net(d["input"]))), d)

        k, early, vals = _run_one(compute, torch.optim.Adam(copy_i.parameters(), lr=lr), window, max_steps, rule)
        with torch.no_grad():
            images.append(net_to_complex(copy_i(complex_to_net(full_input[i : i + 1]))))
        steps.append(k)
        stopped.append(early)
        history.append(vals)
        for name, v in copy_i.named_parameters():
            final[name].append(v.detach())
        seconds.append(time.perf_counter() - t0)
    result = AdaptResult({k: torch.stack(v) for k, v in final.items()}, steps, stopped, history, seconds)
    return torch.cat(images), result


#: TTT variants: ``d22`` (Darestani et al.'s algorithm) and ``fast`` (mribench's earlier one).
VARIANTS = ("d22", "fast")


@dataclass
class TTTModel:
    """Test-time training around a trained :class:`ComplexUnetRecon` (ReconModel protocol).

    Every call adapts an independent copy of the trained weights to each slice of the batch and
    returns ``|f(input)|`` centre-cropped to ``meta.target_size``. The trained model is never
    modified.

    Variants (``variant``; both are recorded in :attr:`config`, neither replaces the other silently):

    - ``"d22"`` (default): Darestani et al.'s algorithm. The network input is the zero-filled image
      of *all* measured k-space points; the self-validation points are zeroed in the training loss
      only. Their loop order and stopping rule (:func:`should_stop_d22`): the network returned is the
      last one, one Adam step after the last validation error the rule saw. With
      :meth:`from_settings` the learning rate, W and the step cap come from the per-shift table
      (``ttt_d22.yaml``: lr 1e-5 for the U-Net, W 100 or 20, at most 2500 steps).
    - ``"fast"``: mribench's earlier variant (the ``ttt-fast`` recipe). The self-validation points
      are also removed from the network input, and the parameters returned are those whose
      validation error completed the rising window (:func:`should_stop`).

    The coil maps (of the self-supervised loss and a coil-combined input) are the model's preset
    (``model.maps``; D22: ``bart-ecalib``). D22 draw the held-out points as ``m // 20`` random
    indices with replacement (slightly under 5% distinct); here exactly ``round(0.05 m)`` distinct
    points are drawn (:func:`mribench.workflows.training.selfsup.split_measurements`).

    Attributes:
        model: the trained network (D22: trained with
            :func:`mribench.workflows.training.selfsup.d22_joint_loss`).
        lr: Adam learning rate (default: D22's for the U-Net).
        window: W of the stopping rule (default: D22's for the anatomy shift).
        max_steps: most Adam steps per slice (default: D22's 2500).
        val_fraction: share of the sampled k-space locations held out for self-validation.
        seed: mixed with the file name and slice index to seed each slice's split.
        variant: ``"d22"`` or ``"fast"`` (see above).
        vectorized: adapt the slices of a call together (default) or one by one (reference).
        engine: how the vectorised path evaluates S weight sets: ``"grouped"`` (default; one batched
            pass, :func:`mribench.models.complex_unet.stacked_norm_unet_apply`, and the
            sampled-column loss of :func:`sampled_selfsup_losses`) or ``"vmap"``
            (``torch.func.vmap`` over ``functional_call`` and :func:`ttt_losses`: generic, several
            times slower). Both give the loop's iterates.
        max_parallel: most slices adapted together (memory bound); larger batches are chunked.
        sens_fn: ``(masked_kspace, num_low_frequencies) -> sens``; default the model's
            :meth:`~mribench.models.complex_unet.ComplexUnetRecon.estimate_maps`.
        last_stats: per slice of the last call: ``file, slice, steps, stopped, val_loss,
            adapt_seconds, seconds`` (seconds include the sensitivity estimation; in the vectorised
            path both are the chunk's time divided by its number of slices).
        workers: grouped engine: threads adapting parts of each chunk concurrently, one intra-op
            thread each (see :func:`adapt_vectorized`). On a few CPU cores this uses them without
            the per-operation synchronisation of intra-op threads, which also keeps it robust when
            other processes load the machine; 1 (default) keeps torch's threading (GPU, many
            cores). Results do not depend on it.
        settings: where ``lr``, ``window``, ``max_steps`` and ``val_fraction`` come from (recorded in
            :attr:`config`): the table entry of :meth:`from_settings`, or ``{"source": "explicit"}``.
    """

    model: ComplexUnetRecon
    lr: float = 1e-5
    window: int = 100
    max_steps: int = 2500
    val_fraction: float = 0.05
    seed: int = 0
    variant: str = "d22"
    vectorized: bool = True
    engine: str = "grouped"
    max_parallel: int = 32
    sens_fn: Callable[[torch.Tensor, int], torch.Tensor] | None = None
    last_stats: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 1
    settings: dict[str, Any] = field(default_factory=lambda: {"source": "explicit"})

    def __post_init__(self) -> None:
        if not isinstance(self.model, ComplexUnetRecon):
            raise ValueError(f"expected a ComplexUnetRecon to adapt, got {type(self.model).__name__}")
        if self.lr <= 0 or self.window < 1 or self.max_steps < 0 or self.max_parallel < 1 or self.workers < 1:
            raise ValueError(
                f"expected lr > 0, window >= 1, max_steps >= 0, max_parallel >= 1, workers >= 1, got lr={self.lr}, "
                f"window={self.window}, max_steps={self.max_steps}, max_parallel={self.max_parallel}, "
                f"workers={self.workers}"
            )
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"expected val_fraction in (0, 1), got {self.val_fraction}")
        if self.engine not in ENGINES:
            raise ValueError(f"expected engine in {ENGINES}, got {self.engine!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"expected variant in {VARIANTS}, got {self.variant!r}")
        self.model.eval()

    @classmethod
    def from_settings(
        cls,
        model: ComplexUnetRecon,
        shift: str,
        *,
        settings_file: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> TTTModel:
        """D22's TTT for a shift: ``lr``, ``window``, ``max_steps``, ``val_fraction`` from the table.

        Args:
            model: the trained network.
            shift: a task card's ``shift`` (``anatomy``, ``dataset``, ``modality``/``contrast``,
                ``acceleration``).
            settings_file: another table of the layout of ``ttt_d22.yaml``.
            **options: other fields (``variant``, ``vectorized``, ...); a field that the table
                sets is overridden here only explicitly, and the override is recorded.

        Raises:
            ValueError: a shift without settings (see :func:`ttt_settings`).
        """
        from mribench.workflows.training.ttt_settings import ttt_settings

        st = ttt_settings(shift, model.arch, settings_file)
        kw = st.kwargs()
        overridden = {k: options[k] for k in kw if k in options and options[k] != kw[k]}
        kw.update({k: v for k, v in options.items() if k not in ("settings",)})
        record = {"source": "table", **st.provenance()}
        if overridden:
            record["overridden"] = overridden
        return cls(model, settings=record, **kw)

    @property
    def rule(self) -> str:
        """The stopping rule of the variant (:data:`RULES`)."""
        return "d22" if self.variant == "d22" else "fast"

    @property
    def config(self) -> dict[str, Any]:
        """The TTT settings (recorded with results)."""
        return {
            "arch": self.model.arch,
            "model": dict(self.model.config),
            "variant": self.variant,
            "stopping_rule": self.rule,
            "holdout_in_input": self.variant == "fast",
            "input": self.model.input,
            "maps": self.model.maps if self.sens_fn is None else getattr(self.sens_fn, "__name__", "custom"),
            "lr": self.lr,
            "window": self.window,
            "max_steps": self.max_steps,
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "vectorized": self.vectorized,
            "engine": self.engine,
            "settings": dict(self.settings),
        }

    def to(self, device: torch.device | str) -> TTTModel:
        self.model.to(device)
        return self

    def slice_stats(self) -> list[dict[str, Any]]:
        """:class:`mribench.api.ReportsSliceStats`: the per-slice stats of the last call (``last_stats``)."""
        return self.last_stats

    def __call__(self, masked_kspace: torch.Tensor, mask: torch.Tensor, meta: SliceMeta) -> torch.Tensor:
        """ReconModel protocol. complex (B, C, H, W), (B, 1, 1, W) -> real (B, h, w)."""
        with torch.inference_mode(False), torch.enable_grad():
            # the evaluator runs models under inference_mode; adaptation needs autograd, and
            # tensors created under inference_mode cannot be saved for backward: copy them.
            k, m = masked_kspace.clone(), mask.clone()
            t0 = time.perf_counter()
            sens_fn = self.sens_fn or self.model.estimate_maps
            sens = sens_fn(k, meta.num_low_frequencies).to(k.device)
            sens_seconds = (time.perf_counter() - t0) / k.shape[0]
            seeds = [volume_seed(f"{meta.file}:{s}", self.seed) for s in meta.slices]
            images, stats = self.adapt_images(k, m, sens, seeds)
        for st, s in zip(stats, meta.slices, strict=True):
            st.update(file=meta.file, slice=int(s), seconds=st["adapt_seconds"] + sens_seconds)
        self.last_stats = stats
        return center_crop(images.abs(), meta.target_size).detach()

    def adapt_images(
        self, masked_kspace: torch.Tensor, mask: torch.Tensor, sens: torch.Tensor, seeds: Sequence[int]
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """Adapt to each slice and reconstruct.

        Args:
            masked_kspace: complex (B, C, H, W).
            mask: (B, 1, 1, W).
            sens: complex (B, C, H, W) maps of the loss (and of a coil-combined input).
            seeds: B seeds of the self-validation splits.

        Returns:
            ``(images, stats)``: complex (B, H, W) ``f(input)`` at the stopping points, and per slice
            ``{"steps", "stopped", "val_loss", "adapt_seconds"}``.
        """
        if len(seeds) != masked_kspace.shape[0]:
            raise ValueError(f"expected {masked_kspace.shape[0]} seeds, got {len(seeds)}")
        net = self.model.net
        dtype = next(net.parameters()).dtype
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        k, sens = masked_kspace.to(cdtype), sens.to(cdtype)
        params = {name: p.detach() for name, p in net.named_parameters()}
        train_pts, val_pts = [], []
        for b, s in enumerate(seeds):
            tr, va = split_measurements(
                mask[b : b + 1], k.shape[-2], self.val_fraction, torch.Generator().manual_seed(int(s))
            )
            train_pts.append(tr)
            val_pts.append(va)
        train = torch.cat(train_pts).to(dtype)
        full_input = self.model.zero_filled_input(k, mask.to(dtype), sens)
        data = {
            # d22: the held-out points stay in the input (zeroed in the loss only); fast: removed
            "input": full_input if self.variant == "d22" else self.model.zero_filled_input(k, train, sens),
            "kspace": k,
            "sens": sens,
            "train_points": train,
            "val_points": torch.cat(val_pts).to(dtype),
        }
        n = masked_kspace.shape[0]
        chunk = self.max_parallel if self.vectorized else n
        results = [
            self._adapt_part(
                {name: t[lo : lo + chunk] for name, t in data.items()}, full_input[lo : lo + chunk], params
            )
            for lo in range(0, n, chunk)
        ]
        images, stats = [], []
        for out, res in results:
            images.append(out)
            for i in range(len(res.steps)):
                stats.append(
                    {
                        "steps": res.steps[i],
                        "stopped": res.stopped[i],
                        "val_loss": res.val_losses[i][-1],
                        "adapt_seconds": res.seconds[i],
                    }
                )
        return torch.cat(images), stats

    def _adapt_part(self, part: Batch, full: torch.Tensor, params: Params) -> tuple[torch.Tensor, AdaptResult]:
        """Adapt to the slices of ``part`` (TTT data, leading dim S) and reconstruct from ``full`` (S, H, W)."""
        net = self.model.net
        lr, window, max_steps, rule = self.lr, self.window, self.max_steps, self.rule
        if not self.vectorized:
            per_slice = {n: t.unsqueeze(1) for n, t in part.items()}
            return adapt_copies_loop(net, per_slice, full, lr=lr, window=window, max_steps=max_steps, rule=rule)
        if self.engine == "grouped":
            consts = {**stacked_norm_unet_inputs(net, part["input"]), **sampled_selfsup_data(part)}
            res = adapt_vectorized(
                self._grouped_loss,
                params,
                consts,
                lr=lr,
                window=window,
                max_steps=max_steps,
                batched=True,
                workers=self.workers,
                rule=rule,
            )
            t0 = time.perf_counter()
            with torch.no_grad():
                out = self.model.stacked_image_to_image(res.params, full)
        else:
            # one thread: functional_call swaps the parameters of the shared module while it runs
            res = adapt_vectorized(
                ttt_loss_fn(net),
                params,
                {n: t.unsqueeze(1) for n, t in part.items()},
                lr=lr,
                window=window,
                max_steps=max_steps,
                rule=rule,
            )
            t0 = time.perf_counter()
            out = _apply(net, res.params, full)
        res.seconds = [s + (time.perf_counter() - t0) / len(res.steps) for s in res.seconds]
        return out, res

    def _grouped_loss(self, params: Params, data: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-slice TTT losses of all live slices, one batched pass. Returns (train (S,), val (S,))."""
        size = data["sens"].shape[-2:]
        out = stacked_norm_unet_apply(self.model.net, params, dict(data), (int(size[0]), int(size[1])))
        return sampled_selfsup_losses(torch.complex(out[:, 0], out[:, 1]), data)


def sampled_selfsup_data(data: Batch) -> dict[str, torch.Tensor]:
    """The constants of :func:`sampled_selfsup_losses` for the TTT data of :func:`ttt_losses`.

    The self-supervised losses only read the k-space of the sampled columns (all rows of a sampled
    column are measured; the training and validation points are subsets of them). Per slice, the
    transform along the phase-encoding (last) axis restricted to its K sampled columns is one
    product with K rows of the centred DFT matrix, so the transform along the read-out axis, the
    residual, its absolute value and their backward passes run on ``K/W`` of the k-space (about
    30% at 4x acceleration). The read-out transform is an FFT; its centring shifts are moved off
    the per-step path: the output ``fftshift`` onto the constants (the losses are sums over points;
    measured k-space and point masks are ``ifftshift``-ed once) and the input ``ifftshift`` onto
    the sensitivities (here) and the image (a roll of one complex image per slice per step).
    Slices with fewer sampled columns than the chunk's most are padded with column 0 at zero
    weight.

    Args:
        data: ``kspace`` complex (S, C, H, W), ``sens`` complex (S, C, H, W), ``train_points``
            and ``val_points`` (S, 1, H, W), as for :func:`ttt_losses`.

    Returns:
        ``sens`` complex (S, C, H, W) (rows ``ifftshift``-ed) and ``sens_conj`` its conjugate;
        ``dft_cols`` complex (S, W, K) (the transposed rows of the centred DFT along W that give
        the sampled columns) and
        ``dft_cols_adjoint`` (S, K, W) its adjoint; ``target`` complex (S, C, H, K) the measured
        k-space there; ``weights`` real (S, H*K*2, 2) the training and validation point masks
        (repeated for the real and imaginary part) divided by the loss normalisers ``|P y|_1``
        (rows of these three ``ifftshift``-ed).
    """
    kspace = data["kspace"]
    w_train, w_val = data["train_points"][:, 0], data["val_points"][:, 0]  # (S, H, W)
    sampled = (w_train + w_val).ne(0).any(dim=-2)  # (S, W)
    counts = sampled.sum(dim=1)
    k = max(int(counts.max()), 1)
    order = torch.sort((~sampled).to(torch.int8), dim=1, stable=True).indices[:, :k]  # sampled columns first
    valid = torch.arange(k, device=kspace.device).unsqueeze(0) < counts.unsqueeze(1)  # (S, K)
    cols = torch.where(valid, order, torch.zeros_like(order))
    width = kspace.shape[-1]
    eye = torch.eye(width, dtype=kspace.dtype, device=kspace.device)
    dft = torch.fft.fftshift(torch.fft.fft(torch.fft.ifftshift(eye, dim=0), dim=0, norm="ortho"), dim=0)  # (out, in)
    pick = cols.unsqueeze(1).expand(-1, kspace.shape[-2], -1)  # (S, H, K)
    weight = valid.unsqueeze(1).to(w_train.dtype)

    def gather(t: torch.Tensor) -> torch.Tensor:
        """(S, [C,] H, W) -> the sampled columns (S, [C,] H, K), rows ifftshift-ed, padding zeroed."""
        idx = pick if t.ndim == 3 else pick.unsqueeze(1).expand(-1, t.shape[1], -1, -1)
        out = torch.gather(t, -1, idx) * (weight if t.ndim == 3 else weight.unsqueeze(1))
        return torch.fft.ifftshift(out, dim=-2)

    den_train = torch.view_as_real(w_train.unsqueeze(1) * kspace).abs().flatten(1).sum(1)
    den_val = torch.view_as_real(w_val.unsqueeze(1) * kspace).abs().flatten(1).sum(1)
    sens = torch.fft.ifftshift(data["sens"], dim=-2).contiguous()
    dft_cols = dft[cols]  # (S, K, W)
    return {
        "sens": sens,
        "sens_conj": sens.conj().resolve_conj(),
        "dft_cols": dft_cols.transpose(1, 2).contiguous(),
        "dft_cols_adjoint": dft_cols.conj().resolve_conj(),
        "target": gather(kspace * (w_train + w_val).unsqueeze(1)),
        # (S, H*K*2, 2): the training and the validation point masks over (row, column, re/im), divided
        # by the loss normalisers
        "weights": torch.stack(
            [gather(w_train) / den_train.view(-1, 1, 1), gather(w_val) / den_val.view(-1, 1, 1)], dim=-1
        )
        .unsqueeze(-2)
        .expand(-1, -1, -1, 2, -1)
        .reshape(w_train.shape[0], -1, 2),
    }


class _SampledL1(torch.autograd.Function):
    """Per-slice weighted L1 k-space residuals on the sampled columns, with a hand-written backward.

    Autograd through the same operations would materialise ``conj(sens)`` and the broadcast
    gradients on every step; the backward here is the adjoint chain written out once: residual
    signs (weighted), inverse read-out FFT, the adjoint of the sampled-column product, the
    sensitivity-weighted coil sum and the inverse row shift.
    """

    @staticmethod
    def forward(ctx: Any, pred: torch.Tensor, data: Batch) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        sens = data["sens"]
        s, c, h, w = sens.shape
        coils = sens * torch.fft.ifftshift(pred, dim=-2).unsqueeze(1)  # (S, C, H, W)
        cols = torch.bmm(coils.view(s, c * h, w), data["dft_cols"]).view(s, c, h, -1)  # sampled columns
        target = data["target"]
        resid = torch.sub(torch.fft.fft(cols, dim=-2, norm="ortho"), target, out=torch.empty_like(target))
        resid = torch.view_as_real(resid)  # (S, C, H, K, 2), contiguous
        ctx.save_for_backward(resid)
        ctx.data = data
        # sum over coils and points of |resid| * weight, both weights in one product: (S, C, H*K*2) x (S, H*K*2, 2)
        losses = torch.bmm(resid.abs().view(s, c, -1), data["weights"]).sum(dim=1)
        return losses[:, 0], losses[:, 1]

    @staticmethod
    def backward(ctx: Any, grad_train: torch.Tensor, grad_val: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (resid,) = ctx.saved_tensors
        data = ctx.data
        sens = data["sens"]
        s, c, h, w = sens.shape
        weight = (data["weights"][..., 0] * grad_train.view(-1, 1)).view(s, 1, *resid.shape[2:])  # (S, 1, H, K, 2)
        grad = torch.view_as_complex(resid.sign().mul_(weight))  # d/dresid of sum |resid| * weight
        grad = torch.fft.ifft(grad, dim=-2, norm="ortho")  # adjoint of the orthonormal FFT
        grad = torch.bmm(grad.reshape(s, c * h, -1), data["dft_cols_adjoint"]).view(s, c, h, w)
        grad = (grad * data["sens_conj"]).sum(dim=1)  # adjoint of the sensitivity weighting
        return torch.fft.fftshift(grad, dim=-2), None


def sampled_selfsup_losses(pred: torch.Tensor, data: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`ttt_losses` (``reduction="none"``) on the constants of :func:`sampled_selfsup_data`.

    One transform of the coil images serves both losses (the validation loss is not
    differentiated). ``pred``: complex (S, H, W). Returns (train (S,), val (S,)).
    """
    train, val = _SampledL1.apply(pred, data)
    return train, val.detach()


def load_ttt(
    checkpoint: str | os.PathLike[str], name: str | None = None, *, shift: str | None = None, **options: Any
) -> LoadedModel:
    """A :class:`TTTModel` around a ``unet-complex`` checkpoint, as a loaded model for the evaluator.

    Args:
        checkpoint: a ``.safetensors`` checkpoint of a :class:`ComplexUnetRecon` (needs
            ``"unet-complex"`` in ``mribench.models.builtin.ARCHITECTURES``).
        name: model name in results (default ``ttt-<variant>-<file stem>``).
        shift: take ``lr``, ``window``, ``max_steps`` and ``val_fraction`` from the per-shift table
            (:meth:`TTTModel.from_settings`); otherwise the :class:`TTTModel` defaults (D22's U-Net
            settings for the anatomy shift) or ``options``.
        **options: :class:`TTTModel` fields. With ``variant="fast"`` and no ``lr``, the checkpoint's
            training learning rate (``extra["lr"]``) is used, as that variant always did.

    Raises:
        ModelError: unreadable checkpoint or another architecture.
    """
    from mribench.models.checkpoints import checkpoint_identity, load_checkpoint

    model, details = load_checkpoint(checkpoint)
    if not isinstance(model, ComplexUnetRecon):
        raise ModelError(f"expected a unet-complex checkpoint for test-time training, got a {details['arch']} one")
    train_lr = details.get("extra", {}).get("lr")
    if options.get("variant") == "fast" and "lr" not in options and isinstance(train_lr, (int, float)):
        options["lr"] = float(train_lr)
        options.setdefault("settings", {"source": "fast variant: the training learning rate"})
    ttt = TTTModel.from_settings(model, shift, **options) if shift is not None else TTTModel(model, **options)
    info = ModelInfo(
        name or f"ttt-{ttt.variant}-{Path(checkpoint).stem}",
        "checkpoint",
        checkpoint_identity(checkpoint),
        {**details, "path": str(checkpoint), "ttt": ttt.config},
    )
    return LoadedModel(ttt, info)


@torch.no_grad()
def _apply(net: torch.nn.Module, params: Params, images: torch.Tensor) -> torch.Tensor:
    """``f`` with per-slice parameters. (S, ...) params, complex (S, H, W) -> complex (S, H, W)."""

    def one(p: Params, x: torch.Tensor) -> torch.Tensor:
        return net_to_complex(functional_call(net, p, (complex_to_net(x),)))

    return vmap(one)(params, images.unsqueeze(1))[:, 0]


__all__ = [
    "ENGINES",
    "RULES",
    "VARIANTS",
    "AdaptResult",
    "StackedAdam",
    "TTTModel",
    "adapt",
    "adapt_copies_loop",
    "adapt_loop",
    "adapt_vectorized",
    "load_ttt",
    "sampled_selfsup_data",
    "sampled_selfsup_losses",
    "should_stop",
    "should_stop_d22",
    "ttt_loss_fn",
    "ttt_losses",
]
