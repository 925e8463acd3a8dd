"""Offline attacks (spec 2.10): TextFooler-like word swap, DeepWordBug-like character swap, embedding PGD,
and the Clean/Aua/Suc/#Query accounting of the official code.

Each text attack is a generator per example that yields lists of texts to score and receives their class
probabilities; :func:`run_attack` advances many examples in lock-step and pools their requests into
length-sorted batches, so batched and one-at-a-time runs give identical texts, statuses and query counts.

Sentence pairs: the generators see and perturb only the second segment; :func:`run_attack` pairs every request
with the example's fixed first segment and the :class:`Victim` scores the pair (TextAttack's MNLI convention).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import random
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from robust_tickets.losses import logits_from_embeds, pgd_attack_delta

# TextFooler's stop-word list (Jin et al. 2020), as embedded in TextAttack (MIT licence,
# QData/TextAttack textattack/attack_recipes/textfooler_jin_2019.py), re-typed here.
TEXTFOOLER_STOPWORDS = frozenset(
    """a about above across after afterwards again against ain all almost alone along already also although am
    among amongst an and another any anyhow anyone anything anyway anywhere are aren aren't around as at back be
    became because become becomes becoming been before beforehand behind being below beside besides between
    beyond both but by can cannot could couldn couldn't d didn didn't doesn doesn't don don't down due during
    either else elsewhere empty enough even ever everyone everything everywhere except first for former formerly
    from hadn hadn't hasn hasn't haven haven't he hence her here hereafter hereby herein hereupon hers herself
    him himself his how however hundred i if in indeed into is isn isn't it it's its itself just latter latterly
    least ll may me meanwhile mightn mightn't mine more moreover most mostly must mustn mustn't my myself namely
    needn needn't neither never nevertheless next no nobody none noone nor not nothing now nowhere o of off on
    once one only onto or other others otherwise our ours ourselves out over per please s same shan shan't she
    she's should've shouldn shouldn't somehow something sometime somewhere such t than that that'll the their
    theirs them themselves then thence there thereafter thereby therefore therein thereupon these they this
    those through throughout thru thus to too toward towards under unless until up upon used ve was wasn wasn't
    we were weren weren't what whatever when whence whenever where whereafter whereas whereby wherein whereupon
    wherever whether which while whither who whoever whole whom whose why with within without won won't would
    wouldn wouldn't y yet you you'd you'll you're you've your yours yourself yourselves""".split()
)

Request = list[str]
AttackGen = Generator[Request, np.ndarray, "AttackResult"]


@dataclass
class AttackResult:
    """Outcome of one attacked example (status: skipped | success | failed). For sentence pairs ``first`` is
    the fixed first segment and ``original``/``perturbed`` are the second segment."""

    original: str
    perturbed: str
    label: int
    status: str
    queries: int
    first: str | None = None


@dataclass
class AttackSummary:
    """Official-code accounting: Clean=(S+F)/N, Aua=F/N, Suc=S/(S+F), #Query over non-skipped examples."""

    n: int
    successes: int
    failures: int
    skipped: int
    clean: float
    aua: float
    suc: float
    avg_queries: float

    def as_percent(self) -> dict[str, float]:
        return {
            "clean": 100 * self.clean,
            "aua": 100 * self.aua,
            "suc": 100 * self.suc,
            "queries": self.avg_queries,
        }


def summarize(results: Sequence[AttackResult]) -> AttackSummary:
    n = len(results)
    s = sum(r.status == "success" for r in results)
    f = sum(r.status == "failed" for r in results)
    attempted = [r.queries for r in results if r.status != "skipped"]
    clean = (s + f) / n if n else 0.0
    aua = f / n if n else 0.0
    suc = s / (s + f) if s + f else 0.0
    return AttackSummary(n, s, f, n - s - f, clean, aua, suc, float(np.mean(attempted)) if attempted else 0.0)


