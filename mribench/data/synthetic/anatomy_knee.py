"""Procedural coronal knee anatomy.

Signed-distance shapes (mm, negative inside) for the distal femur (shaft, metaphysis, two condyles,
intercondylar notch), the tibia (plateau with tibial spines, shaft) and the fibular head, each a
cortical shell around fatty marrow; articular cartilage on the condyles and plateau; menisci as
wedges at the joint margins; cruciate and collateral ligaments; joint fluid; muscle with fatty
septa, periarticular and subcutaneous fat and skin. Subjects vary in size, bone shapes, cartilage
and fat thickness, joint-line tilt, position and rotation; slices vary with their anterior-posterior
position (notch depth, cruciates, fibula), and each slice averages sub-planes across its thickness.

Image orientation follows fastMRI knee data: rows are the read-out direction (superior at the top,
femur above tibia), columns the phase-encoding direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAYERS = ("skin", "fat", "muscle", "fluid", "meniscus", "cartilage", "bone")
"""Tissues a knee slice uses (marrow is ``fat``, ligaments are ``meniscus``)."""


@dataclass(frozen=True)
class KneeSubject:
    """One simulated knee (all lengths in mm)."""

    scale: float
    angle: float  # in-plane rotation (rad)
    shift: np.ndarray  # (2,) (read, phase)
    joint_y: float  # joint line position (read, + inferior)
    tilt: float  # joint-line tilt (varus/valgus, rad)
    femur: np.ndarray  # shaft half-width, condyle ry, condyle rx, condyle spread, notch width, notch depth
    tibia: np.ndarray  # plateau half-width, shaft half-width, spine height, concavity
    gap: float  # bone-to-bone distance at the joint
    cartilage: float
    cortex: np.ndarray  # (shaft, epiphysis)
    leg: np.ndarray  # half-width at the joint, thigh flare, calf taper, centre offset
    fat: np.ndarray  # subcutaneous fat (medial, lateral)
    meniscus: float  # meniscus width
    fluid: float  # amount of joint fluid
    septa: np.ndarray  # (3, 4) wave vectors and phases of muscle septa
    slice_s: np.ndarray  # (S,) anterior-posterior slice positions


def draw_knee_subject(rng: np.random.Generator, n_slices: int, spacing_mm: float) -> KneeSubject:
    """Draw a knee with ``n_slices`` coronal slices ``spacing_mm`` apart around the notch."""
    if n_slices < 1:
        raise ValueError(f"expected at least one slice, got {n_slices}")
    span = spacing_mm * (n_slices - 1)
    s0 = rng.uniform(-6.0, 4.0) - span / 2
    return KneeSubject(
        scale=float(rng.uniform(0.9, 1.1)),
        angle=float(np.deg2rad(rng.uniform(-6, 6))),
        shift=rng.uniform([-8.0, -6.0], [8.0, 6.0]),
        joint_y=float(rng.uniform(-6.0, 10.0)),
        tilt=float(np.deg2rad(rng.uniform(-3.5, 3.5))),
        femur=np.array(
            [
                rng.uniform(12.5, 16.0),
                rng.uniform(17.0, 22.0),
                rng.uniform(14.0, 17.5),
                rng.uniform(17.0, 21.0),
                rng.uniform(8.0, 11.0),
                rng.uniform(14.0, 20.0),
            ]
        ),
        tibia=np.array(
            [rng.uniform(35.0, 41.0), rng.uniform(13.5, 17.0), rng.uniform(3.0, 5.5), rng.uniform(0.5, 2.0)]
        ),
        gap=float(rng.uniform(4.5, 6.5)),
        cartilage=float(rng.uniform(1.8, 2.9)),
        cortex=np.array([rng.uniform(2.5, 4.0), rng.uniform(0.7, 1.2)]),
        leg=np.array(
            [rng.uniform(52.0, 64.0), rng.uniform(0.08, 0.25), rng.uniform(0.0, 0.12), rng.uniform(-4.0, 4.0)]
        ),
        fat=rng.uniform([5.0, 3.0], [14.0, 9.0]),
        meniscus=float(rng.uniform(9.0, 13.0)),
        fluid=float(rng.uniform(0.3, 1.0)),
        septa=np.stack(
            [
                rng.uniform(0.08, 0.2, 3) * rng.choice([-1.0, 1.0], 3),
                rng.normal(0, 0.015, 3),
                rng.uniform(0, 2 * np.pi, 3),
                np.ones(3),
            ],
            1,
        ),
        slice_s=s0 + spacing_mm * np.arange(n_slices),
    )


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth union of two signed-distance fields."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def _ellipse(y: np.ndarray, x: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    """Approximate signed distance to an ellipse."""
    r = np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2)
    return (r - 1.0) * min(ry, rx)


def _capsule(
    y: np.ndarray, x: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], radius: float
) -> np.ndarray:
    """Signed distance to a segment thickened by ``radius``."""
    py, px = y - p0[0], x - p0[1]
    dy, dx = p1[0] - p0[0], p1[1] - p0[1]
    t = np.clip((py * dy + px * dx) / (dy * dy + dx * dx), 0.0, 1.0)
    return np.sqrt((py - t * dy) ** 2 + (px - t * dx) ** 2) - radius


def _triangle(y: np.ndarray, x: np.ndarray, pts: list[tuple[float, float]]) -> np.ndarray:
    """Signed distance to a triangle (negative inside)."""
    d = np.full(y.shape, np.inf)
    for i in range(3):
        d = np.minimum(d, _capsule(y, x, pts[i], pts[(i + 1) % 3], 0.0))
    inside = np.ones(y.shape, dtype=bool)
    orient = np.sign(
        (pts[1][1] - pts[0][1]) * (pts[2][0] - pts[0][0]) - (pts[1][0] - pts[0][0]) * (pts[2][1] - pts[0][1])
    )
    for i in range(3):
        (ay, ax), (by, bx) = pts[i], pts[(i + 1) % 3]
        cross = (bx - ax) * (y - ay) - (by - ay) * (x - ax)
        inside &= np.sign(cross) == orient
    return np.where(inside, -d, d)


def _inside(sdf: np.ndarray, px: float) -> np.ndarray:
    """Partial-volume fraction of the inside of a signed-distance shape."""
    return np.clip(0.5 - sdf / px, 0.0, 1.0)


def _paint(frac: dict[str, np.ndarray], tissue: str, alpha: np.ndarray) -> None:
    alpha = np.clip(alpha, 0.0, 1.0)
    for k in frac:
        frac[k] *= 1.0 - alpha
    frac[tissue] += alpha


def _plane(k: KneeSubject, y: np.ndarray, x: np.ndarray, s: float, px: float) -> dict[str, np.ndarray]:
    frac = {t: np.zeros(y.shape, dtype=np.float32) for t in LAYERS}
    j = float(k.joint_y)
    g2 = float(k.gap) / 2
    f_shaft, c_ry, c_rx, c_dx, n_w, n_d = (float(v) for v in k.femur)
    t_w, t_shaft, spine, concave = (float(v) for v in k.tibia)
    post = float(np.clip((s + 8.0) / 16.0, 0.0, 1.0))  # 0 anterior .. 1 posterior

    # --- leg outline, fat, muscle
    lw, flare, taper, lc = (float(v) for v in k.leg)
    half = lw * (1 + flare * _smoothstep((j - y) / 90.0) - taper * _smoothstep((y - j) / 90.0))
    sdf_leg = np.abs(x - lc) - half
    _paint(frac, "skin", _inside(sdf_leg, px))
    medial = x < lc
    tf = np.where(medial, np.float32(k.fat[0]), np.float32(k.fat[1])) * (1 + 0.3 * _smoothstep((j - y) / 60.0))
    _paint(frac, "fat", _inside(sdf_leg + 1.6, px))
    muscle_w = _smoothstep((np.abs(y - j) - 12.0) / 22.0)
    wave = sum(
        np.sin(float(a) * x + float(b) * y + 0.6 * np.sin(0.04 * y + float(ph)) + float(ph)) for a, b, ph, _ in k.septa
    )
    septa = np.clip(1.0 - np.abs(wave) / 0.12, 0.0, 1.0) * 0.5
    _paint(frac, "muscle", _inside(sdf_leg + 1.6 + tf, px) * muscle_w * (1 - septa))

    # --- femur
    cy = j - g2 - c_ry
    cond = np.minimum(_ellipse(y, x, cy, -c_dx, c_ry, c_rx), _ellipse(y, x, cy, c_dx, c_ry, c_rx))
    meta_half = f_shaft + (c_dx + c_rx - 3.0 - f_shaft) * _smoothstep((y - (cy - 55.0)) / 45.0)
    meta = np.maximum(np.abs(x) - meta_half, y - cy)
    femur = _smin(cond, meta, 4.0)
    depth = n_d * (0.45 + 0.75 * post)
    notch = _ellipse(y, x, j - g2, 0.0, depth, n_w * (0.8 + 0.4 * post))
    femur = np.maximum(femur, -notch)

    # --- tibia (plateau tilted with the joint line), fibular head
    top = (
        j
        + g2
        + concave * np.cos(np.clip(x / t_w, -1, 1) * np.pi * 2) * 0.5
        - spine * np.exp(-((np.abs(x) - 5.0) ** 2) / 8.0)
    )
    top = top + float(np.tan(k.tilt)) * x
    t_half = t_shaft + (t_w - t_shaft) * (1 - _smoothstep((y - (j + 12.0)) / 40.0))
    tibia = np.maximum(top - y, np.abs(x) - t_half)
    corner = _ellipse(y, x, j + g2 + 4.0, 0.0, 8.0, t_w + 0.5)
    tibia = np.maximum(tibia, np.minimum(corner, (j + g2 + 4.0) - y))  # rounded plateau corners
    fib_on = float(_smoothstep(np.asarray((s - 1.0) / 6.0)))
    fib = _ellipse(y, x, j + g2 + 20.0, t_w + 1.0, 9.0, 7.5) + (1 - fib_on) * 30.0

    # --- joint fluid: film between the bones and recesses at the margins
    joint = np.maximum(np.abs(y - j) - (g2 + 1.0), np.abs(x) - (t_w + 1.0))
    gw = 1.0 + 2.0 * float(k.fluid)  # gutters along the condyles
    gutter = np.minimum(
        _ellipse(y, x, cy + 2.0, -(c_dx + c_rx), 12.0, gw), _ellipse(y, x, cy + 2.0, c_dx + c_rx, 12.0, gw)
    )
    _paint(frac, "fluid", _inside(np.minimum(joint, gutter), px) * (0.5 + 0.5 * float(k.fluid)))

    # --- menisci (wedges at the joint margins), collateral and cruciate ligaments
    for side in (-1.0, 1.0):
        mw = float(k.meniscus) * (0.8 + 0.4 * post)
        pts = [(j - g2 - 1.2, side * (t_w + 1.5)), (j + g2 + 1.2, side * (t_w + 1.5)), (j + 0.2, side * (t_w - mw))]
        _paint(frac, "meniscus", _inside(_triangle(y, x, pts), px))
    mcl = _capsule(y, x, (j - 30.0, -(t_w + 3.5)), (j + 35.0, -(t_w + 2.0)), 1.2)
    lcl = _capsule(y, x, (j - 25.0, t_w + 3.0), (j + 20.0, t_w + 2.5), 1.4) + (1 - fib_on) * 30.0
    _paint(frac, "meniscus", _inside(np.minimum(mcl, lcl), px) * 0.9)
    acl_on = float(np.exp(-((s + 3.0) ** 2) / (2 * 3.5**2)))
    pcl_on = float(np.exp(-((s - 6.0) ** 2) / (2 * 3.5**2)))
    acl = _capsule(y, x, (j - g2 - depth * 0.8, 4.0), (j + g2 - 1.0, -3.0), 3.0)
    pcl = _capsule(y, x, (j - g2 - depth * 0.8, -4.0), (j + g2 + 2.0, 1.0), 3.5)
    _paint(frac, "meniscus", _inside(acl, px) * acl_on + _inside(pcl, px) * pcl_on)

    # --- articular cartilage, then bone (cortex) over it, then marrow
    fem_cart = (_inside(femur - float(k.cartilage), px) - _inside(femur, px)) * _smoothstep((y - (cy - 4.0)) / 4.0)
    fem_cart = fem_cart * (1 - _inside(notch + 1.0, px))
    tib_cart = (_inside(tibia - float(k.cartilage), px) - _inside(tibia, px)) * (
        1 - _smoothstep((y - (j + g2 + 3.0)) / 2.0)
    )
    tib_cart = tib_cart * _smoothstep((np.abs(x) - 6.0) / 2.0)
    _paint(frac, "cartilage", np.clip(fem_cart + tib_cart, 0.0, 1.0))
    bones = np.minimum(np.minimum(femur, tibia), fib)
    _paint(frac, "bone", _inside(bones, px))
    shaft_w = _smoothstep((np.abs(y - j) - 30.0) / 30.0)
    cortex = float(k.cortex[1]) + float(k.cortex[0] - k.cortex[1]) * shaft_w
    _paint(frac, "fat", _inside(bones + cortex, px))
    return frac


def knee_slice(
    subject: KneeSubject, index: int, grid_shape: tuple[int, int], px: float, thickness_mm: float
) -> dict[str, np.ndarray]:
    """Tissue fractions of one coronal slice on the fine grid.

    Args:
        subject: the knee.
        index: slice number (``subject.slice_s[index]``).
        grid_shape: (fH, fW) fine grid; pixel ``(i, j)`` at ``((i - fH//2) px, (j - fW//2) px)`` mm.
        px: fine pixel size in mm.
        thickness_mm: slice thickness; sub-planes 1 mm apart across it are averaged.

    Returns:
        ``{tissue: float32 (fH, fW)}`` partial-volume fractions of :data:`LAYERS`.
    """
    fH, fW = grid_shape
    yy = ((np.arange(fH) - fH // 2)[:, None] * px - subject.shift[0]).astype(np.float32)
    xx = ((np.arange(fW) - fW // 2)[None, :] * px - subject.shift[1]).astype(np.float32)
    c, s_ = float(np.cos(subject.angle)), float(np.sin(subject.angle))
    y = (c * yy - s_ * xx) / float(subject.scale)
    x = (s_ * yy + c * xx) / float(subject.scale)
    n_sub = max(1, int(round(thickness_mm)))
    offsets = (np.arange(n_sub) - (n_sub - 1) / 2) * (thickness_mm / n_sub)
    s = float(subject.slice_s[index])
    acc: dict[str, np.ndarray] = {t: np.zeros(grid_shape, dtype=np.float32) for t in LAYERS}
    for off in offsets:
        plane = _plane(subject, y, x, s + float(off), px / float(subject.scale))
        for t in LAYERS:
            acc[t] += plane[t]
    return {t: (acc[t] / n_sub).astype(np.float32) for t in LAYERS}


def coverage(grid_shape: tuple[int, int], px: float, half_length_mm: float = 80.0) -> np.ndarray:
    """Transmit/receive coverage of a knee coil along the leg (read direction).

    Returns:
        float32 (fH, 1): ~1 over the coil, falling smoothly to ~0 beyond ``half_length_mm``.
    """
    y = (np.arange(grid_shape[0]) - grid_shape[0] // 2)[:, None] * px
    return (1.0 / np.sqrt(1.0 + (y / half_length_mm) ** 12)).astype(np.float32)


def knee_extent_mm() -> tuple[float, float]:
    """(read, phase) semi-axes of the knee for coil placement."""
    return 75.0, 65.0
