"""Criteria 12-14: attack accounting, validity and batching invariance."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from robust_tickets.attacks import (
    AttackResult,
    Victim,
    charswap_attack,
    embedding_neighbour_table,
    levenshtein,
    pgd_attack,
    run_attack,
    summarize,
    table_hash,
    wordswap_attack,
)
from robust_tickets.data import lexicon_polarity


def test_summary_accounting():
    statuses = ["success"] * 3 + ["failed"] * 2 + ["skipped"] * 5
    queries = [10, 20, 30, 40, 50] + [1] * 5
    res = [AttackResult("a", "b", 1, s, q) for s, q in zip(statuses, queries, strict=True)]
    s = summarize(res)
    assert (s.clean, s.aua, s.suc) == (0.5, 0.2, 0.6)
    assert s.suc == pytest.approx((s.clean - s.aua) / s.clean)
    assert s.avg_queries == 30.0 and s.skipped == 5


class StubVictim:
    """p(pos) = sigmoid(#good - #bad + 0.5 #fine + 0.1)."""

    def probs(self, texts):
        out = []
        for t in texts:
            w = t.split()
            score = w.count("good") - w.count("bad") + 0.5 * w.count("fine") + 0.1
            p = 1 / (1 + math.exp(-score))
            out.append([1 - p, p])
        return np.array(out)


def test_wordswap_hand_computed_query_count():
    table = {"good": ["fine", "bad"], "movie": ["film"]}
    [res] = run_attack(wordswap_attack(table, frozenset()), [("good movie", 1)], StubVictim())
    # 1 initial + 2 deletions (good, movie) + 2 candidates for "good" ("bad movie" flips)
    assert res.status == "success" and res.queries == 5 and res.perturbed == "bad movie"


def test_max_queries_truncates_and_skipped_examples():
    table = {"good": ["fine"]}
    results = run_attack(
        wordswap_attack(table, frozenset(), max_queries=4), [("good good movie", 1), ("bad", 1)], StubVictim()
    )
    assert results[0].status == "failed" and results[0].queries == 4
    assert results[1].status == "skipped" and results[1].queries == 1
    assert summarize(results).avg_queries == 4


@pytest.fixture
def victim64(tiny_backbone, tokenizer, synthetic):
    """The tiny random model in float64 with a rescaled, centred head so that its decisions are word-sensitive."""
    model = tiny_backbone.double().eval()
    texts = synthetic.split(200, seed=99).texts
    with torch.no_grad():
        model.classifier.weight.mul_(300.0)
        model.classifier.bias.zero_()
        enc = tokenizer(texts, padding=True, return_tensors="pt")
        logits = model(**enc).logits
        model.classifier.bias[1] = -float((logits[:, 1] - logits[:, 0]).median())
    return Victim(model, tokenizer, max_len=24, batch_size=128)


def test_budget_and_same_sign_substitutes(victim64, synthetic):
    split = synthetic.split(30, seed=11)
    table = synthetic.synonym_table()
    results = run_attack(
        wordswap_attack(table, max_queries=20), list(zip(split.texts, split.labels, strict=True)), victim64
    )
    assert all(1 <= r.queries <= 20 for r in results)
    for r in results:
        if r.status == "success":
            assert synthetic.label(r.perturbed) == r.label
    assert any(r.status != "skipped" for r in results)


def test_charswap_edit_distance(victim64, synthetic):
    split = synthetic.split(20, seed=12)
    results = run_attack(
        charswap_attack(max_queries=200, max_edit_distance=4),
        list(zip(split.texts, split.labels, strict=True)),
        victim64,
    )
    assert all(levenshtein(r.original, r.perturbed) <= 4 for r in results)
    assert any(r.perturbed != r.original for r in results)


def test_pgd_respects_radius(tiny_backbone, tokenizer, synthetic):
    split = synthetic.split(20, seed=13)
    results, ratios = pgd_attack(
        tiny_backbone.eval(), tokenizer, list(zip(split.texts, split.labels, strict=True)), 0.5
    )
    assert max(ratios) <= 1 + 1e-5
    assert all(r.queries == (1 if r.status == "skipped" else 11) for r in results)


def test_pgd_sorted_filtered_batches_match_one_example_runs(tiny_backbone, tokenizer, synthetic):
    """Length-sorted batches and the clean-prediction filter leave every example's outcome unchanged."""
    split = synthetic.split(24, seed=15)
    examples = list(zip(split.texts, split.labels, strict=True))
    model = copy.deepcopy(tiny_backbone).double().eval()
    batched, ratios = pgd_attack(model, tokenizer, examples, 0.5, batch_size=8)
    single = [pgd_attack(model, tokenizer, [ex], 0.5, batch_size=1)[0][0] for ex in examples]
    assert [r.status for r in batched] == [r.status for r in single]
    assert [r.queries for r in batched] == [r.queries for r in single]
    assert len({r.status for r in batched}) >= 2, [r.status for r in batched]
    assert len(ratios) == sum(r.status != "skipped" for r in batched)


def test_batched_and_sequential_attacks_identical(victim64, tokenizer, tiny_backbone, synthetic):
    split = synthetic.split(50, seed=14)
    examples = list(zip(split.texts, split.labels, strict=True))
    attack = wordswap_attack(synthetic.synonym_table(n_candidates=10), max_queries=40)
    batched = run_attack(attack, examples, victim64, parallel_examples=32)
    sequential = run_attack(
        attack, examples, Victim(victim64.model, tokenizer, 24, batch_size=1), parallel_examples=1
    )
    assert any(r.status == "success" for r in batched) and any(r.status == "failed" for r in batched)
    assert [(r.perturbed, r.status, r.queries) for r in batched] == [
        (r.perturbed, r.status, r.queries) for r in sequential
    ]


def test_embedding_table_filters_antonyms_and_hash_is_stable(tokenizer):
    vocab = tokenizer.get_vocab()
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(len(vocab), 16, generator=gen)
    base = torch.randn(16, generator=gen) * 10
    for word in ("good", "great", "bad"):
        emb[vocab[word]] = base + 0.01 * torch.randn(16, generator=gen)
    table = embedding_neighbour_table(
        emb, tokenizer, ["good", "the"], n_candidates=5, polarity=lexicon_polarity()
    )
    assert "great" in table["good"] and "bad" not in table["good"]
    assert "the" not in table  # stop word
    again = embedding_neighbour_table(
        emb, tokenizer, ["good", "the"], n_candidates=5, polarity=lexicon_polarity()
    )
    assert table_hash(table) == table_hash(again)


@pytest.mark.parametrize("mode", ["binary", "soft"])
def test_victim_folds_masks_and_memoises(tiny_masked, tokenizer, synthetic, mode):
    net = tiny_masked
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        net.mask_scores.copy_(torch.randn(net.num_entries, generator=gen) * 2)
    net.set_mode(mode)
    if mode == "binary":
        net.set_ticket(torch.rand(net.num_entries, generator=gen) > 0.3)
    net.eval()
    texts = synthetic.split(6, seed=21).texts
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = torch.softmax(net(**enc).logits.double(), -1).numpy()
    victim = Victim(net, tokenizer, max_len=24, batch_size=4)
    assert victim.scorer is not net.backbone and not isinstance(victim.scorer, type(net))
    np.testing.assert_allclose(victim.probs(texts), ref, atol=1e-6)
    passes = victim.forward_passes
    again = victim.probs([texts[2], texts[2], texts[0]])  # memo: no new forward pass, identical values
    assert victim.forward_passes == passes and victim.scored_sequences == len(set(texts))
    assert np.array_equal(again[0], again[1]) and victim.requested == len(texts) + 3
    # the masked model itself is untouched (its mask product still runs in its own forward)
    with torch.no_grad():
        np.testing.assert_allclose(torch.softmax(net(**enc).logits.double(), -1).numpy(), ref, atol=1e-12)


@pytest.mark.data
@pytest.mark.slow
def test_bench_attack_alternates_and_compares(shared_data):
    from robust_tickets.bench import bench_attack

    out = bench_attack("tiny-bert", n=6, max_queries=40, ckpt=None, block=3)
    assert out["batched"]["queries"] == out["sequential"]["queries"] >= 6
    assert out["sequential"]["forward_passes"] == out["sequential"]["scored_sequences"]
    assert out["batched"]["forward_passes"] <= out["sequential"]["forward_passes"]
    cost = out["forward_ms_per_sequence"]
    assert out["identical_status_and_queries"] and cost["batch1"] > 0
    assert cost["gemm_peak_gflops"] > 0 and cost["batching_ceiling"] == pytest.approx(
        cost["gemm_peak_gflops"] / cost["gflops_batch1"]
    )
    assert cost["gflops_batch1"] * cost["batch1"] == pytest.approx(cost["gflops_batch128"] * cost["batch128"])


def test_gemm_gflops_counts_two_flops_per_multiply_add():
    """2·m·k·n FLOPs over the median time (a clock that advances 0.5 s per reading: 0.5 s per matmul)."""
    import itertools

    from robust_tickets.bench import gemm_gflops

    ticks = itertools.count(0.0, 0.5)
    assert gemm_gflops(8, 4, 2, reps=3, timer=lambda: next(ticks)) == pytest.approx(2 * 8 * 4 * 2 / 0.5 / 1e9)


# ------------------------------------------------------------------------ sentence-similarity constraint
def test_wordswap_similarity_constraint_filters_before_scoring():
    table = {"good": ["fine", "bad"], "movie": ["film"]}
    seen = []

    def similarity(original, texts):
        seen.append((original, list(texts)))
        return np.array([0.2 if "bad" in t else 0.9 for t in texts])

    attack = wordswap_attack(table, frozenset(), similarity=similarity, sim_threshold=0.8)
    [res] = run_attack(attack, [("good movie", 1)], StubVictim())
    # 1 initial + 2 deletions + "fine movie" (the rejected "bad movie" is never scored) + "fine film";
    # p_y(fine film) = p_y(fine movie), so "movie" is kept and the attack fails
    assert (res.status, res.queries, res.perturbed) == ("failed", 5, "fine movie")
    assert all(orig == "good movie" for orig, _ in seen)  # similarity to the ORIGINAL text
    # threshold 0 (off): the constraint is not consulted and the attack is the unconstrained one
    seen.clear()
    off = wordswap_attack(table, frozenset(), similarity=similarity, sim_threshold=0.0)
    [res] = run_attack(off, [("good movie", 1)], StubVictim())
    assert (res.status, res.queries, res.perturbed) == ("success", 5, "bad movie") and not seen


def test_sentence_similarity_mean_pooling_matches_reference(tiny_backbone, tokenizer):
    from robust_tickets.attacks import SentenceSimilarity

    encoder = tiny_backbone.double().base_model.eval()
    sim = SentenceSimilarity(encoder, tokenizer, max_len=24, batch_size=2)
    texts = ["a good movie", "the plot was dull and far too long for its own good", "fine"]
    emb = sim.embed(texts)
    for text, row in zip(texts, emb, strict=True):  # reference: one unpadded text at a time
        ids = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            ref = encoder(**ids).last_hidden_state[0].mean(0)
        np.testing.assert_allclose(row, (ref / ref.norm()).numpy(), atol=1e-10)
    np.testing.assert_allclose(sim("a good movie", texts), emb @ emb[0], atol=1e-12)
    assert sim("a good movie", ["a good movie"])[0] == pytest.approx(1.0)


def test_pretrained_minilm_similarity_ranks_paraphrase_above_unrelated():
    from robust_tickets.attacks import pretrained_sentence_similarity

    sim = pretrained_sentence_similarity("minilm", max_len=32)
    s = sim("the movie was great", ["the film was great", "stock prices fell sharply on monday"])
    assert s[0] > 0.8 > s[1]


def test_subword_queries_give_multi_piece_words_neighbours(tokenizer):
    """``subwords=True``: a word of several WordPieces is queried with the normalised mean of its pieces' unit
    embeddings (here placed next to a whole-word token); without it the word has no candidates."""
    vocab = tokenizer.get_vocab()
    word = "pretentiousness"
    pieces = tokenizer.tokenize(word)
    assert word not in vocab and len(pieces) > 1
    gen = torch.Generator().manual_seed(1)
    emb = torch.randn(len(vocab), 32, generator=gen)
    base = torch.randn(32, generator=gen) * 10
    for piece in pieces:
        emb[vocab[piece]] = base + 0.5 * torch.randn(32, generator=gen)
    emb[vocab["arrogance"]] = base
    without = embedding_neighbour_table(emb, tokenizer, [word, "arrogance"], n_candidates=3)
    assert word not in without
    table = embedding_neighbour_table(emb, tokenizer, [word, "arrogance"], n_candidates=3, subwords=True)
    assert table[word][0] == "arrogance"
    unit = torch.nn.functional.normalize(emb, dim=1)
    query = torch.nn.functional.normalize(unit[[vocab[p] for p in pieces]].mean(0), dim=0)
    assert float(query @ unit[vocab["arrogance"]]) >= 0.5  # the default threshold the table applied
    assert table["arrogance"] == without["arrogance"]  # whole words are unchanged by the option


def test_table_coverage_counts_by_hand():
    from robust_tickets.evaluate import table_coverage

    table = {"dull": ["boring", "bland"], "film": ["movie"], "the": ["a"]}
    cov = table_coverage(table, ["the film is dull", "a great film"])
    # distinct words: the film is dull a great (6); covered: the film dull (3); "the" is a stopword
    assert cov["distinct_words"] == 6 and cov["words_with_candidates"] == 3
    assert cov["covered_pct"] == pytest.approx(50.0)
    assert cov["candidates_per_word"] == pytest.approx((2 + 1 + 1) / 3)
    assert cov["words_per_sentence"] == pytest.approx(3.5)
    assert cov["attackable_per_sentence"] == pytest.approx((2 + 1) / 2)