# ------------------------------------------------------------------------------------------- the victim
def inference_backbone(model: nn.Module) -> nn.Module:
    """The network a :class:`Victim` scores with: a plain model as is; for a masked model in ``binary`` or
    ``soft`` mode an eval-mode copy of its backbone with ``W * gate`` folded into the weights once (the ticket,
    or the deterministic eq. 5 gate), so no mask product is recomputed per forward pass."""
    from robust_tickets.hard_concrete import hard_concrete_gate
    from robust_tickets.models import MaskedLinear, MaskedModel

    if not isinstance(model, MaskedModel):
        return model
    with torch.no_grad():
        gates = None
        if model.mode == "binary":
            gates = model.ticket
        elif model.mode == "soft":
            gates = hard_concrete_gate(model.mask_scores.detach())
        backbone = copy.deepcopy(model.backbone).eval()
        modules = dict(backbone.named_modules())
        for slot in model.slots:
            layer = modules[slot.name]
            if not isinstance(layer, MaskedLinear):  # pragma: no cover - construction invariant
                raise TypeError(f"{slot.name} is not a MaskedLinear")
            layer.state.dense = True  # one GateState shared by every copied layer
            if gates is not None:
                g = gates[slot.offset : slot.offset + slot.numel].view(slot.rows, slot.cols)
                g = g.repeat_interleave(slot.out_block, 0).repeat_interleave(slot.in_block, 1)
                layer.weight.mul_(g.to(layer.weight.dtype))
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone


class Victim:
    """Scores texts with a classifier, in eval mode under ``torch.inference_mode``.

    * Every distinct token sequence is scored once per victim (a memo keyed by the token ids), so identical
      inputs get bit-identical probabilities whichever batch they land in; batched and one-at-a-time runs
      therefore break exact ties (e.g. substitutions beyond ``max_len``) the same way, and repeated texts
      cost no forward pass (they still count as queries in the attack accounting).
    * Masked models are scored through :func:`inference_backbone` (mask folded into the weights once).
    * Pending sequences are sorted by length and cut into batches of at most ``batch_size`` (padding only
      to the longest sequence of each batch).
    """

    def __init__(self, model: nn.Module, tokenizer: Any, max_len: int = 128, batch_size: int = 128) -> None:
        self.model, self.tokenizer, self.max_len, self.batch_size = model, tokenizer, max_len, batch_size
        self.scorer = inference_backbone(model)
        self.pad_id = tokenizer.pad_token_id or 0
        self.forward_passes = 0
        self.scored_sequences = 0
        self.requested = 0
        self._memo: dict[tuple[int, ...], np.ndarray] = {}

    def probs(self, texts: Sequence[str], firsts: Sequence[str] | None = None) -> np.ndarray:
        """Class probabilities of ``texts``; with ``firsts`` (one per text) of the pairs (first, text), encoded
        by the tokenizer's pair call (segment ids included)."""
        if not texts:
            return np.zeros((0, 0))
        self.model.eval()
        self.scorer.eval()
        pair = firsts is not None
        keys = self._keys(texts, firsts)
        self.requested += len(keys)

        def ids_of(key: tuple) -> tuple[int, ...]:
            return key[0] if pair else key

        todo = sorted({k for k in keys if k not in self._memo}, key=lambda k: (len(ids_of(k)), k))
        device = next(self.scorer.parameters()).device
        with torch.inference_mode():
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start : start + self.batch_size]
                length = len(ids_of(chunk[-1]))  # sorted by length: the last one is the longest
                pads = [length - len(ids_of(k)) for k in chunk]
                ids = torch.tensor(
                    [ids_of(k) + (self.pad_id,) * n for k, n in zip(chunk, pads, strict=True)], device=device
                )
                mask = torch.tensor([[1] * (length - n) + [0] * n for n in pads], device=device)
                inputs = {"input_ids": ids, "attention_mask": mask}
                if pair and chunk[0][1]:  # segment ids (absent for tokenizers without them)
                    inputs["token_type_ids"] = torch.tensor(
                        [k[1] + (0,) * n for k, n in zip(chunk, pads, strict=True)], device=device
                    )
                logits = self.scorer(**inputs).logits
                self.forward_passes += 1
                p = torch.softmax(logits.double(), -1).cpu().numpy()
                for k, row in zip(chunk, p, strict=True):
                    self._memo[k] = row
        self.scored_sequences += len(todo)
        return np.stack([self._memo[k] for k in keys])

    def _keys(self, texts: Sequence[str], firsts: Sequence[str] | None) -> list[tuple]:
        """Memo keys: the token ids (single texts) or (token ids, segment ids) (pairs)."""
        if firsts is None:
            enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_len)
            return [tuple(ids) for ids in enc["input_ids"]]
        if len(firsts) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(firsts)} first segments")
        enc = self.tokenizer(list(firsts), list(texts), truncation=True, max_length=self.max_len)
        types = enc.get("token_type_ids") or [[] for _ in enc["input_ids"]]
        return [(tuple(i), tuple(t)) for i, t in zip(enc["input_ids"], types, strict=True)]


