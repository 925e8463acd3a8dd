"""Criterion 3: exactly the listed matrices are masked; during a search only the mask scores change."""

from __future__ import annotations

import pytest
import torch
from robust_tickets.losses import pgd_objective
from robust_tickets.models import (
    MaskedLinear,
    MaskedModel,
    count_mask_entries,
    find_mask_targets,
    minilm_path,
    model_from_config,
    state_hash,
)
from transformers import AutoConfig, BertConfig, DistilBertConfig, RobertaConfig


def test_bert_base_config_has_73_matrices():
    model = model_from_config(BertConfig(num_labels=2))
    assert count_mask_entries(model) == (73, 85_524_480)


def test_bert_base_random_alias_is_bert_base_shaped():
    """The GPU benchmark's model (spec 7.1): BERT-base shapes with random, seeded weights, no download."""
    from robust_tickets.models import load_pretrained, load_tokenizer

    a, b = (
        load_pretrained("bert-base-random", 2, init_seed=3),
        load_pretrained("bert-base-random", 2, init_seed=3),
    )
    assert count_mask_entries(a) == (73, 85_524_480)
    assert torch.equal(
        a.bert.encoder.layer[0].attention.self.query.weight,
        b.bert.encoder.layer[0].attention.self.query.weight,
    )
    assert load_tokenizer("bert-base-random").vocab_size == a.config.vocab_size


def test_minilm_config_has_37_matrices():
    model = model_from_config(AutoConfig.from_pretrained(minilm_path(), num_labels=2))
    assert count_mask_entries(model) == (37, 10_764_288)


def test_exactly_the_listed_modules(tiny_masked):
    names = set(tiny_masked.target_names)
    expected = set()
    for i in range(2):
        p = f"bert.encoder.layer.{i}."
        expected |= {p + "attention.self.query", p + "attention.self.key", p + "attention.self.value"}
        expected |= {p + "attention.output.dense", p + "intermediate.dense", p + "output.dense"}
    expected.add("bert.pooler.dense")
    assert names == expected
    masked_weights = {n + ".weight" for n in expected}
    for name, _ in tiny_masked.backbone.named_parameters():
        is_masked = name in masked_weights
        if (
            "embeddings" in name
            or "LayerNorm" in name
            or name.endswith("bias")
            or name.startswith("classifier")
        ):
            assert not is_masked, name
    assert sum(isinstance(m, MaskedLinear) for m in tiny_masked.modules()) == 13
    assert not isinstance(tiny_masked.backbone.classifier, MaskedLinear)


def test_state_dict_keys_unchanged(tiny_backbone):
    keys = set(tiny_backbone.state_dict())
    masked = MaskedModel(tiny_backbone)
    assert set(masked.backbone.state_dict()) == keys


def test_distilbert_and_roberta_and_override():
    distil = model_from_config(DistilBertConfig(n_layers=2, dim=32, hidden_dim=64, n_heads=2, vocab_size=100))
    assert count_mask_entries(distil)[0] == 12
    roberta = model_from_config(
        RobertaConfig(
            num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=2, vocab_size=100
        )
    )
    names = find_mask_targets(roberta)
    assert not any(
        n.startswith("classifier") for n in names
    )  # RobertaClassificationHead.dense stays unmasked
    assert len(names) == 12 + (1 if getattr(roberta.roberta, "pooler", None) is not None else 0)
    only_q = find_mask_targets(distil, [r"attention\.q_lin$"])
    assert len(only_q) == 2 and all(n.endswith("q_lin") for n in only_q)


def test_unknown_model_type_lists_linear_modules():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="Linear modules found: 0"):
        find_mask_targets(model)


def test_block_granularity(tiny_backbone):
    masked = MaskedModel(tiny_backbone, out_w_per_mask=64, in_w_per_mask=1)
    linears = [m for m in masked.modules() if isinstance(m, MaskedLinear)]
    assert masked.num_entries == sum(m.weight.shape[0] // 64 * m.weight.shape[1] for m in linears)
    masked.eval()
    ids = torch.tensor([[101, 2204, 102]])
    assert masked(input_ids=ids).logits.shape == (1, 2)


def test_search_changes_only_mask_scores(tiny_masked, batch):
    ids, mask, labels = batch
    net = tiny_masked
    net.freeze_backbone()
    before = state_hash(net.backbone)
    scores_before = net.mask_scores.detach().clone()
    opt = torch.optim.AdamW([net.mask_scores], lr=0.1)
    net.train()
    for _ in range(3):
        opt.zero_grad()
        pgd_objective(net, ids, mask, labels, lambda loss: loss.backward(), steps=2)
        opt.step()
    assert state_hash(net.backbone) == before
    assert all(p.grad is None for p in net.backbone.parameters())
    assert not torch.equal(net.mask_scores.detach(), scores_before)


def test_train_mode_resamples_and_eval_is_deterministic(tiny_masked):
    ids = torch.tensor([[101, 2204, 3185, 102]])
    tiny_masked.train()
    torch.manual_seed(0)
    a = tiny_masked(input_ids=ids).logits
    b = tiny_masked(input_ids=ids).logits
    assert not torch.allclose(a, b)
    tiny_masked.eval()
    assert torch.equal(tiny_masked(input_ids=ids).logits, tiny_masked(input_ids=ids).logits)


def test_fused_and_per_matrix_gates_agree_in_eval(tiny_backbone):
    net = MaskedModel(tiny_backbone, fused=True)
    with torch.no_grad():
        net.mask_scores.copy_(torch.randn(net.num_entries))
    net.eval()
    ids = torch.tensor([[101, 2204, 3185, 102]])
    out_fused = net(input_ids=ids).logits
    net.fused = False
    assert torch.allclose(out_fused, net(input_ids=ids).logits, atol=1e-6)
