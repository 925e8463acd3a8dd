"""The TextAttack adapter against a stub ``textattack`` package (the real one needs online resources).

The stub mirrors the parts of TextAttack's API the adapter uses (recipes' ``build``, ``Attack``'s split of
pre-transformation constraints, ``Attacker.attack_dataset`` and result class names). Its attacker queries the
model wrapper for real: it skips examples the wrapper misclassifies and deletes words one at a time until the
prediction flips. So the test checks that the wrapper scores the checkpoint's own (masked) model: the old adapter
wrapped the bare backbone, whose masked layers raise outside ``MaskedModel.forward``.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

# ------------------------------------------------------------------------------------------- the stub


class ModelWrapper:
    def __call__(self, text_input_list, **kwargs):  # pragma: no cover - overridden
        raise NotImplementedError


class Constraint:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class PreTransformationConstraint(Constraint):
    pass


class RepeatModification(PreTransformationConstraint):
    pass


class StopwordModification(PreTransformationConstraint):
    pass


class PartOfSpeech(Constraint):
    pass


class WordEmbeddingDistance(Constraint):
    pass


class UniversalSentenceEncoder(Constraint):
    pass


class WordSwapMaskedLM:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class WordSwapEmbedding(WordSwapMaskedLM):
    pass


class UntargetedClassification:
    def __init__(self, model):
        self.model = model


class GreedyWordSwapWIR:
    def __init__(self, wir_method="unk"):
        self.wir_method = wir_method


class Attack:
    def __init__(self, goal_function, constraints, transformation, search_method):
        self.goal_function, self.transformation, self.search_method = (
            goal_function,
            transformation,
            search_method,
        )
        self.pre_transformation_constraints = [
            c for c in constraints if isinstance(c, PreTransformationConstraint)
        ]
        self.constraints = [c for c in constraints if not isinstance(c, PreTransformationConstraint)]


class Recipe:
    @classmethod
    def build(cls, model_wrapper):
        return Attack(
            UntargetedClassification(model_wrapper),
            [RepeatModification(), StopwordModification(), PartOfSpeech(allow_verb_noun_swap=True),
             UniversalSentenceEncoder(threshold=0.936338023, metric="cosine")],
            WordSwapMaskedLM(method="bae", max_candidates=50),
            GreedyWordSwapWIR(),
        )  # fmt: skip


class Dataset:
    def __init__(self, examples, input_columns=("text",)):
        self.examples, self.input_columns = list(examples), input_columns


class AttackArgs:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class Result:
    def __init__(self, queries):
        self.perturbed_result = types.SimpleNamespace(num_queries=queries)


SuccessfulAttackResult = type("SuccessfulAttackResult", (Result,), {})
FailedAttackResult = type("FailedAttackResult", (Result,), {})
SkippedAttackResult = type("SkippedAttackResult", (Result,), {})


class Attacker:
    """Deletes one word at a time (single texts) until the wrapper's prediction flips."""

    def __init__(self, attack, dataset, attack_args):
        self.attack, self.dataset, self.args = attack, dataset, attack_args
        self.calls = 0

    def attack_dataset(self):
        model = self.attack.goal_function.model
        for x, label in self.dataset.examples:
            p = model([x])
            queries = 1
            if int(np.argmax(p[0])) != label:
                yield SkippedAttackResult(queries)
                continue
            if not isinstance(x, str):  # pairs: no perturbation in the stub
                yield FailedAttackResult(queries)
                continue
            words = x.split()
            cands = [" ".join(words[:i] + words[i + 1 :]) for i in range(len(words))]
            p = model(cands) if cands else np.zeros((0, 2))
            queries += len(cands)
            flipped = len(cands) > 0 and bool((p.argmax(1) != label).any())
            yield (SuccessfulAttackResult if flipped else FailedAttackResult)(queries)


