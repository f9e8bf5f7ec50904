"""Supervised training of reconstruction models, resumable and reproducible, with ID/OOD curves.

One call of :func:`train` trains a ``UnetRecon`` / ``VarNetRecon`` (SSIM or L1 loss) or the complex
U-Net of Darestani et al. (``d22-sup``: ``|x - |f||_1 / |x|_1`` against the RSS magnitude ``x``;
``d22-joint``: that plus the self-supervised k-space term; ``joint``: mribench's earlier variant
with a coil-combined complex target; :mod:`mribench.workflows.training.selfsup`) with Adam, a
learning-rate schedule per step (:mod:`mribench.workflows.training.schedule`: Lin & Heckel's
one-cycle, a constant rate, or mribench's warm-up + linear decay) and optional gradient clipping.
After every epoch it

1. validates: mean SSIM (volume max as data range) on each validation set, e.g. ID (``test_P`` or
   a held-out part of ``train_P``) and OOD (``test_Q``) — the curves that expose distributional
   overfitting (Lin & Heckel);
2. writes ``checkpoints/epoch_NNN.safetensors`` (:func:`mribench.models.save_checkpoint`);
3. writes ``history.json`` (one record per epoch: ``epoch, train_loss, lr, id_ssim, ood_ssim,
   ssim: {set: value}, seconds``);
4. writes ``train_state.pt``: optimiser + scheduler state, epoch, step, seed and the config hash,
   tensors and plain containers only (loads with ``torch.load(weights_only=True)``). It is written
   last and is the commit point of the epoch.

Reproducibility: the model is initialised and every epoch runs under ``torch.random.fork_rng``
seeded by ``(seed, epoch)``; masks and batch order are functions of ``(seed, epoch)``
(:mod:`mribench.workflows.training.data`). A training killed at any point and resumed with the same config
therefore continues from the last completed epoch and ends with the same weights as an
uninterrupted run (bitwise on the same hardware with the same number of intra-op threads, which
fixes the reduction order), and the caller's global RNG state is never changed.

Multi-GPU: launch with ``torchrun``; when ``WORLD_SIZE > 1`` the process group is initialised from
the environment (NCCL on CUDA, gloo on CPU), the objective is wrapped in DDP, batches are sharded
by rank, and rank 0 validates and writes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from fastmri.losses import SSIMLoss

from mribench.api.model import ReconModel, SliceMeta
from mribench.errors import ModelError, ResultsError
from mribench.models.builtin import UnetRecon, VarNetRecon
from mribench.models.checkpoints import save_checkpoint
from mribench.paths import atomic_write_text
from mribench.physics.masks import MaskSpec
from mribench.workflows.training.data import (
    MaskSampler,
    ShapeBatchSampler,
    TrainingSlices,
    ValidationSlices,
    batch_meta,
    make_loader,
)
from mribench.workflows.training.schedule import SCHEDULES, make_scheduler, warmup_steps_for

ProgressFn = Callable[[int, int, str], None]
LOSSES = ("ssim", "l1", "joint", "d22-sup", "d22-joint")
#: losses of the complex U-Net (``unet-complex``), and only of it
COMPLEX_LOSSES = ("joint", "d22-sup", "d22-joint")
ARCHS = ("unet", "varnet", "unet-complex")
#: numeric precision of the model's training forward pass (the loss, the optimiser and validation stay fp32)
PRECISIONS = ("fp32", "bf16")
STATE_FILE = "train_state.pt"
HISTORY_FILE = "history.json"
STATE_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training (hashed: a resume must use the same ones).

    Attributes:
        arch: ``unet``, ``varnet`` or ``unet-complex`` (the latter with one of :data:`COMPLEX_LOSSES`).
        model: keyword arguments of the architecture (e.g. ``{"chans": 16, "num_pool_layers": 3}``).
        loss: ``ssim`` (fastmri SSIMLoss, data range = volume max), ``l1``, or for the complex U-Net
            ``d22-sup`` / ``d22-joint`` (Darestani et al.'s supervised / self-supervised training
            losses against the RSS magnitude) or ``joint`` (mribench's earlier joint loss).
        epochs: number of epochs.
        lr: peak learning rate of Adam.
        weight_decay: Adam weight decay.
        warmup_fraction: fraction of all steps spent warming up linearly (``warmup-linear`` and
            ``onecycle-lh24``; ignored by ``constant``).
        schedule: ``onecycle-lh24`` (Lin & Heckel: from lr/25 up to lr, then down to lr/25),
            ``constant`` (Darestani et al.) or ``warmup-linear`` (mribench's earlier default:
            warm-up, then linear decay to 0); :mod:`mribench.workflows.training.schedule`.
        batch_size: slices per step (equal shapes only; see :mod:`mribench.workflows.training.data`).
        grad_clip: max global gradient norm (``0`` disables clipping).
        seed: initialisation, masks, batch order, dropout.
        num_workers: DataLoader workers.
        val_batch_size: slices per validation batch.
        precision: ``fp32`` (default) or ``bf16``: mribench's option, not the papers'. ``bf16`` runs the
            model's forward pass (and so its backward pass) under ``torch.autocast`` with bfloat16, on
            CPU or GPU; the loss, the gradients of the weights, Adam and validation stay float32. Only
            for the ``ssim`` and ``l1`` losses. It pays on CPUs with bfloat16 matrix units (AMX; on
            the 2-core machines of ``benchmarks/fidelity.py`` the U-Net trains about twice as fast)
            and costs time elsewhere. Left out of :meth:`to_dict` when ``fp32``, so configs written
            before the option existed keep their hash (their trainings resume, their checkpoints
            keep their provenance).
    """

    arch: str = "unet"
    model: dict[str, Any] = field(default_factory=dict)
    loss: str = "ssim"
    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_fraction: float = 0.05
    batch_size: int = 1
    grad_clip: float = 1.0
    seed: int = 0
    num_workers: int = 0
    val_batch_size: int = 8
    schedule: str = "warmup-linear"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"expected arch in {ARCHS}, got {self.arch!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"expected loss in {LOSSES}, got {self.loss!r}")
        if (self.loss in COMPLEX_LOSSES) != (self.arch == "unet-complex"):
            raise ValueError(
                f"expected a loss in {COMPLEX_LOSSES} together with arch 'unet-complex' (and only then), "
                f"got arch {self.arch!r} with loss {self.loss!r}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"expected schedule in {SCHEDULES}, got {self.schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"expected precision in {PRECISIONS}, got {self.precision!r}")
        if self.precision != "fp32" and self.loss in COMPLEX_LOSSES:  # the image losses (ssim, l1) only
            raise ValueError(
                f"expected precision 'fp32' with loss {self.loss!r} (bf16 is for the 'ssim' and 'l1' losses), "
                f"got {self.precision!r}"
            )
        for name in ("epochs", "batch_size", "val_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"expected {name} >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"expected lr > 0, got {self.lr}")
        if self.grad_clip < 0:
            raise ValueError(f"expected grad_clip >= 0, got {self.grad_clip}")
        warmup_steps_for(10, self.warmup_fraction)  # validates the fraction

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["precision"] == "fp32":
            del d["precision"]  # the default, as written before the option existed (same hash)
        return d

    @property
    def needs_full_kspace(self) -> bool:
        """Whether batches must carry the fully sampled k-space (the complex U-Net's losses)."""
        return self.loss in COMPLEX_LOSSES

    @property
    def maps_preset(self) -> str | None:
        """The coil-map preset batches must carry maps of (``None``: no maps needed)."""
        if self.loss not in COMPLEX_LOSSES:
            return None
        if self.loss == "d22-sup" and self.model.get("input", "coil-combined") == "rss-real-imag":
            return None  # D22's supervised loss with their input uses no maps
        return str(self.model.get("maps", "mribench"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping, rejecting unknown keys with the list of known ones."""
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"expected training keys among {sorted(known)}, got {bad}")
        return cls(**dict(d))

    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class ValSet:
    """A validation set: slice-index rows evaluated with a fixed per-volume mask."""

    rows: pd.DataFrame
    mask: MaskSpec


@dataclass
class TrainResult:
    """What :func:`train` leaves behind.

    Attributes:
        out_dir: the training folder.
        model: the model after the last trained epoch (eval mode, on the training device).
        history: per-epoch records (also in ``history.json``).
        last_epoch: last completed epoch (1-based).
        stopped_early: whether the stop rule ended the training before ``config.epochs``.
        seconds: wall time of this call.
    """

    out_dir: Path
    model: torch.nn.Module
    history: list[dict[str, Any]]
    last_epoch: int
    stopped_early: bool
    seconds: float

    def checkpoint(self, epoch: int | None = None) -> Path:
        """Path of the checkpoint of ``epoch`` (default: the last one)."""
        return checkpoint_path(self.out_dir, self.last_epoch if epoch is None else epoch)


def checkpoint_path(out_dir: str | os.PathLike[str], epoch: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"epoch_{epoch:03d}.safetensors"


# --------------------------------------------------------------------------- models and losses


def _complex_unet_cls() -> type[torch.nn.Module]:
    try:
        from mribench.models.complex_unet import ComplexUnetRecon
    except ImportError as e:
        raise ModelError(f"expected mribench.models.complex_unet for arch 'unet-complex', got: {e}") from None
    return ComplexUnetRecon  # type: ignore[no-any-return]


def build_model(arch: str, kwargs: Mapping[str, Any], seed: int) -> torch.nn.Module:
    """Instantiate an architecture with weights initialised from ``seed`` (global RNG untouched)."""
    classes: dict[str, Callable[[], type[torch.nn.Module]]] = {
        "unet": lambda: UnetRecon,
        "varnet": lambda: VarNetRecon,
        "unet-complex": _complex_unet_cls,
    }
    if arch not in classes:
        raise ValueError(f"expected arch in {sorted(classes)}, got {arch!r}")
    cls = classes[arch]()
    # nn.init draws from the global generator; fork it so the caller's state is restored.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_derive_seed(seed, "init"))
        try:
            return cls(**dict(kwargs))
        except TypeError as e:
            raise ValueError(f"expected valid {arch} arguments, got {dict(kwargs)}: {e}") from None


def _derive_seed(seed: int, *parts: object) -> int:
    h = hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


class Objective(torch.nn.Module):
    """The training loss as a module (so DDP sees the whole forward pass).

    ``forward(batch, meta)`` takes a collated batch (see :class:`~mribench.workflows.training.data.TrainingSlices`)
    already on the model's device and returns the mean loss over the batch (scalar).
    """

    def __init__(self, model: torch.nn.Module, loss: str, precision: str = "fp32") -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"expected loss in {LOSSES}, got {loss!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"expected precision in {PRECISIONS}, got {precision!r}")
        self.model = model
        self.loss = loss
        self.precision = precision
        self.ssim = SSIMLoss()

    def forward(self, batch: dict[str, Any], meta: SliceMeta) -> torch.Tensor:
        masked_kspace, mask, target = (
            batch["masked_kspace"],
            batch["mask"],
            batch["target"],
        )  # (B,C,H,W) (B,1,1,W) (B,h,w)
        if self.loss == "joint":
            return _joint_objective(self.model, batch, meta)
        if self.loss in ("d22-sup", "d22-joint"):
            return _d22_objective(self.model, batch, joint=self.loss == "d22-joint")
        if self.precision == "bf16":
            # the model under autocast only: fastmri's SSIMLoss convolves with a box filter, which
            # autocast would also run in bfloat16
            with torch.autocast(device_type=masked_kspace.device.type, dtype=torch.bfloat16):
                recon = self.model(masked_kspace, mask, meta)
            recon = recon.float()
        else:
            recon = self.model(masked_kspace, mask, meta)  # (B, h, w)
        if self.loss == "l1":
            return F.l1_loss(recon, target)
        return self.ssim(recon.unsqueeze(1), target.unsqueeze(1), data_range=batch["volume_max"].to(recon.dtype))


def _joint_objective(model: torch.nn.Module, batch: dict[str, Any], meta: SliceMeta) -> torch.Tensor:
    """Supervised + self-supervised loss (Darestani et al.) via the self-supervised modules."""
    try:
        from mribench.physics.sensitivity import estimate_sensitivities
        from mribench.workflows.training.selfsup import joint_loss
    except ImportError as e:
        raise ModelError(
            f"expected mribench.workflows.training.selfsup/sensitivity for loss 'joint', got: {e}"
        ) from None
    from mribench.physics.operators import combine_coils

    masked_kspace, mask, kspace = batch["masked_kspace"], batch["mask"], batch["kspace"]  # complex (B, C, H, W)
    sens = batch.get("sens")
    if sens is None:  # no cache: per-step ESPIRiT (slow)
        estimate: Callable[..., torch.Tensor] = getattr(model, "estimate_maps", estimate_sensitivities)
        lows = batch["num_low_frequencies"].tolist()
        sens = torch.cat([estimate(masked_kspace[i : i + 1], int(n)) for i, n in enumerate(lows)])
    predict_image: Callable[..., torch.Tensor] = getattr(model, "predict_image")  # noqa: B009 (ComplexUnetRecon)
    pred = predict_image(masked_kspace, mask, sens)  # complex (B, H, W)
    target_image = combine_coils(kspace, sens)  # complex (B, H, W) ground truth
    return joint_loss(pred, target_image, masked_kspace, mask, sens)  # type: ignore[no-any-return]


def _d22_objective(model: torch.nn.Module, batch: dict[str, Any], joint: bool) -> torch.Tensor:
    """Darestani et al.'s training losses against the RSS magnitude of the fully sampled coil images."""
    from mribench.physics.fft import rss
    from mribench.physics.operators import coil_images
    from mribench.workflows.training.selfsup import d22_joint_loss, rss_l1_loss

    masked_kspace, mask, kspace = batch["masked_kspace"], batch["mask"], batch["kspace"]  # complex (B, C, H, W)
    sens = batch.get("sens")
    needs_maps = joint or getattr(model, "input", "coil-combined") == "coil-combined"
    if sens is None and needs_maps:  # no cache: per-step ESPIRiT (slow)
        estimate: Callable[..., torch.Tensor] = getattr(model, "estimate_maps")  # noqa: B009 (ComplexUnetRecon)
        lows = batch["num_low_frequencies"].tolist()
        sens = torch.cat([estimate(masked_kspace[i : i + 1], int(n)) for i, n in enumerate(lows)])
    predict_image: Callable[..., torch.Tensor] = getattr(model, "predict_image")  # noqa: B009 (ComplexUnetRecon)
    pred = predict_image(masked_kspace, mask, sens)  # complex (B, H, W)
    target = rss(coil_images(kspace))  # real (B, H, W), at the encoded size as D22 compute it
    if joint:
        return d22_joint_loss(pred, target, masked_kspace, mask, sens)  # type: ignore[arg-type]
    return rss_l1_loss(pred, target)


# --------------------------------------------------------------------------- validation


def _ssim_fn() -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Per-slice SSIM ``(target (B,h,w), recon, data_range (B,)) -> (B,)``: mribench.metrics, else fastmri's."""
    try:
        from mribench.metrics import ssim

        if callable(ssim):
            return ssim  # type: ignore[no-any-return]
        raise ImportError("mribench.metrics.ssim is not a function yet")
    except ImportError:
        from fastmri.evaluate import ssim as fm_ssim

        def fallback(target: torch.Tensor, recon: torch.Tensor, data_range: torch.Tensor) -> torch.Tensor:
            t, r = target.double().cpu().numpy(), recon.double().cpu().numpy()
            vals = [float(fm_ssim(t[i : i + 1], r[i : i + 1], maxval=float(data_range[i]))[0]) for i in range(len(t))]
            return torch.tensor(vals, dtype=torch.float64)

        return fallback


def validate(
    model: ReconModel,
    val_sets: Mapping[str, ValSet],
    root: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    full_kspace: bool = False,
) -> dict[str, float]:
    """Mean per-slice SSIM (data range = volume max) of a ReconModel on each validation set.

    Returns:
        ``{name: mean SSIM}``.
    """
    dev = torch.device(device)
    ssim = _ssim_fn()
    out: dict[str, float] = {}
    was_training = getattr(model, "training", False)
    if isinstance(model, torch.nn.Module):
        model.eval()
    for name, vs in val_sets.items():
        ds = ValidationSlices(vs.rows, root, vs.mask, full_kspace=full_kspace)
        sampler = ShapeBatchSampler(ds.shape_keys(), batch_size, shuffle=False)
        values: list[torch.Tensor] = []
        for batch in make_loader(ds, sampler):
            meta = batch_meta(batch)
            with torch.inference_mode():
                recon = model(batch["masked_kspace"].to(dev), batch["mask"].to(dev), meta)
            values.append(ssim(batch["target"].double(), recon.detach().double().cpu(), batch["volume_max"].double()))
        out[name] = float(torch.cat(values).mean())
    if was_training and isinstance(model, torch.nn.Module):
        model.train()
    return out


# --------------------------------------------------------------------------- distributed


def init_distributed(device: torch.device) -> tuple[int, int]:
    """``(rank, world_size)``; initialises the process group from torchrun's env when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def dist_rank() -> int:
    """This process's rank when a process group is initialised (torchrun), else 0."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def training_device(device: str) -> torch.device:
    """``auto``/``cuda`` map to ``cuda:$LOCAL_RANK`` under torchrun; otherwise as the evaluator resolves it."""
    from mribench.workflows.runtime import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None and "LOCAL_RANK" in os.environ:
        dev = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return dev


def _all_mean(total: float, count: int, world: int, dev: torch.device) -> float:
    if world > 1:
        import torch.distributed as dist

        t = torch.tensor([total, float(count)], dtype=torch.float64, device=dev)
        dist.all_reduce(t)
        total, count = float(t[0]), int(t[1])
    return total / max(count, 1)


def _broadcast_flag(flag: bool, world: int, dev: torch.device) -> bool:
    if world <= 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], device=dev)
    dist.broadcast(t, src=0)
    return bool(t.item())


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


# --------------------------------------------------------------------------- state


def _save_state(out: Path, state: dict[str, Any]) -> None:
    tmp = out / f".{STATE_FILE}.tmp{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, out / STATE_FILE)


def load_state(out_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The resumable training state of a training folder (``None`` when there is none)."""
    p = Path(out_dir) / STATE_FILE
    if not p.is_file():
        return None
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file: tell the user instead of guessing
        raise ResultsError(f"expected a readable training state at {p}, got {type(e).__name__}: {e}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ResultsError(f"expected a training state of format {STATE_FORMAT} at {p}, got another")
    return state


def read_history(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The per-epoch records of a training folder (``[]`` when none)."""
    p = Path(out_dir) / HISTORY_FILE
    if not p.is_file():
        return []
    return list(json.loads(p.read_text())["epochs"])


def _write_history(out: Path, history: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    atomic_write_text(
        out / HISTORY_FILE,
        json.dumps({**meta, "epochs": history}, indent=2, allow_nan=False, default=_not_serialisable),
    )


def _not_serialisable(o: Any) -> Any:
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Load a safetensors checkpoint's tensors into ``model`` (strict)."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise ResultsError(
            f"expected the checkpoint {path.name} named by the training state, got no file "
            f"(hint: start over with a new output folder)"
        )
    model.load_state_dict(load_file(str(path)), strict=True)


def _save_weights(model: torch.nn.Module, path: Path, extra: dict[str, Any]) -> None:
    from mribench.models.builtin import ARCHITECTURES

    if getattr(model, "arch", None) in ARCHITECTURES:
        save_checkpoint(model, path, extra)
        return
    # Architectures not (yet) in mribench.models.ARCHITECTURES (e.g. the complex U-Net): same file
    # format as save_checkpoint, so load_checkpoint reads it once the architecture is registered.
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "mribench_arch": str(getattr(model, "arch", type(model).__name__)),
        "mribench_config": json.dumps(getattr(model, "config", {})),
        "mribench_extra": json.dumps(extra),
    }
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp), metadata=meta)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- training


