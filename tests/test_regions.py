import numpy as np

from core.project.records import check_geometry
from core.project.regions import blob_at_pixel, cluster_at_point


def test_blob_at_pixel_outlines_the_clicked_blob_only():
    m = np.zeros((40, 40), np.float32)
    m[5:10, 5:12] = 2.0
    m[25:35, 25:30] = 3.0
    g = blob_at_pixel(m, 7, 8, threshold=1.0)
    xs, ys = zip(*g["polygon"])
    assert min(xs) == 5 and max(xs) == 11 and min(ys) == 5 and max(ys) == 9
    check_geometry(g)
    assert blob_at_pixel(m, 0, 0, threshold=1.0) is None         # nothing there
    assert blob_at_pixel(m, 100, 0, threshold=1.0) is None


def test_cluster_at_point_grows_over_connected_high_points():
    g = np.stack(np.meshgrid(np.arange(20.0), np.arange(20.0)), -1).reshape(-1, 2)
    pts = np.c_[g, np.zeros(len(g))]
    s = np.zeros(len(pts))
    a = (g[:, 0] < 4) & (g[:, 1] < 4)
    b = (g[:, 0] > 14) & (g[:, 1] > 14)
    s[a] = 2.0
    s[b] = 2.0
    idx = int(np.flatnonzero(a)[0])
    out = cluster_at_point(pts, s, idx, threshold=1.0)
    assert set(out["points"]) == set(np.flatnonzero(a).tolist())
    check_geometry(out)
