"""Loaders (fixtures in both real formats, shared real data), generators and bad input (spec §6 item 10)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from ccgc.graphs import load_adgc, load_planetoid, make_graph, sparse_sbm

from paperlab_core.errors import ConfigError, MissingFileError


def test_planetoid_fixture_with_test_index_gap(planetoid_fixture):
    before = sorted(p.name for p in planetoid_fixture.rglob("*"))
    graph = load_planetoid("citeseer", planetoid_fixture)
    assert graph.num_nodes == 10 and graph.x.shape == (10, 5)
    assert graph.x[8].abs().sum() == 0 and graph.y[8] == 0  # padded isolated node
    expected_tx = torch.tensor([[1.0, 0, 0, 0, 1], [0, 1, 0, 0, 0], [0, 0, 1, 1, 0]])
    torch.testing.assert_close(graph.x[[9, 6, 7]], expected_tx)  # row j of tx goes to node test_index[j]
    assert graph.y[[9, 6, 7]].tolist() == [2, 0, 1]
    assert graph.num_undirected_edges == 5  # the loop 3-3 is dropped; (6, 9) counted once
    assert sorted(p.name for p in planetoid_fixture.rglob("*")) == before  # nothing written


def test_planetoid_missing_file_names_it(planetoid_fixture):
    (planetoid_fixture / "CiteSeer" / "raw" / "ind.citeseer.graph").unlink()
    with pytest.raises(MissingFileError, match=r"ind\.citeseer\.graph does not exist"):
        load_planetoid("citeseer", planetoid_fixture)


def test_adgc_fixture_and_missing_amap(adgc_fixture):
    graph = load_adgc("bat", adgc_fixture)
    assert graph.x.shape == (6, 4) and graph.num_undirected_edges == 5  # self-loop dropped
    assert graph.y.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(MissingFileError, match=r"amap[/\\]amap_feat\.npy does not exist") as err:
        load_adgc("amap", adgc_fixture)
    assert "\n" not in str(err.value)


def test_bad_input_messages():
    """Bad graphs are user errors (ConfigError: one line from the CLI), naming the field."""
    x = torch.randn(4, 3)
    with pytest.raises(ConfigError, match="3 labels for 4 nodes"):
        make_graph("toy", x, torch.tensor([[0, 1], [1, 0]]), torch.tensor([0, 1, 1]))
    with pytest.raises(ConfigError, match="not symmetric"):
        make_graph("toy", x, torch.tensor([[0], [1]]), torch.tensor([0, 1, 1, 0]))
    directed = make_graph(
        "toy", x, torch.tensor([[0], [1]]), torch.tensor([0, 1, 1, 0]), symmetric="symmetrize"
    )
    assert directed.edge_index.tolist() == [[0, 1], [1, 0]]
    with pytest.raises(ConfigError, match="must lie in"):
        make_graph("toy", x, torch.tensor([[0, 1], [1, 0]]), None, num_clusters=5)
    from ccgc.engine import CCGCConfig, train_ccgc

    with pytest.raises(ConfigError, match="clusters"):
        train_ccgc(x, 5)
    with pytest.raises(ConfigError, match="tau=0.0"):
        CCGCConfig(tau=0.0)


def test_data_root_serves_both_layouts_and_must_exist(planetoid_fixture, adgc_fixture, tmp_path):
    """`--data.root` may hold the files or planetoid/ and adgc/ subfolders (like ../shared/data); it must exist."""
    import shutil

    from ccgc.data import CCGCDataModule, load_graph
    from ccgc.names import dataset_root

    both = tmp_path / "both"
    shutil.copytree(planetoid_fixture / "CiteSeer", both / "planetoid" / "CiteSeer")
    shutil.copytree(adgc_fixture / "bat", both / "adgc" / "bat")
    assert dataset_root("citeseer", both) == both / "planetoid"
    assert dataset_root("bat", both) == both / "adgc"
    assert dataset_root("bat", adgc_fixture) == adgc_fixture
    assert load_graph("citeseer", both).num_nodes == 10
    assert load_graph("bat", both).num_nodes == 6
    with pytest.raises(MissingFileError, match="data root .*nowhere does not exist"):
        load_graph("bat", tmp_path / "nowhere")
    with pytest.raises(MissingFileError, match="data root"):
        CCGCDataModule(dataset="cora", root=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="unknown dataset 'nope'"):
        CCGCDataModule(dataset="nope")


def test_sparse_sbm_is_homophilous_and_sparse():
    graph = sparse_sbm(2000, 10000, 5, homophily=0.8, num_features=8, seed=0)
    row, col = graph.edge_index
    assert (row * 2000 + col).unique().numel() == row.numel()  # no duplicates
    assert (row != col).all()
    same = (graph.y[row] == graph.y[col]).float().mean().item()
    assert same == pytest.approx(0.8, abs=0.03)
    assert 9000 < graph.num_undirected_edges <= 10000
    assert torch.bincount(graph.y).tolist() == [400] * 5


def test_pyg_data_file_trains(tmp_path):
    from ccgc.data import CCGCDataModule
    from torch_geometric.datasets import KarateClub

    data = KarateClub()[0]
    torch.save(data, tmp_path / "karate.pt")
    dm = CCGCDataModule(dataset="pyg", path=str(tmp_path / "karate.pt"), t=2)
    dm.setup()
    assert dm.graph.num_nodes == 34 and dm.graph.num_clusters == 4 and dm.x_smooth.shape == (34, 34)


@pytest.mark.data
def test_shared_planetoid(shared_data):
    root = shared_data / "planetoid"
    stamp = {p: p.stat().st_mtime for p in root.rglob("*")}
    cora = load_planetoid("cora", root)
    assert cora.x.shape == (2708, 1433) and cora.num_undirected_edges == 5278
    assert torch.bincount(cora.y).tolist() == [351, 217, 418, 818, 426, 298, 180]
    citeseer = load_planetoid("citeseer", root)
    assert citeseer.x.shape == (3327, 3703) and citeseer.num_undirected_edges == 4552
    assert int((citeseer.x.sum(1) == 0).sum()) == 15
    assert torch.bincount(citeseer.y).tolist() == [264, 590, 668, 701, 596, 508]
    assert {p: p.stat().st_mtime for p in root.rglob("*")} == stamp  # nothing written


@pytest.mark.data
def test_shared_planetoid_matches_pyg(shared_data, tmp_path):
    import shutil

    from torch_geometric.datasets import Planetoid
    from torch_geometric.utils import coalesce, remove_self_loops

    shutil.copytree(shared_data / "planetoid" / "Cora" / "raw", tmp_path / "Cora" / "raw")
    ref = Planetoid(str(tmp_path), "Cora")[0]
    ours = load_planetoid("cora", shared_data / "planetoid")
    assert torch.equal(ours.x, ref.x) and torch.equal(ours.y, ref.y)
    assert torch.equal(ours.edge_index, coalesce(remove_self_loops(ref.edge_index)[0]))


@pytest.mark.data
@pytest.mark.parametrize(
    ("name", "shape", "counts", "edges"),
    [
        ("bat", (131, 81), [32, 32, 32, 35], 1003),
        ("eat", (399, 203), [99, 99, 99, 102], 5993),
        ("uat", (1190, 239), [297, 297, 297, 299], 13599),
    ],
)
def test_shared_adgc(shared_data, name, shape, counts, edges):
    folder = shared_data / "adgc"
    graph = load_adgc(name, folder)
    assert tuple(graph.x.shape) == shape
    assert sorted(torch.bincount(graph.y).tolist()) == counts
    assert graph.num_undirected_edges == edges
    assert not any(p.suffix != ".npy" for p in (folder / name).iterdir() if p.is_file())
    assert np.load(folder / name / f"{name}_adj.npy", mmap_mode="r").shape == (shape[0], shape[0])
    assert os.access(folder, os.R_OK)
