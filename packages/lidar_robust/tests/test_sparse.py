from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from lidar_robust.sparse import (
    SparseConv3d,
    SparseInverseConv3d,
    SparseTensor,
    SubMConv3d,
    spconv_backend,
    voxelize,
)


def _random_tensor(shape=(8, 8, 10), channels=3, batch=2, density=0.25, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(batch, *shape, generator=g) < density
    coords = mask.nonzero().int()
    feats = torch.randn(len(coords), channels, generator=g, dtype=dtype, requires_grad=True)
    return SparseTensor(coords, feats, shape, batch)


def _at(dense: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    c = coords.long()
    return dense[c[:, 0], :, c[:, 1], c[:, 2], c[:, 3]]


def _dense_weight(weight: torch.Tensor, k: int, transpose: bool = False) -> torch.Tensor:
    w = weight.reshape(k, k, k, weight.shape[1], weight.shape[2])
    return w.permute(3, 4, 0, 1, 2) if transpose else w.permute(4, 3, 0, 1, 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_submanifold_equals_dense_conv3d_values_and_gradients(seed):
    x = _random_tensor(seed=seed)
    conv = SubMConv3d(3, 5).double()
    y = conv(x)
    dense_in = x.dense()
    dense_in.retain_grad()
    ref = _at(F.conv3d(dense_in, _dense_weight(conv.weight, 3), padding=1), x.coords)
    assert torch.allclose(y.feats, ref, atol=1e-12)
    g = torch.randn_like(ref)
    gw, gx = torch.autograd.grad(y.feats, (conv.weight, x.feats), g)
    gw_ref, gx_ref = torch.autograd.grad(ref, (conv.weight, x.feats), g)
    assert torch.allclose(gw, gw_ref, atol=1e-12) and torch.allclose(gx, gx_ref, atol=1e-12)


def test_float32_tolerance_1e5():
    x = _random_tensor(shape=(16, 16, 16), channels=16, density=0.3, dtype=torch.float32)
    conv = SubMConv3d(16, 16)
    ref = _at(F.conv3d(x.dense(), _dense_weight(conv.weight, 3), padding=1), x.coords)
    assert (conv(x).feats - ref).abs().max() < 1e-5


def test_strided_and_inverse_equal_dense_and_transposed_conv():
    x = _random_tensor(shape=(8, 10, 6), seed=4)
    down = SparseConv3d(3, 4, indice_key="s").double()
    y = down(x)
    ref = F.conv3d(x.dense(), _dense_weight(down.weight, 2), stride=2)
    assert y.spatial_shape == (4, 5, 3)
    assert torch.allclose(y.dense(), ref, atol=1e-12)
    g = torch.randn_like(y.feats)
    gx = torch.autograd.grad(y.feats, x.feats, g, retain_graph=True)[0]
    gref = torch.autograd.grad(_at(ref, y.coords), x.feats, g)[0]
    assert torch.allclose(gx, gref, atol=1e-12)
    up = SparseInverseConv3d(4, 3, indice_key="s").double()
    z = up(y)
    assert torch.equal(z.coords, x.coords)
    ref_up = F.conv_transpose3d(y.dense(), _dense_weight(up.weight, 2, transpose=True), stride=2)
    assert torch.allclose(z.feats, _at(ref_up, z.coords), atol=1e-12)


def test_general_kernel_and_stride():
    x = _random_tensor(shape=(9, 7, 8), seed=5)
    conv = SparseConv3d(3, 2, kernel_size=3, stride=2, padding=1).double()
    ref = F.conv3d(x.dense(), _dense_weight(conv.weight, 3), stride=2, padding=1)
    assert torch.allclose(conv(x).dense(), ref, atol=1e-12)


def test_voxelize_mean_and_inverse():
    pts = torch.tensor([[0.05, 0.05, 0.05, 1.0], [0.07, 0.02, 0.01, 3.0], [0.5, 0.5, 0.5, 5.0]])
    vox = voxelize(
        pts[:, :3], pts, torch.zeros(3, dtype=torch.long), 1, (0, 0, 0), (0.1, 0.1, 0.1), (16, 16, 16)
    )
    assert vox.tensor.num_voxels == 2
    assert vox.point_to_voxel[0] == vox.point_to_voxel[1] != vox.point_to_voxel[2]
    assert vox.tensor.feats[vox.point_to_voxel[0], 3] == pytest.approx(2.0)
    far = voxelize(
        pts[:, :3] * 100, pts, torch.zeros(3, dtype=torch.long), 1, (0, 0, 0), (0.1,) * 3, (16, 16, 16)
    )
    assert int(far.tensor.coords[:, 1:].max()) == 15  # clamped onto the border, every point keeps a voxel


@pytest.mark.skipif(not spconv_backend.available(), reason="spconv not installed")
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_spconv_backend_equals_torch_backend(seed):
    """Values and gradients of SubM, strided and inverse convolutions (spconv on CPU: patched, one thread).
    The coordinates come from ``nonzero()`` (not contiguous): the adapter must hand spconv contiguous tensors."""
    x = _random_tensor(shape=(16, 16, 16), channels=8, density=0.2, dtype=torch.float32, seed=seed)
    pairs = [
        (SubMConv3d(8, 6, indice_key="a"), SubMConv3d(8, 6, indice_key="a", backend="spconv")),
        (SparseConv3d(8, 6, indice_key="s"), SparseConv3d(8, 6, indice_key="s", backend="spconv")),
    ]
    for ours, theirs in pairs:
        theirs.load_state_dict(ours.state_dict())
        a, b = ours(x), theirs(x)
        order_a = torch.argsort(a.keys())
        order_b = torch.argsort(b.keys())
        assert torch.equal(a.coords[order_a], b.coords[order_b].int())
        assert (a.feats[order_a] - b.feats[order_b]).abs().max() < 1e-5
        g = torch.randn_like(a.feats[order_a])
        ga = torch.autograd.grad(a.feats[order_a], (ours.weight, x.feats), g)
        gb = torch.autograd.grad(b.feats[order_b], (theirs.weight, x.feats), g)
        assert (ga[1] - gb[1]).abs().max() < 1e-5  # input gradients: a few products per entry
        # weight gradients sum ~1.6k products (|g| ≈ 100): float32 summation order → 1e-5 relative
        assert (ga[0] - gb[0]).abs().max() < 1e-5 * ga[0].abs().max()
    down_t, down_s = pairs[1][0], pairs[1][1]
    up_t = SparseInverseConv3d(6, 8, indice_key="s")
    up_s = SparseInverseConv3d(6, 8, indice_key="s", backend="spconv")
    up_s.load_state_dict(up_t.state_dict())
    fresh = SparseTensor(
        x.coords, x.feats, x.spatial_shape, x.batch_size
    )  # a new forward pass: new kernel maps
    za, zb = up_t(down_t(fresh)), up_s(down_s(fresh))
    oa, ob = torch.argsort(za.keys()), torch.argsort(zb.keys())
    assert (za.feats[oa] - zb.feats[ob]).abs().max() < 1e-5
