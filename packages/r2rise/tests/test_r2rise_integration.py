"""Integration checks of spec §6 items 9–13 and the §7 benchmark (slow: minutes on a 2-core CPU)."""

from __future__ import annotations

import json

import pytest
from r2rise.benchmark import run_benchmark
from r2rise.cli import main


@pytest.mark.slow
def test_reproduce_quick_meets_acceptance(tmp_path):
    """`r2rise reproduce --quick` (3 planted seeds, N = 200): every acceptance check of spec §6.9–11 passes."""
    assert main(["reproduce", "--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    checks = {row[0]: row[3] for row in results["tables"]["checks"]["rows"]}
    assert len(checks) == 4 and all(checks.values()), checks
    for name in ("results.md", "results.json", "seed0/q2_deletion_curves.png", "seed0/heatmap_centred.png"):
        assert (tmp_path / name).stat().st_size > 0


@pytest.mark.slow
def test_benchmark_batched_matches_sequential():
    """Same results as the sequential reference (timings are reported by `r2rise benchmark`, not gated here: the
    shared CI machine's load makes wall-clock thresholds flaky)."""
    result = run_benchmark(n_masks=60, dtype="float64", compare_sequential=True, naive=False)
    same = result["same_results"]
    assert same["fraction_models_identical_returns"] == 1.0, result
    assert same["max_abs_param_diff"] <= 1e-10, result
    assert same["spearman_centred_maps"] >= 0.99, result


# The default-suite integration check (issue #19): the whole chain (planted demonstrations → masks → batched
# retraining → vector evaluation → estimators → deletion) at a budget that runs in seconds. With N = 60 masks the
# 100 cells of the spec's 5 × 200-frame set are too many (centred AUC 0.61–0.73 on seeds 0–2, measured), so the
# demonstrations are 5 × 100 frames (50 cells): centred AUC 0.739, 0.872, 0.855, 0.784 on seeds 0–3 (measured,
# float64, deterministic for a seed). A chain that lost the plant (a shuffled map, labels leaking through masked
# frames, returns detached from the masks) gives AUC ≈ 0.5 and top-k deletion no worse than bottom-k.
FAST_N, FAST_LENGTH, FAST_SEEDS = 60, 100, (0, 1)


def test_planted_chain_finds_the_corrupted_blocks():
    from dataclasses import replace

    from r2rise.demos import make_demos
    from r2rise.estimators import rank_agreement
    from r2rise.explain import ExplainConfig, deletion_experiment, run_r2rise, summary, usable_blocks

    aucs = []
    for seed in FAST_SEEDS:
        demos = make_demos("CartPole-v1", 5, FAST_LENGTH, 0.1, 0.45, 10, seed)
        cfg = ExplainConfig(n_masks=FAST_N, seed=seed)
        result = run_r2rise(demos, cfg)
        info = summary(result, demos, permutations=200)
        aucs.append(info["planted_auc"]["centred"])
        assert info["q1_permutation"]["p_value"] < 0.05  # frames are not equally important
    assert sum(aucs) / len(aucs) >= 0.7, aucs
    # spec §6.10 in small: deleting the top 20 % by the map hurts more than deleting the bottom 20 % (seed 1)
    table = deletion_experiment(demos, result.maps["centred_block"], cfg, (0.2,), seeds=4)
    assert table["top"][0]["mean"] < table["bottom"][0]["mean"], table
    # spec §6.11 in small: bc_linear on the same masks ranks the blocks alike (measured ρ = 0.439 on seed 1,
    # 0.406 on seed 0)
    linear = run_r2rise(demos, replace(cfg, learner="bc_linear"), grids=result.grids)
    usable = usable_blocks(demos, 10)
    agreement = rank_agreement(result.maps["centred_block"][usable], linear.maps["centred_block"][usable])
    assert agreement["spearman"] > 0.3, agreement
