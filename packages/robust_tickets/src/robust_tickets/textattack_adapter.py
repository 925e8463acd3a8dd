"""TextAttack adapter (the optional extra ``robust-tickets[textattack]``, spec 2.10 D): runs a TextAttack recipe on a
checkpoint through :class:`TicketModelWrapper`.

The victim is the checkpoint's whole :class:`~robust_tickets.models.MaskedModel` (ticket or gate folded into the
weights by :class:`~robust_tickets.attacks.Victim`), never its bare backbone, whose masked layers only work inside
``MaskedModel.forward``. TextAttack downloads its resources at run time (USE from TF-Hub, counter-fitted
embeddings, NLTK data, MLMs for BAE/BERT-Attack), so the recipes need them on disk or a network; the adapter is
imported lazily and tested with a stub ``textattack`` module (``tests/test_robust_tickets_textattack.py``).

``legacy_bertattack`` is the official code's "bertattack" (spec 2.8): ``BAEGarg2019`` with its masked-LM swap
replaced by ``WordSwapEmbedding(max_candidates=50)``, its USE and word-embedding-distance constraints removed and
a loose USE constraint (cosine >= 0.2, window 15, compared against the original, short texts not skipped) added,
with an untargeted-classification goal. It is an embedding-swap attack, not BERT-Attack (Li et al. 2020).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from paperlab_core.errors import ConfigError, UserError

RECIPES = {
    "textfooler": "TextFoolerJin2019",
    "textbugger": "TextBuggerLi2018",
    "bert-attack": "BERTAttackLi2020",
    "deepwordbug": "DeepWordBugGao2018",
    "pwws": "PWWSRen2019",
    "legacy_bertattack": "BAEGarg2019",  # rebuilt by legacy_bertattack()
}
#: the official code's "bertattack" settings (spec 2.8)
LEGACY_BERTATTACK = {"max_candidates": 50, "use_threshold": 0.2, "use_window": 15}


def import_textattack() -> Any:
    try:
        import textattack
    except ImportError:
        raise UserError(
            "textattack is not installed; `pip install 'robust-tickets[textattack]'` (its recipes also need "
            "online resources) or use --attack wordswap|charswap|pgd"
        ) from None
    return textattack


class TicketModelWrapper:
    """A TextAttack model wrapper around a (masked) sequence classifier: ``wrapper(texts)`` returns the class
    probabilities of a list of texts, or of ``(first, second)`` pairs (segment ids included), as an
    ``(n, classes)`` array. Built by :func:`model_wrapper` as a subclass of TextAttack's ``ModelWrapper``."""

    def __init__(self, model: Any, tokenizer: Any, max_len: int = 128, batch_size: int = 128) -> None:
        from robust_tickets.attacks import Victim

        self.model = model
        self.tokenizer = tokenizer
        self.victim = Victim(model, tokenizer, max_len, batch_size)

    def __call__(self, text_input_list: Sequence[Any], **kwargs: Any) -> np.ndarray:
        items = list(text_input_list)
        if not items:
            return np.zeros((0, 0))
        if isinstance(items[0], str):
            return self.victim.probs(items)
        return self.victim.probs([b for _, b in items], firsts=[a for a, _ in items])


def model_wrapper(model: Any, tokenizer: Any, max_len: int = 128, batch_size: int = 128) -> Any:
    """:class:`TicketModelWrapper` as a ``textattack.models.wrappers.ModelWrapper`` (TextAttack checks the type)."""
    textattack = import_textattack()
    cls = type("TicketModelWrapper", (TicketModelWrapper, textattack.models.wrappers.ModelWrapper), {})
    return cls(model, tokenizer, max_len, batch_size)


