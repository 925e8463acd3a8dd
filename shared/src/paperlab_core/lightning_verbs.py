"""Running a :class:`~paperlab_core.cli.LightningVerb`: the checks made before Lightning is imported, then the run.

Before anything heavy is imported the command line is checked: flag names are known, presets resolve,
``--resume DIR`` and ``--ckpt_path last`` find their run folder, the checkpoint and ``--data.root`` exist. A user mistake therefore
costs milliseconds and leaves nothing on disk. ``evaluate``/``predict`` read the configuration stored in the
checkpoint (model and data sections and classes, see :class:`paperlab_core.lightning.ConfigInCheckpoint`) and
apply it after the base preset and before the user's own flags.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from paperlab_core.cli import LightningVerb, PackageSpec, drop_flag, expand_config_args, flag_value
from paperlab_core.errors import ConfigError, MissingFileError, UsageError, UserError
from paperlab_core.logging import RUN_DIR_ENV, discard_if_unused, log, runs_root

LIGHTNING_CKPT_ALIASES = {"last", "best", "hpc", "registry"}
# the top-level names PaperCLI's parser knows (``--trainer.max_epochs`` → ``trainer``); ``resume`` only for fit
LIGHTNING_FLAGS = frozenset(
    {"config", "print_config", "help", "seed_everything", "trainer", "model", "data", "ckpt_path", "run_name",
     "threads"}
)  # fmt: skip


def check_flag_names(args: list[str], spec: PackageSpec, verb: LightningVerb) -> None:
    """Reject a flag the LightningCLI parser would not know, before Lightning is imported (a typo costs ms)."""
    known = LIGHTNING_FLAGS | set(spec.cli_flags) | ({"resume"} if "fit" in verb.stages else set())
    for arg in args:
        if not arg.startswith("--") or arg == "--":
            continue
        name = arg[2:].split("=", 1)[0]
        top = name.split(".", 1)[0].removesuffix("+")
        if top not in known:
            raise UsageError(
                f"unrecognized argument --{name} (expected --config, --trainer.*, --model.*, --data.*, "
                f"--seed_everything, --ckpt, --run_name, --threads; see `{spec.prog} {verb.name} --help`)"
            )


def latest_run(package: str, run_name: str | None = None) -> Path | None:
    """The most recent run folder of ``package`` with ``checkpoints/last.ckpt`` (named ``*-<run_name>``)."""
    base = runs_root() / package
    candidates = [p.parent.parent for p in base.glob("*/checkpoints/last.ckpt")]
    if run_name:
        candidates = [p for p in candidates if p.name.endswith(f"-{run_name}")]
    return max(candidates, key=lambda p: (p / "checkpoints" / "last.ckpt").stat().st_mtime, default=None)


def resume_args(folder: Path, prog: str) -> tuple[list[str], Path]:
    """``--config <run>/config.yaml`` and ``--ckpt_path <run>/checkpoints/last.ckpt`` for ``--resume``."""
    if not folder.is_dir():
        raise MissingFileError("run folder", folder, f"--resume takes a folder written by `{prog} train`")
    config, last = folder / "config.yaml", folder / "checkpoints" / "last.ckpt"
    for path in (config, last):
        if not path.is_file():
            raise MissingFileError("file", path, f"--resume needs a run folder written by `{prog} train`")
    return ["--config", str(config)], last


def read_checkpoint_meta(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``paperlab`` entry of a Lightning checkpoint (config, classes, data fingerprint), if any."""
    import torch

    try:
        blob = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:
        raise UserError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err})") from None
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise UserError(f"{path} is not a Lightning checkpoint (no state_dict)")
    meta = blob.get("paperlab")
    return dict(meta) if isinstance(meta, dict) else None


def _config_file(meta: dict[str, Any]) -> str:
    import yaml

    handle = tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="paperlab-ckpt-config-", delete=False)
    with handle:
        yaml.safe_dump(meta["config"], handle, sort_keys=False)
    return handle.name


