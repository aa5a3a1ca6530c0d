"""The session calibrates the memory-bank threshold on ``validation/good`` parts at fit time,
and the saved fit depends on them."""
from __future__ import annotations

import pytest

from core.demo import generate_demo
from core.session import Session

FAST = dict(working_size=64, target_points=1000)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("mbval")
    return generate_demo(root / "demo", classes=["cookie"], n_train=2, n_val=2, n_test_good=1,
                         n_per_defect=1, size=96)


def test_fit_calibrates_on_validation_parts_and_the_fit_key_covers_them(demo, tmp_path):
    s = Session(detector="memory-bank", params=FAST, fit_store=tmp_path / "fits")
    s.open(demo)
    val = s.calibration_items("cookie")
    assert [r.split for r in val] == ["validation", "validation"]
    assert not {(r.split, r.id) for r in val} & {(r.split, r.id) for r in s.support("cookie")}
    off = Session(detector="memory-bank", params=FAST, fit_store=None, calibrate_on_validation=False)
    off.open(demo)
    assert off.calibration_items("cookie") == []
    assert off.expected_fit_key("cookie") != s.expected_fit_key("cookie")

    s.fit("cookie")
    st = s.fit_state("cookie")
    assert st.key == s.expected_fit_key("cookie")
    assert st.meta["n_validation"] == 2 and "val.rgb" in st.arrays
    inst = s.instance("cookie")
    assert len(inst.calibration_scores()) == 2     # validation scores, not the 2 leave-one-out ones
    thr = inst.calibrated_threshold()

    again = Session(detector="memory-bank", params=FAST, fit_store=tmp_path / "fits")
    again.open(demo)
    again.fit("cookie")
    assert again.fit_sources["cookie"] == "saved"
    assert again.instance("cookie").calibrated_threshold() == pytest.approx(thr)
