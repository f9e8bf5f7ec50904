"""Test-time training: stopping rule, vectorised Adam, vectorised == loop, theory check, evaluator."""

from __future__ import annotations

import copy
from pathlib import Path

import h5py
import pytest
import torch
from conftest import make_volume

from mribench import EvalOptions, Runtime, evaluate
from mribench.api.model import SliceMeta
from mribench.errors import ModelError
from mribench.models.complex_unet import ComplexUnetRecon
from mribench.physics.masks import MaskSpec, volume_mask
from mribench.physics.sensitivity import estimate_sensitivities
from mribench.tasks import parse_task
from mribench.workflows.training.ttt import (
    StackedAdam,
    TTTModel,
    adapt,
    load_ttt,
    should_stop,
    should_stop_d22,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: intra-op threads only add overhead


def _model(chans: int = 4, pools: int = 2, seed: int = 0) -> ComplexUnetRecon:
    with torch.random.fork_rng():  # seeded initialisation without touching the global RNG state
        torch.manual_seed(seed)
        return ComplexUnetRecon(chans=chans, num_pool_layers=pools)


def test_should_stop_rule() -> None:
    w = 3
    assert not should_stop([1.0] * (3 * w) + [2.0], w)  # k = 3W: too early
    rising = [1.0] * (3 * w) + [2.0, 2.0]  # k = 3W + 1
    assert should_stop(rising, w)
    assert not should_stop([5.0 - 0.1 * i for i in range(40)], w)  # still improving
    flat = [1.0] * 40
    assert not should_stop(flat, w)  # equal means: keep going
    # D22: checked at epoch e on the e errors recorded before it (v_0..v_{e-1}), e > 3W
    assert not should_stop_d22([1.0] * (3 * w - 1) + [2.0], w)  # e = 3W: too early
    assert should_stop_d22([1.0] * (3 * w) + [2.0], w)  # e = 3W + 1
    assert not should_stop_d22(flat, w) and not should_stop_d22([5.0 - 0.1 * i for i in range(40)], w)


def test_stacked_adam_matches_torch_adam() -> None:
    g = torch.Generator().manual_seed(0)
    starts = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    grads = [torch.randn(3, 4, 5, generator=g, dtype=torch.float64) for _ in range(6)]
    stacked = {"w": starts.clone()}
    opt = StackedAdam(stacked, lr=0.05)
    for gr in grads:
        opt.step({"w": gr})
    for i in range(3):
        p = starts[i].clone().requires_grad_(True)
        ref = torch.optim.Adam([p], lr=0.05)
        for gr in grads:
            p.grad = gr[i].clone()
            ref.step()
        assert torch.allclose(stacked["w"][i], p.detach(), rtol=0, atol=1e-14)
    after = stacked["w"].clone()
    opt.keep(torch.tensor([2, 0]))
    assert opt.params["w"].shape[0] == 2 and torch.equal(opt.params["w"], after[[2, 0]])
    assert stacked["w"] is opt.params["w"]  # the caller's dict holds the optimiser's views
    # the explicit update (the fallback of the fused kernel) and several parameter tensors in one buffer
    two = {"a": starts.clone(), "b": starts[:, :2].clone()}
    fused, plain = StackedAdam(dict(two), lr=0.05), StackedAdam(dict(two), lr=0.05)
    plain._fused = False
    for gr in grads:
        fused.step({"a": gr, "b": gr[:, :2]})
        plain.step({"a": gr, "b": gr[:, :2]})
    assert torch.allclose(fused.params["a"], after, rtol=0, atol=1e-14)
    for name in two:
        assert torch.allclose(fused.params[name], plain.params[name], rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="dtype"):
        StackedAdam({"a": starts, "b": starts.float()}, lr=0.1)


def _quadratics() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Slices whose validation optimum lies at different distances along the training path."""
    a = torch.full((5, 2), 4.0, dtype=torch.float64)
    b = torch.tensor([[0.5, 0.5], [1.0, 1.5], [2.0, 2.0], [3.0, 2.5], [9.0, 9.0]], dtype=torch.float64)
    return {"w": torch.zeros(2, dtype=torch.float64)}, {"a": a, "b": b}


def _quad_loss(params: dict[str, torch.Tensor], data: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    w = params["w"]
    return ((w - data["a"]) ** 2).sum(), ((w - data["b"]) ** 2).sum()


@pytest.mark.parametrize("rule", ["d22", "fast"])
def test_vectorized_adapt_equals_the_loop_with_staggered_stopping(rule: str) -> None:
    params, data = _quadratics()
    vec = adapt(_quad_loss, params, data, lr=0.1, window=3, max_steps=60, rule=rule)
    ref = adapt(_quad_loss, params, data, lr=0.1, window=3, max_steps=60, vectorized=False, rule=rule)
    assert vec.steps == ref.steps and vec.stopped == ref.stopped
    assert len(set(vec.steps)) >= 4  # slices stop at different steps (the stack shrinks)
    assert vec.stopped[:4] == [True] * 4 and vec.steps[4] == 60 and not vec.stopped[4]
    assert all(k > 9 for k in vec.steps)  # never before 3W
    assert torch.allclose(vec.params["w"], ref.params["w"], rtol=0, atol=1e-12)
    recorded = 0 if rule == "d22" else 1  # d22: no loss at the returned (stepped) parameters
    for i, k in enumerate(vec.steps):
        assert len(vec.val_losses[i]) == k + recorded
        assert vec.val_losses[i] == pytest.approx(ref.val_losses[i], abs=1e-12)
    with pytest.raises(ValueError, match="window"):
        adapt(_quad_loss, params, data, lr=0.1, window=0)
    with pytest.raises(ValueError, match="rule"):
        adapt(_quad_loss, params, data, lr=0.1, rule="best")


def _d22_notebook_loop(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, lr: float, window_size: int, num_epochs: int):
    """Darestani et al.'s TTT loop (``unet/anatomy_shift.ipynb``, ``inference``), transcribed line by line
    for one parameter tensor: returns the final parameters, the epoch it broke at and the recorded errors."""
    p = p.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([p], lr=lr)
    verrors: list[float] = []
    epoch = -1
    for epoch in range(num_epochs):
        optimizer.zero_grad()
        loss = ((p - a) ** 2).sum()
        verror = float(((p.detach() - b) ** 2).sum())
        loss.backward()
        optimizer.step()
        if epoch > 3 * window_size:
            if sum(verrors[-window_size:]) / window_size > sum(verrors[-2 * window_size : -window_size]) / window_size:
                break
        verrors.append(verror)
    return p.detach(), epoch, verrors


def test_d22_rule_returns_the_last_parameters_of_the_papers_loop() -> None:
    """The ``d22`` rule stops where the paper's loop breaks and returns its last (stepped) parameters."""
    params, data = _quadratics()
    got = adapt(_quad_loss, params, data, lr=0.1, window=3, max_steps=60, rule="d22")
    loop = adapt(_quad_loss, params, data, lr=0.1, window=3, max_steps=60, rule="d22", vectorized=False)
    fast = adapt(_quad_loss, params, data, lr=0.1, window=3, max_steps=60, rule="fast")
    for i in range(5):
        final, epoch, verrors = _d22_notebook_loop(params["w"], data["a"][i], data["b"][i], 0.1, 3, 60)
        assert got.steps[i] == epoch + 1  # the break happens after the step of that epoch
        assert torch.allclose(got.params["w"][i], final, rtol=0, atol=1e-12)
        assert torch.allclose(loop.params["w"][i], final, rtol=0, atol=1e-12)
        assert got.val_losses[i][: len(verrors)] == pytest.approx(verrors, abs=1e-12)
        if got.stopped[i]:
            # the parameters returned are not the best-validation ones, nor those the rule last saw
            best = min(range(len(got.val_losses[i])), key=got.val_losses[i].__getitem__)
            assert best < got.steps[i] - 1
            # the fast rule (mribench's) keeps the last validated parameters: not the paper's
            assert fast.steps[i] != got.steps[i] and not torch.allclose(fast.params["w"][i], final)


def test_worker_threads_share_the_slices_and_give_the_same_iterates() -> None:
    from mribench.workflows.training import ttt

    params, data = _quadratics()
    data = {k: torch.cat([v, v.flip(0)]) for k, v in data.items()}  # 10 slices, long ones in both halves
    ref = adapt(_quad_loss, params, data, lr=0.1, window=3, max_steps=60)
    threads = torch.get_num_threads()
    for workers in (2, 3):
        got = adapt(_quad_loss, params, data, lr=0.1, window=3, max_steps=60, workers=workers)
        assert got.steps == ref.steps and got.stopped == ref.stopped
        assert torch.allclose(got.params["w"], ref.params["w"], rtol=0, atol=1e-12)
        for a, b in zip(got.val_losses, ref.val_losses, strict=True):
            assert a == pytest.approx(b, abs=1e-12)
        assert torch.get_num_threads() == threads
    with pytest.raises(ValueError, match="workers"):
        adapt(_quad_loss, params, data, lr=0.1, workers=0)

    # the hand-over itself, deterministically: with a worker waiting, a stack gives its second half
    # after the next step, and both halves continue from the same state
    step_fn = ttt.vmap(ttt.grad(ttt._with_aux(_quad_loss), has_aux=True))
    stacked = {k: v.unsqueeze(0).repeat(10, *([1] * v.ndim)) for k, v in params.items()}
    out = ttt._Results({k: v.clone() for k, v in stacked.items()}, [60] * 10, [False] * 10, [[] for _ in range(10)])
    board = ttt._Board(2)
    board.waiting = 1  # a worker waits (none runs here, so the offer stays on the board)
    stack = ttt._Stack(list(range(10)), StackedAdam(stacked, 0.1), dict(data))
    ttt._run_stack(step_fn, stack, out, 3, 60, board)
    offered = board.offer
    assert offered is not None and offered.ids == list(range(5, 10)) and offered.opt.steps == 1
    ttt._run_stack(step_fn, offered, out, 3, 60, None)
    assert out.steps == ref.steps and torch.allclose(out.final["w"], ref.params["w"], rtol=0, atol=1e-12)


def _mri_batch(tmp_path: Path, slices: int = 3) -> tuple[torch.Tensor, torch.Tensor, SliceMeta]:
    p = make_volume(tmp_path, "file_ttt", coils=4, slices=slices, seed=5)
    with h5py.File(p) as f:
        kspace, target = torch.from_numpy(f["kspace"][()]), f["reconstruction_rss"][()]
    w = kspace.shape[-1]
    spec = MaskSpec("equispaced", 4, 0.16)
    mask = volume_mask(spec, w, "file_ttt").reshape(1, 1, 1, w).expand(slices, 1, 1, w).contiguous()
    meta = SliceMeta(
        file="file_ttt.h5",
        slices=tuple(range(slices)),
        target_size=tuple(target.shape[-2:]),
        padding=(2, w - 2),
        num_low_frequencies=round(w * spec.cf),
        acceleration=4,
        volume_max=float(target.max()),
    )
    return kspace * mask, mask, meta


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_ttt_on_cuda_equals_cpu_in_float64(tmp_path: Path) -> None:
    masked, mask, meta = _mri_batch(tmp_path)
    sens = estimate_sensitivities(masked, meta.num_low_frequencies)
    model = _model().double()
    kw = {"lr": 1e-2, "window": 2, "max_steps": 10}
    img_c, st_c = TTTModel(model, **kw).adapt_images(masked, mask, sens, [1, 2, 3])
    gpu = TTTModel(copy.deepcopy(model), **kw).to("cuda")
    img_g, st_g = gpu.adapt_images(masked.cuda(), mask.cuda(), sens.cuda(), [1, 2, 3])
    assert img_g.device.type == "cuda"
    assert [s["steps"] for s in st_g] == [s["steps"] for s in st_c]
    assert torch.allclose(img_g.cpu(), img_c, rtol=0, atol=1e-9 * float(img_c.abs().max()))


def test_ttt_vectorized_engines_equal_the_loop_in_float64(tmp_path: Path) -> None:
    masked, mask, meta = _mri_batch(tmp_path)
    sens = estimate_sensitivities(masked, meta.num_low_frequencies)
    model = _model().double()
    kw = {"lr": 1e-2, "window": 2, "max_steps": 10}
    img_l, st_l = TTTModel(model, vectorized=False, **kw).adapt_images(masked, mask, sens, [1, 2, 3])
    assert img_l.dtype == torch.complex128 and all(s["steps"] > 6 for s in st_l)
    threads = torch.get_num_threads()
    for engine, workers in (("grouped", 1), ("grouped", 2), ("vmap", 1), ("vmap", 2)):  # vmap: one thread
        ttt = TTTModel(model, engine=engine, max_parallel=2, workers=workers, **kw)
        img_v, st_v = ttt.adapt_images(masked, mask, sens, [1, 2, 3])
        assert [s["steps"] for s in st_v] == [s["steps"] for s in st_l]
        assert torch.allclose(img_v, img_l, rtol=0, atol=1e-10 * float(img_l.abs().max()))
        assert [s["val_loss"] for s in st_v] == pytest.approx([s["val_loss"] for s in st_l], rel=1e-9)
        assert torch.get_num_threads() == threads  # the workers' one-thread setting is undone
    with pytest.raises(ValueError, match="engine"):
        TTTModel(model, engine="jit")
    with pytest.raises(ValueError, match="workers"):
        TTTModel(model, workers=0)


@pytest.mark.parametrize("chans, pools, h, w", [(4, 1, 20, 18), (3, 3, 33, 47)])
def test_stacked_weights_evaluation_equals_fastmri(chans: int, pools: int, h: int, w: int) -> None:
    from torch.func import functional_call

    from mribench.models.complex_unet import stacked_unet

    model = _model(chans, pools).double().eval()
    g = torch.Generator().manual_seed(1)
    params = {
        k: v.detach() + 0.05 * torch.randn(3, *v.shape, generator=g, dtype=v.dtype)
        for k, v in model.net.named_parameters()
    }
    image = torch.randn(3, h, w, generator=g, dtype=torch.complex128)
    out = model.stacked_image_to_image(params, image)
    # the U-Net alone on sizes that are not multiples of 2^pools (the reflect padding of fastmri's skip connections)
    raw = torch.randn(3, 2, h, w, generator=g, dtype=torch.float64)
    unet_params = {k.removeprefix("unet."): v for k, v in params.items()}
    out_unet = stacked_unet(model.net.unet, unet_params, raw)
    for i in range(3):  # the same function; products and normalisations summed in another order
        x = torch.view_as_real(image[i : i + 1]).unsqueeze(1)
        ref = torch.view_as_complex(
            functional_call(model.net, {k: v[i] for k, v in params.items()}, (x,))[:, 0].contiguous()
        )
        assert torch.allclose(out[i : i + 1], ref, rtol=0, atol=1e-12)
        ref_unet = functional_call(model.net.unet, {k: v[i] for k, v in unet_params.items()}, (raw[i : i + 1],))
        assert torch.allclose(out_unet[i : i + 1], ref_unet, rtol=0, atol=1e-12)


@pytest.mark.parametrize("h, w", [(16, 12), (15, 12), (16, 13), (15, 13)])
def test_sampled_column_losses_equal_the_centred_fft_losses(h: int, w: int) -> None:
    from mribench.workflows.training.selfsup import split_measurements
    from mribench.workflows.training.ttt import sampled_selfsup_data, sampled_selfsup_losses, ttt_losses

    g = torch.Generator().manual_seed(2)
    kspace = torch.randn(2, 3, h, w, generator=g, dtype=torch.complex128)
    sens = torch.randn(2, 3, h, w, generator=g, dtype=torch.complex128)
    mask = (torch.rand(2, 1, 1, w, generator=g) < 0.5).double()
    mask[..., :2] = 1
    train, val = split_measurements(mask, h, 0.1, g)
    data = {"kspace": kspace * mask, "sens": sens, "train_points": train, "val_points": val}
    pred = torch.randn(2, h, w, generator=g, dtype=torch.complex128, requires_grad=True)
    ref = ttt_losses(pred, data, reduction="none")
    got = sampled_selfsup_losses(pred, sampled_selfsup_data(data))
    for a, b in zip(got, ref, strict=True):
        assert torch.allclose(a, b, rtol=1e-12, atol=0)
    (g_ref,) = torch.autograd.grad(ref[0].sum(), pred)
    (g_got,) = torch.autograd.grad(got[0].sum(), pred)
    assert torch.allclose(g_got, g_ref, rtol=0, atol=1e-12)


def test_ttt_model_protocol_under_inference_mode(tmp_path: Path) -> None:
    masked, mask, meta = _mri_batch(tmp_path, slices=2)
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ttt = TTTModel(model, lr=1e-3, window=1, max_steps=4, max_parallel=1)
    rng = torch.get_rng_state()
    with torch.inference_mode():  # as the evaluator calls models
        out = ttt(masked, mask, meta)
    assert torch.equal(torch.get_rng_state(), rng)  # only local generators
    assert out.shape == (2, *meta.target_size) and not out.is_complex() and torch.isfinite(out).all()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # copies were adapted
    assert [s["slice"] for s in ttt.last_stats] == [0, 1]
    assert all(s["steps"] == 4 and not s["stopped"] and s["seconds"] > 0 for s in ttt.last_stats)
    with torch.no_grad():  # zero steps: TTT is the trained network itself
        base = TTTModel(model, max_steps=0)(masked, mask, meta)
        plain = model(masked, mask, meta)
    assert torch.allclose(base, plain, atol=1e-5)
    with pytest.raises(ValueError, match="ComplexUnetRecon"):
        TTTModel(torch.nn.Linear(1, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="val_fraction"):
        TTTModel(model, val_fraction=0.0)


def test_ttt_through_the_evaluator(tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mribench.models import builtin
    from mribench.models.checkpoints import save_checkpoint

    task = parse_task(
        {
            "version": 1,
            "source": {"filter": {"anatomy": "knee"}},
            "target": {"filter": {"anatomy": "brain"}},
            "mask": {"type": "equispaced", "acceleration": 4},
            "splits": {"test_fraction": 0.5},
            "metrics": ["ssim"],
        },
        "tiny-anatomy",
    )
    monkeypatch.setitem(builtin.ARCHITECTURES, "unet-complex", ComplexUnetRecon)
    path = save_checkpoint(_model(), tmp_path / "unet-complex.safetensors", extra={"lr": 3e-4})
    lm = load_ttt(path, window=1, max_steps=3)
    ttt = lm.model
    assert isinstance(ttt, TTTModel) and ttt.lr == 1e-5 and lm.info.details["ttt"]["max_steps"] == 3
    assert lm.info.details["ttt"]["variant"] == "d22" and lm.info.name.startswith("ttt-d22-")
    fast = load_ttt(path, variant="fast", window=1, max_steps=3)  # the fast variant: the training lr
    assert fast.model.lr == 3e-4 and fast.info.details["ttt"]["variant"] == "fast"
    r = evaluate(
        lm, task, data=tiny_root, run_dir=tmp_path / "run", options=EvalOptions(limit=1), runtime=Runtime(batch_size=2)
    )
    assert (r.slices["status"] == "ok").all() and len(r.slices) == 6  # one whole volume (3 slices) per split
    assert ttt.last_stats and all(s["steps"] == 3 for s in ttt.last_stats)
    assert (r.slices["ttt_steps"] == 3).all()  # the per-slice store records the adaptation steps
    with pytest.raises(ModelError, match="unet-complex"):
        load_ttt(save_checkpoint(builtin.UnetRecon(chans=2, num_pool_layers=1), tmp_path / "u.safetensors"))


def test_theory_subspace_denoising_ttt_recovers_the_optimal_scale() -> None:
    r"""Section 6 of Darestani et al.: TTT closes the gap of a linear subspace denoiser.

    Setting. Signals ``x = U c`` lie in a d-dimensional subspace of R^n (``U`` orthonormal,
    ``P = U U^T``); measurements ``y = x + z``. The estimator is ``f_a(y) = a P y``. Noise energy is
    measured relative to the signal inside the subspace: ``E|P z|^2 = s^2 E|x|^2`` (training noise
    ``s = sigma``, test noise ``s = varsigma``).

    Supervised training minimises ``E|x - a P y|^2 = (1 - a)^2 E|x|^2 + a^2 E|P z|^2`` (cross terms
    vanish, ``z`` is zero-mean and independent of ``x``), so ``a_P = 1 / (1 + sigma^2)``: optimal
    for the training noise, sub-optimal for the test noise, whose optimum is
    ``a_Q = 1 / (1 + varsigma^2)``: the distribution-shift performance gap.

    Self-supervised loss. TTT only sees noisy measurements. The paper's self-supervised loss
    compares the prediction with *measurements*, ``|y - A f(A^H y)|``; it is only informative about
    what the input did not contain (hence the self-validation points, held out of the network input
    in :mod:`mribench.workflows.training.ttt`). The denoising analogue (``A = I``) with a measurement that is
    not part of the input is a second, independent measurement ``y' = x + z'`` of the same signal
    (a noisy-measurement consistency loss, as in Noise2Noise):

        L(a) = E|y' - a P y|^2 = E|x - a P y|^2 + E|z'|^2 - 2 E<z', x - a P y>
             = (1 - a)^2 E|x|^2 + a^2 varsigma^2 E|x|^2 + E|z'|^2,

    since ``z'`` is zero-mean and independent of ``x`` and ``y``. Its minimiser is
    ``a = 1 / (1 + varsigma^2)``: TTT on this loss recovers the optimal test-time denoiser. (With
    ``y' = y``, the same noise in input and target, the minimiser would be ``a = 1``: no denoising.)
    The loss is normalised by ``|y'|^2`` like the paper's by ``|y|_1`` (a constant factor); L2 keeps
    the closed form.

    Sampling. To test the TTT machinery to well within 1% without a Monte Carlo error of the same
    size, every draw ``(c, z, z')`` enters as the four sign patterns ``(c, +-z, +-z')``, which
    cancels all empirical cross terms, and ``z`` is rescaled so that ``|P z|^2 = s^2 |x|^2`` per
    draw; every subset of whole draws (the 5% self-validation split included) then has exactly the
    population minimiser. Adam, the self-validation stopping rule and the vectorised path run as in
    MRI TTT, and the loop path must give the same iterates.
    """
    n, d, draws = 16, 4, 200
    g = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=torch.float64))
    proj = u @ u.T

    def sample(s2: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.randn(draws, d, generator=g, dtype=torch.float64) @ u.T / d**0.5
        z = torch.randn(draws, n, generator=g, dtype=torch.float64)
        z = z * (s2 * (x**2).sum(1, keepdim=True) / ((z @ proj) ** 2).sum(1, keepdim=True)).sqrt()
        z2 = torch.randn(draws, n, generator=g, dtype=torch.float64) * (s2 / d) ** 0.5
        signs = [(1, 1), (-1, 1), (1, -1), (-1, -1)]
        xs = torch.cat([x for _ in signs])
        ys = torch.cat([x + a * z for a, _ in signs])
        y2s = torch.cat([x + b * z2 for _, b in signs])
        return xs, ys, y2s

    n_val = draws // 20  # the first 5% of draws (all four sign patterns) are held out
    held = torch.zeros(4 * draws, dtype=torch.bool)
    for j in range(4):
        held[j * draws : j * draws + n_val] = True

    weight = held.to(torch.float64)

    def split_loss(err: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e, r = (err**2).sum(-1), (ref**2).sum(-1)
        return ((1 - weight) * e).sum() / ((1 - weight) * r).sum(), (weight * e).sum() / (weight * r).sum()

    # f_a(y) = a P y; P y is the fixed part of the estimator, computed once per measurement.
    def supervised(p: dict[str, torch.Tensor], data: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return split_loss(data["x"] - p["alpha"] * data["py"], data["x"])

    def self_supervised(p: dict[str, torch.Tensor], data: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return split_loss(data["y2"] - p["alpha"] * data["py"], data["y2"])

    kw = {"lr": 0.005, "window": 20, "max_steps": 500}
    sigma2, varsigmas2 = 0.1, [0.25, 1.0, 3.0]
    x, y, _ = sample(sigma2)
    trained = adapt(
        supervised, {"alpha": torch.tensor(1.0, dtype=torch.float64)}, {"x": x[None], "py": (y @ proj)[None]}, **kw
    )
    alpha_p = trained.params["alpha"][0]
    assert alpha_p.item() == pytest.approx(1 / (1 + sigma2), rel=1e-3)

    tests = [sample(s2) for s2 in varsigmas2]
    data = {"py": torch.stack([t[1] @ proj for t in tests]), "y2": torch.stack([t[2] for t in tests])}
    vec = adapt(self_supervised, {"alpha": alpha_p}, data, **kw)
    ref = adapt(self_supervised, {"alpha": alpha_p}, data, vectorized=False, **kw)
    assert vec.steps == ref.steps and vec.stopped == ref.stopped
    assert torch.allclose(vec.params["alpha"], ref.params["alpha"], rtol=0, atol=1e-12)

    def risk(a: float, xt: torch.Tensor, yt: torch.Tensor) -> float:
        return ((xt - a * (yt @ proj)) ** 2).sum(-1).mean().item()

    for alpha, s2, (xt, yt, _) in zip(vec.params["alpha"].tolist(), varsigmas2, tests, strict=True):
        assert alpha == pytest.approx(1 / (1 + s2), rel=1e-2)
        # TTT closes the gap: the test risk of the adapted scale is the optimal one, below the trained scale's
        assert risk(alpha, xt, yt) < risk(alpha_p.item(), xt, yt)
        assert risk(alpha, xt, yt) == pytest.approx(risk(1 / (1 + s2), xt, yt), rel=1e-3)


def test_work_board_takes_one_offer_at_a_time() -> None:
    """Two busy workers that both see an idle one must not both hand it slices: the second offer is
    refused (checked apart from the offer, it overwrote the first and those slices were never adapted)."""
    import threading
    import time

    from mribench.workflows.training.ttt import _Board

    board = _Board(3)
    got: list[object] = []
    idle = threading.Thread(target=lambda: got.append(board.take()))
    idle.start()
    deadline = time.monotonic() + 10
    while board.waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    first, second = object(), object()
    accepted = [board.give(lambda s=s: s) for s in (first, second)]  # type: ignore[misc]
    idle.join(timeout=10)
    assert accepted == [True, False] and got == [first]
