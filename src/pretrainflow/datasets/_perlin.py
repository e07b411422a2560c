"""1D Perlin noise, vectorised, behaving like ``noise.pnoise1`` as the published VisualAtom / RCDB renderers call it.

The published generators (``render_VisualAtom.py``, ``make_rcdb.py``) call ``noise.pnoise1(u)`` with the package
defaults (1 octave, ``repeat=1024``, ``base=0``) at a fresh position ``u ~ U(0, 10000)`` per vertex and axis. The ``noise``
package is a C extension we do not depend on; this module re-implements that 1D gradient noise from its definition:

* lattice points are the integers; point ``i`` gets a hash ``h = PERM[i mod 256]`` from Perlin's reference permutation
  (Perlin, "Improving Noise", SIGGRAPH 2002; the same 256 numbers every Perlin implementation uses);
* the hash picks a 1D gradient ``g(h) = (h & 7) + 1`` when bit 3 of ``h`` is clear and ``-1`` when it is set. Note the
  ``-1``: the ``noise`` package's ``grad1`` sets ``g = -1`` rather than ``g = -g``, so a lattice point whose hash has
  bit 3 set gets a flat gradient instead of a steep one, which narrows the value distribution (std about 0.33 at random
  positions instead of about 0.51). The released datasets were drawn with those gradients, so we keep them;
  ``symmetric=True`` gives the textbook +-(1..8) gradients instead;
* between lattice points ``i`` and ``i + 1`` at fraction ``f`` the value is
  ``0.4 * lerp(fade(f), g_i * f, g_{i+1} * (f - 1))`` with Perlin's improved fade ``6 f^5 - 15 f^4 + 10 f^3``
  (0.4 is the package's output scale).

``repeat=1024`` wraps the lattice every 1024 units; since 1024 is a multiple of 256 the wrap never changes a hash, so the
noise is periodic with period 256 and only ``i mod 256`` matters.

Only +, -, * and integer indexing are used, so results are bit-identical on every IEEE-754 machine.
"""

from __future__ import annotations

import numpy as np

# Perlin's reference permutation of 0..255 (improved noise, 2002).
PERM: tuple[int, ...] = (
    151, 160, 137, 91, 90, 15, 131, 13, 201, 95, 96, 53, 194, 233, 7, 225, 140, 36, 103, 30, 69, 142, 8, 99, 37, 240,
    21, 10, 23, 190, 6, 148, 247, 120, 234, 75, 0, 26, 197, 62, 94, 252, 219, 203, 117, 35, 11, 32, 57, 177, 33, 88,
    237, 149, 56, 87, 174, 20, 125, 136, 171, 168, 68, 175, 74, 165, 71, 134, 139, 48, 27, 166, 77, 146, 158, 231, 83,
    111, 229, 122, 60, 211, 133, 230, 220, 105, 92, 41, 55, 46, 245, 40, 244, 102, 143, 54, 65, 25, 63, 161, 1, 216,
    80, 73, 209, 76, 132, 187, 208, 89, 18, 169, 200, 196, 135, 130, 116, 188, 159, 86, 164, 100, 109, 198, 173, 186,
    3, 64, 52, 217, 226, 250, 124, 123, 5, 202, 38, 147, 118, 126, 255, 82, 85, 212, 207, 206, 59, 227, 47, 16, 58, 17,
    182, 189, 28, 42, 223, 183, 170, 213, 119, 248, 152, 2, 44, 154, 163, 70, 221, 153, 101, 155, 167, 43, 172, 9, 129,
    22, 39, 253, 19, 98, 108, 110, 79, 113, 224, 232, 178, 185, 112, 104, 218, 246, 97, 228, 251, 34, 242, 193, 238,
    210, 144, 12, 191, 179, 162, 241, 81, 51, 145, 235, 249, 14, 239, 107, 49, 192, 214, 31, 181, 199, 106, 157, 184,
    84, 204, 176, 115, 121, 50, 45, 127, 4, 150, 254, 138, 236, 205, 93, 222, 114, 67, 29, 24, 72, 243, 141, 128, 195,
    78, 66, 215, 61, 156, 180,
)  # fmt: skip

# Output scale of the `noise` package's 1D noise.
OUTPUT_SCALE = 0.4


def _gradients(symmetric: bool) -> np.ndarray:
    """Gradient of every lattice point mod 256, with entry 256 = entry 0 so that ``g[i + 1]`` needs no wrap."""
    hashes = np.array(PERM + PERM[:1], dtype=np.int64)
    magnitude = ((hashes & 7) + 1).astype(np.float64)
    negative = (hashes & 8) != 0
    return np.where(negative, -magnitude if symmetric else -1.0, magnitude) * OUTPUT_SCALE


_GRADIENTS = {False: _gradients(False), True: _gradients(True)}


def pnoise1(x: np.ndarray, *, symmetric: bool = False) -> np.ndarray:
    """1D Perlin noise at positions ``x`` (any shape, float; negative positions are fine).

    >>> float(pnoise1(np.array([3.0]))[0])  # zero on every lattice point
    0.0
    """
    x = np.asarray(x, dtype=np.float64)
    cell = np.floor(x)
    f = x - cell  # fraction in [0, 1)
    i = cell.astype(np.int64) & 255  # two's complement & 255 == floor mod 256, also for negatives
    grads = _GRADIENTS[symmetric]
    left = grads[i] * f  # gradient ramp from lattice point i (already scaled by 0.4)
    right = grads[i + 1] * (f - 1.0)  # ... and from lattice point i + 1
    fade = f * f * f * (f * (f * 6.0 - 15.0) + 10.0)
    return left + fade * (right - left)


# The published renderers evaluate pnoise1 at u ~ U(0, 10000) (a C float: spacing 2**-10 for u >= 8192). Noise at a
# uniformly random position is a random draw from the noise's value distribution, so we draw from a table of the noise
# over one period (256 lattice cells) at spacing 1/256, at the midpoints k/256 + 1/512: 65,536 float32 values, 256 KiB
# (stays in cache), one random index per draw. Quantising positions 4x coarser than the released data moves a noise
# value by at most 0.4 * 8 * 1.875 / 512 ~ 0.012, i.e. < 0.05 px of vertex displacement at lam = 4.
TABLE_STEPS_PER_CELL = 256
_TABLE = pnoise1((np.arange(256 * TABLE_STEPS_PER_CELL) + 0.5) / TABLE_STEPS_PER_CELL).astype(np.float32)


def random_pnoise1(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """``pnoise1(u)`` at independent uniformly random positions ``u`` (float32 array of ``shape``), drawn from ``rng``."""
    # uint16 indices (the table has exactly 2**16 entries) are the cheapest to draw and to gather with.
    return np.take(_TABLE, rng.integers(0, _TABLE.size, size=shape, dtype=np.uint16))
