"""The face mesh's refit pass (facemesh.detect_faces): its tracking graph must not carry one image's
face into the next call."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from icportrait_studio.geometry import facemesh
from icportrait_studio.imaging.color import encode_from_linear


@pytest.fixture(scope="module")
def sample8(sample_rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(encode_from_linear(np.clip(sample_rgb, 0, 1), 8), (384, 384), interpolation=cv2.INTER_AREA)


def test_an_image_gives_the_same_landmarks_whatever_was_detected_before(sample8: np.ndarray) -> None:
    first = facemesh.detect_faces(sample8)
    assert len(first) == 1
    # the same face a few pixels away: a graph that kept tracking would start from its landmarks
    for shift in (8, -16, None, 8):  # None: a frame with no face between them
        frame = np.full_like(sample8, 90) if shift is None else np.roll(sample8, shift, axis=1)
        facemesh.detect_faces(np.ascontiguousarray(frame))
    again = facemesh.detect_faces(sample8)
    assert len(again) == 1
    np.testing.assert_array_equal(again[0].landmarks, first[0].landmarks)