def run_attack(
    attack: Callable[[str, int], AttackGen],
    examples: Sequence[tuple[str, int]],
    victim: Victim,
    parallel_examples: int = 32,
    firsts: Sequence[str] | None = None,
) -> list[AttackResult]:
    """Advance ``parallel_examples`` attack generators in lock-step; all pending texts of one round are
    scored together (the victim splits them into length-sorted batches).

    ``firsts``: for sentence pairs, the fixed first segment of each example. The generators then attack the
    second segment (the text of ``examples``); every request is scored as the pair (first segment, text) and
    the first segment is never changed (it is recorded in :attr:`AttackResult.first`)."""
    if firsts is not None and len(firsts) != len(examples):
        raise ValueError(f"{len(examples)} examples but {len(firsts)} first segments")
    results: list[AttackResult | None] = [None] * len(examples)
    active: dict[int, tuple[AttackGen, Request]] = {}
    next_i = 0

    def finish(i: int, result: AttackResult) -> None:
        results[i] = result if firsts is None else dataclasses.replace(result, first=firsts[i])

    while active or next_i < len(examples):
        while len(active) < max(1, parallel_examples) and next_i < len(examples):
            text, label = examples[next_i]
            gen = attack(text, label)
            try:
                active[next_i] = (gen, next(gen))
            except StopIteration as stop:
                finish(next_i, stop.value)
            next_i += 1
        keys = sorted(active)
        pool = [t for k in keys for t in active[k][1]]
        if not pool:
            probs = np.zeros((0, 0))
        elif firsts is None:
            probs = victim.probs(pool)
        else:
            probs = victim.probs(pool, [firsts[k] for k in keys for _ in active[k][1]])
        cursor = 0
        for k in keys:
            gen, request = active[k]
            answer = probs[cursor : cursor + len(request)]
            cursor += len(request)
            try:
                active[k] = (gen, gen.send(answer))
            except StopIteration as stop:
                finish(k, stop.value)
                del active[k]
    return [r for r in results if r is not None]


# ---------------------------------------------------------------------------- sentence similarity
class SentenceSimilarity:
    """Offline stand-in for TextFooler's USE constraint (spec 2.10 A, proposed): cosine similarity of
    mean-pooled sentence embeddings (all-MiniLM-L6-v2 is a sentence-embedding model trained for exactly this
    pooling). ``encoder`` is a Hugging Face encoder whose output has ``last_hidden_state``; embeddings are
    memoised by text and computed under ``torch.inference_mode``. Constraint calls are not victim queries."""

    def __init__(self, encoder: nn.Module, tokenizer: Any, max_len: int = 128, batch_size: int = 128) -> None:
        self.encoder, self.tokenizer, self.max_len, self.batch_size = (
            encoder.eval(),
            tokenizer,
            max_len,
            batch_size,
        )
        self._memo: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised mean-pooled (non-pad tokens) last hidden states, one row per text."""
        todo = sorted({t for t in texts if t not in self._memo})
        device = next(self.encoder.parameters()).device
        with torch.inference_mode():
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start : start + self.batch_size]
                enc = self.tokenizer(
                    chunk, truncation=True, max_length=self.max_len, padding=True, return_tensors="pt"
                ).to(device)
                hidden = self.encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.last_hidden_state.dtype)
                pooled = (hidden.last_hidden_state * mask).sum(1) / mask.sum(1).clamp_min(1)
                pooled = torch.nn.functional.normalize(pooled.double(), dim=1).cpu().numpy()
                for text, row in zip(chunk, pooled, strict=True):
                    self._memo[text] = row
        return np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, 0))

    def __call__(self, original: str, candidates: Sequence[str]) -> np.ndarray:
        """Cosine similarity of every candidate text to ``original``."""
        if not candidates:
            return np.zeros(0)
        return self.embed(list(candidates)) @ self.embed([original])[0]


def pretrained_sentence_similarity(
    model_name: str = "minilm", max_len: int = 128, batch_size: int = 128
) -> SentenceSimilarity:
    """The constraint model: the PRE-TRAINED encoder of ``model_name`` (never a victim) and its tokenizer."""
    from robust_tickets.models import load_pretrained, load_tokenizer

    encoder = load_pretrained(model_name, 2).base_model
    return SentenceSimilarity(encoder, load_tokenizer(model_name), max_len, batch_size)


# ------------------------------------------------------------------------------------ word-level attack
def word_importance(p_orig: np.ndarray, p_del: np.ndarray, label: int) -> np.ndarray:
    """TextFooler deletion importance: p_y(x) - p_y(x\\w), plus p_y'(x\\w) - p_y'(x) when the prediction
    flips to y'."""
    imp = p_orig[label] - p_del[:, label]
    pred = p_del.argmax(1)
    flipped = pred != label
    bonus = p_del[np.arange(len(p_del)), pred] - p_orig[pred]
    return imp + np.where(flipped, bonus, 0.0)


