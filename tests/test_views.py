"""Tests of the central views (app/views): colour maps, ImageView and CloudView.

They run on Qt's offscreen platform (set below with ``setdefault`` so a project conftest or the
caller may choose otherwise); the real ``QtInteractor`` backend is tested in a subprocess on the
Xvfb display that pytest-xvfb starts.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent, QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.views.colormap import (  # noqa: E402
    COLORMAPS,
    NAN_COLOR,
    ColorBar,
    alpha_ramp,
    apply_colormap,
    colormap_indices,
    colorbar_image,
    contrast_color,
    lut,
)
from app.views.image_view import GT_COLOR, ImageView  # noqa: E402
from core.errors import InputError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------- helpers
def _send_mouse(widget, kind, pos, button=Qt.NoButton, buttons=Qt.NoButton):
    pos = QPointF(pos)
    ev = QMouseEvent(kind, pos, QPointF(widget.mapToGlobal(pos.toPoint())), button, buttons, Qt.NoModifier)
    QApplication.sendEvent(widget, ev)


def _click(widget, pos, button=Qt.LeftButton):
    _send_mouse(widget, QEvent.MouseButtonPress, pos, button, button)
    _send_mouse(widget, QEvent.MouseButtonRelease, pos, button, Qt.NoButton)


def _wheel(widget, pos, steps=1):
    pos = QPointF(pos)
    ev = QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(), QPoint(0, int(120 * steps)),
                     Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    QApplication.sendEvent(widget, ev)


def _rect_outline(shape, r0, r1, c0, c1):
    """Pixels on the border of the rectangle [r0, r1) x [c0, c1) (brute force)."""
    out = np.zeros(shape, bool)
    out[r0, c0:c1] = out[r1 - 1, c0:c1] = True
    out[r0:r1, c0] = out[r0:r1, c1 - 1] = True
    return out


# ---------------------------------------------------------------------- colormap
@pytest.mark.parametrize("name", COLORMAPS)
def test_apply_colormap_matches_matplotlib(name):
    mpl = pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    v = rng.normal(0.3, 1.0, size=(50, 40))  # includes values below vmin and above vmax
    vmin, vmax = -0.5, 1.5
    ref = mpl.colormaps[name](np.clip((v - vmin) / (vmax - vmin), 0.0, 1.0))[..., :3]
    ref = np.round(ref * 255).astype(np.uint8)
    got = apply_colormap(v, vmin, vmax, name)
    assert got.shape == (50, 40, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("name", COLORMAPS)
def test_builtin_tables_close_to_matplotlib(name):
    pytest.importorskip("matplotlib")
    own = lut(name, use_matplotlib=False).astype(int)
    ref = lut(name).astype(int)
    assert own.shape == (256, 3)
    assert np.abs(own - ref).max() <= (1 if name == "jet" else 6)


def test_apply_colormap_ends_nan_and_degenerate_range():
    table = lut("viridis")
    got = apply_colormap(np.array([-5.0, 0.0, 1.0, 7.0, np.nan]), 0.0, 1.0, "viridis")
    np.testing.assert_array_equal(got[[0, 1, 4]], table[[0, 0, 0]])
    np.testing.assert_array_equal(got[[2, 3]], table[[255, 255]])
    flat = apply_colormap(np.array([0.1, 0.3]), 0.2, 0.2, "viridis")
    np.testing.assert_array_equal(flat, table[[0, 255]])
    with pytest.raises(ValueError, match="unknown colormap"):
        apply_colormap(np.zeros(3), 0, 1, "rainbow")


def test_colorbar_image_orientation():
    table = lut("magma")
    v = colorbar_image("magma", 100, 12)
    assert v.shape == (100, 12, 3)
    np.testing.assert_array_equal(v[0, 0], table[255])  # high values on top
    np.testing.assert_array_equal(v[-1, -1], table[0])
    h = colorbar_image("magma", 10, 64)
    np.testing.assert_array_equal(h[0, 0], table[0])  # low values on the left
    np.testing.assert_array_equal(h[-1, -1], table[255])


def test_colorbar_widget_threshold_tick_position(qtbot):
    bar = ColorBar(name="inferno")
    qtbot.addWidget(bar)
    bar.resize(90, 300)
    bar.set_range(0.0, 2.0)
    img = bar.grab().toImage()

    def rows_with(color, image):
        ys = []
        for y in range(image.height()):
            for x in range(0, 40):
                c = image.pixelColor(x, y)
                if (c.red(), c.green(), c.blue()) == tuple(int(k) for k in color):
                    ys.append(y)
                    break
        return ys

    top_rows = rows_with(lut("inferno")[255], img)
    bottom_rows = rows_with(lut("inferno")[0], img)
    assert top_rows and bottom_rows and min(top_rows) < max(bottom_rows)
    assert rows_with(contrast_color("inferno"), img) == []
    bar.set_threshold(1.5)  # 3/4 of the range
    ticks = rows_with(contrast_color("inferno"), bar.grab().toImage())
    assert ticks, "no threshold tick drawn"
    top, bottom = min(top_rows), max(bottom_rows)
    expected = bottom - 0.75 * (bottom - top)
    assert abs(np.mean(ticks) - expected) <= 3


# ---------------------------------------------------------------------- ImageView
@pytest.fixture
def image_view(qtbot):
    view = ImageView()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    qtbot.waitExposed(view)
    return view


def _rgb(h=60, w=80, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _weighted_blend_reference(rgb, heat, vmin, vmax, opacity, gamma, name="inferno"):
    """Brute-force reference of the score-weighted overlay, pixel by pixel in float64."""
    table = lut(name).astype(np.float64)
    out = rgb.astype(np.float64).copy()
    for r in range(heat.shape[0]):
        for c in range(heat.shape[1]):
            s = float(heat[r, c])
            if not np.isfinite(s):
                continue
            t = min(max((s - vmin) / (vmax - vmin), 0.0), 1.0)
            i = min(int(np.floor(256.0 * t)), 255)  # the colormap's entry (matplotlib binning)
            a = opacity * (1.0 if gamma == 0 else (i / 255.0) ** gamma)
            out[r, c] = (1.0 - a) * out[r, c] + a * table[i]
    return out


def test_alpha_ramp_table():
    ramp = alpha_ramp(1.5)
    assert ramp.shape == (256,) and ramp.dtype == np.float32
    assert ramp[0] == 0.0 and ramp[-1] == pytest.approx(1.0)
    assert (np.diff(ramp) > 0).all()
    assert ramp[128] == pytest.approx((128 / 255) ** 1.5, rel=1e-6)
    assert (alpha_ramp(0) == 1.0).all()
    assert alpha_ramp(1.0)[51] == pytest.approx(0.2, rel=1e-6)
    with pytest.raises(ValueError, match="gamma"):
        alpha_ramp(-1.0)
    idx = colormap_indices(np.array([-1.0, 0.0, 0.5, 0.999, 1.0, 3.0, np.nan]), 0.0, 1.0)
    np.testing.assert_array_equal(idx, [0, 0, 128, 255, 255, 255, 0])


def test_image_composite_score_weighted_overlay(image_view):
    rgb = _rgb()
    rng = np.random.default_rng(1)
    vmin, vmax = 0.2, 1.8
    heat = rng.uniform(vmin - 0.3, vmax + 0.3, size=(60, 80)).astype(np.float32)
    heat[:10, :10] = np.nan
    heat[20:25, 30:40] = vmax + 1.0   # hot: above the range
    heat[40:45, 50:60] = vmin - 1.0   # cold: below the range
    image_view.set_image(rgb)
    np.testing.assert_array_equal(image_view.composited(), rgb)  # no heatmap yet
    image_view.set_heatmap(heat, vmin, vmax)
    assert image_view.alpha_gamma > 0  # score-weighted by default
    image_view.set_opacity(0.0)
    np.testing.assert_array_equal(image_view.composited(), rgb)
    for opacity in (1.0, 0.6):
        image_view.set_opacity(opacity)
        out = image_view.composited()
        ref = _weighted_blend_reference(rgb, heat, vmin, vmax, opacity, image_view.alpha_gamma)
        assert np.abs(out.astype(float) - ref).max() <= 1.0
        np.testing.assert_array_equal(out[:10, :10], rgb[:10, :10])      # NaN: no overlay
        np.testing.assert_array_equal(out[40:45, 50:60], rgb[40:45, 50:60])  # cold: the photo
        hot = lut("inferno")[255].astype(float)
        expected_hot = (1 - opacity) * rgb[20:25, 30:40].astype(float) + opacity * hot
        assert np.abs(out[20:25, 30:40] - expected_hot).max() <= 1.0     # hot: coloured
    np.testing.assert_array_equal(out[20:25, 30:40], image_view.composited()[20:25, 30:40])
    alpha = image_view.overlay_alpha()
    assert alpha.shape == heat.shape and alpha[:10, :10].max() == 0.0
    assert alpha[20:25, 30:40].min() == pytest.approx(0.6) and alpha[40:45, 50:60].max() == 0.0
    # Lower scores are blended less than higher ones (strictly, away from the range ends).
    inside = np.isfinite(heat) & (heat > vmin + 0.1) & (heat < vmax - 0.1)
    order = np.argsort(heat[inside])
    assert (np.diff(alpha[inside][order]) >= 0).all() and alpha[inside].min() < alpha[inside].max()

    # gamma 0: the classic uniform blend of the whole colour map.
    image_view.set_alpha_gamma(0.0)
    image_view.set_opacity(0.3)
    colored = apply_colormap(heat, vmin, vmax, "inferno")
    valid = np.isfinite(heat)
    ref = 0.7 * rgb.astype(float) + 0.3 * colored.astype(float)
    out = image_view.composited()
    assert np.abs(out[valid].astype(float) - ref[valid]).max() <= 1.0
    np.testing.assert_array_equal(out[~valid], rgb[~valid])
    with pytest.raises(ValueError, match="gamma"):
        image_view.set_alpha_gamma(-2.0)
    image_view.set_alpha_gamma(1.5)

    before = image_view.composited()
    image_view.set_heatmap(vmax + vmin - heat, vmin, vmax)
    assert not np.array_equal(image_view.composited(), before)
    before = image_view.composited()
    image_view.set_colormap("jet")
    assert not np.array_equal(image_view.composited(), before)


def test_image_same_size_heatmap_keeps_view_and_outlines(image_view):
    rgb = _rgb()
    gt = np.zeros((60, 80), bool)
    gt[5:15, 5:25] = True
    heat = np.zeros((60, 80), np.float32)
    heat[30:40, 40:60] = 1.0
    image_view.set_image(rgb)
    image_view.set_gt(gt)
    image_view.set_heatmap(heat, 0.0, 1.0, threshold=0.5)   # threshold in the same call
    assert image_view.threshold == 0.5
    one_call = image_view.composited()
    image_view.set_threshold(None)
    image_view.set_threshold(0.5)
    np.testing.assert_array_equal(image_view.composited(), one_call)
    image_view.zoom_at(QPointF(200, 150), 2.0)
    zoom = image_view.zoom()
    image_view.set_heatmap(heat * 0.8, 0.0, 1.0)               # a fusion slider: same grid
    assert image_view.zoom() == pytest.approx(zoom)            # the user's zoom is kept
    assert image_view.threshold == 0.5                          # threshold kept when not given
    out = image_view.composited()
    np.testing.assert_array_equal((out == GT_COLOR).all(axis=2), _rect_outline(gt.shape, 5, 15, 5, 25))
    image_view.set_heatmap(heat, 0.0, 1.0, threshold=None)
    assert image_view.threshold is None and image_view._threshold_item.path().isEmpty()


def test_image_threshold_contour_is_region_outline(image_view):
    rgb = np.full((60, 80, 3), 90, np.uint8)
    heat = np.zeros((60, 80), np.float32)
    heat[20:35, 30:55] = 1.0
    image_view.set_image(rgb)
    image_view.set_heatmap(heat, 0.0, 1.0)
    image_view.set_opacity(0.5)
    plain = image_view.composited()
    image_view.set_threshold(0.5)
    with_contour = image_view.composited()
    changed = (with_contour != plain).any(axis=2)
    np.testing.assert_array_equal(changed, _rect_outline(heat.shape, 20, 35, 30, 55))
    assert (with_contour[changed] == contrast_color("inferno")).all()
    assert not image_view._threshold_item.path().isEmpty()
    image_view.set_threshold(None)
    np.testing.assert_array_equal(image_view.composited(), plain)


def test_contour_path_matches_qt_api():
    from PySide6.QtGui import QPainterPath

    from app.views.image_view import _contour_path, _contours

    rng = np.random.default_rng(5)
    mask = rng.random((60, 70)) > 0.85
    mask[20:40, 10:30] = True
    mask[25:30, 15:20] = False  # a hole: inner contour
    contours = _contours(mask)
    assert len(contours) > 20
    ref = QPainterPath()  # built element by element through the Qt API
    for c in contours:
        pts = c.reshape(-1, 2) + 0.5
        ref.moveTo(float(pts[0, 0]), float(pts[0, 1]))
        for x, y in pts[1:]:
            ref.lineTo(float(x), float(y))
        ref.lineTo(float(pts[0, 0]), float(pts[0, 1]))
    got = _contour_path(contours)
    assert got.elementCount() == ref.elementCount()
    assert got == ref
    assert _contour_path([]).isEmpty()


def test_contour_budget_keeps_longest_contours():
    from app.views.image_view import _contours

    rng = np.random.default_rng(7)
    mask = rng.random((120, 120)) > 0.93          # speckles: hundreds of tiny contours
    mask[10:60, 10:60] = True                      # and one big region
    full = _contours(mask)
    assert len(full) > 100
    lens = [len(c) for c in full]
    same = _contours(mask, max_points=sum(lens), max_contours=len(full))     # within budget: all
    assert len(same) == len(full) and all(np.array_equal(a, b) for a, b in zip(same, full))
    cut = _contours(mask, max_points=10_000, max_contours=20)
    assert len(cut) == 20
    ids = [next(i for i, c in enumerate(full) if np.array_equal(c, k)) for k in cut]
    assert ids == sorted(ids)                                      # original order kept
    assert min(len(c) for c in cut) >= sorted(lens, reverse=True)[19]  # the 20 longest
    assert max(len(c) for c in cut) == max(lens)                   # the big region survives
    by_points = _contours(mask, max_points=max(lens) + 10)
    assert sum(len(c) for c in by_points) <= max(lens) + 10 and max(len(c) for c in by_points) == max(lens)


def test_placeholders(image_view, cloud_factory):
    blank = image_view.grab().toImage()
    image_view.set_placeholder("Preparing the demo data")
    assert image_view.grab().toImage() != blank
    image_view.set_placeholder(None)
    assert image_view.grab().toImage() == blank
    view = cloud_factory()
    plain = view.render_image()
    view.set_placeholder("Preparing the demo data")
    assert not np.array_equal(view.render_image(), plain)
    view.set_placeholder(None)
    np.testing.assert_array_equal(view.render_image(), plain)


def test_image_gt_outline_and_toggle(image_view):
    rgb = np.full((50, 50, 3), 30, np.uint8)
    gt = np.zeros((50, 50), bool)
    gt[10:20, 5:45] = True
    image_view.set_image(rgb)
    image_view.set_gt(gt)
    image_view.set_show_gt(True)
    out = image_view.composited()
    green = (out == GT_COLOR).all(axis=2)
    np.testing.assert_array_equal(green, _rect_outline(gt.shape, 10, 20, 5, 45))
    image_view.set_show_gt(False)
    np.testing.assert_array_equal(image_view.composited(), rgb)


def test_image_heatmap_resized_and_heatmap_only(image_view):
    image_view.set_image(_rgb(60, 80))
    image_view.set_heatmap(np.ones((30, 40), np.float32), 0.0, 1.0)  # half resolution
    image_view.set_opacity(1.0)
    assert image_view.composited().shape == (60, 80, 3)
    assert (image_view.composited() == lut("inferno")[255]).all()
    image_view.set_image(None)
    heat = np.linspace(0, 1, 30 * 40, dtype=np.float32).reshape(30, 40)
    image_view.set_heatmap(heat, 0.0, 1.0)
    np.testing.assert_array_equal(image_view.composited(), apply_colormap(heat, 0.0, 1.0))
    image_view.set_heatmap(None)
    assert image_view.composited() is None and image_view.image_shape is None
    image_view.grab()  # paints the "no RGB image" text without error


def test_image_bad_input_raises_input_error(image_view):
    with pytest.raises(InputError, match="uint8"):
        image_view.set_image(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(InputError, match="H x W x 3"):
        image_view.set_image(np.zeros((10, 10, 5), np.uint8))
    with pytest.raises(InputError, match="H x W"):
        image_view.set_heatmap(np.zeros((10, 10, 2)), 0, 1)
    with pytest.raises(InputError, match="finite"):
        image_view.set_heatmap(np.zeros((10, 10)), 0, np.nan)


def test_image_hover_and_click_give_pixel_under_zoom(image_view, qtbot):
    image_view.set_image(_rgb(100, 80))
    vp = image_view.viewport()
    fit = image_view.zoom()
    cursor = QPoint(150, 120)
    anchor = image_view.mapToScene(cursor)
    _wheel(vp, cursor, steps=3)
    assert image_view.zoom() == pytest.approx(fit * 1.25 ** 3, rel=1e-6)
    after = image_view.mapToScene(cursor)  # zoom keeps the point under the cursor
    assert abs(after.x() - anchor.x()) * image_view.zoom() <= 1.0
    assert abs(after.y() - anchor.y()) * image_view.zoom() <= 1.0

    hovered, clicked = [], []
    image_view.pixelHovered.connect(lambda r, c: hovered.append((r, c)))
    image_view.pixelClicked.connect(lambda r, c: clicked.append((r, c)))
    scene_pt = image_view.mapToScene(QPoint(200, 150))
    for pos in (QPoint(200, 150), QPoint(37, 251)):
        scene_pt = image_view.mapToScene(pos)
        expect = (int(np.floor(scene_pt.y())), int(np.floor(scene_pt.x())))
        assert 0 <= expect[0] < 100 and 0 <= expect[1] < 80
        _send_mouse(vp, QEvent.MouseMove, pos)
        assert hovered[-1] == expect
    # A pixel chosen in image coordinates: put the cursor on its centre.
    target = (41, 17)
    pos = image_view.mapFromScene(QPointF(target[1] + 0.5, target[0] + 0.5))
    _send_mouse(vp, QEvent.MouseMove, pos)
    assert hovered[-1] == target
    _click(vp, pos)
    assert clicked == [target]


def test_image_drag_pans_without_click_and_double_click_fits(image_view):
    image_view.set_image(_rgb(100, 80))
    fit = image_view.zoom()
    _wheel(image_view.viewport(), QPoint(200, 150), steps=4)
    clicked = []
    image_view.pixelClicked.connect(lambda r, c: clicked.append((r, c)))
    vp = image_view.viewport()
    start, end = QPoint(200, 150), QPoint(260, 170)
    before = image_view.mapToScene(start)
    _send_mouse(vp, QEvent.MouseButtonPress, start, Qt.LeftButton, Qt.LeftButton)
    _send_mouse(vp, QEvent.MouseMove, end, Qt.NoButton, Qt.LeftButton)
    _send_mouse(vp, QEvent.MouseButtonRelease, end, Qt.LeftButton, Qt.NoButton)
    assert clicked == []
    moved = image_view.mapFromScene(before)  # the content followed the drag
    assert abs(moved.x() - end.x()) <= 1 and abs(moved.y() - end.y()) <= 1
    _send_mouse(vp, QEvent.MouseButtonDblClick, end, Qt.LeftButton, Qt.LeftButton)
    assert image_view.zoom() == pytest.approx(fit)


def test_image_marker(image_view):
    image_view.set_image(_rgb(40, 40))
    image_view.set_marker((12, 30))
    items = image_view._marker_items
    assert all(it.isVisible() for it in items)
    assert items[0].pos() == QPointF(30.5, 12.5)
    image_view.set_marker(None)
    assert not any(it.isVisible() for it in items)


# ---------------------------------------------------------------------- CloudView (offscreen)
@pytest.fixture
def cloud_factory(qtbot):
    from app.views.cloud_view import CloudView

    def make(**kw):
        view = CloudView(**kw)
        qtbot.addWidget(view)
        view.resize(320, 240)
        view.show()
        qtbot.waitExposed(view)
        return view

    yield make


def _grid_cloud(n=40, z=0.0):
    xs, ys = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n))
    return np.stack([xs.ravel(), ys.ravel(), np.full(n * n, z)], axis=1).astype(np.float32)


def _has_color(img, color):
    return bool((img.reshape(-1, 3) == np.asarray(color, np.uint8)).all(axis=1).any())


def test_cloud_offscreen_render_shows_score_colors(cloud_factory):
    view = cloud_factory()
    assert view.backend == "offscreen"
    empty = view.render_image()
    assert empty.shape == (240, 320, 3)
    pts = _grid_cloud()
    view.set_cloud(pts)
    view.set_point_size(4)
    scores = pts[:, 0].astype(np.float32)  # -1 .. 1 across the cloud
    scores[np.abs(pts[:, 1]) > 0.9] = np.nan
    view.set_scores(scores, -1.0, 1.0)
    img = view.render_image()
    assert img.shape == (240, 320, 3)
    assert img.std() > 10  # not blank
    assert _has_color(img, lut("inferno")[255])  # hottest points in the top colour
    assert _has_color(img, lut("inferno")[0])
    assert _has_color(img, NAN_COLOR)  # NaN scores are grey
    assert not _has_color(empty, lut("inferno")[255])
    view.set_colormap("viridis")
    img = view.render_image()
    assert _has_color(img, lut("viridis")[255]) and not _has_color(img, lut("inferno")[255])
    assert view.last_frame_ms > 0


def test_cloud_scores_update_in_place(cloud_factory):
    view = cloud_factory()
    pts = _grid_cloud(30)
    view.set_cloud(pts)
    renderer = view.plotter.renderer
    actor, mesh = view._actor, view._mesh
    n_actors = renderer.GetActors().GetNumberOfItems()
    rng = np.random.default_rng(0)
    for _ in range(2):
        s = rng.random(len(pts)).astype(np.float32)
        view.set_scores(s, 0.0, 1.0)
        view.render_image()
        np.testing.assert_array_equal(view.point_colors(), apply_colormap(s[view.display_indices], 0.0, 1.0))
        assert view._actor is actor and view._mesh is mesh
        assert renderer.GetActors().GetNumberOfItems() == n_actors
        assert view.plotter.renderer.actors["cloud"] is actor
    view.set_scores(None)  # back to the height ramp: grey levels
    c = view.point_colors()
    assert (c[:, 0] == c[:, 1]).all() and (c[:, 1] == c[:, 2]).all()


def test_cloud_gt_and_threshold_emphasis(cloud_factory):
    view = cloud_factory()
    pts = _grid_cloud(20)
    view.set_cloud(pts)
    gt = pts[:, 0] > 0.5
    s = (pts[:, 0] + 1) / 2
    view.set_scores(s, 0.0, 1.0)
    view.set_gt(gt)
    view.set_show_gt(True)
    c = view.point_colors().astype(np.float64)
    from app.views.cloud_view import GT_POINT_COLOR, GT_TINT

    # the GT is a tint over the score colours, not a replacement
    score_c = apply_colormap(s[view.display_indices], 0.0, 1.0).astype(np.float64)
    g = gt[view.display_indices]
    np.testing.assert_allclose(c[g], score_c[g] * (1 - GT_TINT) + GT_TINT * np.array(GT_POINT_COLOR), atol=1.0)
    np.testing.assert_array_equal(c[~g], score_c[~g])
    assert len(np.unique(c[g], axis=0)) > 1             # the scores still vary under the tint
    view.set_show_gt(False)
    view.set_threshold(0.8)
    assert view._emph_actor is not None and view._emph_actor.GetVisibility()
    assert view._emph_mesh.n_points == int((s >= 0.8).sum())
    view.set_threshold(None)
    assert not view._emph_actor.GetVisibility()


def test_cloud_preview_subset_during_drag(cloud_factory):
    view = cloud_factory(max_display_points=3000, preview_points=800)
    rng = np.random.default_rng(4)
    pts = rng.normal(size=(5000, 3)).astype(np.float32)
    view.set_cloud(pts)
    shown = view.display_indices.copy()
    s1 = rng.random(5000).astype(np.float32)
    view.set_scores(s1, 0.0, 1.0, threshold=0.9)           # threshold in the same call
    assert view.threshold == 0.9 and view._emph_mesh.n_points == int((s1[shown] >= 0.9).sum())
    assert view.displayed_count == 3000 and not view.preview_active
    view.set_preview(True)
    assert view.preview_active and view.displayed_count == 800
    assert not view._actor.GetVisibility() and view._preview_actor.GetVisibility()
    sub = shown[view._preview_pos]
    assert np.isin(sub, shown).all() and len(np.unique(sub)) == 800
    # while previewing only the subset is re-coloured (and emphasised) ...
    s2 = rng.random(5000).astype(np.float32)
    view.set_scores(s2, 0.0, 1.0)
    np.testing.assert_array_equal(np.asarray(view._preview_mesh.point_data["rgb"]),
                                  apply_colormap(s2[sub], 0.0, 1.0))
    assert view._emph_mesh.n_points == int((s2[sub] >= 0.9).sum())
    img = view.render_image()
    assert _has_color(img, lut("inferno")[255]) or _has_color(img, lut("inferno")[254])
    # ... but point_colors() always describes the full display subset, up to date
    np.testing.assert_array_equal(view.point_colors(), apply_colormap(s2[shown], 0.0, 1.0))
    s3 = rng.random(5000).astype(np.float32)
    view.set_scores(s3, 0.0, 1.0)
    view.set_preview(False)
    assert not view.preview_active and view.displayed_count == 3000
    assert view._actor.GetVisibility() and not view._preview_actor.GetVisibility()
    np.testing.assert_array_equal(np.asarray(view._mesh.point_data["rgb"]), apply_colormap(s3[shown], 0.0, 1.0))
    assert view._emph_mesh.n_points == int((s3[shown] >= 0.9).sum())
    # the subset is deterministic
    other = cloud_factory(max_display_points=3000, preview_points=800)
    other.set_cloud(pts)
    np.testing.assert_array_equal(other.display_indices[other._preview_pos], sub)
    # a cloud no larger than the preview subset is always shown whole
    small = cloud_factory(preview_points=800)
    small.set_cloud(pts[:600])
    small.set_preview(True)
    assert not small.preview_active and small.displayed_count == 600


def test_cloud_decimation_and_mark_outside_subset(cloud_factory):
    view = cloud_factory(max_display_points=500)
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(4000, 3)).astype(np.float32)
    view.set_cloud(pts)
    shown = view.display_indices.copy()
    assert len(shown) == 500 == len(view.point_colors())
    assert len(np.unique(shown)) == 500 and shown.max() < 4000
    view.set_cloud(pts)
    np.testing.assert_array_equal(view.display_indices, shown)  # deterministic
    scores = rng.random(4000).astype(np.float32)
    view.set_scores(scores, 0, 1)  # full-resolution scores are accepted
    np.testing.assert_array_equal(view.point_colors(), apply_colormap(scores[shown], 0, 1))
    hidden = int(np.setdiff1d(np.arange(4000), shown)[0])
    before = view.render_image()
    view.mark_point(hidden)
    assert view.marked_index == hidden
    np.testing.assert_allclose(view.marked_position(), pts[hidden], rtol=0, atol=1e-6)
    after = view.render_image()
    x, y = view.project([hidden])[0]
    r, c = int(y), int(x)
    assert (before[r - 1:r + 2, c - 1:c + 2] != after[r - 1:r + 2, c - 1:c + 2]).any()
    view.mark_point(None)
    assert view.marked_position() is None
    with pytest.raises(IndexError):
        view.mark_point(4000)


def test_cloud_offscreen_pick_at_rendered_position(cloud_factory, qtbot):
    view = cloud_factory()
    pts = _grid_cloud(7) * 0.9  # 49 well separated points
    target = 17
    view.set_cloud(pts)
    # A second point right behind the target on the camera ray through it.
    cam = view.plotter.renderer.GetActiveCamera()
    eye, focus = cam.GetPosition(), cam.GetFocalPoint()
    ray = (pts[target] - np.array(eye)) / np.linalg.norm(pts[target] - np.array(eye))
    pts = np.vstack([pts, pts[target] + 0.5 * ray]).astype(np.float32)
    behind = len(pts) - 1
    view.set_cloud(pts)
    cam.SetPosition(*eye)  # keep the camera whose ray we used
    cam.SetFocalPoint(*focus)
    view.set_point_size(7)
    s = np.zeros(len(pts), np.float32)
    s[target] = 1.0
    s[behind] = 0.5
    view.set_scores(s, 0.0, 1.0)
    img = view.render_image()
    hot = np.argwhere((img == lut("inferno")[255]).all(axis=2))
    assert len(hot) > 0, "the target point is not visible"
    assert not (img == apply_colormap(np.array([0.5]), 0, 1)[0]).all(axis=2).any()  # hidden behind
    y, x = hot.mean(axis=0)
    picked = []
    view.pointPicked.connect(picked.append)
    _click(view, QPointF(x + 0.5, y + 0.5))
    assert picked == [target]
    assert view.pick(2, 2) is None  # empty background
    # After orbiting the camera by 180 degrees the other point is in front.
    view.orbit(320 * 180.0 / 200.0, 0)
    img = view.render_image()
    mid = np.argwhere((img == apply_colormap(np.array([0.5]), 0, 1)[0]).all(axis=2))
    assert len(mid) > 0
    y, x = mid.mean(axis=0)
    assert view.pick(x + 0.5, y + 0.5) == behind


def test_cloud_mouse_orbit_zoom_and_reset(cloud_factory):
    view = cloud_factory()
    view.set_cloud(np.random.default_rng(0).normal(size=(2000, 3)).astype(np.float32))
    cam = view.plotter.renderer.GetActiveCamera()
    home = np.array(cam.GetPosition())
    img0 = view.render_image()
    _send_mouse(view, QEvent.MouseButtonPress, QPointF(100, 100), Qt.LeftButton, Qt.LeftButton)
    _send_mouse(view, QEvent.MouseMove, QPointF(160, 120), Qt.NoButton, Qt.LeftButton)
    _send_mouse(view, QEvent.MouseButtonRelease, QPointF(160, 120), Qt.LeftButton, Qt.NoButton)
    assert not np.allclose(np.array(cam.GetPosition()), home)
    assert not np.array_equal(view.render_image(), img0)
    dist = cam.GetDistance()
    _wheel(view, QPointF(160, 120), steps=2)
    assert cam.GetDistance() == pytest.approx(dist / 1.1 ** 2, rel=1e-6)
    fp = np.array(cam.GetFocalPoint())
    _send_mouse(view, QEvent.MouseButtonPress, QPointF(100, 100), Qt.RightButton, Qt.RightButton)
    _send_mouse(view, QEvent.MouseMove, QPointF(130, 100), Qt.NoButton, Qt.RightButton)
    _send_mouse(view, QEvent.MouseButtonRelease, QPointF(130, 100), Qt.RightButton, Qt.NoButton)
    assert not np.allclose(np.array(cam.GetFocalPoint()), fp)
    view.reset_view()
    np.testing.assert_allclose(np.array(cam.GetPosition()), home, atol=1e-6)
    np.testing.assert_array_equal(view.render_image(), img0)


def test_cloud_empty_and_bad_input(cloud_factory):
    view = cloud_factory()
    view.set_cloud(None)
    assert view.n_points == 0 and view.point_colors().shape == (0, 3)
    view.render_image()
    view.set_cloud(np.zeros((0, 3), np.float32))
    assert view.render_image().shape == (240, 320, 3)
    view.set_cloud(np.full((10, 3), np.nan, np.float32))
    assert len(view.display_indices) == 0
    view.render_image()
    with pytest.raises(InputError, match="N x 3"):
        view.set_cloud(np.zeros((5, 2), np.float32))
    pts = _grid_cloud(5)
    pts[3] = np.nan  # a missing point stays in the index space but is not drawn
    view.set_cloud(pts)
    assert 3 not in view.display_indices and len(view.display_indices) == 24
    with pytest.raises(InputError, match="24 scores|points"):
        view.set_scores(np.zeros(24), 0, 1)
    with pytest.raises(InputError, match="colours"):
        view.set_cloud(pts, np.zeros((25, 3), np.float32))
    colors = np.zeros((25, 3), np.uint8)
    colors[:, 2] = 200
    view.set_cloud(pts, colors)
    assert (view.point_colors() == (0, 0, 200)).all()
    view.close()
    view.render_image()  # closed: no crash


# ---------------------------------------------------------------------- CloudView (QtInteractor, Xvfb)
_INTERACTOR_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    assert QApplication.platformName() == "xcb", QApplication.platformName()
    from app.views.cloud_view import CloudView
    from app.views.colormap import lut
    view = CloudView()
    view.resize(320, 240)
    view.show()
    for _ in range(20):
        app.processEvents()
    assert view.backend == "interactor", view.backend
    xs, ys = np.meshgrid(np.linspace(-1, 1, 40), np.linspace(-1, 1, 40))
    pts = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], 1).astype(np.float32)
    view.set_cloud(pts)
    view.set_point_size(4)
    view.set_scores(pts[:, 0], -1.0, 1.0)
    img = view.render_image()
    assert img.ndim == 3 and img.shape[2] == 3 and img.std() > 10, (img.shape, img.std())
    top = lut("inferno")[255]
    assert (img.reshape(-1, 3) == top).all(axis=1).any(), "hottest colour not rendered"
    # vtkPointPicker at the rendered position of the one hot point of a sparse grid.
    xs, ys = np.meshgrid(np.linspace(-1, 1, 7), np.linspace(-1, 1, 7))
    pts = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], 1).astype(np.float32)
    view.set_cloud(pts)
    view.set_point_size(7)
    s = np.zeros(len(pts), np.float32)
    s[30] = 1.0
    view.set_scores(s, 0.0, 1.0)
    img = view.render_image()
    hot = np.argwhere((img == top).all(axis=2))
    assert len(hot), "hot point not rendered"
    y, x = hot.mean(axis=0)
    scale = img.shape[1] / view.width()  # screenshot pixels per widget pixel
    picked = view.pick((x + 0.5) / scale, (y + 0.5) / scale)
    assert picked == 30, picked
    view.close()
    print("INTERACTOR_OK", img.shape)
    """
)


