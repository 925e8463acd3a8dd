"""Sequential distillation (paper Sec. 3.3, Table 3; spec §2.10): ``tinymim train --chain L-B-S|B-S-T|A,B,...``.

Each step is one ``tinymim train`` run with its own preset; from the second step on, the previous step's distilled
student (``student.pth``, which records every block's head count) is passed on as the teacher with
``--model.teacher.source tinymim:<path>``. The steps' run directories live inside one chain directory, with
``chain.json`` listing them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from paperlab_core.errors import UsageError, UserError
from paperlab_core.logging import RUN_DIR_ENV, log, make_run_dir, write_json_atomic

NAMED_CHAINS: dict[str, tuple[str, ...]] = {
    # MAE-ViT-L → TinyMIM-ViT-B (block 18) → TinyMIM-ViT-S (Table 3's ViT-S)
    "L-B-S": ("paper-b-from-l", "paper-s-from-b"),
    # MAE-ViT-B → TinyMIM-ViT-S → TinyMIM-ViT-T (Table 3's ViT-T, with the 12-head fix of §2.10)
    "B-S-T": ("paper-s-from-mae-b", "paper-t-from-s"),
}


def chain_steps(value: str) -> list[str]:
    """The presets (or YAML files) of a chain: a named chain (``L-B-S``, ``B-S-T``) or a comma list of ≥ 2."""
    if value in NAMED_CHAINS:
        return list(NAMED_CHAINS[value])
    steps = [step.strip() for step in value.split(",") if step.strip()]
    if len(steps) < 2:
        raise UsageError(
            f"--chain {value!r}: expected {' or '.join(NAMED_CHAINS)} or a comma list of at least two presets/YAML "
            "files (each step's student becomes the next step's teacher)"
        )
    return steps


def split_chain_args(args: Sequence[str]) -> tuple[str, list[str]]:
    """Take ``--chain VALUE`` / ``--chain=VALUE`` out of ``train`` arguments; the rest is passed to every step."""
    rest: list[str] = []
    chain: str | None = None
    items = iter(args)
    for arg in items:
        if arg == "--chain":
            chain = next(items, None)
            if chain is None:
                raise UsageError("--chain needs a value (L-B-S, B-S-T or a comma list of presets)")
        elif arg.startswith("--chain="):
            chain = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if chain is None:
        raise UsageError("--chain needs a value (L-B-S, B-S-T or a comma list of presets)")
    return chain, rest


def run_chain(train: Callable[[list[str]], int], value: str, rest: list[str]) -> int:
    """Run the steps in order. ``rest`` (data, trainer, ... overrides) applies to every step; the teacher source
    given there applies to the first step only, later steps always read the previous student."""
    steps = chain_steps(value)
    if any(arg == "--config" or arg.startswith("--config=") for arg in rest):
        raise UsageError("--chain sets --config for every step; pass the presets in the chain instead")
    name = _option(rest, "--run_name") or "chain"
    root = make_run_dir("tinymim", name, verb="train")
    record: dict = {"chain": value, "steps": []}
    teacher: Path | None = None
    for index, config in enumerate(steps, start=1):
        run_dir = root / f"step{index}-{Path(config).stem}"
        args = ["--config", config, *rest]
        if teacher is not None:
            args += ["--model.teacher.source", f"tinymim:{teacher}"]
        log(
            f"tinymim chain step {index}/{len(steps)}: {config}"
            + (f" (teacher {teacher})" if teacher else "")
        )
        os.environ[RUN_DIR_ENV] = str(run_dir)
        try:
            code = train(args)
        finally:
            os.environ.pop(RUN_DIR_ENV, None)
        student = run_dir / "student.pth"
        record["steps"].append(
            {"config": config, "run_dir": str(run_dir), "teacher": str(teacher) if teacher else None}
        )
        write_json_atomic(root / "chain.json", record)
        if code != 0:
            log(f"tinymim chain: step {index} ({config}) failed with exit code {code}")
            return code
        if not student.is_file():
            raise UserError(f"chain step {index} ({config}) finished without writing {student}")
        record["steps"][-1]["student"] = str(student)
        teacher = student
    write_json_atomic(root / "chain.json", record)
    log(f"tinymim chain: final student {teacher} (chain directory {root})")
    return 0


def _option(args: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None
