"""Built-in demo dataset: synthetic RGB + organized-point-cloud inspection data in the MVTec 3D-AD layout.

The demo is the application's default data and the test-suite's fixture.  It is rendered, not
drawn: every sample is a small physically-motivated scene.

Scene
    A part lies on a slightly tilted, textured background plane (~300 mm from the camera) and is seen
    by an organized depth camera (pinhole, one 3D point per pixel, in mm) paired with a colour camera
    on the same pixel grid.  The part is a *height field* over the plane defined in its own local
    frame (mm), so pose (in-plane rotation, translation), size, texture and defects move with it.

Classes (:data:`DEMO_CLASSES`), each with all six defect kinds
    ``cookie`` (round baked disc, domed and lumpy, speckled crust; rotated +-180 deg), ``bracket``
    (machined aluminium plate with two chamfered holes, brushed finish; +-20 deg), ``tube`` (extruded
    plastic tube lying on its side; +-15 deg), ``gasket`` (black moulded rubber ring; +-180 deg).

3D (``xyz``)
    Each pixel's ray is intersected with the part surface (fixed-point iterations, so the parallax of
    tall parts is right), then depth noise is added along the ray.  Points are missing (stored as
    exactly 0, like MVTec 3D-AD) on steep walls, in the *projector shadow* of the structured-light
    sensor (a strip beside tall edges), on saturated specular highlights of metal, and in a few
    random dropouts.  The background plane is kept, as in MVTec 3D-AD.

RGB (``rgb``)
    Procedural albedo (speckle / grain / brushed lines, in the part's frame) x (ambient ring light +
    Lambertian directional light with a cast shadow) + Blinn-Phong specular, from the normals of the
    height field plus a micro-bump texture that affects shading only; then vignetting, gamma, a slight
    optical blur and sensor noise.

Good parts vary in pose, size/shape, texture, lighting direction and intensity (about +-20 %), plane
depth/tilt and depth noise, so a plain pixel difference against a good reference does not find the
defects.  Defects (:data:`DEFECT_KINDS`) are realistically small (about 0.3 %-4 % of the part area):

* geometry only: ``dent``, ``bump`` (0.7-1.6 mm over 5-8 mm; in RGB only a faint shading change),
* texture only: ``stain``, ``scratch`` (albedo change; the 3D points are bit-identical),
* both: ``hole``, ``crack`` (a cavity / fissure in 3D that is also dark in RGB).

Everything is deterministic: one seed gives the same files byte for byte.  The building blocks are
public so that tests (and curious users) can render *the same* good part with and without a defect::

    rng = np.random.default_rng(7)
    part = sample_part("cookie", rng)
    defect = sample_defect(part, "stain", rng)
    good, bad = render_part(part, None), render_part(part, defect)   # identical except the stain

Command line: ``python -m core.demo OUT [--size 256] [--classes cookie gasket] [--seed 0]``.

Modules: :mod:`._common` (constants, noise helpers), :mod:`.parts` (part models, :func:`sample_part`),
:mod:`.defects` (:func:`sample_defect`, defect fields), :mod:`.render` (:func:`render_part`),
:mod:`.writer` (:func:`generate_demo`, :func:`ensure_demo`, manifest), :mod:`.cli` (command line).
"""
from __future__ import annotations

from ._common import (DEFECT_KINDS, DEMO_CLASSES, DEMO_VERSION, GEOMETRY_DEFECTS, GOOD, MANIFEST, MIXED_DEFECTS,
                      TEXTURE_DEFECTS, ProgressFn)  # noqa: F401
from .cli import main
from .defects import DefectParams, sample_defect
from .parts import PartParams, sample_part
from .render import Rendered, render_part
from .writer import (default_cache_dir, ensure_demo, generate_demo, is_complete, read_manifest,  # noqa: F401
                     sample_rng)

__all__ = [
    "DEMO_VERSION", "DEMO_CLASSES", "DEFECT_KINDS", "GEOMETRY_DEFECTS", "TEXTURE_DEFECTS", "MIXED_DEFECTS",
    "PartParams", "DefectParams", "Rendered", "sample_part", "sample_defect", "render_part",
    "generate_demo", "default_cache_dir", "ensure_demo", "main",
]
