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


def test_smoke_runs_on_cpu():
    from r2rise.smoke import run_smoke

    line = run_smoke("cpu", steps=2, batch=2)
    assert line.startswith("r2rise smoke on cpu") and "NatureCNN" in line


def test_paper_atari_config_loads(capsys):
    import pytest
    from r2rise.cli import main

    with pytest.raises(SystemExit) as info:
        main(["train", "--config", "paper_atari", "--print_config"])
    assert info.value.code in (0, None)
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
    assert (demos.actions == 1).all() and demos.valid.all()
    loaded = load_demos(save_demos(demos, tmp_path / "breakout.npz"), env_id=ATARI)
    np.testing.assert_array_equal(loaded.obs, demos.obs)

    evaluator = Evaluator(ATARI, episodes=2, seed=0, max_steps=15)
    policy = lambda obs: np.ones(obs.shape[:2], dtype=np.int64)  # noqa: E731
    first, second = evaluator.evaluate(policy, 2), evaluator.evaluate(policy, 2)
    assert first.shape == (2, 2)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first[0], first[1])


def test_paper_atari_train_end_to_end(tmp_path, monkeypatch):
    """`r2rise train --config paper_atari` on recorded Breakout demos: Nature-CNN BC and an evaluation in the
    preprocessed env (short budgets)."""
    _atari_ready()
    import json

    from r2rise.cli import main
    from r2rise.demos import record_demonstrations, save_demos

    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path / "runs"))
    path = save_demos(record_demonstrations(ATARI, 2, 20, 0.0, 0, expert=_fire), tmp_path / "breakout.npz")
    args = ["train", "--config", "paper_atari", "--data.demos", str(path), "--trainer.max_epochs", "1"]
    args += [
        "--trainer.check_val_every_n_epoch",
        "1",
        "--model.eval_episodes",
        "1",
        "--model.eval_max_steps",
        "10",
    ]
    assert main(args) == 0
    run = next((tmp_path / "runs" / "r2rise").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert "val/return_mean" in json.dumps(metrics)


def _random_frames(num: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (num, 4, 84, 84), dtype=np.uint8), rng.integers(0, 4, num)


def test_cnn_ensemble_fit_is_per_model():
    """A model's result does not depend on the other models in the call (own generator, vmap, elementwise Adam)."""
    from r2rise.atari import fit_cnn_ensemble

    obs, actions = _random_frames(16)
    weights = np.random.default_rng(1).random((2, 16)) < 0.6
    kwargs = dict(num_actions=4, max_updates=4, batch_size=4, seed=3, val_every=2, patience=5)
    both = fit_cnn_ensemble(obs, actions, weights, **kwargs)
    alone = fit_cnn_ensemble(obs, actions, weights[1:], members=[1], **kwargs)
    for key, value in alone.ensemble.params.items():
        np.testing.assert_allclose(both.ensemble.params[key][1].detach(), value[0].detach(), atol=1e-5)
    assert both.act(obs[None].repeat(2, 0)).shape == (2, 16)


def test_cnn_ensemble_fit_keeps_best_validation_parameters():
    """With lr = 0 nothing improves after the first check, so the early-stopped result is the initialisation."""
    from r2rise.atari import fit_cnn_ensemble

    obs, actions = _random_frames(12)
    weights = np.ones((2, 12), dtype=bool)
    trained = fit_cnn_ensemble(obs, actions, weights, 4, lr=0.0, max_updates=6, batch_size=4, val_every=1)
    initial = fit_cnn_ensemble(obs, actions, weights, 4, lr=0.0, max_updates=1, batch_size=4, val_every=1)
    for key, value in trained.ensemble.params.items():
        np.testing.assert_array_equal(value.detach().numpy(), initial.ensemble.params[key].detach().numpy())


def test_explain_bc_cnn_on_breakout(tmp_path):
    """R2RISE with Nature-CNN ensembles on recorded Breakout demonstrations (tiny budgets): returns per mask."""
    _atari_ready()
    from r2rise.demos import record_demonstrations
    from r2rise.explain import ExplainConfig, run_r2rise

    demos = record_demonstrations(ATARI, 2, 20, 0.0, 0, expert=_fire)
    cfg = ExplainConfig(
        learner="bc_cnn",
        n_masks=3,
        block=2,
        lr=1e-3,
        steps=2,
        episodes=1,
        cnn_batch=4,
        cnn_val_every=1,
        max_steps=8,
    )
    result = run_r2rise(demos, cfg)
    assert result.episode_returns.shape == (3, 1) and np.isfinite(result.episode_returns).all()
    assert result.maps["raw_block"].shape == (2, 10) and np.isfinite(result.maps["raw_block"]).all()
