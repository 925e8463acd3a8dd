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
with an untargeted-classification goal. It is an embedding-swap attack, not BERT-Attack (Li et al. 2020). It is
assembled from BAE's components rather than from ``BAEGarg2019.build``, which loads (downloads) bert-base-uncased's
masked LM only for it to be thrown away; a test against the real library checks that the two agree.

Checked against the real TextAttack 0.3.11 (``tests/test_robust_tickets_textattack_real.py``, ``docs/lab_notebook.md``):
``import textattack`` itself needs the NLTK ``stopwords`` corpus (module-level ``StopwordModification()``), so a
missing NLTK resource is turned into one line here, as is a recipe whose resources cannot be loaded.
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


def _first_line(exc: BaseException) -> str:
    """The first informative line of an exception's message (NLTK's start with a row of asterisks)."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line and set(line) != {"*"}:
            return line
    return type(exc).__name__


def import_textattack() -> Any:
    try:
        import textattack
    except ImportError:
        raise UserError(
            "textattack is not installed; `pip install 'robust-tickets[textattack]'` (its recipes also need "
            "online resources) or use --attack wordswap|charswap|pgd"
        ) from None
    except LookupError as exc:  # import-time StopwordModification() reads NLTK's stopwords corpus
        raise UserError(
            f"textattack cannot be imported: NLTK data missing ({_first_line(exc)}); run "
            "`python -m nltk.downloader stopwords` or point $NLTK_DATA at a folder that has it"
        ) from None
    return textattack


def textattack_version(textattack: Any) -> str:
    """TextAttack's version: the module has no ``__version__`` (0.3.11), so read the installed distribution's."""
    version = getattr(textattack, "__version__", None)
    if version is None:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        try:
            version = dist_version("textattack")
        except PackageNotFoundError:
            version = "unknown"
    return str(version)


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
    """The official code's "bertattack" recipe (spec 2.8), see the module docstring: BAE's pre-transformation
    constraints, part-of-speech constraint, goal and search, with ``WordSwapEmbedding(50)`` and a cosine-0.2 USE."""
    from textattack import Attack
    from textattack.constraints.grammaticality import PartOfSpeech
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.constraints.semantics.sentence_encoders import UniversalSentenceEncoder
    from textattack.goal_functions import UntargetedClassification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import WordSwapEmbedding

    use = UniversalSentenceEncoder(
        threshold=LEGACY_BERTATTACK["use_threshold"], metric="cosine", compare_against_original=True,
        window_size=LEGACY_BERTATTACK["use_window"], skip_text_shorter_than_window=False,
    )  # fmt: skip
    return Attack(
        UntargetedClassification(wrapper),
        [RepeatModification(), StopwordModification(), PartOfSpeech(allow_verb_noun_swap=True), use],
        WordSwapEmbedding(max_candidates=LEGACY_BERTATTACK["max_candidates"]),
        GreedyWordSwapWIR(wir_method="delete"),
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


def textattack_results(
    recipe: str, module: Any, dm: Any, max_queries: int, max_len: int | None = None, batch_size: int = 128
) -> list[Any]:
    """TextAttack's attack results of ``recipe`` on ``dm``'s attack set against ``module`` (a loaded
    TicketModule, or anything with the model as ``.net``), in the attack set's order."""
    if recipe not in RECIPES:
        raise ConfigError(f"unknown TextAttack recipe {recipe!r}; one of {', '.join(RECIPES)}")
    textattack = import_textattack()
    wrapper = model_wrapper(module.net, dm.tokenizer, max_len or dm.max_len, batch_size)
    split = dm.attack_split()
    if split.texts_b is None:
        dataset = textattack.datasets.Dataset(list(zip(split.texts, split.labels, strict=True)))
    else:  # TextAttack's recipes keep the "premise" column fixed (InputColumnModification)
        pairs = list(zip(zip(split.texts, split.texts_b, strict=True), split.labels, strict=True))
        dataset = textattack.datasets.Dataset(pairs, input_columns=("premise", "hypothesis"))
    attack_args = textattack.AttackArgs(
        num_examples=len(split), query_budget=max_queries, disable_stdout=True
    )
    try:  # the recipes load their resources (embeddings, USE, MLMs, NLTK data) when built or first used
        attack = build_attack(recipe, wrapper)
        return list(textattack.Attacker(attack, dataset, attack_args).attack_dataset())
    except UserError:
        raise
    except (OSError, LookupError, ImportError) as exc:
        raise UserError(
            f"TextAttack recipe {recipe!r} could not load a resource it needs ({type(exc).__name__}: "
            f"{_first_line(exc)[:300]}); most recipes download their resources on first use, so they need network "
            "access once (or use --attack wordswap|charswap|pgd)"
        ) from None


def run_textattack(
    recipe: str, module: Any, dm: Any, max_queries: int, max_len: int | None = None, batch_size: int = 128
) -> dict[str, Any]:
    """Run TextAttack's ``recipe`` on ``dm``'s attack set against ``module`` (a loaded TicketModule): the
    spec 2.10 summary with the TextAttack version and recipe, as the ``attack`` verb records it."""
    results = textattack_results(recipe, module, dm, max_queries, max_len, batch_size)
    summary = {
        **summarize_results(results),
        "textattack": textattack_version(import_textattack()),
        "recipe": recipe,
        "recipe_class": RECIPES[recipe],
        "max_queries": max_queries,
    }
    print(
        f"textattack {summary['textattack']} {recipe}: clean {summary['clean']:.1f} aua {summary['aua']:.1f} "
        f"suc {summary['suc']:.1f} #query {summary['queries']:.1f}"
    )
    return {"attack": {f"textattack:{recipe}": summary}}
