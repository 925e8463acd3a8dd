"""Cross-package contract: every folder in packages/ (and the example fixture) honours the same CLI promises."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from paperlab.offline import load_entry_point

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

pytestmark = pytest.mark.contract


@dataclass(frozen=True)
class Package:
    folder: Path
    name: str  # distribution name
    version: str
    script: str  # console script name
    entry: str  # module:function
    import_name: str
    is_fixture: bool

    @property
    def env(self) -> dict[str, str]:
        if not self.is_fixture:
            return {}
        src = str(self.folder / "src")
        return {"PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}


def _load(folder: Path, is_fixture: bool) -> Package:
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    ((script, entry),) = project["scripts"].items()
    return Package(
        folder, project["name"], project["version"], script, entry, entry.split(".")[0], is_fixture
    )


def discover() -> list[Package]:
    folders = sorted(p for p in (ROOT / "packages").glob("*") if (p / "pyproject.toml").is_file())
    return [_load(FIXTURES / "example_pkg", True)] + [_load(p, False) for p in folders]


PACKAGES = discover()
IDS = [p.folder.name for p in PACKAGES]


@pytest.fixture(params=PACKAGES, ids=IDS)
def package(request: pytest.FixtureRequest) -> Package:
    pkg: Package = request.param
    if pkg.is_fixture and str(pkg.folder / "src") not in sys.path:
        sys.path.insert(0, str(pkg.folder / "src"))
    return pkg


def test_pyproject_metadata(package: Package) -> None:
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", package.name)
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]\d+|rc\d+)?", package.version)
    assert package.script == package.name
    assert package.entry == f"{package.import_name}.cli:main"
    assert package.import_name == package.name.replace("-", "_")
    if not package.is_fixture:
        assert package.folder.name == package.import_name
        assert (package.folder / "README.md").is_file()
        assert (package.folder / "src" / package.import_name / "configs" / "default.yaml").is_file()
        assert shutil.which(package.script, path=str(Path(sys.executable).parent)), (
            "console script not installed"
        )


def test_help_and_version(package: Package, capsys: pytest.CaptureFixture[str]) -> None:
    main = load_entry_point(package.entry)
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in ("train", "evaluate"):
        assert f"  {verb} " in out, f"{package.script} --help does not list {verb}"
    assert main(["--version"]) == 0
    module = __import__(package.import_name)
    assert capsys.readouterr().out.startswith(f"{package.script} {module.__version__} ")
    assert module.__version__ == package.version


def test_train_fast_dev_run_offline(package: Package, cli_runner: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cli_runner(package.entry, "train", "--trainer.fast_dev_run=true",
               env={**package.env, "PAPERLAB_RUNS": str(runs)}, timeout=300)  # fmt: skip
    metrics = list((runs / package.import_name).glob("*/metrics.json"))
    assert metrics, f"{package.script} train wrote no metrics.json under {runs}"
    assert json.loads(metrics[0].read_text())["package"] == package.import_name


def test_print_config_round_trip(package: Package, cli_runner: Any, tmp_path: Path) -> None:
    first = cli_runner(package.entry, "train", "--print_config", env=package.env).stdout
    (tmp_path / "printed.yaml").write_text(first)
    second = cli_runner(
        package.entry, "train", "--config", "printed.yaml", "--print_config", env=package.env
    ).stdout
    config: dict[str, Any] = yaml.safe_load(first)
    assert {"trainer", "model"} <= set(config)
    assert yaml.safe_load(second) == config