def test_cloud_interactor_backend_under_xvfb(xvfb):
    if xvfb is None or xvfb.display is None:
        pytest.skip("no Xvfb display (pytest-xvfb did not start one: is Debian's xvfb installed?)")
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="xcb", DISPLAY=f":{xvfb.display}", PYTHONPATH=str(REPO))
    env.pop("MMAD_FORCE_OFFSCREEN_3D", None)
    env.pop("VTK_DEFAULT_OPENGL_WINDOW", None)  # the QtInteractor brings its own GL window
    res = subprocess.run([sys.executable, "-c", _INTERACTOR_SCRIPT], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "INTERACTOR_OK" in res.stdout, res.stdout + res.stderr


def test_cloud_score_blend_over_own_colors(cloud_factory):
    view = cloud_factory()
    pts = _grid_cloud(20)
    rng = np.random.default_rng(9)
    own = rng.integers(0, 256, size=(len(pts), 3), dtype=np.uint8)
    view.set_cloud(pts, own)
    s = rng.uniform(-0.5, 1.5, len(pts)).astype(np.float32)
    s[:5] = np.nan
    view.set_scores(s, 0.0, 1.0)
    idx = view.display_indices
    np.testing.assert_array_equal(view.point_colors(), np.where(np.isfinite(s[idx])[:, None],
                                  apply_colormap(s[idx], 0.0, 1.0), NAN_COLOR))  # default: plain colormap
    view.set_score_blend(1.5, 0.8)
    got = view.point_colors().astype(float)
    table = lut("inferno").astype(float)
    for k, i in enumerate(idx):                       # brute force, point by point
        if not np.isfinite(s[i]):
            ref = own[i].astype(float)                # NaN: the point's own colour
        else:
            t = min(max(float(s[i]), 0.0), 1.0)
            e = min(int(np.floor(256 * t)), 255)
            a = 0.8 * (e / 255.0) ** 1.5
            ref = (1 - a) * own[i] + a * table[e]
        assert np.abs(got[k] - ref).max() <= 1.0, (k, got[k], ref)
    cold = s[idx] <= 0.0
    assert cold.any() and (view.point_colors()[cold] == own[idx][cold]).all()
    with pytest.raises(ValueError, match="gamma"):
        view.set_score_blend(-1.0)


def test_cloud_marker_ring_is_drawn_over_points_that_hide_it(cloud_factory):
    from app.views.cloud_view import MARKER_RING_PX

    view = cloud_factory()
    front = _grid_cloud(140, z=0.0)                    # a dense plate facing the camera (looks along +z)
    hidden = np.array([[0.05, 0.05, 1.0]], np.float32)  # a point behind the plate, e.g. in a cavity
    pts = np.vstack([front, hidden])
    view.set_cloud(pts)
    view.render_image()
    before = view.render_image()
    idx = len(pts) - 1
    view.mark_point(idx)
    assert view.marker_on_top()
    after = view.render_image()
    x, y = view.project([idx])[0]
    dpr = view.devicePixelRatioF()
    yy, xx = np.mgrid[:after.shape[0], :after.shape[1]]
    rr = np.hypot(xx - x * dpr, yy - y * dpr)
    ring = (rr > MARKER_RING_PX - 1.5) & (rr < MARKER_RING_PX + 1.5)
    changed = (before != after).any(axis=2)
    assert changed[ring].mean() > 0.5                  # the ring shows although the point is hidden
    # picking still sees the plate, not the hidden point under the ring
    picked = view.pick(x, y)
    assert picked is not None and picked != idx and abs(pts[picked, 2]) < 1e-6
    view.mark_point(None)
    assert not view.marker_on_top()


# ---------------------------------------------------------------------- rendered-view strip
def test_map_strip_shows_the_rendered_views_with_their_maps(qtbot):
    """A view-based 3D result (CLIP on a cloud) shows its K rendered views under the maps, each
    coloured by its own map over the part only; a result without views hides the row."""
    from core.detectors.base import Components, DetectorResult
    from core.render import render_views, view_label, view_rotations
    from core.render.views import MVTEC_VIEWS
    from app.views.map_strip import MapStrip

    rng = np.random.default_rng(0)
    pts = rng.normal(size=(3000, 3)) * [1.0, 0.6, 0.2]
    views = render_views(pts, view_rotations(MVTEC_VIEWS), size=64)
    strip = views.strip([view_label(a, d) for a, d in MVTEC_VIEWS], 48)
    maps = np.zeros((strip.k, 48, 48), np.float32)
    maps[:, 20:28, 20:28] = 1.0                       # a "defect" in the middle of every view
    res = DetectorResult(Components(shape=None), None, np.zeros(len(pts), np.float32), 0.5,
                         views=strip.with_maps(maps))
    ms = MapStrip()
    qtbot.addWidget(ms)
    ms.resize(1000, 260)
    ms.show()
    ms.set_result(res)
    row = ms.views
    assert row.isVisible() and row.labels() == [view_label(a, d) for a, d in MVTEC_VIEWS]
    shown = [p for p in row.pictures if p.isVisible()]
    assert len(shown) == 9 and all(p.caption.text() for p in shown)
    pic = shown[2].rgb
    m = strip.masks[2]
    # the background stays the plain render; on the part the hot square differs from the cold rest
    assert np.array_equal(pic[~m], strip.images[2][~m])
    inside = m.copy()
    inside[:20], inside[28:], inside[:, :20], inside[:, 28:] = False, False, False, False
    cold = m & ~inside
    assert inside.any() and cold.any()
    assert np.abs(pic[inside].mean(0).astype(float) - pic[cold].mean(0)).sum() > 60
    assert "9 rendered views" in row.title.text()
    ms.set_result(DetectorResult(Components(shape=None), None, None, 0.1))
    assert not row.isVisible()


def test_fusion_panel_says_which_decision_threshold_is_in_use(qtbot):
    from app.panels.fusion import FusionPanel
    p = FusionPanel()
    qtbot.addWidget(p)
    p.show()
    p.set_decision(0.849, 0.0, 0.05)
    assert p.decision.isVisible() and "0.849" in p.decision.text() and "5%" in p.decision.text()
    assert "calibrated" in p.decision.text()
    p.set_decision(2.0, 2.0, 0.05)                      # a typed threshold
    assert "2" in p.decision.text() and "calibrated for" not in p.decision.text()
    p.set_decision(None)
    assert not p.decision.isVisible()