def _to(batch: dict[str, Any], dev: torch.device) -> dict[str, Any]:
    return {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def train(
    config: TrainConfig,
    train_rows: pd.DataFrame,
    root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    masks: MaskSampler | Sequence[MaskSampler],
    val_sets: Mapping[str, ValSet] | None = None,
    id_sets: Sequence[str] = (),
    ood_sets: Sequence[str] = (),
    device: str = "auto",
    resume: bool = True,
    stop_rule: Callable[[list[dict[str, Any]]], bool] | None = None,
    extra: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train (or resume training) a model.

    Args:
        config: hyper-parameters.
        train_rows: slice-index rows to train on.
        root: data root of the rows' ``path``.
        out_dir: training folder (checkpoints, history, state).
        masks: training masks (fresh per sample): one sampler, or one per row.
        val_sets: ``{name: ValSet}`` validated after every epoch.
        id_sets, ood_sets: names of ``val_sets`` averaged into ``id_ssim`` / ``ood_ssim``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        resume: continue from ``train_state.pt`` when present (same config required); with False an
            existing state is an error.
        stop_rule: called with the history after each epoch; True ends the training (early stopping).
        extra: JSON metadata stored in every checkpoint (training data, task, recipe, ...).
        progress: ``progress(done_steps, total_steps, description)``.
        on_epoch: called with each new history record after the epoch is committed.

    Returns:
        The :class:`TrainResult`.

    Raises:
        ResultsError: a state from another config, or an existing state with ``resume=False``.
        DataError: unreadable data.
    """
    t_start = time.perf_counter()
    val_sets = dict(val_sets or {})
    for n in (*id_sets, *ood_sets):
        if n not in val_sets:
            raise ValueError(f"expected id/ood set names among the validation sets {sorted(val_sets)}, got {n!r}")
    out = Path(out_dir)
    dev = training_device(device)
    rank, world = init_distributed(dev)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    _barrier(world)

    model = build_model(config.arch, config.model, config.seed).to(dev)
    objective = Objective(model, config.loss, config.precision).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    preset = config.maps_preset
    ds = TrainingSlices(
        train_rows,
        root,
        masks,
        seed=config.seed,
        full_kspace=config.needs_full_kspace,
        sens_cache=out / "sens_cache" if preset is not None else None,
        sens_preset=preset or "mribench",
    )
    sampler = ShapeBatchSampler(ds.shape_keys(), config.batch_size, seed=config.seed, rank=rank, world_size=world)
    steps_per_epoch = len(sampler)
    total_steps = steps_per_epoch * config.epochs
    scheduler = make_scheduler(
        optimizer,
        total_steps,
        warmup_steps_for(total_steps, config.warmup_fraction),
        config.schedule,
        config.warmup_fraction,
    )

    state = load_state(out)
    history: list[dict[str, Any]] = []
    start, step, stopped = 1, 0, False
    if state is not None:
        if not resume:
            raise ResultsError(
                f"expected a new training folder, got an existing training in {out} "
                f"(hint: resume it, or choose another output folder)"
            )
        if state["config_sha256"] != config.sha256():
            raise ResultsError(
                f"expected the same training config to resume the training in {out}, got a "
                f"different one (hint: use a new output folder)"
            )
        done = int(state["epoch"])
        load_weights(model, checkpoint_path(out, done))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = [r for r in read_history(out) if int(r["epoch"]) <= done]
        start, step, stopped = done + 1, int(state["step"]), bool(state["stopped"])

    wrapped: torch.nn.Module = objective
    if world > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(objective)
    hist_meta = {
        "config": config.to_dict(),
        "id_sets": list(id_sets),
        "ood_sets": list(ood_sets),
        "n_train_slices": len(ds),
        "n_train_volumes": int(train_rows["file"].nunique()),
        "val_slices": {k: len(v.rows) for k, v in val_sets.items()},
    }
    cuda_devs = [dev.index or 0] if dev.type == "cuda" else []
    epoch = start - 1
    for epoch in range(start, config.epochs + 1):
        if stopped:
            break
        t0 = time.perf_counter()
        ds.set_epoch(epoch)
        sampler.set_epoch(epoch)
        model.train()
        total, count = 0.0, 0
        with torch.random.fork_rng(devices=cuda_devs):  # dropout etc. seeded per epoch; caller's RNG restored
            torch.manual_seed(_derive_seed(config.seed, "epoch", epoch))
            for batch in make_loader(ds, sampler, config.num_workers):
                batch = _to(batch, dev)
                loss = wrapped(batch, batch_meta(batch))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                bsz = int(batch["target"].shape[0])
                total += float(loss.detach()) * bsz
                count += bsz
                if progress and rank == 0:
                    progress(step, total_steps, f"train epoch {epoch}/{config.epochs}")
        train_loss = _all_mean(total, count, world, dev)
        t_train = time.perf_counter() - t0
        record: dict[str, Any] = {
            "epoch": epoch,
            "step": step,
            "train_loss": _clean(train_loss),
            "lr": float(scheduler.get_last_lr()[0]),
        }
        if rank == 0:
            scores = validate(model, val_sets, root, device=dev, batch_size=config.val_batch_size) if val_sets else {}
            record["ssim"] = {k: _clean(v) for k, v in scores.items()}
            record["id_ssim"] = _clean(sum(scores[n] for n in id_sets) / len(id_sets)) if id_sets else None
            record["ood_ssim"] = _clean(sum(scores[n] for n in ood_sets) / len(ood_sets)) if ood_sets else None
            record["train_seconds"] = t_train
            record["seconds"] = time.perf_counter() - t0
            history.append(record)
            stopped = bool(stop_rule(history)) if stop_rule is not None and epoch < config.epochs else False
            _save_weights(
                model, checkpoint_path(out, epoch), {**(extra or {}), "epoch": epoch, "train": config.to_dict()}
            )
            _write_history(out, history, hist_meta)
            _save_state(
                out,
                {
                    "format": STATE_FORMAT,
                    "epoch": epoch,
                    "step": step,
                    "stopped": stopped,
                    "seed": config.seed,
                    "config_sha256": config.sha256(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": {"rule": "sha256(seed:epoch:N) per epoch", "seed": config.seed},
                },
            )
            if on_epoch:
                on_epoch(record)
        stopped = _broadcast_flag(stopped, world, dev)
        _barrier(world)
    model.eval()
    last = int(history[-1]["epoch"]) if history else 0
    return TrainResult(out, model, history, last, stopped and last < config.epochs, time.perf_counter() - t_start)


__all__ = [
    "ARCHS",
    "COMPLEX_LOSSES",
    "LOSSES",
    "Objective",
    "TrainConfig",
    "TrainResult",
    "ValSet",
    "build_model",
    "checkpoint_path",
    "dist_rank",
    "init_distributed",
    "load_state",
    "load_weights",
    "read_history",
    "train",
    "validate",
]