def wordswap_attack(
    table: dict[str, list[str]],
    stopwords: frozenset[str] = TEXTFOOLER_STOPWORDS,
    max_queries: int = 500,
    similarity: Callable[[str, Sequence[str]], np.ndarray] | None = None,
    sim_threshold: float = 0.0,
) -> Callable[[str, int], AttackGen]:
    """TextFooler-like greedy attack: deletion word-importance ranking, then for each word (descending
    importance, non-stopwords with candidates) score all candidates in one request; stop at the first
    label flip, else keep the candidate that lowers p_y most. Every submitted text counts as one query,
    including the initial prediction; ``max_queries`` truncates requests.

    With ``similarity`` and ``sim_threshold`` > 0, candidate texts whose similarity to the original text is
    below the threshold are dropped before they are scored (TextAttack applies constraints before the
    query budget; constraint calls are not queries)."""

    def attack(text: str, label: int) -> AttackGen:
        words = text.split()
        p0 = (yield [text])[0]
        used = 1
        if int(p0.argmax()) != label:
            return AttackResult(text, text, label, "skipped", used)
        positions = [i for i, w in enumerate(words) if w not in stopwords and table.get(w)]
        budget = max_queries - used
        positions = positions[:budget]
        if not positions:
            return AttackResult(text, text, label, "failed", used)
        p_del = yield [" ".join(words[:i] + words[i + 1 :]) for i in positions]
        used += len(positions)
        imp = word_importance(p0, p_del, label)
        order = [positions[j] for j in np.argsort(-imp, kind="stable")]
        current, p_cur = list(words), p0[label]
        for i in order:
            budget = max_queries - used
            if budget <= 0:
                break
            cands = table[words[i]]
            texts = [" ".join([*current[:i], c, *current[i + 1 :]]) for c in cands]
            if similarity is not None and sim_threshold > 0:
                ok = similarity(text, texts) >= sim_threshold
                cands = [c for c, k in zip(cands, ok, strict=True) if k]
                texts = [t for t, k in zip(texts, ok, strict=True) if k]
            cands, texts = cands[:budget], texts[:budget]
            if not texts:
                continue
            p = yield texts
            used += len(texts)
            pred = p.argmax(1)
            flipped = np.flatnonzero(pred != label)
            if flipped.size:
                best = flipped[np.argmin(p[flipped, label])]
                return AttackResult(text, texts[best], label, "success", used)
            best = int(np.argmin(p[:, label]))
            if p[best, label] < p_cur:
                current[i], p_cur = cands[best], p[best, label]
        return AttackResult(text, " ".join(current), label, "failed", used)

    return attack


