"""Tissue relaxation parameters, protocols and MR signal equations of MRIBench-Sim.

Centres follow ``SIMULATION.md`` (Stanisz et al. 2005 and common MR physics texts); each simulated
subject draws its own values a few percent around them, so that subjects differ. Signals are
magnitudes relative to a fully relaxed tissue of proton density 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIELD_15T = 1.494
"""systemFieldStrength_T written by 1.5T Siemens systems in fastMRI."""
FIELD_3T_BRAIN = 2.8936
"""systemFieldStrength_T of the 3T Siemens brain files in fastMRI."""
FIELD_3T_KNEE = 2.89362
"""systemFieldStrength_T of the 3T Siemens knee files in fastMRI."""


@dataclass(frozen=True)
class Tissue:
    """Relaxation times (ms) at 1.5T and 3T and relative proton density of one tissue."""

    t1_15: float
    t1_3: float
    t2_15: float
    t2_3: float
    pd: float
    t1_post_15: float | None = None
    """T1 after gadolinium at 1.5T (``None``: the tissue does not enhance)."""
    t1_post_3: float | None = None


# grey matter centre, used to derive the lesion parameters (lesion: 1.3x T1, 1.8x T2, PD 0.9).
_GM = Tissue(1100.0, 1800.0, 95.0, 90.0, 0.80)

TISSUES: dict[str, Tissue] = {
    "gm": _GM,
    "wm": Tissue(750.0, 1080.0, 75.0, 70.0, 0.70),
    "csf": Tissue(4000.0, 4200.0, 2000.0, 2000.0, 1.00),
    "fat": Tissue(270.0, 370.0, 80.0, 75.0, 0.95),  # subcutaneous fat, diploe
    # fatty (yellow) marrow: fat, plus a water fraction (MARROW_WATER) of haematopoietic tissue
    "marrow": Tissue(270.0, 370.0, 80.0, 75.0, 0.95),
    "marrow_water": Tissue(800.0, 1000.0, 45.0, 40.0, 0.80),  # its water part (see MARROW_WATER)
    "muscle": Tissue(1050.0, 1400.0, 40.0, 35.0, 0.70),
    "cartilage": Tissue(1050.0, 1240.0, 40.0, 37.0, 0.75),
    "meniscus": Tissue(900.0, 1100.0, 12.0, 10.0, 0.40),  # also ligaments and tendons
    "bone": Tissue(1000.0, 1000.0, 1.0, 1.0, 0.05),  # cortical bone: T1 irrelevant (T2 ~ 1 ms)
    "skin": Tissue(500.0, 700.0, 50.0, 45.0, 0.80),  # scalp / skin
    # synovial fluid: free water, taken CSF-like (assumption; not in SIMULATION.md's table)
    "fluid": Tissue(4000.0, 4200.0, 1500.0, 1500.0, 1.00),
    "lesion": Tissue(1.3 * _GM.t1_15, 1.3 * _GM.t1_3, 1.8 * _GM.t2_15, 1.8 * _GM.t2_3, 0.90, 550.0, 600.0),
    # normally enhancing structures (dura, choroid plexus, venous sinuses): GM-like before
    # contrast, T1 ~300/350 ms after it (T2 and PD unchanged)
    "enhancing": Tissue(_GM.t1_15, _GM.t1_3, _GM.t2_15, _GM.t2_3, _GM.pd, 300.0, 350.0),
    # flowing blood in (turbo) spin echo: a flow void (assumption: a small residual signal)
    "vessel": Tissue(1200.0, 1600.0, 150.0, 150.0, 0.08),
}
"""Centres of the tissue parameters (``SIMULATION.md``)."""

FAT_TISSUES = ("fat", "marrow")
"""Tissues whose signal fat suppression removes."""

MARROW_WATER = 0.12
"""Water fraction of fatty marrow (haematopoietic tissue, relaxation ``marrow_water``; assumption):
keeps marrow a little brighter than subcutaneous fat under fat suppression, as in PDFS images."""


@dataclass(frozen=True)
class Protocol:
    """A clinical protocol: timing (ms), signal model and header strings.

    Attributes:
        name: protocolName (``AXT2``, ``CORPD_FBK``, ...), also the ``acquisition`` attr.
        anatomy: ``brain`` or ``knee``.
        tr, te: repetition and echo time in ms.
        ti: inversion time in ms (``None`` unless inversion recovery).
        fat_sat: fat suppressed (``CORPDFS_FBK``).
        contrast_agent: acquired after gadolinium (``AXT1POST``).
        sequence_type: ISMRMRD ``sequence_type``.
        efficiency: relative SNR of the protocol at equal field (averages, bandwidth, voxel size).
    """

    name: str
    anatomy: str
    tr: float
    te: float
    ti: float | None = None
    fat_sat: bool = False
    contrast_agent: bool = False
    sequence_type: str = "TurboSpinEcho"
    efficiency: float = 1.0


PROTOCOLS: dict[str, Protocol] = {
    "CORPD_FBK": Protocol("CORPD_FBK", "knee", 2800.0, 30.0, efficiency=1.0),
    "CORPDFS_FBK": Protocol("CORPDFS_FBK", "knee", 2800.0, 30.0, fat_sat=True, efficiency=0.55),
    "AXT1": Protocol("AXT1", "brain", 600.0, 12.0, efficiency=1.0),
    "AXT1PRE": Protocol("AXT1PRE", "brain", 600.0, 12.0, efficiency=1.0),
    "AXT1POST": Protocol("AXT1POST", "brain", 600.0, 12.0, contrast_agent=True, efficiency=1.0),
    "AXT2": Protocol("AXT2", "brain", 5000.0, 105.0, efficiency=1.0),
    "AXFLAIR": Protocol("AXFLAIR", "brain", 9000.0, 120.0, ti=2500.0, efficiency=1.6),
}
"""The protocols of MRIBench-Sim with the timings of ``SIMULATION.md``."""


@dataclass(frozen=True)
class TissueValues:
    """One subject's drawn parameters of one tissue at one field strength (ms; PD relative)."""

    t1: float
    t2: float
    pd: float
    t1_post: float | None


