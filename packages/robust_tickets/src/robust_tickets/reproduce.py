"""``robust-tickets reproduce``: robust ticket vs dense / magnitude (one-shot IMP) / random / w/o-adv tickets
at matched retraining budgets (spec 5 and 2.11), with Clean/Aua/Suc/#Query and budget columns.

The experiment is a grid of cells, one per (seed, row) — ``dense``, ``robust``, ``wo_adv``, ``magnitude``, ...
(:mod:`paperlab_core.experiment`): ``--shard K/N`` runs every N-th cell, ``--merge DIR...`` builds the tables from
the records. The stages several rows share (stage 1 per seed, the robust search for the Table 4 rows) are
checkpointed under ``<out>/stages/`` and reused by the later cells of the same process or folder; a shard that
lacks them trains them again with the same seed, which gives the same weights, so shards and a whole run give
the same tables.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from paperlab_core.errors import ConfigError, UserError
from paperlab_core.experiment import Cell, run_experiment
from paperlab_core.logging import log, write_json_atomic
from paperlab_core.results import Table
from paperlab_core.runtime import seed_everything
from paperlab_core.verbs import Run

PRESETS: dict[str, dict[str, Any]] = {
    "synthetic": {
        "model": "minilm", "dataset": "synthetic", "max_len": 24, "n_train": 800, "n_attack": 100, "epochs": 4, "lr": 1e-4,
        "epochs_search": 20,  # the official code's 20 search epochs; 2-4 leave the ticket ranking noise (README)
        "adv_steps": 2, "attacks": ["wordswap"], "n_charswap": 0, "n_pgd": 0, "max_queries": 500, "long": True,
        "freelb": False,
    },
    "mr-minilm": {
        "model": "minilm", "dataset": "mr", "max_len": 48, "n_train": 1000, "n_attack": 200, "epochs": 2, "lr": 1e-4,
        "adv_steps": 2, "attacks": ["wordswap", "charswap", "pgd"], "n_charswap": 100, "n_pgd": 1000,
        "max_queries": 500, "long": True, "freelb": True,
    },
}  # fmt: skip
# Paper Table 6 (mask search) per dataset: eta (adv_lr), mask lr, lambda_amp, epsilon_0 (adv_init_mag), s (adv_steps)
TABLE6: dict[str, dict[str, float]] = {
    "sst2": {"adv_lr": 0.03, "mask_lr": 0.1, "lambda_amp": 0.5, "adv_init_mag": 0.05, "adv_steps": 5},
    "agnews": {"adv_lr": 0.03, "mask_lr": 0.05, "lambda_amp": 0.5, "adv_init_mag": 0.05, "adv_steps": 5},
    "imdb": {"adv_lr": 0.03, "mask_lr": 0.1, "lambda_amp": 0.5, "adv_init_mag": 0.05, "adv_steps": 5},
    "qqp": {"adv_lr": 0.04, "mask_lr": 0.05, "lambda_amp": 0.1, "adv_init_mag": 0.05, "adv_steps": 3},
    "qnli": {"adv_lr": 0.04, "mask_lr": 0.05, "lambda_amp": 0.1, "adv_init_mag": 0.05, "adv_steps": 3},
    "mnli": {"adv_lr": 0.2, "mask_lr": 0.1, "lambda_amp": 0.1, "adv_init_mag": 0.05, "adv_steps": 2},
}  # fmt: skip
# The paper's per-dataset choices: sparsity (Tables 1-2), max_len (official scripts), attack set (App. B.2),
# wordswap query budget (2.5-3.5x the largest mean TextFooler #Query of Table 1, so that it rarely binds; GLUE:
# Table 2 gives none), and the size of 10 % of the train split (the GPU smoke `--quick`, spec 5.3).
PAPER_DATA: dict[str, dict[str, Any]] = {
    "sst2": {"sparsity": 0.3, "max_len": 128, "n_attack": 872, "max_queries": 500, "train_10pct": 6735},
    "imdb": {"sparsity": 0.2, "max_len": 256, "n_attack": 500, "max_queries": 5000, "train_10pct": 2250},
    "agnews": {"sparsity": 0.4, "max_len": 256, "n_attack": 1000, "max_queries": 1500, "train_10pct": 10800},
    "qnli": {"sparsity": 0.3, "max_len": 128, "n_attack": 1000, "max_queries": 1000, "train_10pct": 10474},
    "mnli": {"sparsity": 0.3, "max_len": 128, "n_attack": 1000, "max_queries": 1000, "train_10pct": 39270},
    "qqp": {"sparsity": 0.3, "max_len": 128, "n_attack": 1000, "max_queries": 1000, "train_10pct": 36385},
}  # fmt: skip


def paper_preset(dataset: str) -> dict[str, Any]:
    """The GPU preset of one paper dataset (spec 5.3 for SST-2, the same recipe for the others): bert-base-uncased,
    3 fine-tune / 20 search / 3 retrain epochs at lr 2e-5, batch 32, its Table 6 row and sparsity, all three
    attacks on the paper's attack set (pgd and charswap on the same examples); ``quick`` is the GPU smoke."""
    data = PAPER_DATA[dataset]
    preset: dict[str, Any] = {
        "model": "bert-base-uncased", "dataset": dataset, "max_len": data["max_len"], "n_train": None,
        "n_attack": data["n_attack"], "epochs": 3, "epochs_search": 20, "lr": 2e-5,
        "attacks": ["wordswap", "charswap", "pgd"], "n_charswap": data["n_attack"], "n_pgd": None,
        "max_queries": data["max_queries"], "long": True, "freelb": True, "sim_threshold": 0.8,
        "sparsity": data["sparsity"], "methods": "robust,wo_adv,magnitude,imp,random,freelb", **TABLE6[dataset],
        "quick": {"n_train": data["train_10pct"], "epochs_search": 2, "n_attack": 200, "n_charswap": 200,
                  "long": False},
    }  # fmt: skip
    return preset


