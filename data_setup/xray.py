"""Realistic chest X-ray-like films: many different "patients" whose films look alike at low
resolution, as real chest radiographs do.

The demo's synthetic images (data_setup.synth) are gratings with a shape: fine for training
smoke tests, useless for judging a near-duplicate search, because distinct real chest films
share their whole layout (two dark lung fields, ribs, spine, heart shadow, bright abdomen) and
differ only in the details. Here each patient gets their own anatomy (body and lung size, rib
spacing, tilt and curvature, heart size, diaphragm height, clavicles, vessel tree) and each film
its own acquisition (exposure, contrast, position, a small rotation, noise, a side marker), so
two patients' films are genuinely different images that are alike at 64×64.

    from data_setup.xray import write_chest_xray
    write_chest_xray("/tmp/cxr", count=3000, width=(1000, 2000))  # Kermany's layout

Rendering happens on a ~384 px working canvas (anatomy) and is resized to the film's size, with
grain added there; a 1500 px film takes ~40 ms. Deterministic for a given seed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

_WORK = 384  # working-canvas width: the anatomy's resolution


@dataclass
class Patient:
    """One patient's anatomy, in units of the film's width (u) and height (v), both in [0, 1]."""

    body_width: float
    lung_top: float
    lung_bottom_right: float  # the image's left is the patient's right (higher dome)
    lung_bottom_left: float
    lung_width: float
    mediastinum: float
    heart_width: float
    heart_height: float
    rib_spacing: float
    rib_curve: float
    rib_tilt: float
    rib_thickness: float
    clavicle_angle: float
    vessels: np.ndarray  # (K, 4): start u, start v, angle, length of each vessel branch
    opacities: np.ndarray  # (M, 3): u, v, radius of pneumonia-like patches (M may be 0)
    spine_offset: float


def random_patient(rng, pneumonia: bool = False) -> Patient:
    k = int(rng.integers(28, 44))
    side = rng.choice([-1.0, 1.0], k)
    hilum_u = 0.5 + side * rng.uniform(0.06, 0.1, k)
    vessels = np.column_stack(
        [
            hilum_u,
            rng.uniform(0.38, 0.5, k),
            np.where(side < 0, np.pi, 0.0) + rng.uniform(-1.2, 1.2, k),
            rng.uniform(0.08, 0.25, k),
        ]
    )
    m = int(rng.integers(2, 6)) if pneumonia else 0
    opacities = np.column_stack(
        [
            0.5 + rng.choice([-1, 1], m) * rng.uniform(0.12, 0.3, m),
            rng.uniform(0.35, 0.75, m),
            rng.uniform(0.04, 0.1, m),
        ]
    )
    return Patient(
        body_width=rng.uniform(0.78, 0.96),
        lung_top=rng.uniform(0.1, 0.18),
        lung_bottom_right=rng.uniform(0.68, 0.8),
        lung_bottom_left=rng.uniform(0.72, 0.84),
        lung_width=rng.uniform(0.3, 0.38),
        mediastinum=rng.uniform(0.05, 0.08),
        heart_width=rng.uniform(0.14, 0.22),
        heart_height=rng.uniform(0.15, 0.22),
        rib_spacing=rng.uniform(0.05, 0.07),
        rib_curve=rng.uniform(0.6, 1.3),
        rib_tilt=rng.uniform(0.25, 0.55),
        rib_thickness=rng.uniform(0.012, 0.02),
        clavicle_angle=rng.uniform(-0.25, 0.05),
        vessels=vessels,
        opacities=opacities,
        spine_offset=rng.uniform(-0.02, 0.02),
    )


def _smooth(mask: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)


def _anatomy(patient: Patient, height: int, width: int) -> np.ndarray:
    """Attenuation on the working canvas: 0 air … 1 bone (displayed bright, as films are)."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = u / width, v / height
    p = patient
    body = (np.abs(u - 0.5) < p.body_width / 2 * (0.92 + 0.08 * v)).astype(np.float32)
    image = 0.55 * _smooth(body, width * 0.01)
    image += 0.12 * _smooth((v < 0.12) & (np.abs(u - 0.5) > 0.3), width * 0.02) * body
    lungs = np.zeros_like(u)
    for sign, bottom in ((-1, p.lung_bottom_right), (1, p.lung_bottom_left)):
        centre = 0.5 + sign * (p.mediastinum + p.lung_width / 2)
        rel = np.clip((v - p.lung_top) / (bottom - p.lung_top), 0, 1)
        half = p.lung_width / 2 * np.sqrt(np.clip(rel * 1.6, 0, 1)) * (1 - 0.15 * rel)
        dome = bottom - 0.06 * (1 - ((u - centre) / (p.lung_width / 2)) ** 2)
        lungs += (np.abs(u - centre) < half) & (v > p.lung_top) & (v < dome)
    lungs = _smooth(np.clip(lungs, 0, 1), width * 0.012)
    heart = ((u - 0.5 - p.heart_width * 0.35) / p.heart_width) ** 2 + (
        (v - p.lung_bottom_right + p.heart_height * 0.6) / p.heart_height
    ) ** 2 < 1
    heart = _smooth(heart, width * 0.02)
    lungs *= 1 - 0.75 * heart  # the heart lies in front of the lungs
    image -= 0.38 * lungs
    spine = np.abs(u - 0.5 - p.spine_offset) < 0.035
    vertebrae = 0.5 + 0.5 * np.cos(2 * np.pi * v / 0.045)
    image += _smooth(spine, width * 0.006) * (0.06 + 0.05 * vertebrae) * (1 - 0.5 * heart)
    image += 0.25 * _smooth(v > np.maximum(p.lung_bottom_right, p.lung_bottom_left) + 0.05, 8)
    image += _ribs(p, lungs, width, height) + 0.08 * heart
    canvas = np.zeros((height, width), np.float32)
    for sign in (-1, 1):  # clavicles
        a = (0.5 + sign * 0.03, p.lung_top - 0.01)
        b = (0.5 + sign * 0.3, p.lung_top - 0.06 + p.clavicle_angle * 0.1)
        cv2.line(canvas, _px(a, width, height), _px(b, width, height), 0.2, int(width * 0.028))
    for su, sv, angle, length in p.vessels:  # lung markings: tapering branches from the hila
        end = (su + length * np.cos(angle), sv + length * np.sin(angle) * 1.3)
        mid = ((su + end[0]) / 2, (sv + end[1]) / 2)
        cv2.line(canvas, _px((su, sv), width, height), _px(mid, width, height), 0.12, 3)
        cv2.line(canvas, _px(mid, width, height), _px(end, width, height), 0.08, 1)
    image += _smooth(canvas, 1.2) * (0.4 + 0.6 * lungs)
    patches = np.zeros_like(canvas)
    for ou, ov, radius in p.opacities:  # pneumonia: hazy patches
        cv2.circle(patches, _px((ou, ov), width, height), int(radius * width), 0.18, -1)
    image += _smooth(patches, width * 0.03) * lungs
    return image * body + 0.03


