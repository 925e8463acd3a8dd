from __future__ import annotations

import numpy as np
import torch
from r2rise.atari import CNNEnsemble, NatureCNN, mask_score


def test_nature_cnn_output_shape():
    model = NatureCNN(num_actions=6)
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    assert model(obs).shape == (3, 6)


def test_cnn_ensemble_equals_separate_models():
    torch.manual_seed(0)
    models = [NatureCNN(num_actions=4) for _ in range(3)]
    ensemble = CNNEnsemble(models)
    obs = torch.randint(0, 256, (3, 2, 4, 84, 84), dtype=torch.uint8)
    with torch.no_grad():
        batched = ensemble(obs)
        for m, model in enumerate(models):
            np.testing.assert_allclose(batched[m].numpy(), model(obs[m]).numpy(), atol=1e-5)


def test_mask_score_rows():
    frames = np.full((2, 4, 84, 84), 7, dtype=np.uint8)
    breakout = mask_score(frames, "BreakoutNoFrameskip-v4")
    assert (breakout[..., :10, :] == 0).all() and (breakout[..., 10:, :] == 7).all()
    beam = mask_score(frames, "BeamRiderNoFrameskip-v4")
    assert (
        (beam[..., :16, :] == 0).all()
        and (beam[..., -11:, :] == 0).all()
        and (beam[..., 16:-11, :] == 7).all()
    )
    assert (frames == 7).all()


def test_game_key_and_ale_ids():
    from r2rise.atari import game_key

    assert game_key("BreakoutNoFrameskip-v4") == game_key("ALE/Breakout-v5") == "breakout"
    assert game_key("BeamRiderNoFrameskip-v4") == "beamrider"
    frames = np.full((1, 4, 84, 84), 7, dtype=np.uint8)
    assert (mask_score(frames, "ALE/Breakout-v5")[..., :10, :] == 0).all()
    np.testing.assert_array_equal(mask_score(frames, "SeaquestNoFrameskip-v4"), frames)


class _FakeALE:
    """Stands in for an ALE env: records the actions it gets; ``end_on`` ends the episode on that action."""

    def __init__(self, end_on: int | None = None) -> None:
        import gymnasium as gym

        self.action_space = gym.spaces.Discrete(4)
        self.observation_space = gym.spaces.Box(0, 255, (2,), np.uint8)
        self.actions: list[int] = []
        self.resets: list[int | None] = []
        self.end_on = end_on

    def get_action_meanings(self) -> list[str]:
        return ["NOOP", "FIRE", "RIGHT", "LEFT"]

    def reset(self, *, seed=None, options=None):
        self.resets.append(seed)
        return np.zeros(2, np.uint8), {}

    def step(self, action):
        self.actions.append(int(action))
        done = action == self.end_on and len(self.resets) == 1
        return np.full(2, len(self.actions), np.uint8), 1.0, done, False, {}


def _fake_env(end_on: int | None = None):
    import gymnasium as gym

    class Env(gym.Env):
        def __init__(self) -> None:
            self.inner = _FakeALE(end_on)
            self.action_space, self.observation_space = self.inner.action_space, self.inner.observation_space

        def get_action_meanings(self) -> list[str]:
            return self.inner.get_action_meanings()

        def reset(self, *, seed=None, options=None):
            return self.inner.reset(seed=seed, options=options)

        def step(self, action):
            return self.inner.step(action)

    return Env()


def test_fire_reset_presses_fire_then_two_after_every_reset():
    """baselines' FireResetEnv: FIRE (1), then action 2, after each reset; a step that ends the episode resets
    again (without the seed, so a seeded reset cannot loop)."""
    from r2rise.atari import FireReset

    env = FireReset(_fake_env())
    obs, _ = env.reset(seed=3)
    assert env.env.inner.actions == [1, 2] and env.env.inner.resets == [3] and obs[0] == 2
    ending = FireReset(_fake_env(end_on=1))
    ending.reset(seed=5)
    assert ending.env.inner.resets == [5, None] and ending.env.inner.actions == [1, 2]