PRESETS.update({f"{name}-paper": paper_preset(name) for name in PAPER_DATA})
REPRODUCE_METHODS = (
    "robust", "wo_adv", "magnitude", "imp", "random", "freelb", "infobert", "reinit", "no_structure",
)  # fmt: skip
TABLE4_METHODS = ("reinit", "no_structure")  # Table 4 ablations of the robust ticket (need its search)
QUICK = {
    "n_train": 256,
    "epochs": 1,
    "epochs_search": 1,
    "n_attack": 50,
    "attacks": ["wordswap"],
    "long": False,
    "freelb": False,
}


#: the rows of the table in order; ``dense`` is always run (it is stage 1), ``dense_long`` when the preset's
#: ``long`` is on
ROW_ORDER = (
    "dense", "robust", "reinit", "no_structure", "wo_adv", "magnitude", "imp", "random", "freelb", "infobert",
    "dense_long",
)  # fmt: skip
STAGES = "stages"


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings: the preset, then its ``--quick`` variant (the preset's own, else :data:`QUICK`), then
    the explicit command-line overrides; validates ``--attacks``, ``--methods`` and ``--sparsity``."""
    cfg = dict(PRESETS[args.preset])
    quick = cfg.pop("quick", QUICK)
    if args.quick:
        cfg.update(quick)
    overrides = (
        ("model", args.model), ("n_train", args.data_n_train), ("n_attack", args.data_n_attack),
        ("epochs", args.epochs), ("max_queries", args.max_queries), ("lr", args.lr),
        ("epochs_search", args.epochs_search), ("sim_threshold", args.sim_threshold), ("adv_scale", args.adv_scale),
    )  # fmt: skip
    for key, value in overrides:
        if value is not None:
            cfg[key] = value
    if args.no_long:
        cfg["long"] = False
    if args.attacks:
        unknown = set(args.attacks) - set(cfg["attacks"])
        if unknown:
            raise ConfigError(f"--attacks {sorted(unknown)} not in the preset's {cfg['attacks']}")
        cfg["attacks"] = list(args.attacks)
    preset_methods = cfg.pop("methods", "robust,wo_adv,magnitude,random,freelb").split(",")
    chosen = list(args.methods) if args.methods else preset_methods
    unknown = set(chosen) - set(REPRODUCE_METHODS)
    if unknown:
        raise ConfigError(f"unknown --methods {sorted(unknown)}; choose from {', '.join(REPRODUCE_METHODS)}")
    if set(TABLE4_METHODS) & set(chosen) and "robust" not in chosen:
        raise ConfigError(f"--methods {', '.join(TABLE4_METHODS)} reuse the robust search; add robust")
    if not args.methods and not cfg["freelb"]:  # the preset's (or --quick's) default leaves FreeLB out
        chosen = [m for m in chosen if m != "freelb"]
    cfg["methods"] = chosen
    if args.sparsity is not None:
        cfg["sparsity"] = args.sparsity
    cfg.setdefault("sparsity", 0.3)
    if not 0.0 <= cfg["sparsity"] < 1.0:
        raise ConfigError(f"--sparsity must be in [0, 1), got {cfg['sparsity']}")
    cfg["limit_val"] = int(args.limit_val) if args.limit_val > 1 else args.limit_val
    cfg["preset"] = args.preset
    return cfg


def rows_of(cfg: dict[str, Any]) -> list[str]:
    """The table's rows for this configuration, in :data:`ROW_ORDER`."""
    wanted = {"dense", *cfg["methods"], *(["dense_long"] if cfg["long"] else [])}
    return [row for row in ROW_ORDER if row in wanted]


def config_id(cfg: dict[str, Any]) -> str:
    """``<preset>-<8 hex>``: names the configuration in the cell keys, so records of another configuration in
    the same ``--out`` folder are never reused."""
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:8]
    return f"{cfg['preset']}-{digest}"


