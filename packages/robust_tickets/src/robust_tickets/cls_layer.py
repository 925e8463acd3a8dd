"""An exact shortcut for sequence classification: the last encoder layer computes only the [CLS] row.

A BERT classifier reads only ``last_hidden_state[:, 0]`` (``BertPooler``). In the last layer, every other token's
query, attention output and feed-forward rows are therefore computed and thrown away (and back-propagated as zeros).
:class:`ClsOnlyBertLayer` keeps the keys and values of all tokens (the [CLS] query attends to them) and runs the
query, the attention-output block and the feed-forward block on the [CLS] row alone: about 10/12 of one layer's
matmuls, ~14 % of a 6-layer MiniLM forward and backward. Logits and every gradient (masks, weights, input
embeddings) are those of the full layer up to float rounding; the test compares them in float64.

The layer's output is ``(batch, 1, hidden)``, so ``last_hidden_state`` / ``hidden_states[-1]`` hold the [CLS]
row only; never apply it to an encoder whose token outputs are used (the sentence-similarity model). The layer
computes its attention with ``scaled_dot_product_attention`` directly, so ``output_attentions`` has no entry for it
(nothing in this package asks for attention maps).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.bert.modeling_bert import BertForSequenceClassification, BertLayer


class ClsOnlyBertLayer(BertLayer):
    """A ``BertLayer`` whose output is the [CLS] row of the full layer's output (installed by class swap, so
    module names, parameters and state_dict keys are those of ``BertLayer``)."""

    def forward(  # type: ignore[override]
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        att = self.attention
        sa = att.self
        b, length, h = hidden_states.shape
        heads, d = sa.num_attention_heads, sa.attention_head_size
        cls = hidden_states[:, :1]
        q = sa.query(cls).view(b, 1, heads, d).transpose(1, 2)
        k = sa.key(hidden_states).view(b, length, heads, d).transpose(1, 2)
        v = sa.value(hidden_states).view(b, length, heads, d).transpose(1, 2)
        mask = attention_mask
        if mask is not None and mask.dim() == 4 and mask.shape[-2] == length:
            mask = mask[..., :1, :]  # the [CLS] query's row of a (B, 1, L, L) mask
        if mask is not None and mask.dtype != torch.bool:
            mask = mask.to(q.dtype)  # additive (0 / -inf-like) float mask
        p = sa.dropout.p if self.training else 0.0
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, scale=sa.scaling)
        attended = att.output(ctx.transpose(1, 2).reshape(b, 1, h), cls)
        return self.output(self.intermediate(attended), attended)


def cls_only_last_layer(model: nn.Module) -> bool:
    """Install :class:`ClsOnlyBertLayer` as the last layer of a BERT sequence classifier whose pooler reads the
    [CLS] row; returns whether it did (other architectures, and transformers < 5, whose layers return tuples and
    build masks differently, are left unchanged)."""
    import transformers

    if int(transformers.__version__.split(".")[0]) < 5:
        return False
    if not isinstance(model, BertForSequenceClassification) or model.bert.pooler is None:
        return False
    layer = model.bert.encoder.layer[-1]
    if type(layer) is BertLayer and not layer.is_decoder:
        layer.__class__ = ClsOnlyBertLayer
    return isinstance(layer, ClsOnlyBertLayer)


def full_last_layer(model: nn.Module) -> None:
    """Undo :func:`cls_only_last_layer` (the full computation, e.g. for the official-design benchmark)."""
    if isinstance(model, BertForSequenceClassification):
        layer = model.bert.encoder.layer[-1]
        if type(layer) is ClsOnlyBertLayer:
            layer.__class__ = BertLayer