def test_paper_atari_config_loads(capsys):
    from r2rise.cli import main

    assert main(["train", "--config", "paper_atari", "--print_config"]) == 0
    printed = capsys.readouterr().out
    assert (
        "learner: bc_cnn" in printed
        and "BreakoutNoFrameskip-v4" in printed
        and "eval_epsilon: 0.1" in printed
    )


ATARI = "BreakoutNoFrameskip-v4"


def _atari_ready() -> None:
    import pytest

    pytest.importorskip("ale_py", reason="the atari extra (ale-py, which ships the ROMs) is not installed")
    pytest.importorskip("cv2", reason="the atari extra (opencv) is not installed")


def _fire(obs: np.ndarray) -> int:
    return 1


def test_atari_env_recording_and_vector_evaluation(tmp_path):
    """Real ALE Breakout through envs.make_env: 4×84×84 uint8 stacks recorded into the .npz format, and the
    vector evaluator with common random numbers (two equal policies get equal returns, runs are repeatable)."""
    _atari_ready()
    from r2rise.demos import load_demos, record_demonstrations, save_demos
    from r2rise.envs import env_spaces
    from r2rise.evaluate import Evaluator

    assert env_spaces(ATARI) == ((4, 84, 84), 4)
    demos = record_demonstrations(ATARI, num_demos=2, length=12, exec_noise=0.0, seed=0, expert=_fire)
    assert demos.obs.shape == (2, 12, 4, 84, 84) and demos.obs.dtype == np.uint8
    # the score rows (top 10 for Breakout) are blanked in what is recorded; the playfield is not
    assert (demos.obs[..., :10, :] == 0).all() and (demos.obs[..., 10:, :] > 0).any()
    assert (demos.actions == 1).all() and demos.valid.all()
    loaded = load_demos(save_demos(demos, tmp_path / "breakout.npz"), env_id=ATARI)
    np.testing.assert_array_equal(loaded.obs, demos.obs)

    seen = []

    def policy(obs: np.ndarray) -> np.ndarray:
        seen.append(np.array(obs))
        return np.ones(obs.shape[:2], dtype=np.int64)

    evaluator = Evaluator(ATARI, episodes=2, seed=0, max_steps=15)
    first, second = evaluator.evaluate(policy, 2), evaluator.evaluate(policy, 2)
    assert first.shape == (2, 2)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first[0], first[1])
    # evaluation sees blanked score rows too, and a bound of 3 envs (2 models × 2 episodes in slices) changes nothing
    assert all((o[..., :10, :] == 0).all() for o in seen) and any((o[..., 10:, :] > 0).any() for o in seen)
    np.testing.assert_array_equal(
        Evaluator(ATARI, episodes=2, seed=0, max_steps=15, max_envs=3).evaluate(policy, 2), first
    )


def test_atari_env_chain_blanks_scores_and_fires_on_reset():
    """make_env's Atari chain: AtariPreprocessing → FireReset (Breakout has FIRE) → 4-frame stack → MaskScore."""
    _atari_ready()
    from r2rise.atari import FireReset, MaskScore, make_atari_env
    from r2rise.envs import make_env

    env = make_env(ATARI)
    chain, layer = [], env
    while hasattr(layer, "env"):
        chain.append(type(layer))
        layer = layer.env
    assert chain.index(MaskScore) < chain.index(FireReset)
    obs, _ = env.reset(seed=0)
    assert (obs[..., :10, :] == 0).all()
    raw, _ = make_atari_env(ATARI, blank_score=False).reset(seed=0)
    assert (raw[..., :10, :] > 0).any(), "Breakout draws the score in the top rows"
    env.close()


