"""Optional TextAttack adapter (install ``textattack`` yourself; it is not a declared extra): runs a TextAttack recipe on a
checkpoint. TextAttack downloads its resources (USE, counter-fitted embeddings, NLTK data) at run time, so it
works only where those are available; it is imported lazily and was not exercised in this package's tests.

Why no ``robust-tickets[textattack]`` extra: with this workspace's pins, ``uv lock`` resolves textattack 0.3.11 ->
flair 0.11.3 -> sentencepiece 0.1.95, which has no wheel for Python >= 3.11 and whose sdist build clones
sentencepiece from GitHub, so ``uv sync --extra textattack`` fails (tried 2026-11-27, README "Design choices")."""

from __future__ import annotations

from typing import Any

from paperlab_core.errors import ConfigError, UserError

RECIPES = {
    "textfooler": "TextFoolerJin2019",
    "textbugger": "TextBuggerLi2018",
    "bert-attack": "BERTAttackLi2020",
    "deepwordbug": "DeepWordBugGao2018",
    "pwws": "PWWSRen2019",
}


def run_textattack(recipe: str, module: Any, dm: Any, max_queries: int) -> dict[str, Any]:
    """Run TextAttack's ``recipe`` on ``dm``'s attack set against ``module`` (a loaded TicketModule)."""
    if recipe not in RECIPES:
        raise ConfigError(f"unknown TextAttack recipe {recipe!r}; one of {', '.join(RECIPES)}")
    try:
        import textattack
    except ImportError:
        raise UserError(
            "textattack is not installed; `pip install textattack` (it also needs online resources) "
            "or use --attack wordswap|charswap|pgd"
        ) from None
    wrapper = textattack.models.wrappers.HuggingFaceModelWrapper(module.net.backbone, dm.tokenizer)
    attack = getattr(textattack.attack_recipes, RECIPES[recipe]).build(wrapper)
    split = dm.attack_split()
    if split.texts_b is None:
        dataset = textattack.datasets.Dataset(list(zip(split.texts, split.labels, strict=True)))
    else:  # TextAttack's recipes keep the "premise" column fixed (InputColumnModification)
        pairs = list(zip(zip(split.texts, split.texts_b, strict=True), split.labels, strict=True))
        dataset = textattack.datasets.Dataset(pairs, input_columns=("premise", "hypothesis"))
    attack_args = textattack.AttackArgs(
        num_examples=len(split), query_budget=max_queries, disable_stdout=True
    )
    results = textattack.Attacker(attack, dataset, attack_args).attack_dataset()
    ok = sum(type(r).__name__ == "SuccessfulAttackResult" for r in results)
    failed = sum(type(r).__name__ == "FailedAttackResult" for r in results)
    n = len(results)
    summary = {
        "clean": 100 * (ok + failed) / n,
        "aua": 100 * failed / n,
        "n": n,
        "textattack": textattack.__version__,
    }
    print(
        f"textattack {textattack.__version__} {recipe}: clean {summary['clean']:.1f} aua {summary['aua']:.1f}"
    )
    return {"attack": {f"textattack:{recipe}": summary}}
