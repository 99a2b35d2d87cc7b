"""Rendered presentations for the planarity check: a flat picture turning, and a 3D head turning.

Both start from one frontal face photograph and the shipped face mesh's reading of it: 468
landmarks (`face_model`). The *head* (`head_model`) is a mean 3D face shape made from other
faces (`modeltools.eval.mean_shape`), fitted to the photograph's landmarks by a similarity
(scale, in-plane rotation, shift), triangulated and textured with the photograph at the
landmarks the mesh read there; it turns about a vertical axis through the face and is seen
through a pinhole camera; the background is the photograph as a plane behind the face. The
*flat picture* is the same photograph with every depth set to zero: a print or a screen held
up and turned. A print gets `modeltools.train.attacks.print_attack` texture, a screen
`screen_attack`.

What this is: geometry an attacker with a print or a phone produces, and the parallax a head
produces, with the texture of real faces. What it is not: a real camera, real lighting, real
ears and hair (they turn as part of the background plane), or a real attack. The head's
depth is a mean of the mesh model's estimates of *other* faces, not MediaPipe's canonical
model and not a scan. `face_model` alone (`self_depth`) is the earlier head: the mesh's own
depth estimate of the very photograph, which the same mesh then measures (circular); it is
kept to reproduce the earlier figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

from edge.vision import facemesh, pipeline
from edge.vision.runtime import ModelSet

CAMERA_DISTANCE = 3.5  # face widths: a face ~15 cm wide about 50 cm from the terminal's camera


@dataclass(frozen=True, eq=False)
class FaceModel:
    """A photograph and a head: points (468×3, frame px; z toward the camera negative) and
    where each point's texture is in the photograph (`uv`, 468×2; by default the points)."""

    image: np.ndarray
    points: np.ndarray
    triangles: np.ndarray
    uv: np.ndarray | None = None

    @property
    def texture_points(self) -> np.ndarray:
        return self.points[:, :2] if self.uv is None else self.uv


def face_model(models: ModelSet, image: np.ndarray) -> FaceModel:
    """Read the one face in `image` with the shipped detector and mesh."""
    faces = pipeline.detect(models, image)
    if len(faces) != 1:
        raise ValueError(f"expected one face in the photograph, found {len(faces)}")
    x, m = facemesh.preprocess(image, faces[0])
    mesh, _ = facemesh.decode(*models.landmarks.run(x).values())
    xy = facemesh.to_frame(mesh, m)
    scale = math.hypot(m[0, 0], m[0, 1])  # crop px per frame px
    points = np.column_stack([xy, mesh[:, 2] / scale])
    return FaceModel(image, points, Delaunay(xy).simplices)


def head_model(photo: FaceModel, shape: np.ndarray) -> FaceModel:
    """`shape` (468×3, e.g. a `mean_shape.MeanShape`'s points) fitted to the photograph's
    landmarks by the least-squares similarity of its x, y onto them, depth scaled alike,
    and textured from the photograph at those landmarks."""
    uv = photo.points[:, :2]
    src = shape[:, :2] - shape[:, :2].mean(0)
    dst = uv - uv.mean(0)
    u, sv, vt = np.linalg.svd(dst.T @ src)  # Umeyama, 2D, no reflection
    d = np.sign(np.linalg.det(u @ vt))
    rot = u @ np.diag([1.0, d]) @ vt
    scale = (sv * [1.0, d]).sum() / (src**2).sum()
    xy = scale * src @ rot.T + uv.mean(0)
    points = np.column_stack([xy, scale * (shape[:, 2] - shape[:, 2].mean())])
    return FaceModel(photo.image, points, Delaunay(xy).simplices, uv.copy())


def render(
    model: FaceModel, yaw_deg: float, flat: bool, texture: np.ndarray | None = None
) -> np.ndarray:
    """The frame a camera sees with the head (or the flat picture) turned by `yaw_deg`."""
    image = model.image if texture is None else texture
    h, w = image.shape[:2]
    pts, uv = model.points.copy(), model.texture_points
    if flat:
        pts[:, 2] = 0.0
    centre = pts[:, :2].mean(0)
    width = np.ptp(pts[:, 0])
    depth = 0.0 if flat else float(pts[:, 2].max())  # the background plane: behind the face
    project = _projector(centre, depth, width, yaw_deg)
    # Background: the whole photograph as a plane at `depth` (the flat picture: at 0).
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    back = project(np.column_stack([corners, np.full(4, depth)]))
    out = cv2.warpPerspective(
        image, cv2.getPerspectiveTransform(corners, back.astype(np.float32)), (w, h),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    if flat:
        return out
    screen, z = project(pts), _turned_depth(pts, centre, yaw_deg)
    # Painter's algorithm: far triangles first.
    for tri in sorted(model.triangles, key=lambda t: -z[t].mean()):
        _paste(image, out, uv[tri].astype(np.float32), screen[tri].astype(np.float32))
    return out


def _projector(centre: np.ndarray, depth: float, width: float, yaw_deg: float):  # type: ignore[no-untyped-def]
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    f = CAMERA_DISTANCE * width

    def project(p: np.ndarray) -> np.ndarray:
        x, y, z = p[:, 0] - centre[0], p[:, 1] - centre[1], p[:, 2]
        xr, zr = c * x - s * z, s * x + c * z
        k = f / (f + zr)
        return np.column_stack([centre[0] + xr * k, centre[1] + y * k])

    return project


def _turned_depth(pts: np.ndarray, centre: np.ndarray, yaw_deg: float) -> np.ndarray:
    s, c = math.sin(math.radians(yaw_deg)), math.cos(math.radians(yaw_deg))
    return s * (pts[:, 0] - centre[0]) + c * pts[:, 2]


def _paste(src: np.ndarray, dst: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Warp triangle `a` of `src` onto triangle `b` of `dst`."""
    x, y, w, h = cv2.boundingRect(b)
    H, W = dst.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 <= x0 or y1 <= y0:
        return
    m = cv2.getAffineTransform(a, b - np.float32([x0, y0]))
    patch = cv2.warpAffine(src, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)  # fmt: skip
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(mask, np.round(b - [x0, y0]).astype(np.int32), 255)
    region = dst[y0:y1, x0:x1]
    region[mask > 0] = patch[mask > 0]
