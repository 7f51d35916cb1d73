"""Identity guard: how much a result still looks like the person in the input.

Importing this package is cheap; dlib and the model weights load on first use.
"""

from icportrait_studio.identity.embedding import (
    IDENTITY_WARN,
    embedding_distance,
    face_embedding,
    identity_available,
    identity_distance,
    preload,
)

__all__ = ["IDENTITY_WARN", "embedding_distance", "face_embedding", "identity_available", "identity_distance",
           "preload"]
