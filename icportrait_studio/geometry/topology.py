"""The face mesh's fixed topology: triangles and named regions, derived once from mediapipe's tables.

mediapipe ships the 478-landmark tessellation as an edge list; the triangles are its 3-cliques, wound
consistently by propagating orientation across shared edges (so vertex normals are well defined).
"""

from __future__ import annotations

import collections
from functools import lru_cache

import numpy as np


def _edges(connections) -> set[tuple[int, int]]:
    return {tuple(sorted(e)) for e in connections}


def _ring(connections) -> list[int]:
    """Order a closed contour given as an edge set into a vertex loop."""
    adj: dict[int, list[int]] = collections.defaultdict(list)
    for a, b in connections:
        adj[a].append(b)
        adj[b].append(a)
    start = min(adj)
    ring, prev, cur = [start], None, start
    while True:
        nxt = next((n for n in adj[cur] if n != prev), None)
        if nxt is None or nxt == start:
            break
        ring.append(nxt)
        prev, cur = cur, nxt
        if len(ring) > len(adj):
            break
    return ring


def _orient(tris: np.ndarray) -> np.ndarray:
    """Wind all triangles consistently by breadth-first propagation over shared edges."""
    edge_to_tris: dict[tuple[int, int], list[int]] = collections.defaultdict(list)
    for t, (a, b, c) in enumerate(tris):
        for e in ((a, b), (b, c), (c, a)):
            edge_to_tris[tuple(sorted(e))].append(t)
    out = tris.copy()
    seen = np.zeros(len(tris), bool)
    for seed in range(len(tris)):
        if seen[seed]:
            continue
        seen[seed] = True
        queue = collections.deque([seed])
        while queue:
            t = queue.popleft()
            a, b, c = out[t]
            for u, v in ((a, b), (b, c), (c, a)):
                for n in edge_to_tris[tuple(sorted((u, v)))]:
                    if seen[n]:
                        continue
                    x, y, z = out[n]
                    directed = {(x, y), (y, z), (z, x)}
                    if (u, v) in directed:  # same direction as the neighbour: flip it
                        out[n] = (x, z, y)
                    seen[n] = True
                    queue.append(n)
    return out


@lru_cache(maxsize=1)
def face_topology() -> FaceTopology:
    from icportrait_studio.geometry.mediapipe_import import import_mediapipe

    import_mediapipe()
    from mediapipe.python.solutions import face_mesh_connections as fmc

    edges = _edges(fmc.FACEMESH_TESSELATION)
    adj: dict[int, set[int]] = collections.defaultdict(set)
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    tris = sorted({tuple(sorted((a, b, c))) for a, b in edges for c in adj[a] & adj[b]})
    triangles = _orient(np.array(tris, dtype=np.int32))
    return FaceTopology(
        triangles=triangles,
        face_oval=_ring(fmc.FACEMESH_FACE_OVAL),
        left_eye=_ring(fmc.FACEMESH_LEFT_EYE),
        right_eye=_ring(fmc.FACEMESH_RIGHT_EYE),
        left_brow=sorted({i for e in fmc.FACEMESH_LEFT_EYEBROW for i in e}),
        right_brow=sorted({i for e in fmc.FACEMESH_RIGHT_EYEBROW for i in e}),
        lips_outer=_ring(_outer_lips(fmc.FACEMESH_LIPS)),
        left_iris=sorted({i for e in fmc.FACEMESH_LEFT_IRIS for i in e}),
        right_iris=sorted({i for e in fmc.FACEMESH_RIGHT_IRIS for i in e}),
    )


def _outer_lips(lips) -> set[tuple[int, int]]:
    """The lips table holds the outer and inner contours; keep the outer loop (it contains 61 and 291)."""
    adj: dict[int, set[int]] = collections.defaultdict(set)
    for a, b in lips:
        adj[a].add(b)
        adj[b].add(a)
    # walk the component that contains landmark 0 (the upper lip's outer midpoint)
    comp, stack = set(), [0]
    while stack:
        v = stack.pop()
        if v in comp:
            continue
        comp.add(v)
        stack.extend(adj[v] - comp)
    return {e for e in lips if e[0] in comp}


class FaceTopology:
    """Triangles (N×3, consistently wound) and landmark index lists for the face's named regions."""

    def __init__(self, triangles: np.ndarray, face_oval: list[int], left_eye: list[int], right_eye: list[int],
                 left_brow: list[int], right_brow: list[int], lips_outer: list[int], left_iris: list[int],
                 right_iris: list[int]) -> None:
        self.triangles = triangles
        self.face_oval = face_oval
        self.left_eye = left_eye
        self.right_eye = right_eye
        self.left_brow = left_brow
        self.right_brow = right_brow
        self.lips_outer = lips_outer
        self.left_iris = left_iris
        self.right_iris = right_iris


# Landmarks used for pose and measurements (mediapipe's canonical indices).
NOSE_TIP = 1
CHIN = 152
FOREHEAD = 10
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 263, 33
LEFT_EYE_CENTER_RING = 473  # iris centres (refined landmarks)
RIGHT_EYE_CENTER_RING = 468
