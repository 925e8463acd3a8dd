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
