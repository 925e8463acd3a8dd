"""Shared fixtures: a tiny random BERT (2 layers, hidden 64) with MiniLM's tokenizer, and batches."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def tokenizer():
    from robust_tickets.models import load_tokenizer

    return load_tokenizer("minilm")


@pytest.fixture
def tiny_backbone():
    from robust_tickets.models import load_pretrained

    return load_pretrained("tiny-bert", num_labels=2, init_seed=0)


@pytest.fixture
def tiny_masked(tiny_backbone):
    from robust_tickets.models import MaskedModel

    return MaskedModel(tiny_backbone, mode="soft")


@pytest.fixture(scope="session")
def synthetic():
    from robust_tickets.data import SyntheticSentiment

    return SyntheticSentiment(seed=0)


@pytest.fixture
def batch(tokenizer, synthetic):
    split = synthetic.split(16, seed=7)
    enc = tokenizer(split.texts, padding=True, truncation=True, max_length=24, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"], torch.tensor(split.labels)


@pytest.fixture
def fit_tiny(tiny_trainer):
    """Fit a TicketModule on tiny-bert + a small synthetic task; returns (module, datamodule, trainer)."""
    from robust_tickets.data import TextDataModule
    from robust_tickets.module import TicketModule

    def run(callbacks=(), n_train: int = 64, batch_size: int = 16, **model_kwargs):
        defaults = dict(
            model_name="tiny-bert", attacks=[], epochs_finetune=1, epochs_search=1, epochs_retrain=1
        )
        module = TicketModule(**{**defaults, **model_kwargs})
        dm = TextDataModule(n_train=n_train, batch_size=batch_size, n_attack=10)
        trainer = tiny_trainer(
            fast_dev_run=False, max_epochs=1, callbacks=list(callbacks), limit_val_batches=2
        )
        trainer.fit(module, datamodule=dm)
        return module, dm, trainer

    return run
