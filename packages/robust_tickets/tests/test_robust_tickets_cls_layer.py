"""The [CLS]-only last layer (cls_layer.py) against the full layer, in float64: logits and every gradient."""

from __future__ import annotations

import copy

import pytest
import torch
import transformers
from robust_tickets.cls_layer import ClsOnlyBertLayer, cls_only_last_layer, full_last_layer
from robust_tickets.models import MaskedModel, count_mask_entries, load_pretrained

# The shortcut is installed on transformers 5 only (4.x layers return tuples and build masks differently);
# under 4.x the last test below checks that the model is left unchanged instead.
TRANSFORMERS_5 = int(transformers.__version__.split(".")[0]) >= 5
needs_5 = pytest.mark.skipif(
    not TRANSFORMERS_5, reason="the [CLS]-only layer is installed on transformers >= 5"
)


def _pair(mode: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    full = load_pretrained("tiny-bert", 3, init_seed=5).double()
    fast = copy.deepcopy(full)
    assert cls_only_last_layer(fast)
    if mode == "dense":
        return full.eval(), fast.eval()
    a, b = MaskedModel(full, mode), MaskedModel(fast, mode)
    with torch.no_grad():  # masks that differ per entry, so that a wrong row would show
        scores = torch.randn(
            a.mask_scores.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
        )
        a.mask_scores.copy_(scores)
        b.mask_scores.copy_(scores)
    return a.eval(), b.eval()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 5000, (4, 11), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # padded rows: the [CLS] query must not attend to padding
    mask[3, 3:] = 0
    return ids, mask


@needs_5
@pytest.mark.parametrize("mode", ["dense", "soft"])
def test_cls_only_layer_equals_the_full_layer_in_value_and_gradient(mode):
    full, fast = _pair(mode)
    ids, mask = _batch()
    labels = torch.tensor([0, 2, 1, 2])
    grads = []
    for net in (full, fast):
        emb = net.get_input_embeddings()(ids).detach().requires_grad_(True)  # the perturbation's leaf (δ)
        logits = net(inputs_embeds=emb, attention_mask=mask).logits
        torch.nn.functional.cross_entropy(logits, labels).backward()
        params = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
        grads.append((logits.detach(), emb.grad, params))
    (la, ea, pa), (lb, eb, pb) = grads
    torch.testing.assert_close(lb, la, rtol=0, atol=1e-12)
    torch.testing.assert_close(eb, ea, rtol=0, atol=1e-12)
    assert set(pa) == set(pb) and len(pa) > 10
    for name in pa:  # mask scores (soft) or every backbone weight (dense), incl. the last layer's
        torch.testing.assert_close(pb[name], pa[name], rtol=0, atol=1e-12, msg=name)
    last = "encoder.layer.1.output.dense"
    assert any(last in n and pa[n].abs().sum() > 0 for n in pa)  # the last layer does receive gradient


@needs_5
def test_cls_only_layer_keeps_names_and_is_used_by_default():
    from robust_tickets.module import TicketModule

    plain = load_pretrained("tiny-bert", 2)
    fast = copy.deepcopy(plain)
    cls_only_last_layer(fast)
    assert isinstance(fast.bert.encoder.layer[-1], ClsOnlyBertLayer)
    assert list(fast.state_dict()) == list(plain.state_dict()) and count_mask_entries(
        fast
    ) == count_mask_entries(plain)
    ids, mask = _batch()
    out = fast.bert(input_ids=ids, attention_mask=mask).last_hidden_state
    assert out.shape == (4, 1, 64)  # only the [CLS] row leaves the last layer
    full_last_layer(fast)
    assert type(fast.bert.encoder.layer[-1]).__name__ == "BertLayer"
    assert isinstance(
        TicketModule(model_name="tiny-bert").net.backbone.bert.encoder.layer[-1], ClsOnlyBertLayer
    )
    off = TicketModule(model_name="tiny-bert", cls_only_last_layer=False).net.backbone
    assert not isinstance(off.bert.encoder.layer[-1], ClsOnlyBertLayer)
    # never on the sentence-similarity encoder, whose token outputs are mean-pooled
    assert not isinstance(load_pretrained("tiny-bert", 2).bert.encoder.layer[-1], ClsOnlyBertLayer)


@needs_5
def test_cls_only_layer_applies_attention_dropout_in_training():
    """Train mode: the [CLS] attention row is dropped out like the full layer's (not silently deterministic)."""
    _, fast = _pair("dense")
    layer = fast.bert.encoder.layer[-1]
    layer.attention.self.dropout.p = 0.5
    h = torch.randn(2, 6, 64, dtype=torch.float64)
    layer.train()
    torch.manual_seed(0)
    a = layer(h)
    b = layer(h)
    assert not torch.allclose(a, b)
    layer.eval()
    torch.testing.assert_close(layer(h), layer(h), rtol=0, atol=0)


@pytest.mark.skipif(TRANSFORMERS_5, reason="the transformers 4.x fallback")
def test_transformers_4_leaves_the_last_layer_full():
    model = load_pretrained("tiny-bert", 2)
    assert not cls_only_last_layer(model)
    assert type(model.bert.encoder.layer[-1]).__name__ == "BertLayer"