# ------------------------------------------------------------------------------------------- one seed
def _trainer(limit_val: float | int, accelerator: str) -> Any:
    import warnings

    from pytorch_lightning import Trainer

    from paperlab_core.lightning import AtomicCheckpointIO, quiet_lightning_info
    from paperlab_core.runtime import select_precision

    quiet_lightning_info()  # the environment line already says where the run is
    warnings.filterwarnings(
        "ignore", message=r".*configure_optimizers.* returned `None`.*"
    )  # phases own them
    return Trainer(
        accelerator=accelerator, devices=1, precision=select_precision(accelerator), logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        max_epochs=1, limit_val_batches=None if limit_val == 1.0 else limit_val, plugins=[AtomicCheckpointIO()],
    )  # fmt: skip


@dataclass
class Stage:
    """A trained stage: its checkpoint (``path``), budget counters and search history; ``module`` when it was
    trained (or loaded) in this process."""

    path: str
    budget: dict[str, dict[str, float]]
    history: list[dict[str, Any]] = field(default_factory=list)
    module: Any = None


class Runner:
    """Trains and evaluates the rows of one seed on one shared, already tokenised datamodule."""

    def __init__(
        self, cfg: dict[str, Any], dm: Any, table: dict[str, list[str]], folder: Path, seed: int,
        accelerator: str = "cpu",
    ) -> None:  # fmt: skip
        self.cfg, self.dm, self.table, self.folder, self.seed = cfg, dm, table, folder, seed
        self.accelerator = accelerator
        self.similarity: Any = None  # the wordswap sentence-similarity model, built on first use

    def module_args(self, method: str, init: str | None = None, **kw: Any) -> dict[str, Any]:
        cfg, e = self.cfg, self.cfg["epochs"]
        args = dict(
            model_name=cfg["model"], num_labels=self.dm.num_labels, method=method, init_ckpt=init, seed=self.seed,
            epochs_finetune=e, epochs_search=cfg.get("epochs_search", e), epochs_retrain=e, lr=cfg.get("lr", 5e-5),
            adv_steps=cfg["adv_steps"], adv_init_mag=cfg.get("adv_init_mag", 0.05) * cfg.get("adv_scale", 1.0),
            adv_lr=cfg.get("adv_lr", 0.03) * cfg.get("adv_scale", 1.0), mask_lr=cfg.get("mask_lr", 0.1),
            lambda_amp=cfg.get("lambda_amp", 0.5), sparsity=cfg["sparsity"], attacks=[],
            attack_max_queries=cfg["max_queries"], final_eval=False,
        )  # fmt: skip
        args.update(kw)
        return args

    def fit(self, name: str, method: str, init: str | None = None, save: bool = False, **kw: Any) -> Any:
        """Train one TicketModule (seeded); with ``save`` (or ``--keep-ckpts``) write its weights-only checkpoint
        ``<folder>/<name>-seed<S>.ckpt`` and return it as ``module.ckpt_path``."""
        from robust_tickets.module import TicketModule

        seed_everything(self.seed)
        module = TicketModule(**self.module_args(method, init, **kw))
        module._table = self.table
        start = time.perf_counter()
        trainer = _trainer(self.cfg["limit_val"], self.accelerator)
        trainer.fit(module, datamodule=self.dm)
        wall = time.perf_counter() - start
        module.ckpt_path = None
        if save or self.cfg.get("keep_ckpts"):
            self.folder.mkdir(parents=True, exist_ok=True)
            module.ckpt_path = str(self.folder / f"{name}-seed{self.seed}.ckpt")
            trainer.save_checkpoint(module.ckpt_path, weights_only=True)  # later stages read the state_dict
        log(f"reproduce: {name} seed {self.seed} trained in {wall:.0f}s")
        return module

    def stage(self, name: str, method: str, init: str | None = None, **kw: Any) -> Stage:
        """A stage several rows share: trained once and kept in ``<folder>/<name>-seed<S>.ckpt`` (+ ``.json``
        with its budget and history); a later cell of this run, or a run resumed in the same folder, reuses it."""
        path = self.folder / f"{name}-seed{self.seed}.ckpt"
        meta = path.with_suffix(".json")
        if path.is_file() and meta.is_file():
            info = json.loads(meta.read_text(encoding="utf-8"))
            return Stage(str(path), info["budget"], info["history"])
        module = self.fit(name, method, init, save=True, **kw)
        write_json_atomic(meta, {"budget": module.budget, "history": module.history, "mode": module.net.mode})
        return Stage(str(path), module.budget, module.history, module)

    def stage_module(self, stage: Stage, method: str) -> Any:
        """The module of ``stage`` (trained in this process, or rebuilt from its checkpoint)."""
        if stage.module is not None:
            return stage.module
        from robust_tickets.module import TicketModule

        module = TicketModule(**self.module_args(method))
        module.load_stage_checkpoint(stage.path)
        meta = json.loads(Path(stage.path).with_suffix(".json").read_text(encoding="utf-8"))
        module.net.set_mode(meta["mode"])
        module.budget, module.history = stage.budget, stage.history
        return module

    def evaluate(self, module: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        from robust_tickets.attacks import pretrained_sentence_similarity
        from robust_tickets.evaluate import accuracy, run_named_attack

        cfg, dm = self.cfg, self.dm
        device = torch.device("cuda" if self.accelerator == "cuda" else self.accelerator)
        module.to(device)  # Lightning moves a fitted model back to the CPU; evaluate where it trained
        sim_threshold = cfg.get("sim_threshold", 0.0)
        if sim_threshold > 0 and self.similarity is None:
            self.similarity = pretrained_sentence_similarity("minilm", dm.max_len)
            self.similarity.encoder.to(device)
        out: dict[str, Any] = {"clean_test_acc": 100 * accuracy(module.net, dm.test_dataloader())}
        split = dm.attack_split()
        for name in cfg["attacks"]:
            if name in skip:
                continue
            if name == "pgd" and cfg["n_pgd"] is None:  # the paper presets: the attack set
                sub = split
            elif name == "pgd":
                sub = dm.task.test.subset(
                    list(range(min(cfg["n_pgd"] or len(dm.task.test), len(dm.task.test))))
                )
            elif name == "charswap":
                sub = split.subset(list(range(min(cfg["n_charswap"], len(split)))))
            else:
                sub = split
            _, summary = run_named_attack(
                name, module.net, dm.tokenizer, sub, self.table, cfg["max_queries"], max_len=dm.max_len,
                seed=self.seed, sim_threshold=sim_threshold, similarity=self.similarity,
            )  # fmt: skip
            out[name] = summary
        return out

    def row(self, row: str) -> dict[str, Any]:
        """Train and evaluate one row of the table for this seed."""
        cfg = self.cfg
        sparsity = cfg["sparsity"]
        if row == "dense":  # the stage-1 model is the dense baseline (E_ft = E_rt, same schedule and data)
            ft = self.stage("finetune", "finetune")
            return {**self.evaluate(self.stage_module(ft, "finetune")), **_budget(ft), "sparsity": 0.0}
        if row in ("robust", *TABLE4_METHODS):
            ft = self.stage("finetune", "finetune")
            search = self.stage("search-robust", "search", ft.path)
            init = "pretrained" if row == "robust" else row
            ticket = self.fit(f"ticket-{row}", "draw", search.path, retrain_init=init)
            out = {**self.evaluate(ticket), **_budget(ft, search, ticket)}
            out["sparsity"] = 0.0 if row == "no_structure" else sparsity
            if row == "robust":
                out["search_history"] = search.history
            return out
        if row == "wo_adv":
            ft = self.stage("finetune", "finetune")
            search = self.fit("search-wo_adv", "search", ft.path, save=True, adv_steps=1, adv_init_mag=0.0)
            ticket = self.fit("ticket-wo_adv", "draw", search.ckpt_path)
            return {**self.evaluate(ticket), **_budget(ft, search, ticket), "sparsity": sparsity}
        if row == "magnitude":
            ft = self.stage("finetune", "finetune")
            ticket = self.fit("ticket-magnitude", "imp", ft.path, epochs_finetune=0)
            return {**self.evaluate(ticket), **_budget(ft, ticket), "sparsity": sparsity}
        if row == "imp":  # iterative IMP (LTH): 10 % of the remaining weights per round, each round rewound
            ft = self.stage("finetune", "finetune")
            ticket = self.fit(
                "ticket-imp", "imp", ft.path, epochs_finetune=0, imp_rounds=0, imp_round_epochs=cfg["epochs"]
            )
            return {**self.evaluate(ticket), **_budget(ft, ticket), "sparsity": sparsity}
        if row == "random":
            ticket = self.fit("ticket-random", "random")
            return {**self.evaluate(ticket), **_budget(ticket), "sparsity": sparsity}
        if row in ("freelb", "infobert"):  # dense adversarial fine-tunes at the E_rt budget
            model = self.fit(row, row)
            return {**self.evaluate(model), **_budget(model), "sparsity": 0.0}
        if row == "dense_long":  # E_total = E_ft + E_search + E_rt (spec 2.11), with a clean/Aua curve
            e_total = 2 * cfg["epochs"] + cfg.get("epochs_search", cfg["epochs"])
            model = self.fit(
                "dense_long", "dense", epochs_retrain=e_total, curve_epochs=[cfg["epochs"], e_total],
                attacks=["wordswap"],
            )  # fmt: skip
            evaluation = self.evaluate(model, skip=("wordswap",))
            evaluation["wordswap"] = model.curve[-1]["wordswap"]  # the curve's last point is this very model
            return {**evaluation, **_budget(model), "sparsity": 0.0, "curve": model.curve}
        raise ConfigError(f"unknown reproduce row {row!r}")


def _budget(*parts: Any) -> dict[str, float]:
    steps = passes = wall = 0.0
    for part in parts:
        for b in part.budget.values():
            steps += b["optimizer_steps"]
            passes += b["passes"]
            wall += b["wall_s"]
    return {"steps": steps, "passes": passes, "train_wall_s": wall}


# ------------------------------------------------------------------------------------------- tables
def _fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def per_seed_rows(records: list[dict[str, Any]]) -> tuple[dict[str, Any], list[int], list[dict[str, Any]]]:
    """(config, seeds, one ``{row: result}`` per seed) from the records; the rows every seed has, in order."""
    configs = {json.dumps(r["params"]["config"], sort_keys=True) for r in records}
    if len(configs) != 1:
        raise UserError(
            f"the records come from {len(configs)} different configurations; merge the records of one "
            "configuration (seeds may differ)"
        )
    cfg = records[0]["params"]["config"]
    seeds = sorted({r["params"]["seed"] for r in records})
    by_seed = {
        s: {r["params"]["row"]: r["result"] for r in records if r["params"]["seed"] == s} for s in seeds
    }
    rows = [m for m in ROW_ORDER if all(m in by_seed[s] for s in seeds)]
    return cfg, seeds, [{m: by_seed[s][m] for m in rows} for s in seeds]


def tables(records: list[dict[str, Any]]) -> dict[str, Any]:
    """``summarize`` of :func:`run_experiment`: the main table (mean ± sd over seeds), budgets, per-seed
    Clean / Aua, and the claim checks, all from the records alone."""
    cfg, seeds, per_seed = per_seed_rows(records)
    attacks = cfg["attacks"]
    columns = ["Method", "Sparsity", "Clean%"]
    for a in attacks:
        columns += [f"{a} Aua%", f"{a} Suc%", f"{a} #Query"]
    main = Table(
        columns, title=f"{cfg['preset']}: Clean / attack metrics (mean ± sd over {len(seeds)} seed(s))"
    )
    budget = Table(
        ["Method", "steps", "passes", "train s"], title="training budget per seed (stages 1-2 included)"
    )
    by_seed = Table(
        ["Method", "Seed", "Clean%", *[f"{a} Aua%" for a in attacks]], formats={"Clean%": ".1f"},
        title="per seed",
    )  # fmt: skip
    for a in attacks:
        by_seed.formats[f"{a} Aua%"] = ".1f"
    for m in per_seed[0]:
        rows = [s[m] for s in per_seed]
        cells = [m, f"{rows[0]['sparsity']:.0%}", _fmt([r["clean_test_acc"] for r in rows])]
        for a in attacks:
            cells += [_fmt([r[a]["aua"] for r in rows]), _fmt([r[a]["suc"] for r in rows]),
                      _fmt([r[a]["queries"] for r in rows])]  # fmt: skip
        main.add(*cells)
        budget.add(
            m, f"{rows[0]['steps']:.0f}", f"{rows[0]['passes']:.0f}", _fmt([r["train_wall_s"] for r in rows])
        )
        for seed, r in zip(seeds, rows, strict=True):
            by_seed.add(m, seed, r["clean_test_acc"], *[r[a]["aua"] for a in attacks])
    checks = acceptance_checks(per_seed)
    return {
        "main": main, "budget": budget, "per_seed": by_seed, "checks": checks, "config": cfg,
        "text": "\n".join(f"- {c}" for c in checks),
    }  # fmt: skip


def acceptance_checks(per_seed: list[dict[str, Any]]) -> list[str]:
    """The spec's relative claims, evaluated on the mean over seeds (reported, never asserted)."""

    def mean(method: str, key: str) -> float | None:
        vals = []
        for s in per_seed:
            if method not in s:
                return None
            vals.append(s[method]["clean_test_acc"] if key == "clean" else s[method]["wordswap"]["aua"])
        return statistics.mean(vals)

    out = []
    rob_aua, rob_clean, dense_clean = mean("robust", "aua"), mean("robust", "clean"), mean("dense", "clean")
    if rob_aua is None:
        return out
    baselines = {
        m: mean(m, "aua") for m in ("magnitude", "imp", "random", "wo_adv") if mean(m, "aua") is not None
    }
    if baselines:
        best = max(baselines.values())
        verdict = "PASS" if rob_aua >= best + 5 else "FAIL"
        out.append(f"robust Aua {rob_aua:.1f} vs best same-sparsity ticket {best:.1f} (+5 needed): {verdict}")
    verdict = "PASS" if abs(rob_clean - dense_clean) <= 3 else "FAIL"
    out.append(f"robust clean {rob_clean:.1f} vs dense {dense_clean:.1f} (within 3): {verdict}")
    dense_aua = mean("dense", "aua")
    out.append(
        f"robust Aua {rob_aua:.1f} vs dense (same epochs) {dense_aua:.1f}: {'PASS' if rob_aua > dense_aua else 'FAIL'}"
    )
    return out


def curve_plot(folder: Path) -> None:
    """``dense_curve.png``: the dense_long rows' clean accuracy and Aua along their schedule (from the records)."""
    curves = []
    for path in sorted((folder / "records").glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("params", {}).get("row") == "dense_long":
            curves.append(record["result"]["curve"])
    if not curves:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    for c in curves:
        ax.plot([p["epoch"] for p in c], [p["wordswap"]["aua"] for p in c], "o-", label="dense Aua%")
        ax.plot([p["epoch"] for p in c], [100 * p["test_acc"] for p in c], "s--", label="dense clean%")
    ax.set_xlabel("epoch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "dense_curve.png")
    plt.close(fig)


# ------------------------------------------------------------------------------------------- the verb
def reproduce(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """``robust-tickets reproduce``: the grid (seeds x rows) through :func:`paperlab_core.experiment.run_experiment`."""
    cfg = resolve_config(args)
    cfg_id = config_id(cfg)
    cfg["keep_ckpts"] = bool(args.keep_ckpts)
    seeds = args.seeds or [42]
    record_cfg = {k: v for k, v in cfg.items() if k != "keep_ckpts"}
    cells = [
        Cell(f"{cfg_id}/seed{seed}/{row}", {"config": record_cfg, "seed": seed, "row": row})
        for seed in seeds
        for row in rows_of(cfg)
    ]
    stages = run.dir / STAGES
    contexts: dict[int, Runner] = {}
    table: dict[str, list[str]] | None = load_table(args.table) if args.table else None

    def runner(seed: int) -> Runner:
        nonlocal table
        if seed not in contexts:
            from robust_tickets.data import TextDataModule

            dm = TextDataModule(
                dataset=cfg["dataset"], root=None if args.data_root is None else str(args.data_root),
                tokenizer=cfg["model"], max_len=cfg["max_len"], n_train=cfg["n_train"], n_attack=cfg["n_attack"],
                seed=seed,
            )  # fmt: skip
            dm.setup("fit")
            if table is None:
                table = build_table(dm, cfg["model"])
            contexts[seed] = Runner(cfg, dm, table, stages, seed, run.accelerator)
        return contexts[seed]

    def run_cell(cell: Cell) -> dict[str, Any]:
        with torch.random.fork_rng(devices=[]):
            return runner(cell.params["seed"]).row(cell.params["row"])

    # --table's content is the one run-wide input outside the config (None: built in memory from its data and model)
    result = run_experiment(run, args, cells, run_cell, tables, settings=table_settings(table))
    if not args.merge:
        if not args.keep_ckpts:
            shutil.rmtree(stages, ignore_errors=True)  # large; the records keep the numbers
        if not args.shard:
            curve_plot(run.dir)
    return result


def table_settings(table: dict[str, list[str]] | None) -> dict[str, str | None]:
    """The ``settings`` of a run: the SHA-256 of a ``--table`` candidate table, None for the built-in one."""
    from robust_tickets.attacks import table_hash

    return {"table_sha256": None if table is None else table_hash(table)}


def load_table(path: Path) -> dict[str, list[str]]:
    from robust_tickets.evaluate import load_candidate_table

    return load_candidate_table(path)


def build_table(dm: Any, model: str) -> dict[str, list[str]]:
    """The shared word-swap candidate table: the task's lexicon table, else pre-trained embedding neighbours."""
    from robust_tickets.evaluate import candidate_table
    from robust_tickets.models import load_pretrained

    emb = None
    if dm.task.synonyms is None:
        emb = load_pretrained(model, dm.num_labels).get_input_embeddings().weight
    return candidate_table(dm.task, dm.tokenizer, emb)