# ------------------------------------------------------------------------------- char-level attack
def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def char_candidates(word: str, n: int, seed: int) -> list[str]:
    """Seeded DeepWordBug-style edits: swap adjacent letters, substitute, delete, insert a letter."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    out: list[str] = []
    seen = {word}
    tries = 0
    while len(out) < n and tries < 20 * n:
        tries += 1
        kind = rng.randrange(4)
        if kind == 0 and len(word) >= 2:
            k = rng.randrange(len(word) - 1)
            cand = word[:k] + word[k + 1] + word[k] + word[k + 2 :]
        elif kind == 1:
            k = rng.randrange(len(word))
            cand = word[:k] + rng.choice(letters) + word[k + 1 :]
        elif kind == 2 and len(word) >= 2:
            k = rng.randrange(len(word))
            cand = word[:k] + word[k + 1 :]
        else:
            k = rng.randrange(len(word) + 1)
            cand = word[:k] + rng.choice(letters) + word[k:]
        if cand not in seen:
            seen.add(cand)
            out.append(cand)
    return out


def _stable_seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def charswap_attack(
    unk_token: str = "[UNK]",
    stopwords: frozenset[str] = TEXTFOOLER_STOPWORDS,
    max_queries: int = 500,
    max_candidates: int = 20,
    max_edit_distance: int = 30,
    seed: int = 0,
) -> Callable[[str, int], AttackGen]:
    """DeepWordBug-like greedy attack: importance by replacing a word with [UNK], character edits of each
    word in turn, total Levenshtein distance <= ``max_edit_distance``."""

    def attack(text: str, label: int) -> AttackGen:
        words = text.split()
        p0 = (yield [text])[0]
        used = 1
        if int(p0.argmax()) != label:
            return AttackResult(text, text, label, "skipped", used)
        positions = [i for i, w in enumerate(words) if w not in stopwords and w.isalpha()][
            : max_queries - used
        ]
        if not positions:
            return AttackResult(text, text, label, "failed", used)
        p_unk = yield [" ".join([*words[:i], unk_token, *words[i + 1 :]]) for i in positions]
        used += len(positions)
        order = [positions[j] for j in np.argsort(-(p0[label] - p_unk[:, label]), kind="stable")]
        current, p_cur, dist = list(words), p0[label], 0
        for i in order:
            budget = max_queries - used
            if budget <= 0:
                break
            cands = [
                c
                for c in char_candidates(words[i], max_candidates, _stable_seed(seed, text, i))
                if dist + levenshtein(words[i], c) <= max_edit_distance
            ][:budget]
            if not cands:
                continue
            texts = [" ".join([*current[:i], c, *current[i + 1 :]]) for c in cands]
            p = yield texts
            used += len(texts)
            flipped = np.flatnonzero(p.argmax(1) != label)
            if flipped.size:
                best = flipped[np.argmin(p[flipped, label])]
                return AttackResult(text, texts[best], label, "success", used)
            best = int(np.argmin(p[:, label]))
            if p[best, label] < p_cur:
                dist += levenshtein(words[i], cands[best])
                current[i], p_cur = cands[best], p[best, label]
        return AttackResult(text, " ".join(current), label, "failed", used)

    return attack


# ------------------------------------------------------------------------------------- embedding PGD
@torch.no_grad()
def pgd_attack(
    model: nn.Module,
    tokenizer: Any,
    examples: Sequence[tuple[str, int]],
    eps_rel: float = 0.05,
    steps: int = 10,
    max_len: int = 128,
    batch_size: int = 64,
    firsts: Sequence[str] | None = None,
) -> tuple[list[AttackResult], list[float]]:
    """PGD-L2 on the word-embedding output in eval mode; eps = eps_rel * ||word embeddings||_F per example.
    With ``firsts`` (sentence pairs: the first segment of each example, the texts of ``examples`` being the
    second) the pair is encoded with segment ids and delta covers the word embeddings of the whole input.

    Returns the results (#Query = 1 + steps; skipped = 1) and the final ||delta||_F / eps ratios of the attacked
    examples. Examples are processed in length-sorted batches (less padding), and only the correctly
    classified ones enter the PGD loop; both leave every example's outcome unchanged."""
    model.eval()
    param = next(model.parameters())
    texts = [t for t, _ in examples]
    if firsts is not None and len(firsts) != len(examples):
        raise ValueError(f"{len(examples)} examples but {len(firsts)} first segments")
    enc = (
        tokenizer(texts, truncation=True, max_length=max_len)
        if firsts is None
        else tokenizer(list(firsts), texts, truncation=True, max_length=max_len)
    )
    ids_all = enc["input_ids"]
    types_all = enc.get("token_type_ids") if firsts is not None else None
    order = sorted(range(len(examples)), key=lambda i: len(ids_all[i]))

    def batches(
        indices: list[int], size: int
    ) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        for start in range(0, len(indices), size):
            chunk = indices[start : start + size]
            width = max(len(ids_all[i]) for i in chunk)
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id or 0, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            types = None if types_all is None else torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                ids[row, : len(ids_all[i])] = torch.tensor(ids_all[i])
                mask[row, : len(ids_all[i])] = 1
                if types is not None:
                    types[row, : len(ids_all[i])] = torch.tensor(types_all[i])
            yield (
                chunk, ids.to(param.device), mask.to(param.device),
                None if types is None else types.to(param.device),
            )  # fmt: skip

    correct: list[int] = []
    with torch.inference_mode():
        for chunk, ids, mask, types in batches(order, 2 * batch_size):
            emb = model.get_input_embeddings()(ids)
            pred = logits_from_embeds(model, emb, mask, types).argmax(-1).tolist()
            correct += [i for i, p in zip(chunk, pred, strict=True) if p == examples[i][1]]
    status = {i: "skipped" for i in range(len(examples))}
    ratios: list[float] = []
    for chunk, ids, mask, types in batches(correct, batch_size):
        labels = torch.tensor([examples[i][1] for i in chunk], device=param.device)
        with torch.no_grad():
            emb = model.get_input_embeddings()(ids)
        eps = eps_rel * (emb * mask.unsqueeze(-1)).flatten(1).norm(dim=1)
        delta = pgd_attack_delta(model, emb, mask, labels, eps, steps, token_type_ids=types)
        with torch.no_grad():
            adv_pred = logits_from_embeds(model, emb + delta, mask, types).argmax(-1)
        ratios += (delta.flatten(1).norm(dim=1) / eps).tolist()
        for i, ok in zip(chunk, (adv_pred == labels).tolist(), strict=True):
            status[i] = "failed" if ok else "success"
    queries = {i: 1 if s == "skipped" else 1 + steps for i, s in status.items()}
    results = [
        AttackResult(text, text, label, status[i], queries[i], None if firsts is None else firsts[i])
        for i, (text, label) in enumerate(examples)
    ]
    return results, ratios


# --------------------------------------------------------------------------------- candidate tables
def table_hash(table: dict[str, list[str]]) -> str:
    return hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()


def embedding_neighbour_table(
    embedding: torch.Tensor,
    tokenizer: Any,
    words: Sequence[str],
    n_candidates: int = 50,
    min_cos: float = 0.5,
    polarity: dict[str, int] | None = None,
    stopwords: frozenset[str] = TEXTFOOLER_STOPWORDS,
    subwords: bool = False,
) -> dict[str, list[str]]:
    """Top-N cosine neighbours in a PRE-TRAINED input-embedding matrix among whole-word alphabetic vocabulary
    tokens, cos >= ``min_cos``; candidates whose lexicon sign is opposite to the word's are rejected.

    ``subwords``: alphabetic words that are not one vocabulary token (``pretentious`` -> ``pre ##ten ##tious``)
    are queried with the normalised mean of their WordPieces' unit embeddings; otherwise they get no
    candidates."""
    vocab = tokenizer.get_vocab()
    cand_tokens = sorted((t for t in vocab if t.isalpha() and t.islower() and len(t) > 1), key=vocab.get)
    cand_ids = torch.tensor([vocab[t] for t in cand_tokens])
    emb = torch.nn.functional.normalize(embedding.detach().float(), dim=1)
    cand_emb = emb[cand_ids]
    usable = {w for w in words if w.isalpha() and w not in stopwords}
    queries = sorted(w for w in usable if w in vocab)
    vectors = [emb[vocab[w]] for w in queries]
    if subwords:
        for w in sorted(w for w in usable if w not in vocab):
            ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(w))
            if ids:
                queries.append(w)
                vectors.append(torch.nn.functional.normalize(emb[ids].mean(0), dim=0))
    table: dict[str, list[str]] = {}
    polarity = polarity or {}
    for start in range(0, len(queries), 256):
        chunk = queries[start : start + 256]
        sims = torch.stack(vectors[start : start + 256]) @ cand_emb.T
        top = sims.topk(min(n_candidates + 1, sims.shape[1]), dim=1)
        for row, word in enumerate(chunk):
            out = []
            for value, j in zip(top.values[row].tolist(), top.indices[row].tolist(), strict=True):
                cand = cand_tokens[j]
                if cand == word or value < min_cos:
                    continue
                if polarity.get(word, 0) * polarity.get(cand, 0) < 0:
                    continue
                out.append(cand)
            if out:
                table[word] = out[:n_candidates]
    return table