def _ribs(p: Patient, lungs, width, height) -> np.ndarray:
    """Posterior ribs (arcs from the spine up, out and down) and fainter anterior ribs, drawn
    as polylines and blurred, brighter over the lungs."""
    back, front = np.zeros_like(lungs), np.zeros_like(lungs)
    side = np.linspace(0.02, 0.46, 24)
    thick = max(1, round(p.rib_thickness * height))
    for sign in (-1, 1):
        for k in range(11):
            start = p.lung_top - 0.02 + k * p.rib_spacing
            v = start - p.rib_tilt * side + p.rib_curve * 2.2 * side**2
            arc = np.column_stack([(0.5 + sign * side) * width, v * height]).astype(np.int32)
            cv2.polylines(back, [arc], False, 1.0, thick, cv2.LINE_AA)
            v = start + 0.1 + 0.35 * (0.45 - side[6:]) ** 2 * p.rib_curve
            arc = np.column_stack([(0.5 + sign * side[6:]) * width, v * height]).astype(np.int32)
            cv2.polylines(front, [arc], False, 1.0, thick, cv2.LINE_AA)
    ribs = _smooth(back + 0.4 * front, max(1.0, thick / 2))
    return 0.09 * np.clip(ribs, 0, 1.5) * (0.3 + 0.7 * lungs)


