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
