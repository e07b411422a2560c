"""A pinhole camera in pure numpy: what OpenGL's fixed pipeline does to a point cloud drawn as GL_POINTS of size 1.

The ExFractalDB reference renderer (``image_render/render.py``) uses ``glm.lookAt`` + ``glm.perspective`` and reads the
framebuffer back with ``glReadPixels``; we reproduce the same arithmetic without a GL context:

* view (glm.lookAt(eye, centre, up)): f = normalise(centre - eye), s = normalise(f x up), u = s x f;
  camera coordinates of p are (s . (p - eye), u . (p - eye)) and depth d = f . (p - eye) (OpenGL's z_view = -d);
* projection (glm.perspective(fovy, aspect 1, near, far)): NDC = (x_view, y_view) / (d tan(fovy / 2)); points with
  d outside [near, far] or |NDC| > 1 are clipped;
* viewport: window = (NDC + 1) / 2 * size, a size-1 point lights the pixel floor(window). ``glReadPixels`` returns the
  bottom row first and the reference saves that array as it is, so image row = floor(window_y) (no flip).
"""

from __future__ import annotations

import math

import numpy as np


def look_at(eye: np.ndarray, centre: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (s, u, f) of the camera basis as a 3x3 matrix, and the eye position (float64)."""
    eye, centre, up = (np.asarray(v, dtype=np.float64) for v in (eye, centre, up))
    f = centre - eye
    f /= np.linalg.norm(f)
    s = np.cross(f, up)
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    return np.stack([s, u, f]), eye


def project_points(
    points: np.ndarray, basis: np.ndarray, eye: np.ndarray, *, fov_deg: float, near: float, far: float, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Integer pixel (cols, rows) of the points (N, 3) that survive clipping, for a ``size`` x ``size`` image."""
    # Explicit products and sums rather than a BLAS matmul: BLAS kernels differ between CPUs (FMA, summation order),
    # elementwise numpy arithmetic does not, so the pixels are identical on every machine.
    rel = [points[:, axis] - eye[axis] for axis in range(3)]
    view_x, view_y, depth = (rel[0] * b[0] + rel[1] * b[1] + rel[2] * b[2] for b in basis)
    focal = 1.0 / math.tan(math.radians(fov_deg) / 2.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ndc_x = view_x * focal / depth
        ndc_y = view_y * focal / depth
    keep = (depth >= near) & (depth <= far) & (np.abs(ndc_x) <= 1.0) & (np.abs(ndc_y) <= 1.0)
    cols = np.floor((ndc_x[keep] + 1.0) * (size / 2.0)).astype(np.int64)
    rows = np.floor((ndc_y[keep] + 1.0) * (size / 2.0)).astype(np.int64)
    # NDC exactly +1 lands on pixel `size`: OpenGL's half-open pixel rule leaves it out, so do we (splat drops it).
    return cols, rows


def orbit_camera(angle_rad: float, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Camera on a circle around the y axis looking at the origin, as the reference builds it.

    The reference rotates the x axis about y by ``angle`` (glm.rotate): camDir = (cos a, 0, -sin a); the eye sits at
    ``-camDir * distance`` and the up vector is the rotated y axis, i.e. (0, 1, 0).
    """
    direction = np.array([math.cos(angle_rad), 0.0, -math.sin(angle_rad)])
    return look_at(-direction * distance, np.zeros(3), np.array([0.0, 1.0, 0.0]))


def sphere_camera(rng: np.random.Generator, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """Camera at a uniformly random direction on the sphere of radius ``distance``, looking at the origin.

    Up is the world y axis, or the z axis when the view direction is within ~8 degrees of y (lookAt degenerates there).
    Draws three normals from ``rng`` (a normalised Gaussian vector is uniform on the sphere).
    """
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    up = np.array([0.0, 1.0, 0.0]) if abs(direction[1]) < 0.99 else np.array([0.0, 0.0, 1.0])
    return look_at(direction * distance, np.zeros(3), up)