def _px(point, width, height) -> tuple[int, int]:
    return int(point[0] * width), int(point[1] * height)


def chest_film(rng, patient: Patient, height: int, width: int) -> np.ndarray:
    """One film of `patient`: uint8 grayscale (height, width)."""
    work_h = max(16, round(_WORK * height / width))
    image = _anatomy(patient, work_h, _WORK)
    angle = rng.uniform(-3, 3)  # positioning: a small rotation, shift and zoom
    scale = rng.uniform(0.96, 1.04)
    matrix = cv2.getRotationMatrix2D((_WORK / 2, work_h / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-0.03, 0.03, 2) * (_WORK, work_h)
    image = cv2.warpAffine(image, matrix, (_WORK, work_h), borderMode=cv2.BORDER_REPLICATE)
    gamma, gain = rng.uniform(0.8, 1.25), rng.uniform(0.85, 1.15)  # exposure and contrast
    image = np.clip(gain * np.clip(image, 0, 1) ** gamma * 255, 0, 255)
    film = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    grain = np.empty((height // 2 + 1, width // 2 + 1), np.float32)  # quantum noise
    cv2.setRNGSeed(int(rng.integers(2**31)))
    cv2.randn(grain, 0, float(rng.uniform(3, 8)))
    grain = cv2.resize(grain, (width, height), interpolation=cv2.INTER_NEAREST)
    film = np.clip(film + grain, 0, 255).astype(np.uint8)
    corner = (int(width * rng.uniform(0.04, 0.12)), int(height * rng.uniform(0.08, 0.16)))
    cv2.putText(film, str(rng.choice(["L", "R"])), corner, cv2.FONT_HERSHEY_SIMPLEX,
                width / 600, 255, max(1, width // 300), cv2.LINE_AA)  # fmt: skip
    return film


def film_size(rng, width=(1000, 2000)) -> tuple[int, int]:
    """(height, width) of a film: Kermany's are 1–2 thousand px wide, aspect 0.7–1.0."""
    w = int(rng.integers(*width))
    return int(w * rng.uniform(0.7, 1.0)), w


def write_chest_xray(
    root, count: int = 300, width=(1000, 2000), seed: int = 0, workers: int = 4, quality=90
) -> Path:
    """`count` films of distinct patients as JPEGs in Kermany's layout
    (chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg: ~89 % train, ~10.7 % test, 16 in
    val when count allows; ~73 % pneumonia as in the real set). Returns the chest_xray folder."""
    base = Path(root) / "chest_xray"
    n_val = 16 if count >= 160 else 0
    n_test = round(count * 0.107)
    splits = ["val"] * n_val + ["test"] * n_test + ["train"] * (count - n_val - n_test)

    def one(index):
        rng = np.random.default_rng([seed, index])
        pneumonia = rng.random() < 0.73
        film = chest_film(rng, random_patient(rng, pneumonia), *film_size(rng, width))
        name = "PNEUMONIA" if pneumonia else "NORMAL"
        path = base / splits[index] / name / f"patient{index:05d}.jpeg"
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, data = cv2.imencode(".jpeg", film, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise OSError(f"{path}: could not encode the film")
        path.write_bytes(data.tobytes())

    with ThreadPoolExecutor(workers) as pool:  # OpenCV and numpy release the GIL
        list(pool.map(one, range(count)))
    return base
