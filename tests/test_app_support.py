"""Few-shot from the data itself: "use as support" from the sample list, file dialogs at the data
folder; opening a folder with a chosen layout."""
from __future__ import annotations


from conftest import MemoryDataset
from test_app import close, make_window, settings, wait_result  # noqa: F401 - fixtures


def test_use_as_support_from_the_list_refits_and_reruns(qtbot, settings, fake_detector, tmp_path):  # noqa: F811
    win = make_window(qtbot, settings)
    ds = MemoryDataset(tmp_path / "mem")
    win.set_dataset(ds)
    test_good = ds.select(["disc"], split="test", label="good")[0]
    win.browser.select_key(test_good.key)
    wait_result(qtbot, win)
    fits = fake_detector.counters["fit"]
    before = list(win.session.support("disc"))
    win.browser.useAsSupport.emit(test_good.key)
    after = win.session.support("disc")
    assert len(after) == len(before) + 1 and after[-1].key == test_good.key
    qtbot.waitUntil(lambda: fake_detector.counters["fit"] > fits and win.inspector.result is not None
                    and not win.runner.busy, timeout=15000)
    # the few-shot panel lists it (selected) and its file dialog starts at the data folder
    assert test_good.key in win.fewshot_panel._items and win.fewshot_panel._items[test_good.key].isSelected()
    assert win.fewshot_panel.start_dir == str(ds.root)
    # a defective sample is refused
    bad = ds.select(["disc"], split="test", label="blob")[0]
    win.browser.useAsSupport.emit(bad.key)
    assert len(win.session.support("disc")) == len(after)
    assert "only good samples" in win.banner.text()
    close(win)


def test_open_folder_with_layout_override(qtbot, settings, fake_detector, tmp_path):  # noqa: F811
    from test_datasets_layouts import make_mvtec_ad
    make_mvtec_ad(tmp_path / "ad", classes=("bottle",))
    win = make_window(qtbot, settings)
    assert win.dataset.open_folder(tmp_path / "ad", layout="folder")
    assert win.session.dataset.layout == "folder"
    assert win.dataset.open_folder(tmp_path / "ad", layout="auto")
    assert win.session.dataset.layout == "mvtec-ad"
    assert "MVTec AD" in win.statusBar().currentMessage()
    close(win)


def test_single_letter_shortcuts_do_not_fire_while_typing(qtbot, settings, fake_detector, tmp_path):  # noqa: F811
    win = make_window(qtbot, settings)
    ds = MemoryDataset(tmp_path / "mem")
    win.set_dataset(ds)
    win.browser.select_key(ds.select(["disc"], split="test")[0].key)
    wait_result(qtbot, win)
    note = win.review_panel.note
    note.setFocus()
    qtbot.waitUntil(note.hasFocus, timeout=2000)
    qtbot.keyClicks(note, "cracked rim, unsure")
    assert note.text() == "cracked rim, unsure"
    assert win.review.store.verdict_counts().get("confirmed", 0) == 0 and sum(win.review.store.verdict_counts().values()) == 0
    close(win)