@pytest.fixture
def stub_textattack(monkeypatch):
    """Install the stub as ``textattack`` (and the submodules the adapter imports from)."""
    root = types.ModuleType("textattack")
    root.__version__ = "0.0-stub"
    mods = {
        "textattack": root,
        "textattack.models": types.ModuleType("textattack.models"),
        "textattack.models.wrappers": types.ModuleType("textattack.models.wrappers"),
        "textattack.attack_recipes": types.ModuleType("textattack.attack_recipes"),
        "textattack.constraints": types.ModuleType("textattack.constraints"),
        "textattack.constraints.semantics": types.ModuleType("textattack.constraints.semantics"),
        "textattack.constraints.grammaticality": types.ModuleType("textattack.constraints.grammaticality"),
        "textattack.constraints.pre_transformation": types.ModuleType(
            "textattack.constraints.pre_transformation"
        ),
        "textattack.search_methods": types.ModuleType("textattack.search_methods"),
        "textattack.constraints.semantics.sentence_encoders": types.ModuleType("sentence_encoders"),
        "textattack.goal_functions": types.ModuleType("textattack.goal_functions"),
        "textattack.transformations": types.ModuleType("textattack.transformations"),
        "textattack.datasets": types.ModuleType("textattack.datasets"),
    }
    mods["textattack.models.wrappers"].ModelWrapper = ModelWrapper
    root.models = mods["textattack.models"]
    root.models.wrappers = mods["textattack.models.wrappers"]
    for name in ("TextFoolerJin2019", "TextBuggerLi2018", "BERTAttackLi2020", "DeepWordBugGao2018",
                 "PWWSRen2019", "BAEGarg2019"):  # fmt: skip
        setattr(mods["textattack.attack_recipes"], name, type(name, (Recipe,), {}))
    root.attack_recipes = mods["textattack.attack_recipes"]
    mods["textattack.constraints.semantics"].WordEmbeddingDistance = WordEmbeddingDistance
    mods[
        "textattack.constraints.semantics.sentence_encoders"
    ].UniversalSentenceEncoder = UniversalSentenceEncoder
    mods["textattack.constraints.grammaticality"].PartOfSpeech = PartOfSpeech
    mods["textattack.constraints.pre_transformation"].RepeatModification = RepeatModification
    mods["textattack.constraints.pre_transformation"].StopwordModification = StopwordModification
    mods["textattack.search_methods"].GreedyWordSwapWIR = GreedyWordSwapWIR
    mods["textattack.goal_functions"].UntargetedClassification = UntargetedClassification
    mods["textattack.transformations"].WordSwapEmbedding = WordSwapEmbedding
    mods["textattack.datasets"].Dataset = Dataset
    root.datasets = mods["textattack.datasets"]
    root.Attack, root.Attacker, root.AttackArgs = Attack, Attacker, AttackArgs
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return root


