"""Procedural 3D knee anatomy, sliced coronally (fastMRI) or sagittally (Stanford-like 3D FSE).

A knee is a set of signed-distance shapes in 3D (mm, negative inside) in a knee frame: ``x``
medial (-) to lateral (+) of a right knee, ``y`` superior (-) to inferior (+) with the joint line at
0, ``z`` anterior (-) to posterior (+). Structures: distal femur (shaft, metaphysis, two condyles,
intercondylar notch, trochlear groove), tibia (plateau with posterior slope, spines, tuberosity,
shaft), fibula, patella, each a cortical shell around fatty marrow (trabecular texture comes from
:mod:`~mribench.data.synthetic.texture`); articular cartilage of femur, tibia and patella; C-shaped
menisci (wedge cross-section; discoid and torn variants); cruciate and collateral ligaments,
patellar and quadriceps tendons; joint fluid (film, suprapatellar recess, gutters, Baker's cyst
when the subject has an effusion); muscles around the joint (vasti, hamstrings, gastrocnemius
heads, popliteus, soleus, tibialis anterior) separated by fat septa; popliteal vessels; Hoffa's
fat pad and subcutaneous fat; skin.

Subjects differ in overall size (+-18 %, per-axis jitter), in every bone and soft-tissue
dimension, flexion (0-20 degrees), varus/valgus, patellar height, cartilage thickness, meniscal
width and variants, effusion, fat and muscle bulk, side (left knees are mirrored), rotation and
position in the field of view. A volume covers the whole organ: coronal slices from the patella to
the posterior capsule, sagittal slices from the medial to the lateral soft tissue. Each slice
averages sub-planes across its thickness (partial volume).

Image orientation: rows are the read-out direction, superior at the top; columns are the phase-
encoding direction: medial-lateral (coronal, fastMRI knee files) or anterior-posterior (sagittal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAYERS = ("skin", "fat", "muscle", "vessel", "fluid", "meniscus", "cartilage", "bone", "marrow")
"""Tissues a knee slice uses (``meniscus`` also stands for ligaments and tendons)."""

VIEWS = ("coronal", "sagittal")


@dataclass(frozen=True)
class KneeSubject:
    """One simulated knee (lengths in mm, angles in radians).

    Attributes:
        view: ``coronal`` or ``sagittal``.
        mirror: -1 for a left knee (x mirrored), +1 for a right one.
        scale: (3,) size factors along x, y, z.
        rotation: (3, 3) orientation of the knee frame in the scanner frame (rows: image rows,
            image columns, slice normal).
        shift: (3,) position of the knee centre in the scanner frame.
        p: shape parameters (see :func:`draw_knee_subject`).
        slice_pos: (S,) slice positions along the slice normal (scanner frame).
    """

    view: str
    mirror: float
    scale: np.ndarray
    rotation: np.ndarray
    shift: np.ndarray
    p: dict[str, float]
    slice_pos: np.ndarray


def _rot(axis: int, angle: float) -> np.ndarray:
    c, s = float(np.cos(angle)), float(np.sin(angle))
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def draw_knee_subject(rng: np.random.Generator, view: str, n_slices: int, thickness_mm: float) -> KneeSubject:
    """Draw a knee and ``n_slices`` slice positions that cover it.

    Args:
        rng: the volume's generator.
        view: ``coronal`` (slices from the patella to the posterior capsule) or ``sagittal``
            (from the medial to the lateral soft tissue).
        n_slices: number of slices, spread evenly over the organ (never closer than the thickness).
        thickness_mm: slice thickness.

    Returns:
        The subject.
    """
    if view not in VIEWS:
        raise ValueError(f"expected view in {VIEWS}, got {view!r}")
    if n_slices < 1:
        raise ValueError(f"expected at least one slice, got {n_slices}")
    u = rng.uniform
    size = float(np.clip(rng.normal(1.0, 0.08), 0.82, 1.18))
    scale = size * np.clip(rng.normal(1.0, 0.035, 3), 0.92, 1.08)
    fat = float(u(0.6, 1.8))
    p: dict[str, float] = {
        "g2": u(2.0, 3.2),  # half the femorotibial gap (cartilage fills most of it)
        "shaft_r": u(12.0, 15.0),
        "cond_ry": u(21.0, 26.0),
        "cond_rz": u(27.0, 33.0),
        "cond_rx_m": u(14.5, 17.5),
        "cond_rx_l": u(13.5, 16.5),
        "cond_dx": u(19.0, 23.0),
        "notch_w": u(16.0, 23.0),
        "notch_z": u(-9.0, -3.0),
        "notch_top": u(-34.0, -26.0),
        "meta_rx": u(31.0, 36.0),
        "tib_rx": u(36.0, 42.0),
        "tib_rz": u(24.0, 30.0),
        "tib_slope": float(np.tan(np.deg2rad(u(3.0, 11.0)))),
        "spine_h": u(3.0, 6.0),
        "tub": u(4.0, 8.0),
        "fib_y": u(26.0, 36.0),
        "pat_y": u(-36.0, -20.0),  # patellar height (alta / baja)
        "pat_rx": u(20.0, 25.0),
        "pat_ry": u(18.0, 23.0),
        "pat_rz": u(8.5, 11.5),
        "cart": u(1.7, 3.0),
        "cart_pat": u(2.5, 4.0),
        "cortex": u(0.8, 1.5),
        "cortex_shaft": u(2.5, 4.5),
        "men_w": u(8.0, 12.0),
        "men_h": u(4.5, 6.5),
        "discoid": float(rng.uniform() < 0.06),
        "tear": float(rng.uniform() < 0.2),
        "acl_r": u(3.8, 5.2),
        "pcl_r": u(4.8, 6.2),
        "effusion": float(rng.choice([0.2, 0.5, 1.0, 2.0], p=[0.35, 0.35, 0.2, 0.1])) * u(0.7, 1.3),
        "baker": float(rng.uniform() < 0.15),
        "fat": fat,
        "leg_a": u(40.0, 46.0) + 5.0 * fat,  # half the medial-lateral width at the joint line: 86-110 mm
        "leg_b_ant": u(58.0, 64.0) + 3.0 * fat,
        "leg_b_post": u(52.0, 60.0) + 5.0 * fat,
        "muscle": u(0.8, 1.2),
        "flex": float(np.deg2rad(u(0.0, 20.0))),
        "valgus": float(np.deg2rad(rng.normal(0.0, 3.0))),
    }
    mirror = -1.0 if rng.uniform() < 0.5 else 1.0
    # scanner frame: rows = read (superior-inferior), columns = phase, normal = slice direction
    if view == "coronal":
        base = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # (row, col, normal) <- (y, x, z)
    else:
        base = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # (row, col, normal) <- (y, z, x)
    wobble = _rot(0, rng.normal(0, 0.05)) @ _rot(1, rng.normal(0, 0.06)) @ _rot(2, rng.normal(0, 0.08))
    rotation = base @ wobble
    shift = np.array([u(-12.0, 12.0), u(-10.0, 10.0), 0.0])
    if view == "coronal":  # patella (anterior) to posterior capsule
        lo, hi = -(p["cond_rz"] + 2.0 * p["pat_rz"] + 4.0), 44.0
        sc = float(scale[2])
    else:  # medial to lateral soft tissue
        lo, hi = -(p["leg_a"] - 10.0), p["leg_a"] - 10.0
        sc = float(scale[0])
    span = (hi - lo) * sc
    step = max(span / max(n_slices - 1, 1), thickness_mm)
    centre = (lo + hi) / 2 * sc + u(-2.0, 2.0)
    slice_pos = centre + step * (np.arange(n_slices) - (n_slices - 1) / 2)
    return KneeSubject(view, mirror, scale, rotation, shift, p, slice_pos.astype(np.float64))


# --------------------------------------------------------------------------- signed distances


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth union of two signed-distance fields (blend radius ``k`` mm)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def _ellipsoid(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, c: tuple[float, float, float], r: tuple[float, float, float]
) -> np.ndarray:
    """Signed distance to an ellipsoid, first-order corrected (exact on the surface's normal)."""
    dx, dy, dz = (x - c[0]) / r[0], (y - c[1]) / r[1], (z - c[2]) / r[2]
    k0 = np.sqrt(dx * dx + dy * dy + dz * dz)
    k1 = np.sqrt((dx / r[0]) ** 2 + (dy / r[1]) ** 2 + (dz / r[2]) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, np.float32(1e-6))


def _capsule(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    a: tuple[float, float, float],
    b: tuple[float, float, float],
    r0: float,
    r1: float | None = None,
    squash: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """Distance to a segment ``a``-``b`` thickened by a radius varying from ``r0`` to ``r1``.

    ``squash`` divides the coordinates of the offset from the axis (a flat band: e.g. (4, 1, 1)
    makes it four times wider along x than thick).
    """
    px, py, pz = x - a[0], y - a[1], z - a[2]
    bx, by, bz = b[0] - a[0], b[1] - a[1], b[2] - a[2]
    t = np.clip((px * bx + py * by + pz * bz) / (bx * bx + by * by + bz * bz), 0.0, 1.0)
    ox, oy, oz = (px - t * bx) / squash[0], (py - t * by) / squash[1], (pz - t * bz) / squash[2]
    r = r0 if r1 is None else r0 + (r1 - r0) * t
    return np.sqrt(ox * ox + oy * oy + oz * oz) - r


def _frac(sdf: np.ndarray, px: float) -> np.ndarray:
    """Partial-volume fraction of the inside of a signed-distance shape (linear over one pixel)."""
    return np.clip(0.5 - sdf / np.float32(px), 0.0, 1.0).astype(np.float32)


def _smooth(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _paint(frac: dict[str, np.ndarray], tissue: str, alpha: np.ndarray) -> None:
    alpha = np.clip(alpha, 0.0, 1.0).astype(np.float32)
    keep = 1.0 - alpha
    for k in frac:
        frac[k] *= keep
    frac[tissue] += alpha


def _muscles(x: np.ndarray, y: np.ndarray, z: np.ndarray, p: dict[str, float], g2: float) -> list[np.ndarray]:
    """Signed distances of the muscles around the knee (femoral frame; below the joint roughly so)."""
    m = p["muscle"]
    return [
        _capsule(x, y, z, (-30.0, -160.0, -12.0), (-36.0, -30.0, -14.0), 24.0 * m, 14.0 * m),  # vastus medialis
        _capsule(x, y, z, (34.0, -160.0, -6.0), (38.0, -50.0, -8.0), 22.0 * m, 9.0 * m),  # vastus lateralis
        _capsule(x, y, z, (0.0, -160.0, -26.0), (0.0, -75.0, -28.0), 17.0 * m, 9.0 * m),  # intermedius
        _capsule(x, y, z, (-28.0, -160.0, 32.0), (-32.0, -10.0, 38.0), 19.0 * m, 8.0 * m),  # semimembranosus
        _capsule(x, y, z, (30.0, -160.0, 28.0), (40.0, g2 + 22.0, 22.0), 18.0 * m, 6.0 * m),  # biceps femoris
        _capsule(x, y, z, (-22.0, -30.0, 38.0), (-17.0, 160.0, 50.0), 12.0 * m, 24.0 * m),  # gastrocnemius (medial)
        _capsule(x, y, z, (22.0, -28.0, 36.0), (18.0, 160.0, 48.0), 11.0 * m, 21.0 * m),  # gastrocnemius (lateral)
        _capsule(x, y, z, (27.0, g2 + 2.0, 24.0), (-13.0, g2 + 42.0, 27.0), 6.0 * m, 9.0 * m),  # popliteus
        _capsule(x, y, z, (4.0, g2 + 38.0, 32.0), (2.0, 160.0, 34.0), 10.0 * m, 20.0 * m),  # soleus
        _capsule(x, y, z, (23.0, g2 + 24.0, -13.0), (21.0, 160.0, -11.0), 9.0 * m, 14.0 * m),  # tibialis anterior
    ]


def _up2(c: np.ndarray) -> np.ndarray:
    """Linear 2x up-sampling of a field sampled at the even pixels of the fine grid (fH/2, fW/2) -> (fH, fW)."""
    h, w = c.shape
    rows = np.empty((2 * h, w), dtype=np.float32)
    rows[0::2] = c
    rows[1:-1:2] = 0.5 * (c[:-1] + c[1:])
    rows[-1] = 1.5 * c[-1] - 0.5 * c[-2]
    out = np.empty((2 * h, 2 * w), dtype=np.float32)
    out[:, 0::2] = rows
    out[:, 1:-1:2] = 0.5 * (rows[:, :-1] + rows[:, 1:])
    out[:, -1] = 1.5 * rows[:, -1] - 0.5 * rows[:, -2]
    return out


def _plane(k: KneeSubject, x: np.ndarray, y: np.ndarray, z: np.ndarray, px: float) -> dict[str, np.ndarray]:
    """Tissue fractions of one plane on the fine grid.

    The signed distances are evaluated at the even pixels of the fine grid (``x``, ``y``, ``z``:
    knee-frame coordinates there, (fH/2, fW/2)) and linearly up-sampled before the partial-volume
    fractions are taken at the fine pixel size ``px`` (distance fields are smooth: 4x cheaper, same edges).
    """
    p = k.p
    fine = (2 * x.shape[0], 2 * x.shape[1])
    frac = {t: np.zeros(fine, dtype=np.float32) for t in LAYERS}
    U = _up2
    g2 = p["g2"]

    # --- leg outline (elliptic cylinder, wider in the thigh, posterior bulge of the calf)
    thigh = _smooth((-y - 20.0) / 120.0)
    calf = _smooth((y - 30.0) / 120.0)
    a = p["leg_a"] * (1.0 + 0.12 * thigh - 0.04 * calf)
    b = np.where(z < 4.0, p["leg_b_ant"] * (1.0 + 0.05 * thigh), p["leg_b_post"] * (1.0 + 0.1 * calf))
    xr, zr = x / a, (z - 4.0) / b
    rr = np.sqrt(xr * xr + zr * zr)
    grad = np.sqrt((xr / a) ** 2 + (zr / b) ** 2) / np.maximum(rr, np.float32(1e-6))
    leg = (rr - 1.0) / np.maximum(grad, np.float32(1e-6))
    _paint(frac, "skin", _frac(U(leg), px))
    _paint(frac, "fat", _frac(U(leg + 1.6), px))
    fat_layer = p["fat"] * (5.0 + 4.0 * _smooth(-x / 40.0) + 3.0 * _smooth((z - 10.0) / 40.0))

    # --- muscles, separated by fat septa where two meet (Voronoi boundary of their distances)
    ms = np.stack(_muscles(x, y, z, p, g2))
    part = np.partition(ms, 1, axis=0)
    first, second = part[0], part[1]
    septum = np.clip((second - first) / 1.2, 0.0, 1.0)
    within = _frac(U(np.maximum(first, leg + 1.6 + fat_layer)), px)
    _paint(frac, "muscle", within * U(septum))

    # --- popliteal vessels in the posterior fat (flow voids)
    art = _capsule(x, y, z, (-3.0, -150.0, 40.0), (-1.0, 150.0, 36.0), 3.2)
    vein = _capsule(x, y, z, (4.0, -150.0, 45.0), (5.0, 150.0, 40.0), 4.5)
    _paint(frac, "vessel", _frac(U(np.minimum(art, vein)), px))

    # --- femur (femoral frame)
    ry = p["cond_ry"]
    cy = -(ry + g2)
    # shaft flaring like a trumpet into the metaphysis (elliptic cross-sections)
    flare = np.exp(np.minimum(y - cy, 0.0) / 22.0)
    mrx = p["shaft_r"] + (p["meta_rx"] - p["shaft_r"]) * flare
    mrz = p["shaft_r"] + (p["cond_rz"] - 6.0 - p["shaft_r"]) * flare
    mr = np.sqrt((x / mrx) ** 2 + ((z - 1.0) / mrz) ** 2)
    meta = np.maximum((mr - 1.0) * np.minimum(mrx, mrz), y - cy)
    shaft = meta
    cond_m = _ellipsoid(x, y, z, (-p["cond_dx"], cy, 3.0), (p["cond_rx_m"], ry, p["cond_rz"]))
    cond_l = _ellipsoid(x, y, z, (p["cond_dx"], cy + 1.0, 1.0), (p["cond_rx_l"], ry - 1.0, p["cond_rz"] - 1.5))
    femur = _smin(shaft, _smin(cond_m, cond_l, 5.0), 7.0)
    nw = p["notch_w"] / 2
    arch = np.sqrt((x / nw) ** 2 + ((y - g2) / (g2 - p["notch_top"])) ** 2)  # inverted-U intercondylar arch
    notch = np.maximum((arch - 1.0) * nw, p["notch_z"] - z)
    groove = np.maximum(np.sqrt(x * x + (z + p["cond_rz"] + 4.0) ** 2) - 9.0, -62.0 - y)
    femur = np.maximum(femur, -np.minimum(notch, groove))

    # --- patella, tendons (femoral frame)
    py_, pz = p["pat_y"], -(p["cond_rz"] + p["pat_rz"] + 6.0)
    patella = _ellipsoid(x, y, z, (0.0, py_, pz), (p["pat_rx"], p["pat_ry"], p["pat_rz"]))
    quad = _capsule(
        x, y, z, (0.0, py_ - p["pat_ry"] + 4.0, pz + 1.0), (0.0, -150.0, pz + 14.0), 3.0, squash=(5.0, 1, 1)
    )
    tub_y = g2 + 30.0

    # --- tibia, fibula, menisci, distal ligaments: tibial frame (flexion about x, varus/valgus about z)
    cf, sf = np.float32(np.cos(p["flex"])), np.float32(np.sin(p["flex"]))
    cv, sv = np.float32(np.cos(p["valgus"])), np.float32(np.sin(p["valgus"]))
    ty = cf * y - sf * (z - 8.0)
    tz = sf * y + cf * (z - 8.0) + 8.0
    tx = cv * x - sv * ty
    ty = sv * x + cv * ty
    top = g2 + p["tib_slope"] * tz
    tflare = np.exp(-np.maximum(ty - g2 - 4.0, 0.0) / 16.0) * (1.0 - 0.12 * _smooth((g2 + 4.0 - ty) / 4.0))
    trx = 14.0 + (p["tib_rx"] - 14.0) * tflare
    trz = 13.0 + (p["tib_rz"] - 13.0) * tflare
    tr = np.sqrt((tx / trx) ** 2 + ((tz - 4.0) / trz) ** 2)
    head = np.maximum((tr - 1.0) * np.minimum(trx, trz), top - ty)
    spines = np.minimum(
        _ellipsoid(tx, ty, tz, (-5.0, g2 + 1.0 - p["spine_h"] / 2, 0.0), (3.5, p["spine_h"], 8.0)),
        _ellipsoid(tx, ty, tz, (5.0, g2 + 1.0 - p["spine_h"] / 2, 2.0), (3.5, p["spine_h"] * 0.9, 8.0)),
    )
    tub = _ellipsoid(tx, ty, tz, (0.0, tub_y, -p["tib_rz"] + 3.0), (13.0, 12.0, p["tub"]))
    tibia = _smin(np.minimum(head, spines), tub, 4.0)
    fib_c = (p["tib_rx"] - 6.0, g2 + p["fib_y"], 18.0)
    fibula = _smin(
        _ellipsoid(tx, ty, tz, fib_c, (10.0, 11.0, 10.0)),
        _capsule(tx, ty, tz, fib_c, (fib_c[0] - 2.0, g2 + 220.0, 17.0), 7.0),
        6.0,
    )
    tub_z = -p["tib_rz"] - p["tub"] + 2.0  # tendon insertion, tibial frame -> femoral frame
    ins = (0.0, float(cf * tub_y + sf * (tub_z - 8.0)), float(-sf * tub_y + cf * (tub_z - 8.0) + 8.0))
    pat_tendon = _capsule(x, y, z, (0.0, py_ + p["pat_ry"] - 3.0, pz + 1.0), ins, 2.0, squash=(6.0, 1, 1))

    # menisci: C-shaped wedges on the plateau periphery
    men = np.full(x.shape, np.float32(1e3))
    tear = np.full(x.shape, np.float32(1e3))
    for side, cx, r_out in ((-1.0, -p["cond_dx"], 19.0), (1.0, p["cond_dx"], 17.0)):
        rr_m = np.sqrt((tx - cx) ** 2 + ((tz - 2.0) * (0.85 if side < 0 else 0.97)) ** 2)
        width = p["men_w"] if not (side > 0 and p["discoid"]) else r_out - 2.0
        r_in = r_out - width
        t = np.clip((rr_m - r_in) / width, 0.0, 1.0)
        h = p["men_h"] * t**0.8
        ytop = g2 + p["tib_slope"] * tz
        wedge = np.maximum.reduce([rr_m - r_out, r_in - rr_m, (ytop - h) - ty, ty - ytop - 0.3, 5.0 - np.abs(tx)])
        men = np.minimum(men, wedge)
        if p["tear"] and side < 0:  # horizontal tear of the posterior horn of the medial meniscus
            line = np.abs(ty - (ytop - h * 0.45)) - 0.35
            tear = np.maximum.reduce([line, wedge + 0.8, 4.0 - tz])

    # cruciate and collateral ligaments (femoral frame; attach across the joint)
    acl = _capsule(x, y, z, (10.0, cy + 8.0, 18.0), (3.0, g2, -5.0), p["acl_r"], p["acl_r"] * 0.9, squash=(1.3, 1, 1))
    pcl = np.minimum(
        _capsule(x, y, z, (-10.0, cy + 5.0, 0.0), (-5.0, -6.0, 16.0), p["pcl_r"]),
        _capsule(x, y, z, (-5.0, -6.0, 16.0), (0.0, g2 + 9.0, 26.0), p["pcl_r"] * 0.9),
    )
    mcl = _capsule(
        x,
        y,
        z,
        (-(p["cond_dx"] + p["cond_rx_m"] + 2.5), cy, 0.0),
        (-(p["tib_rx"] + 1.5), g2 + 55.0, -2.0),
        1.6,
        squash=(1.0, 1.0, 4.0),
    )
    lcl = _capsule(
        x, y, z, (p["cond_dx"] + p["cond_rx_l"] + 2.5, cy + 2.0, 8.0), (fib_c[0] + 3.0, fib_c[1] - 7.0, 19.0), 2.4
    )

    # --- joint fluid: suprapatellar recess, gutters, film, Baker's cyst (when effused)
    e = p["effusion"]
    supra = _ellipsoid(x, y, z, (0.0, py_ - 26.0, pz + 12.0), (24.0, 18.0 + 4.0 * e, 1.0 + 3.0 * e))
    gut = np.minimum(
        _ellipsoid(x, y, z, (-(p["cond_dx"] + p["cond_rx_m"] + 1.0), cy, 2.0), (0.8 + 1.5 * e, 14.0, 20.0)),
        _ellipsoid(x, y, z, (p["cond_dx"] + p["cond_rx_l"] + 1.0, cy, 2.0), (0.8 + 1.5 * e, 14.0, 20.0)),
    )
    film = np.maximum.reduce(
        [np.abs(y) - (g2 + 0.6 + 0.4 * e), np.abs(x) - p["tib_rx"] + 7.0, np.abs(z - 3.0) - p["tib_rz"] + 3.0]
    )
    fluid = np.minimum.reduce([supra, gut, film])
    if p["baker"]:
        fluid = np.minimum(fluid, _ellipsoid(x, y, z, (-22.0, -4.0, 44.0), (6.0 + 3 * e, 12.0 + 4 * e, 5.0 + 2 * e)))
    _paint(frac, "fluid", _frac(U(fluid), px) * np.float32(min(1.0, 0.4 + 0.6 * e)))

    # --- ligaments, tendons, menisci
    _paint(frac, "meniscus", _frac(U(np.minimum.reduce([men, acl, pcl, mcl, lcl, quad, pat_tendon])), px))
    _paint(frac, "fluid", _frac(U(tear), px))

    # --- articular cartilage
    fem_region = np.maximum(
        _smooth((y + 38.0) / 8.0),
        np.maximum(
            _smooth((z - 6.0) / 8.0) * _smooth((y + 55.0) / 8.0), _smooth((-z - 14.0) / 6.0) * _smooth((y + 68.0) / 8.0)
        ),
    )
    cart = (_frac(U(femur - p["cart"]), px) - _frac(U(femur), px)) * U(fem_region)
    tib_region = (1.0 - _smooth((ty - top - 3.0) / 3.0)) * _smooth((np.abs(tx) - 7.0) / 2.0)
    cart = cart + (_frac(U(tibia - p["cart"]), px) - _frac(U(tibia), px)) * U(tib_region)
    cart = cart + (_frac(U(patella - p["cart_pat"]), px) - _frac(U(patella), px)) * U(_smooth((z - pz) / 3.0))
    _paint(frac, "cartilage", np.clip(cart, 0.0, 1.0))

    # --- bone: cortex over marrow (thicker cortex along the shafts)
    bones = np.minimum.reduce([femur, tibia, fibula, patella])
    _paint(frac, "bone", _frac(U(bones), px))
    cortex = p["cortex"] + (p["cortex_shaft"] - p["cortex"]) * _smooth((np.abs(y) - 45.0) / 40.0)
    _paint(frac, "marrow", _frac(U(bones + cortex), px))
    return frac


def knee_slice(
    subject: KneeSubject, index: int, grid_shape: tuple[int, int], px: float, thickness_mm: float
) -> dict[str, np.ndarray]:
    """Tissue fractions of one slice on the fine grid.

    Args:
        subject: the knee.
        index: slice number (``subject.slice_pos[index]``).
        grid_shape: (fH, fW) fine grid; pixel ``(i, j)`` at ``((i - fH//2) px, (j - fW//2) px)`` mm.
        px: fine pixel size in mm.
        thickness_mm: slice thickness; sub-planes about 1.5 mm apart across it are averaged.

    Returns:
        ``{tissue: float32 (fH, fW)}`` partial-volume fractions of :data:`LAYERS`.
    """
    fH, fW = grid_shape
    if fH % 2 or fW % 2:
        raise ValueError(f"expected an even fine grid, got {grid_shape}")
    rows = ((np.arange(0, fH, 2) - fH // 2) * px).astype(np.float32)[:, None]  # the even pixels
    cols = ((np.arange(0, fW, 2) - fW // 2) * px).astype(np.float32)[None, :]
    n_sub = max(1, int(round(thickness_mm / 1.5)))
    offsets = (np.arange(n_sub) - (n_sub - 1) / 2) * (thickness_mm / n_sub)
    rot = subject.rotation  # scanner (row, col, normal) <- knee (x, y, z)
    inv = rot.T.astype(np.float32)  # knee <- scanner
    acc = {t: np.zeros(grid_shape, dtype=np.float32) for t in LAYERS}
    sc = subject.scale.astype(np.float32)
    for off in offsets:
        w = np.float32(subject.slice_pos[index] + off - subject.shift[2])
        r = rows - np.float32(subject.shift[0])
        c = cols - np.float32(subject.shift[1])
        x = (inv[0, 0] * r + inv[0, 1] * c + inv[0, 2] * w) / sc[0] * np.float32(subject.mirror)
        y = (inv[1, 0] * r + inv[1, 1] * c + inv[1, 2] * w) / sc[1]
        z = (inv[2, 0] * r + inv[2, 1] * c + inv[2, 2] * w) / sc[2]
        plane = _plane(subject, x, y, z, px / float(sc.mean()))
        for t in LAYERS:
            acc[t] += plane[t]
    return {t: (acc[t] / n_sub).astype(np.float32) for t in LAYERS}


def coverage(grid_shape: tuple[int, int], px: float, half_length_mm: float = 72.0) -> np.ndarray:
    """Transmit/receive coverage of a knee coil along the leg (read direction).

    Returns:
        float32 (fH, 1): ~1 over the coil, falling smoothly to ~0 beyond ``half_length_mm``.
    """
    y = (np.arange(grid_shape[0]) - grid_shape[0] // 2)[:, None] * px
    return (1.0 / np.sqrt(1.0 + (y / half_length_mm) ** 8)).astype(np.float32)


def knee_extent_mm(view: str = "coronal") -> tuple[float, float]:
    """(read, phase) semi-axes of the knee for coil placement."""
    return (80.0, 62.0) if view == "coronal" else (80.0, 65.0)
