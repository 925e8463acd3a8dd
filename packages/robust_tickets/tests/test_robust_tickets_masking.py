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


def _spec_matrices(layers: int) -> set[str]:
    """The spec's masked matrices (section 2.2), listed by hand: Q, K, V, attention output, FFN in and out of
    every encoder layer, and the pooler."""
    names = {"bert.pooler.dense"}
    for i in range(layers):
        p = f"bert.encoder.layer.{i}."
        names |= {p + "attention.self.query", p + "attention.self.key", p + "attention.self.value"}
        names |= {p + "attention.output.dense", p + "intermediate.dense", p + "output.dense"}
    return names


def test_exactly_the_listed_modules(tiny_masked):
    """The masks act on exactly the spec's matrices, checked by what they do, not by the registry's own list:
    an all-zero ticket zeroes exactly those weights (and nothing else: embeddings, LayerNorms, biases and the
    classifier keep their values), and the masked forward equals a plain copy of the model with exactly those
    weights zeroed by hand."""
    from robust_tickets.models import load_pretrained

    expected = _spec_matrices(2)
    assert set(tiny_masked.target_names) == expected
    assert sum(isinstance(m, MaskedLinear) for m in tiny_masked.modules()) == 13
    assert not isinstance(tiny_masked.backbone.classifier, MaskedLinear)
    ids = torch.tensor([[101, 2204, 3185, 2001, 102]])
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # no parameter starts at 0 (BERT initialises biases to 0), so any zeroing shows
        for param in tiny_masked.backbone.parameters():
            param.copy_(0.05 * torch.randn(param.shape, generator=gen))
    reference = load_pretrained("tiny-bert", num_labels=2, init_seed=0).eval()
    reference.load_state_dict(tiny_masked.backbone.state_dict())  # the same weights, unmasked
    untouched = load_pretrained("tiny-bert", num_labels=2, init_seed=0).eval()
    untouched.load_state_dict(tiny_masked.backbone.state_dict())
    tiny_masked.eval()
    tiny_masked.set_mode("binary")
    # the forward pass: an all-zero ticket (weights left in place) must act as zeroing exactly those matrices
    tiny_masked.set_ticket(torch.zeros(tiny_masked.num_entries), zero_pruned_weights=False)
    pruned = tiny_masked(input_ids=ids).logits
    ref_params = dict(reference.named_parameters())
    with torch.no_grad():
        for name in expected:
            ref_params[name + ".weight"].zero_()
    assert torch.allclose(pruned, reference(input_ids=ids).logits, atol=1e-6)
    assert not torch.allclose(pruned, untouched(input_ids=ids).logits, atol=1e-3)  # the masks do something
    # the weights: the ticket zeroes exactly the matrices' weights and nothing else
    before = {n: p.detach().clone() for n, p in tiny_masked.backbone.named_parameters()}
    tiny_masked.set_ticket(torch.zeros(tiny_masked.num_entries))
    after = dict(tiny_masked.backbone.named_parameters())
    changed = {n for n in before if not torch.equal(after[n], before[n])}
    assert changed == {name + ".weight" for name in expected}
    assert all(bool((after[n] == 0).all()) for n in changed)
    assert tiny_masked.num_entries == sum(before[n].numel() for n in changed)


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