def is_3t(field_t: float) -> bool:
    """Whether a field strength (T) uses the 3T parameter column."""
    if not field_t > 0:
        raise ValueError(f"expected a positive field strength in tesla, got {field_t}")
    return field_t > 2.2


def draw_subject_tissues(rng: np.random.Generator, field_t: float, spread: float = 0.03) -> dict[str, TissueValues]:
    """Draw one subject's tissue parameters around the centres.

    Args:
        rng: the subject's generator.
        field_t: field strength in tesla (selects the 1.5T or 3T column).
        spread: relative standard deviation of the draw (clipped at 2.5 sigma).

    Returns:
        ``{tissue: TissueValues}`` for every tissue of :data:`TISSUES`.
    """
    hi = is_3t(field_t)
    out: dict[str, TissueValues] = {}
    for name in sorted(TISSUES):
        t = TISSUES[name]
        j = 1.0 + spread * np.clip(rng.standard_normal(3), -2.5, 2.5)
        t1 = (t.t1_3 if hi else t.t1_15) * j[0]
        t2 = (t.t2_3 if hi else t.t2_15) * j[1]
        post = t.t1_post_3 if hi else t.t1_post_15
        out[name] = TissueValues(
            float(t1), float(t2), float(min(t.pd * j[2], 1.0)), None if post is None else float(post * j[0])
        )
    return out


def spin_echo(
    pd: np.ndarray | float, t1: np.ndarray | float, t2: np.ndarray | float, tr: float, te: float
) -> np.ndarray:
    """Spin-echo / TSE magnitude ``PD (1 - exp(-TR/T1)) exp(-TE/T2)`` (arrays broadcast)."""
    return np.asarray(pd) * (1.0 - np.exp(-tr / np.asarray(t1))) * np.exp(-te / np.asarray(t2))


def inversion_recovery(
    pd: np.ndarray | float, t1: np.ndarray | float, t2: np.ndarray | float, tr: float, te: float, ti: float
) -> np.ndarray:
    """Inversion-recovery magnitude ``PD |1 - 2 exp(-TI/T1) + exp(-TR/T1)| exp(-TE/T2)``."""
    t1 = np.asarray(t1)
    return np.asarray(pd) * np.abs(1.0 - 2.0 * np.exp(-ti / t1) + np.exp(-tr / t1)) * np.exp(-te / np.asarray(t2))


def tissue_signals(
    tissues: dict[str, TissueValues], protocol: Protocol, *, tr: float, te: float, ti: float | None, fat_residual: float
) -> dict[str, float]:
    """Signal of every tissue for one acquisition.

    Args:
        tissues: the subject's parameters (:func:`draw_subject_tissues`).
        protocol: the protocol (signal model, fat suppression, contrast agent).
        tr, te, ti: the acquisition's actual timings in ms (a site may vary them a little).
        fat_residual: fraction of fat signal left by fat suppression (used when ``protocol.fat_sat``).

    Returns:
        ``{tissue: signal}`` relative to a fully relaxed tissue of PD 1.
    """
    out: dict[str, float] = {}
    for name, v in tissues.items():
        t1 = v.t1_post if (protocol.contrast_agent and v.t1_post is not None) else v.t1
        if ti is not None:
            s = inversion_recovery(v.pd, t1, v.t2, tr, te, ti)
        else:
            s = spin_echo(v.pd, t1, v.t2, tr, te)
        if protocol.fat_sat and name in FAT_TISSUES:
            s = s * fat_residual
        out[name] = float(s)
    if "marrow" in out and "marrow_water" in out:
        out["marrow"] = (1.0 - MARROW_WATER) * out["marrow"] + MARROW_WATER * out.pop("marrow_water")
    return out