def run_lightning_verb(spec: PackageSpec, verb: LightningVerb, user_args: list[str]) -> int:
    """Check the command line, then build the LightningCLI and run the verb's stages."""
    showing = any(a in {"-h", "--help"} or a.startswith("--print_config") for a in user_args)
    # the command line in parts: base preset, a resumed run's config, the checkpoint's config, the user's flags
    base_preset = verb.base_preset
    stored: list[str] = []
    # the verb's fixed flags come last: `finetune --config X` must not let X change what finetune means
    args = expand_config_args([*user_args, *verb.args], spec.package, base_preset="", renames=verb.renames)
    check_flag_names(args, spec, verb)
    model_class, data_class = verb.model or spec.model, verb.data or spec.data
    run_dir: Path | None = None
    temp_files: list[str] = []

    resume = flag_value(args, "--resume")
    if resume is not None:
        if "fit" not in verb.stages:
            raise UsageError(f"--resume continues a training run; `{spec.prog} {verb.name}` does not train")
        stored, last = resume_args(Path(resume), spec.prog)
        args = [*drop_flag(args, "--resume"), "--ckpt_path", str(last)]
        run_dir = Path(resume)
    ckpt = flag_value(args, "--ckpt_path")
    if ckpt == "last" and "fit" in verb.stages and run_dir is None:
        found = latest_run(spec.package, flag_value(args, "--run_name"))
        if found is None:
            raise MissingFileError(
                "a run with checkpoints/last.ckpt", runs_root() / spec.package, "nothing to resume yet"
            )
        log(f"{spec.prog} {verb.name}: resuming {found}")
        stored, last = resume_args(found, spec.prog)
        args = [*drop_flag(args, "--ckpt_path"), "--ckpt_path", str(last)]
        run_dir, ckpt = found, str(last)
    if verb.needs_ckpt and not ckpt and not showing:
        raise UsageError(f"--ckpt PATH is required (a checkpoint written by `{spec.prog} train`)")
    if ckpt and ckpt not in LIGHTNING_CKPT_ALIASES and not Path(ckpt).is_file():
        raise MissingFileError("checkpoint", ckpt, f"expected a .ckpt file written by `{spec.prog} train`")
    root = flag_value(args, "--data.root")
    if root and not Path(root).expanduser().is_dir():
        raise MissingFileError(
            "data root", root, "--data.root must be an existing folder holding the dataset"
        )

    expected_fingerprint = None
    if verb.restores_config and ckpt and Path(ckpt).is_file():
        meta = read_checkpoint_meta(ckpt)
        if meta is None:
            log(f"{spec.prog} {verb.name}: {ckpt} carries no paperlab config; using the command line's")
        else:
            temp_files.append(_config_file(meta))
            stored = ["--config", temp_files[-1]]
            stored_model, stored_data = meta.get("model_class"), meta.get("data_class")
            if stored_model and stored_model != model_class:
                if stored_model not in spec.model_classes():
                    raise ConfigError(f"checkpoint {ckpt} holds a {stored_model}, not a model of {spec.prog}")
                model_class = stored_model
                owner = next(
                    (v for v in spec.verbs if isinstance(v, LightningVerb) and v.model == stored_model), None
                )
                if owner is not None:  # that model's own base preset (the verb's would not fit the class)
                    base_preset = owner.base_preset
            if stored_data and stored_data in spec.data_classes():
                data_class = stored_data
            expected_fingerprint = meta.get("data_fingerprint")
    args = [*expand_config_args([], spec.package, base_preset), *stored, *args]

    from paperlab_core.lightning import make_cli, run_stages

    owns_run_dir = RUN_DIR_ENV not in os.environ
    if run_dir is not None and owns_run_dir:
        os.environ[RUN_DIR_ENV] = str(run_dir)
    created = owns_run_dir and run_dir is None
    try:
        cli = make_cli(spec, verb, args, model_class, data_class, expected_fingerprint)
        return run_stages(cli, verb, ckpt)
    except BaseException:
        if created and int(os.environ.get("RANK", "0")) == 0:
            discard_if_unused(os.environ.get(RUN_DIR_ENV))
        raise
    finally:
        if owns_run_dir:
            os.environ.pop(RUN_DIR_ENV, None)
        for name in temp_files:
            Path(name).unlink(missing_ok=True)
