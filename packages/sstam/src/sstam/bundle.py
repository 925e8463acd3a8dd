"""Model bundles (spec §2.11): a folder with ``config.yaml``, ``detectors.pt`` (a plain state dict: loads with
``torch.load(weights_only=True)``), ``fusion.json`` (+ ``fusion.joblib`` for sklearn users; never loaded here) and
``provenance.json``. The shipped default bundle lives in ``sstam/bundles/default``.

``load_model`` also accepts a Lightning checkpoint written by ``sstam train`` (its detectors, configuration and
fitted fusion are stored in it).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml

from paperlab_core.errors import ConfigError, MissingFileError, UserError
from sstam.config import PipelineConfig, SpatialConfig, TemporalConfig, pipeline_from_dict, to_dict
from sstam.fusion import Fusion
from sstam.models import SpatialDetector, SplitTemporalDetector, TemporalDetector, build_temporal

DEFAULT_BUNDLE = "default"
FILES = ("config.yaml", "detectors.pt", "fusion.json", "provenance.json")


def default_bundle_dir() -> Path:
    return Path(str(resources.files("sstam") / "bundles" / DEFAULT_BUNDLE))


def bundle_sha256(bundle: str | Path = DEFAULT_BUNDLE) -> str | None:
    """SHA-256 of what :func:`load_model` reads from ``bundle`` (a folder's config.yaml, detectors.pt and
    fusion.json, or a .ckpt file); None when the path does not exist (loading it reports the error)."""
    name = str(bundle)
    path = default_bundle_dir() if name == DEFAULT_BUNDLE else Path(name).expanduser()
    files = [path / f for f in ("config.yaml", "detectors.pt", "fusion.json")] if path.is_dir() else [path]
    files = [f for f in files if f.is_file()]
    if not files:
        return None
    from paperlab_core.data import sha256sum

    digest = hashlib.sha256()
    for file in files:  # each file's name and content hash, in the loader's order
        digest.update(f"{file.name}\0{sha256sum(file)}\n".encode())
    return digest.hexdigest()


def build_detectors(
    config: dict[str, Any],
) -> tuple[SpatialDetector, TemporalDetector | SplitTemporalDetector | None]:
    # bundles written before 0.2 have no ``inputs`` key: their detectors saw plain RGB
    spatial = SpatialConfig(**{"inputs": "rgb", **config.get("spatial", {})})
    detector = SpatialDetector(spatial.backbone, spatial.layout, inputs=spatial.inputs)
    temporal = None
    if config.get("temporal") is not None:
        # bundles written before 0.2 have no temporal ``cues`` key: their TimeSformer had 6 input channels
        # split (0.6) is absent from older bundles: one temporal model for both PEAs
        temporal = build_temporal(to_dict(TemporalConfig(**{"cues": False, **config["temporal"]})))
    return detector, temporal


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's names, dtypes, shapes and bytes (in key order): equal for equal weights."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def detector_state(spatial: torch.nn.Module, temporal: torch.nn.Module | None) -> dict[str, torch.Tensor]:
    state = {f"spatial.{k}": v.detach().cpu() for k, v in spatial.state_dict().items()}
    if temporal is not None:
        state.update({f"temporal.{k}": v.detach().cpu() for k, v in temporal.state_dict().items()})
    return state


def _split_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    spatial = {k[len("spatial.") :]: v for k, v in state.items() if k.startswith("spatial.")}
    temporal = {k[len("temporal.") :]: v for k, v in state.items() if k.startswith("temporal.")}
    return spatial, temporal


def save_bundle(
    folder: str | Path,
    spatial: torch.nn.Module,
    temporal: torch.nn.Module | None,
    config: dict[str, Any],
    fusion: Fusion | None,
    provenance: dict[str, Any],
    sklearn_model: Any = None,
) -> Path:
    """Write a bundle folder atomically file by file (a half-written folder never has ``provenance.json``)."""
    from paperlab_core.logging import atomic_open, save_torch_atomic, write_json_atomic, write_text_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    save_torch_atomic(detector_state(spatial, temporal), folder / "detectors.pt")
    if fusion is not None:
        write_json_atomic(folder / "fusion.json", fusion.to_json())
        if sklearn_model is not None:
            import joblib

            with atomic_open(folder / "fusion.joblib", "wb") as handle:
                joblib.dump(sklearn_model, handle)
    write_json_atomic(folder / "provenance.json", provenance)
    return folder


def _load_bundle_dir(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], Fusion | None, dict]:
    for name in ("config.yaml", "detectors.pt"):
        if not (folder / name).is_file():
            raise MissingFileError(
                "bundle file", folder / name, "a bundle folder holds config.yaml and detectors.pt"
            )
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    state = torch.load(folder / "detectors.pt", map_location="cpu", weights_only=True)
    fusion = None
    if (folder / "fusion.json").is_file():
        fusion = Fusion.from_json(json.loads((folder / "fusion.json").read_text(encoding="utf-8")))
    provenance = {}
    if (folder / "provenance.json").is_file():
        provenance = json.loads((folder / "provenance.json").read_text(encoding="utf-8"))
    return config, state, fusion, provenance


def _load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], Fusion | None, dict]:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise UserError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err})") from None
    if not isinstance(blob, dict) or "sstam" not in blob:
        raise ConfigError(f"{path} is not a checkpoint written by `sstam train` (no sstam section)")
    section = blob["sstam"]
    state = {k: v for k, v in blob["state_dict"].items() if k.startswith(("spatial.", "temporal."))}
    fusion = Fusion.from_json(section["fusion"]) if section.get("fusion") else None
    return section["config"], state, fusion, section.get("provenance", {})


def load_model(
    bundle: str | Path = DEFAULT_BUNDLE, device: str | torch.device = "cpu", precision: str | None = None
):
    """:class:`~sstam.score.SSTAM` from a bundle folder, a ``.ckpt`` or ``"default"``."""
    from sstam.score import SSTAM, Engine

    name = str(bundle)
    path = default_bundle_dir() if name == DEFAULT_BUNDLE else Path(name).expanduser()
    if not path.exists():
        raise MissingFileError(
            "model", path, "--ckpt takes 'default', a bundle folder or a .ckpt from `sstam train`"
        )
    if path.is_dir():
        config, state, fusion, provenance = _load_bundle_dir(path)
    else:
        config, state, fusion, provenance = _load_checkpoint(path)
    spatial, temporal = build_detectors(config)
    spatial_state, temporal_state = _split_state(state)
    spatial.load_state_dict(spatial_state)
    if temporal is not None:
        temporal.load_state_dict(temporal_state)
    pipeline: PipelineConfig = pipeline_from_dict(config.get("pipeline", {}))
    engine = Engine(spatial, temporal, pipeline, device, precision)
    meta = {
        "bundle": name if name == DEFAULT_BUNDLE else str(path),
        "config": config,
        "provenance": provenance,
    }
    return SSTAM(engine, fusion, name, meta)
