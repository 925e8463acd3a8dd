"""``sstam reproduce --cells/--codecs``: the grid is filtered by key prefix and the ladders follow --codecs."""

from __future__ import annotations

import argparse

import pytest
from sstam.reproduce import build_cells

from paperlab_core.errors import UserError


def _args(**kw) -> argparse.Namespace:
    base = {"quick": True, "ckpt": "default", "seeds": None, "codecs": None, "cells": None}
    return argparse.Namespace(**{**base, **kw})


def test_cells_filter_and_codecs() -> None:
    every = build_cells(_args(), None)
    assert {c.key.split("/")[0] for c in every} == {"detectors", "fusion", "codec", "saliency"}
    assert all(c.params["codecs"] == ["x264"] for c in every if c.key.startswith("codec/"))
    chosen = build_cells(_args(cells=["codec", "saliency"], codecs=["x264", "x265"]), None)
    assert chosen and all(c.key.startswith(("codec/", "saliency/")) for c in chosen)
    assert all(c.params["codecs"] == ["x264", "x265"] for c in chosen if c.key.startswith("codec/"))
    assert len(chosen) == sum(c.key.startswith(("codec/", "saliency/")) for c in every)
    with pytest.raises(UserError, match="selects no cell"):
        build_cells(_args(cells=["nothing"]), None)


def test_resume_reruns_cells_of_another_bundle(tmp_path, monkeypatch) -> None:
    """A resumed reproduce reuses a record only when the bundle's content is the same (``bundle_sha256``)."""
    import json
    import shutil

    import sstam.plots
    import sstam.report
    import sstam.reproduce as reproduce
    from sstam.bundle import default_bundle_dir
    from sstam.cli import main

    calls: list[str] = []

    def fake_spatial(params, device):
        calls.append(params["bundle"])
        return {"calls": len(calls)}

    monkeypatch.setattr(reproduce, "cell_spatial", fake_spatial)
    monkeypatch.setattr(sstam.report, "summarize", lambda records: {})
    monkeypatch.setattr(sstam.plots, "make_plots", lambda records, folder, shared: [])
    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_dir(), bundle)
    out = tmp_path / "rep"
    argv = ["reproduce", "--quick", "--cells", "detectors/spatial", "--shared-data", "none"]
    argv += ["--ckpt", str(bundle), "--out", str(out)]
    record = out / "records" / "detectors_spatial.json"
    assert main(argv) == 0 and len(calls) == 1
    first = json.loads(record.read_text())["settings"]["bundle_sha256"]
    assert main(argv) == 0 and len(calls) == 1  # the same bundle: the record is reused
    with open(bundle / "config.yaml", "a", encoding="utf-8") as handle:
        handle.write("# retrained in place\n")  # same path, other content: re-run
    assert main(argv) == 0 and len(calls) == 2
    assert json.loads(record.read_text())["settings"]["bundle_sha256"] not in (first, None)