def legacy_bertattack(wrapper: Any) -> Any:
    """The official code's "bertattack" recipe (spec 2.8), see the module docstring."""
    from textattack import Attack
    from textattack.attack_recipes import BAEGarg2019
    from textattack.constraints.semantics import WordEmbeddingDistance
    from textattack.constraints.semantics.sentence_encoders import UniversalSentenceEncoder
    from textattack.goal_functions import UntargetedClassification
    from textattack.transformations import WordSwapEmbedding

    base = BAEGarg2019.build(wrapper)
    kept = [
        c for c in base.constraints if not isinstance(c, (WordEmbeddingDistance, UniversalSentenceEncoder))
    ]
    use = UniversalSentenceEncoder(
        threshold=LEGACY_BERTATTACK["use_threshold"], metric="cosine", compare_against_original=True,
        window_size=LEGACY_BERTATTACK["use_window"], skip_text_shorter_than_window=False,
    )  # fmt: skip
    return Attack(
        UntargetedClassification(wrapper),
        [*kept, use, *base.pre_transformation_constraints],
        WordSwapEmbedding(max_candidates=LEGACY_BERTATTACK["max_candidates"]),
        base.search_method,
    )


def build_attack(recipe: str, wrapper: Any) -> Any:
    """TextAttack's ``recipe`` (a key of :data:`RECIPES`) against ``wrapper``."""
    if recipe not in RECIPES:
        raise ConfigError(f"unknown TextAttack recipe {recipe!r}; one of {', '.join(RECIPES)}")
    textattack = import_textattack()
    if recipe == "legacy_bertattack":
        return legacy_bertattack(wrapper)
    return getattr(textattack.attack_recipes, RECIPES[recipe]).build(wrapper)


def summarize_results(results: Sequence[Any]) -> dict[str, Any]:
    """Clean / Aua / Suc / #Query (spec 2.10 accounting) from TextAttack's attack results: skipped = originally
    misclassified; #Query is the mean over the attempted examples of TextAttack's query count."""
    kinds = [type(r).__name__ for r in results]
    ok = sum(k in {"SuccessfulAttackResult", "MaximizedAttackResult"} for k in kinds)
    failed = kinds.count("FailedAttackResult")
    n = len(results)
    attempted = [r for r, k in zip(results, kinds, strict=True) if k != "SkippedAttackResult"]
    queries = [getattr(getattr(r, "perturbed_result", None), "num_queries", None) for r in attempted]
    queries = [q for q in queries if q is not None]
    clean = 100 * (ok + failed) / n if n else 0.0
    aua = 100 * failed / n if n else 0.0
    return {
        "clean": clean,
        "aua": aua,
        "suc": 100 * ok / (ok + failed) if ok + failed else 0.0,
        "queries": float(np.mean(queries)) if queries else 0.0,
        "n": n,
        "skipped": n - ok - failed,
    }


def run_textattack(
    recipe: str, module: Any, dm: Any, max_queries: int, max_len: int | None = None, batch_size: int = 128
) -> dict[str, Any]:
    """Run TextAttack's ``recipe`` on ``dm``'s attack set against ``module`` (a loaded TicketModule)."""
    if recipe not in RECIPES:
        raise ConfigError(f"unknown TextAttack recipe {recipe!r}; one of {', '.join(RECIPES)}")
    textattack = import_textattack()
    wrapper = model_wrapper(module.net, dm.tokenizer, max_len or dm.max_len, batch_size)
    attack = build_attack(recipe, wrapper)
    split = dm.attack_split()
    if split.texts_b is None:
        dataset = textattack.datasets.Dataset(list(zip(split.texts, split.labels, strict=True)))
    else:  # TextAttack's recipes keep the "premise" column fixed (InputColumnModification)
        pairs = list(zip(zip(split.texts, split.texts_b, strict=True), split.labels, strict=True))
        dataset = textattack.datasets.Dataset(pairs, input_columns=("premise", "hypothesis"))
    attack_args = textattack.AttackArgs(
        num_examples=len(split), query_budget=max_queries, disable_stdout=True
    )
    results = list(textattack.Attacker(attack, dataset, attack_args).attack_dataset())
    summary = {
        **summarize_results(results),
        "textattack": getattr(textattack, "__version__", "unknown"),
        "recipe": recipe,
        "recipe_class": RECIPES[recipe],
        "max_queries": max_queries,
    }
    print(
        f"textattack {summary['textattack']} {recipe}: clean {summary['clean']:.1f} aua {summary['aua']:.1f} "
        f"suc {summary['suc']:.1f} #query {summary['queries']:.1f}"
    )
    return {"attack": {f"textattack:{recipe}": summary}}