def test_paper_atari_train_end_to_end(tmp_path, monkeypatch):
    """`r2rise train --config paper_atari` on recorded Breakout demos: Nature-CNN BC and an evaluation in the
    preprocessed env (short budgets)."""
    _atari_ready()
    import json

    from r2rise.cli import main
    from r2rise.demos import record_demonstrations, save_demos

    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path / "runs"))
    path = save_demos(record_demonstrations(ATARI, 2, 20, 0.0, 0, expert=_fire), tmp_path / "breakout.npz")
    args = ["train", "--config", "paper_atari", "--data.demos", str(path), "--trainer.max_epochs", "2"]
    args += ["--data.updates_per_epoch", "2", "--data.batch_size", "4", "--model.val_returns", "true"]
    args += ["--model.eval_episodes", "1", "--model.eval_max_steps", "10"]
    assert main(args) == 0
    run = next((tmp_path / "runs" / "r2rise").iterdir())
    fit = json.loads((run / "metrics.json").read_text())["fit"]
    assert {"val/return_mean", "val/loss", "val/acc"} <= set(fit), fit
    assert fit["global_step"] == 4  # 2 epochs × 2 minibatch updates


def _random_frames(num: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (num, 4, 84, 84), dtype=np.uint8), rng.integers(0, 4, num)


# Tolerance of test_cnn_ensemble_fit_is_per_model, derived from the dtype and the reduction sizes.
# The batched fit (vmap over 2 models: grouped convolutions, batched matmuls) and the 1-model fit sum the same terms
# in different orders. A float32 sum of n terms differs from any other order by at most about n·u·Σ|terms|
# (Higham, Accuracy and Stability of Numerical Algorithms, 2002, §3.1; u = 2^-24). One update's gradient passes
# through every layer's reduction forward and backward, and the largest weight-gradient reduction is conv1's
# batch × 20 × 20 = 1,600 positions: n = 2 · (4·8·8 + 32·4·4 + 64·3·3 + 3136 + 512) + 1,600 = 11,584 terms, a
# relative gradient difference of at most n·u ≈ 6.9e-4. Adam turns a relative gradient change δ into a step change of
# at most about lr·δ, so after `steps` updates an element differs by at most steps · lr · n · u ≈ 2.8e-6.
# That bound assumes the gradient does not cancel (|g| ≈ Σ|terms|). Where an element's gradient cancels down to the
# rounding level, Adam (which normalises by |g|) can turn the rounding into a different step of up to 2·lr: such
# elements are rare (1 of 36,864 conv3 weights exceeded 1e-5 on an AMD EPYC, 1 exceeded 2.8e-6 on another), so at
# most 0.1 % of all 1.69 M parameters may exceed the bound. A real cross-model leak (shared minibatch draws, a loss
# or normalisation that mixes the models, early stopping on a joint loss) changes the trajectory itself: the
# parameters then differ by the size of the updates (~lr) nearly everywhere, so every tensor's median difference
# and the fraction of differing elements catch it.
PER_MODEL_STEPS, PER_MODEL_LR = 4, 1e-3
CHAIN_TERMS = 2 * (4 * 8 * 8 + 32 * 4 * 4 + 64 * 3 * 3 + 3136 + 512) + 4 * 20 * 20
PER_MODEL_ATOL = PER_MODEL_STEPS * PER_MODEL_LR * CHAIN_TERMS * 2.0**-24
PER_MODEL_OUTLIER_FRACTION = 1e-3


def test_cnn_ensemble_fit_is_per_model():
    """A model's result does not depend on the other models in the call (own generator, vmap, elementwise Adam)."""
    from r2rise.atari import fit_cnn_ensemble

    obs, actions = _random_frames(16)
    weights = np.random.default_rng(1).random((2, 16)) < 0.6
    kwargs = dict(num_actions=4, lr=PER_MODEL_LR, max_updates=PER_MODEL_STEPS, batch_size=4, seed=3, val_every=2,
                  patience=5)  # fmt: skip
    both = fit_cnn_ensemble(obs, actions, weights, **kwargs)
    alone = fit_cnn_ensemble(obs, actions, weights[1:], members=[1], **kwargs)
    outliers = total = 0
    for key, value in alone.ensemble.params.items():
        diff = (both.ensemble.params[key][1] - value[0]).detach().abs().flatten()
        assert diff.median() <= PER_MODEL_ATOL, (key, float(diff.median()))
        outliers += int((diff > PER_MODEL_ATOL).sum())
        total += diff.numel()
    assert outliers <= PER_MODEL_OUTLIER_FRACTION * total, (outliers, total, PER_MODEL_ATOL)
    assert both.act(obs[None].repeat(2, 0)).shape == (2, 16)