# ------------------------------------------------------------------------------------------- tests
def _own_probs(model, tokenizer, texts, firsts=None, max_len=24):
    """Class probabilities from the masked model's own forward (independent of the adapter's Victim)."""
    model.eval()
    enc = (
        tokenizer(list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        if firsts is None
        else tokenizer(
            list(firsts), list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt"
        )
    )
    with torch.no_grad():
        return torch.softmax(model(**enc).logits.double(), -1).numpy()


def test_textattack_adapter_attacks_the_ticket_it_loads(fit_tiny, stub_textattack):
    """A binary ticket (random 30 % on tiny-bert) under the stub attacker: the wrapper's probabilities equal the
    masked model's own forward, the skipped examples are those the model misclassifies, and the summary follows
    the spec 2.10 accounting and records the TextAttack version and the recipe."""
    from robust_tickets.textattack_adapter import model_wrapper, run_textattack

    module, dm, _ = fit_tiny(method="random")
    assert module.net.mode == "binary"
    split = dm.attack_split()
    wrapper = model_wrapper(module.net, dm.tokenizer, dm.max_len)
    assert isinstance(wrapper, ModelWrapper)
    # float32 logits of the folded ticket (W * M computed once) vs the masked forward (W * M per layer): the
    # same products in another order, |logit| ~ 1: 1e-5 covers the float32 rounding of 64-wide dot products
    np.testing.assert_allclose(
        wrapper(split.texts), _own_probs(module.net, dm.tokenizer, split.texts), atol=1e-5
    )
    pair = [("the film", "a dull story"), ("great", "not bad at all")]
    np.testing.assert_allclose(
        wrapper(pair),
        _own_probs(module.net, dm.tokenizer, [b for _, b in pair], [a for a, _ in pair]),
        atol=1e-5,
    )

    out = run_textattack("textfooler", module, dm, max_queries=100)
    summary = out["attack"]["textattack:textfooler"]
    wrong = int((_own_probs(module.net, dm.tokenizer, split.texts).argmax(1) != np.array(split.labels)).sum())
    assert summary["n"] == len(split) and summary["skipped"] == wrong
    assert summary["clean"] == pytest.approx(100 * (len(split) - wrong) / len(split))
    assert summary["clean"] >= summary["aua"]
    attempted = len(split) - wrong
    if attempted:
        assert summary["suc"] == pytest.approx(100 * (summary["clean"] - summary["aua"]) / summary["clean"])
        assert summary["queries"] >= 1
    assert summary["textattack"] == "0.0-stub" and summary["recipe"] == "textfooler"


def test_legacy_bertattack_is_the_official_codes_weakened_bae(stub_textattack):
    """spec 2.8: BAE with WordSwapEmbedding(50), its USE constraint replaced by a cosine-0.2 USE (window 15,
    against the original, short texts kept), no word-embedding distance, BAE's other constraints (repeat,
    stopword, POS with verb/noun swaps), goal and deletion-ranked greedy search kept. Built from the components:
    BAE's own ``build`` (which would load its masked LM) is not called (the real-library test compares the two)."""
    from robust_tickets.textattack_adapter import build_attack

    wrapper = object()
    attack = build_attack("legacy_bertattack", wrapper)
    assert type(attack.transformation) is WordSwapEmbedding
    assert attack.transformation.kwargs == {"max_candidates": 50}
    use = [c for c in attack.constraints if isinstance(c, UniversalSentenceEncoder)]
    assert len(use) == 1
    assert use[0].kwargs == {
        "threshold": 0.2, "metric": "cosine", "compare_against_original": True, "window_size": 15,
        "skip_text_shorter_than_window": False,
    }  # fmt: skip
    assert not any(isinstance(c, WordEmbeddingDistance) for c in attack.constraints)
    pos = [c for c in attack.constraints if isinstance(c, PartOfSpeech)]
    assert len(pos) == 1 and pos[0].kwargs == {"allow_verb_noun_swap": True}
    assert len(attack.constraints) == 2
    assert [type(c) for c in attack.pre_transformation_constraints] == [
        RepeatModification,
        StopwordModification,
    ]
    assert (
        isinstance(attack.goal_function, UntargetedClassification) and attack.goal_function.model is wrapper
    )
    assert isinstance(attack.search_method, GreedyWordSwapWIR) and attack.search_method.wir_method == "delete"
    plain = build_attack("bert-attack", wrapper)  # the other recipes are TextAttack's own builds
    assert type(plain.transformation) is WordSwapMaskedLM


def test_textattack_missing_or_unknown_recipe_is_one_line(monkeypatch):
    from robust_tickets.textattack_adapter import build_attack, run_textattack

    from paperlab_core.errors import ConfigError, UserError

    monkeypatch.setitem(sys.modules, "textattack", None)  # `import textattack` raises ImportError
    with pytest.raises(UserError, match=r"robust-tickets\[textattack\]"):
        build_attack("textfooler", object())
    with pytest.raises(ConfigError, match="unknown TextAttack recipe"):
        run_textattack("nope", None, None, 10)


def test_textattack_without_nltk_data_is_one_line(monkeypatch, tmp_path):
    """The real ``import textattack`` (0.3.11) raises NLTK's multi-line LookupError when the stopwords corpus is
    missing (a module-level ``StopwordModification()``): the adapter turns it into one line naming the resource."""
    from robust_tickets.textattack_adapter import import_textattack

    from paperlab_core.errors import UserError

    pkg = tmp_path / "textattack"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "raise LookupError('\\n' + '*' * 70 + \"\\n  Resource 'stopwords' not found.\\n  Please use the NLTK "
        "Downloader to obtain the resource:\\n\" + '*' * 70)\n"
    )
    monkeypatch.delitem(sys.modules, "textattack", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserError) as err:
        import_textattack()
    message = str(err.value)
    assert (
        "\n" not in message and "Resource 'stopwords' not found." in message and "nltk.downloader" in message
    )


def test_textattack_recipe_without_its_resources_is_one_line(
    stub_textattack, tiny_masked, tokenizer, synthetic
):
    """A recipe whose resources cannot be loaded (offline download, missing NLTK corpus, a file missing from the
    wheel: what the real 0.3.11 recipes raise here) is one line naming the recipe and the first line of the
    error, not a traceback."""
    from robust_tickets.textattack_adapter import run_textattack

    from paperlab_core.errors import UserError

    split = synthetic.split(4, seed=1)
    module = types.SimpleNamespace(net=tiny_masked)
    dm = types.SimpleNamespace(tokenizer=tokenizer, max_len=24, attack_split=lambda: split)
    failures = {
        "TextFoolerJin2019": OSError("HTTPSConnectionPool(host='textattack.s3.amazonaws.com'): Max retries"),
        "PWWSRen2019": LookupError("\n" + "*" * 70 + "\n  Resource 'wordnet' not found.\n" + "*" * 70),
    }
    for cls, exc in failures.items():

        def fail(model_wrapper, exc=exc):
            raise exc

        recipe_cls = getattr(stub_textattack.attack_recipes, cls)
        recipe_cls.build = staticmethod(fail)
    for recipe, needle in (("textfooler", "OSError: HTTPSConnectionPool"), ("pwws", "Resource 'wordnet'")):
        with pytest.raises(UserError) as err:
            run_textattack(recipe, module, dm, max_queries=10)
        assert "\n" not in str(err.value) and needle in str(err.value) and repr(recipe) in str(err.value)
