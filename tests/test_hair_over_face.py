"""Hair over the face (a fringe): found by colour, kept out of the skin's light fit, relit in its own colour."""

from __future__ import annotations

import numpy as np

from icportrait_studio.geometry.hair_over_face import hair_over_face
from icportrait_studio.geometry.topology import CHIN, LEFT_EYE_CENTER_RING, RIGHT_EYE_CENTER_RING

SKIN = (220, 170, 140)
HAIR = (110, 80, 40)


def _head(grey: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 160² head: hair above, a skin face (the "mesh"), a fringe hanging into its top, a brown mole."""
    h = w = 160
    yy, xx = np.mgrid[0:h, 0:w]
    person = ((xx - 80) / 55.0) ** 2 + ((yy - 85) / 70.0) ** 2 <= 1.0
    mesh = ((xx - 80) / 40.0) ** 2 + ((yy - 95) / 50.0) ** 2 <= 1.0
    img = np.full((h, w, 3), 235, np.uint8)
    img[person] = HAIR
    img[mesh] = SKIN
    fringe = mesh & (yy < 58)  # the top of the face, reaching its edge
    img[fringe] = HAIR
    mole = ((xx - 100) / 5.0) ** 2 + ((yy - 110) / 5.0) ** 2 <= 1.0  # inside the face, away from its edge
    img[mole] = HAIR
    rng = np.random.default_rng(0)
    img = np.clip(img.astype(np.int16) + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
    if grey:
        img = np.repeat(img.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    lm = np.zeros((478, 3), np.float32)
    lm[:, 0] = 80 + 40 * np.cos(np.linspace(0, 2 * np.pi, 478))
    lm[:, 1] = 95 + 50 * np.sin(np.linspace(0, 2 * np.pi, 478))
    lm[LEFT_EYE_CENTER_RING, :2] = (100, 85)
    lm[RIGHT_EYE_CENTER_RING, :2] = (60, 85)
    lm[CHIN, :2] = (80, 145)
    return img, mesh, person, lm, fringe | mole


def test_a_fringe_is_found_and_a_mole_is_not() -> None:
    img, mesh, person, lm, _ = _head()
    yy, xx = np.mgrid[0:160, 0:160]
    hair = hair_over_face(img, mesh, np.zeros_like(mesh), lm, 80.0, person)
    fringe = mesh & (yy < 58)
    mole = ((xx - 100) / 5.0) ** 2 + ((yy - 110) / 5.0) ** 2 <= 1.0
    assert (hair & fringe).sum() > 0.8 * fringe.sum()
    assert not (hair & mole).any()  # hair-coloured, but not reaching the face's edge
    assert (hair & mesh & ~fringe).sum() < 0.02 * mesh.sum()


def test_a_grey_photo_marks_nothing() -> None:
    img, mesh, person, lm, _ = _head(grey=True)
    assert not hair_over_face(img, mesh, np.zeros_like(mesh), lm, 80.0, person).any()


def test_the_samples_fringe_is_left_out_of_the_skin(sample_analysis) -> None:
    a = sample_analysis
    assert a.hair_mask.sum() > 200  # the bangs over her forehead
    assert not (a.hair_mask & a.skin_mask).any()
    ys = np.nonzero(a.hair_mask)[0]
    eyes_y = 0.5 * (a.landmarks_geo()[LEFT_EYE_CENTER_RING, 1] + a.landmarks_geo()[RIGHT_EYE_CENTER_RING, 1])
    assert np.median(ys) < eyes_y  # above the eyes: the fringe, not the cheeks


def test_the_fringe_keeps_its_colour_when_relit(sample_rgb, sample_analysis) -> None:
    """Dark, and read as poorly lit skin, the fringe was lit with the skin's albedo and a skin sheen:
    a pale band of skin tone under the bangs (blue/green 0.34 in the photo, 0.50 after `loop`)."""
    import cv2

    from icportrait_studio.core.presets import load_preset
    from icportrait_studio.lighting.relight import prepare, relight_image

    ctx = prepare(sample_rgb, sample_analysis)
    out, _ = relight_image(sample_rgb, ctx, load_preset("loop").rig, sample_analysis)
    hair = cv2.resize(sample_analysis.hair_mask.astype(np.uint8), (sample_rgb.shape[1], sample_rgb.shape[0]),
                      interpolation=cv2.INTER_NEAREST).astype(bool)
    before, after = sample_rgb[hair].mean(axis=0), out[hair].mean(axis=0)
    assert abs(after[2] / after[1] - before[2] / before[1]) < 0.1


def test_a_crop_with_no_hair_above_the_face_marks_nothing() -> None:
    """A tight crop (the head's top off the frame): no hair sample, so no guess."""
    img, mesh, person, lm, _ = _head()
    top = 60  # cut away the hair above the face
    hair = hair_over_face(img[top:], mesh[top:], np.zeros_like(mesh[top:]), lm - np.float32([0, top, 0]), 80.0,
                          person[top:])
    assert not hair.any()