def test_cnn_ensemble_fit_keeps_best_validation_parameters(monkeypatch):
    """Each model returns the parameters of its own best validation check, not its last ones.

    The validation losses are scripted (model 0 is best after update 2, model 1 after update 4); runs stopped
    right after those updates give the parameters each model must end with. lr > 0, and model 1's parameters
    after updates 2 and 4 differ, so returning the last parameters instead of the best ones fails."""
    from r2rise import atari

    obs, actions = _random_frames(12)
    weights = np.ones((2, 12), dtype=bool)
    schedule = torch.tensor([[5.0, 5.0], [1.0, 4.0], [3.0, 3.0], [4.0, 2.0], [6.0, 6.0], [7.0, 7.0]])

    def fit(max_updates: int) -> dict[str, np.ndarray]:
        losses = iter(schedule)
        monkeypatch.setattr(atari, "_summed_val_loss", lambda *args, **kwargs: next(losses).clone())
        result = atari.fit_cnn_ensemble(
            obs, actions, weights, 4, lr=1e-3, max_updates=max_updates, batch_size=4, val_every=1, patience=10
        )
        return {k: v.detach().numpy().copy() for k, v in result.ensemble.params.items()}

    final, after2, after4 = fit(6), fit(2), fit(4)
    assert any(not np.array_equal(after2[k][1], after4[k][1]) for k in final)
    for key, value in final.items():
        np.testing.assert_array_equal(value[0], after2[key][0])
        np.testing.assert_array_equal(value[1], after4[key][1])


def test_summed_validation_loss_per_model():
    """The early-stopping criterion: Σ over each model's own validation frames of its cross-entropy."""
    from r2rise.atari import CNNEnsemble, _summed_val_loss

    torch.manual_seed(0)
    models = [NatureCNN(num_actions=4) for _ in range(2)]
    obs, actions = _random_frames(30)
    frames, labels = torch.as_tensor(obs), torch.as_tensor(actions)
    val_lists = [torch.arange(0, 13), torch.arange(13, 17)]  # unequal lengths: padding must not count
    got = _summed_val_loss(CNNEnsemble(models), frames, labels, val_lists)
    with torch.no_grad():
        want = [torch.nn.functional.cross_entropy(m(frames[v]), labels[v], reduction="sum")
                for m, v in zip(models, val_lists, strict=True)]  # fmt: skip
    np.testing.assert_allclose(got.numpy(), torch.stack(want).numpy(), rtol=1e-5)


def test_explain_bc_cnn_on_breakout(tmp_path):
    """Atari smoke through the CLI: `r2rise explain --learner bc_cnn` on recorded Breakout demonstrations (tiny
    budgets, at most 2 evaluation envs at once): returns per mask, maps, and the score rows blanked in the
    demonstrations the run wrote."""
    _atari_ready()
    from r2rise.cli import main
    from r2rise.demos import load_demos, record_demonstrations, save_demos

    path = save_demos(record_demonstrations(ATARI, 2, 20, 0.0, 0, expert=_fire), tmp_path / "breakout.npz")
    args = ["explain", "--demos", str(path), "--learner", "bc_cnn", "--n-masks", "3", "--block", "2"]
    args += ["--lr", "1e-3", "--steps", "2", "--episodes", "2", "--cnn-batch", "4", "--cnn-val-every", "1"]
    args += ["--max-steps", "8", "--eval-envs", "2", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    returns = np.load(tmp_path / "run" / "returns.npy")
    assert returns.shape == (3, 2) and np.isfinite(returns).all()
    with np.load(tmp_path / "run" / "maps.npz") as maps:
        assert maps["raw_block"].shape == (2, 10) and np.isfinite(maps["raw_block"]).all()
    demos = load_demos(tmp_path / "run")
    assert (demos.obs[..., :10, :] == 0).all() and (demos.obs[..., 10:, :] > 0).any()
