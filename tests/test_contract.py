"""Cross-package contract: every folder in packages/ (and the example fixture) keeps the same promises.

Discovered by itself: a new package folder is checked as soon as it has a ``pyproject.toml``.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from paperlab_core.cli import LightningVerb, PackageSpec
from paperlab_core.results import check_readme, load_results
from paperlab_core.verbs import Verb

ROOT = Path(__file__).resolve().parents[1]


def _limit(seconds: float) -> float:
    """A subprocess hang guard, stretched by the machine's load: on an idle CI runner it is ``seconds``, on a
    2-core machine shared by a dozen jobs it grows with the run queue instead of failing a healthy command."""
    return seconds * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


FIXTURES = Path(__file__).resolve().parent / "fixtures"
CORE_RANGE = re.compile(r"paperlab-core>=0\.2(\.\d+)?,<0\.3")  # a floor inside 0.2.x is fine
HELP_LIMIT_S = 1.5  # `<cli> --help` / `--version`, median of 5
VERB_HELP_LIMIT_S = 3.0  # `<cli> VERB --help` of a package (non-Lightning) verb
STAGE_STEP = {
    "fit": "training_step",
    "test": "test_step",
    "validate": "validation_step",
    "predict": "predict_step",
}

pytestmark = pytest.mark.contract


@dataclass(frozen=True)
class Package:
    folder: Path
    name: str  # distribution name
    version: str
    script: str  # console script name
    entry: str  # module:function
    import_name: str
    dependencies: tuple[str, ...]
    is_fixture: bool

    @property
    def env(self) -> dict[str, str]:
        if not self.is_fixture:
            return {}
        src = str(self.folder / "src")
        return {"PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}

    def spec(self) -> PackageSpec:
        main = importlib.import_module(f"{self.import_name}.cli").main
        return main.spec

    def command(self, *args: str) -> list[str]:
        """The CLI as a user runs it: the console script (the fixture has none: ``python -m``)."""
        if self.is_fixture:
            return [sys.executable, "-m", f"{self.import_name}.cli", *args]
        return [str(Path(sys.executable).parent / self.script), *args]


def _load(folder: Path, is_fixture: bool) -> Package:
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    ((script, entry),) = project["scripts"].items()
    return Package(
        folder, project["name"], project["version"], script, entry, entry.split(".")[0],
        tuple(project.get("dependencies", [])), is_fixture,
    )  # fmt: skip


def discover() -> list[Package]:
    folders = sorted(p for p in (ROOT / "packages").glob("*") if (p / "pyproject.toml").is_file())
    return [_load(FIXTURES / "example_pkg", True)] + [_load(p, False) for p in folders]


PACKAGES = discover()
REAL = [p for p in PACKAGES if not p.is_fixture]


@pytest.fixture(params=PACKAGES, ids=[p.folder.name for p in PACKAGES])
def package(request: pytest.FixtureRequest) -> Package:
    pkg: Package = request.param
    if pkg.is_fixture and str(pkg.folder / "src") not in sys.path:
        sys.path.insert(0, str(pkg.folder / "src"))
    return pkg


@pytest.fixture(params=REAL, ids=[p.folder.name for p in REAL])
def real_package(request: pytest.FixtureRequest) -> Package:
    return request.param


def _run(package: Package, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600):
    full_env = {**os.environ, "PAPERLAB_THREADS": "1", **package.env, **(env or {})}
    return subprocess.run(package.command(*args), cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=_limit(timeout))  # fmt: skip


def _verbs(spec: PackageSpec) -> list[tuple[str, Verb]]:
    """Every package verb, command groups expanded (``bench search``)."""
    out = []
    for verb in spec.verbs:
        if isinstance(verb, Verb):
            out.append((verb.name, verb))
            out += [(f"{verb.name} {sub.name}", sub) for sub in verb.subverbs]
    return out


# --------------------------------------------------------------------------------------------- metadata
def test_pyproject_metadata(package: Package) -> None:
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", package.name)
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]\d+|rc\d+)?", package.version)
    assert package.entry == f"{package.import_name}.cli:main"
    assert package.import_name == package.name.replace("-", "_") or package.name.endswith("-ssl")
    assert any(CORE_RANGE.fullmatch(d) for d in package.dependencies), (
        f"{package.name} must require paperlab-core>=0.2[.N],<0.3"
    )
    if package.is_fixture:
        return
    # the folder is the import name, or the CLI name where the distribution had to differ (bolt → bolt-ssl)
    assert package.folder.name in {package.import_name, package.script.replace("-", "_")}
    assert (package.folder / "src" / package.import_name / "configs" / "default.yaml").is_file()
    init = (package.folder / "src" / package.import_name / "__init__.py").read_text()
    literal = re.search(r"__version__\s*=\s*['\"]\d+\.\d+", init)  # a fallback such as "0+unknown" is fine
    assert not literal, "__version__ must come from the package metadata"
    module = importlib.import_module(package.import_name)
    assert module.__version__ == package.version
    assert (Path(sys.executable).parent / package.script).is_file(), "console script not installed"
    lines = len((package.folder / "README.md").read_text().splitlines())
    assert lines <= 300, f"README has {lines} lines (limit 300; the lab notebook goes to docs/)"


def test_workspace_dependencies_have_version_ranges() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    members = {p.name for p in REAL} | {"paperlab-core"}
    for dep in root["project"]["dependencies"]:
        name = re.split(r"[\[<>=!~ ]", dep, maxsplit=1)[0]
        assert name in members
        assert re.search(r">=\d+\.\d+.*,<\d+\.\d+", dep), f"root dependency {dep!r} needs a semver range"
    for package in REAL:
        for dep in package.dependencies:
            name = re.split(r"[\[<>=!~ ;]", dep, maxsplit=1)[0]
            assert name not in members or name == "paperlab-core", f"{package.name} depends on package {name}"


# --------------------------------------------------------------------------------------------- start-up
def test_version_and_help_are_instant_and_do_not_import_torch(package: Package, tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        f"from {package.import_name}.cli import main\n"
        "assert main(['--version']) == 0\n"
        "assert main(['--help']) == 0\n"
        "heavy = sorted(m for m in ('torch', 'pytorch_lightning', 'numpy') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, **package.env}, timeout=_limit(120))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"{package.script} {package.version} ")
    for flag in ("--version", "--help"):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            done = _run(package, flag, cwd=tmp_path, timeout=60)
            times.append(time.perf_counter() - start)
            assert done.returncode == 0, done.stderr[-2000:]
        assert statistics.median(times) < HELP_LIMIT_S, (
            f"{package.script} {flag}: median {statistics.median(times):.2f} s"
        )


def test_package_verbs_answer_help_fast_without_torch(package: Package, tmp_path: Path) -> None:
    spec = package.spec()
    assert {"train", "evaluate"} <= {v.name for v in spec.verbs}
    for name, _verb in _verbs(spec):
        probe = (
            "import sys\n"
            f"from {package.import_name}.cli import main\n"
            f"assert main({name.split()!r} + ['--help']) == 0\n"
            "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
        )
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, **package.env}, timeout=_limit(120))  # fmt: skip
        elapsed = time.perf_counter() - start
        assert proc.returncode == 0, f"{package.script} {name} --help: {proc.stderr[-2000:]}"
        assert "usage:" in proc.stdout
        assert elapsed < VERB_HELP_LIMIT_S, f"{package.script} {name} --help took {elapsed:.2f} s"


def test_lightning_verbs_help_and_print_config_round_trip(package: Package, tmp_path: Path) -> None:
    """One process (Lightning is imported once): every Lightning verb's --help, then `train --print_config`
    fed back through `--config` gives the same configuration; the package's own `make gpu-smoke` steps
    (`[tool.paperlab.gpu-smoke]`) name a verb and, for Lightning verbs, parse (`--print_config`)."""
    lightning = [v.name for v in package.spec().verbs if isinstance(v, LightningVerb)]
    toml = tomllib.loads((package.folder / "pyproject.toml").read_text())
    smoke = toml.get("tool", {}).get("paperlab", {}).get("gpu-smoke", {})
    verbs = {v.name for v in package.spec().verbs}
    assert all(args and args[0] in verbs for args in smoke.values()), f"gpu-smoke steps: {smoke}"
    smoke_configs = [list(args) for args in smoke.values() if args[0] in lightning]
    probe = (
        "import contextlib, io, sys\n"
        f"from {package.import_name}.cli import main\n"
        "def call(args):\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out):\n"
        "        try:\n"
        "            code = main(args)\n"
        "        except SystemExit as exc:\n"
        "            code = exc.code or 0\n"
        "    assert code == 0, (args, code)\n"
        "    return out.getvalue()\n"
        f"for verb in {lightning!r}:\n"
        "    assert f'usage: {sys.argv[1]} {verb}' in call([verb, '--help']), verb\n"
        "printed = call(['train', '--print_config'])\n"
        "open('printed.yaml', 'w').write(printed)\n"
        "open('second.yaml', 'w').write(call(['train', '--config', 'printed.yaml', '--print_config']))\n"
        f"for args in {smoke_configs!r}:\n"
        "    call([*args, '--print_config'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe, package.script], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, **package.env}, timeout=_limit(600))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    config: dict[str, Any] = yaml.safe_load((tmp_path / "printed.yaml").read_text())
    assert {"trainer", "model"} <= set(config)
    assert yaml.safe_load((tmp_path / "second.yaml").read_text()) == config


def test_advertised_lightning_verbs_have_their_steps(package: Package) -> None:
    from pytorch_lightning import LightningModule

    from paperlab_core.verbs import resolve_target

    spec = package.spec()
    for verb in spec.verbs:
        if not isinstance(verb, LightningVerb):
            continue
        model = resolve_target(verb.model or spec.model)
        for stage in verb.stages:
            step = STAGE_STEP[stage]
            assert getattr(model, step) is not getattr(LightningModule, step), (
                f"{package.script} {verb.name} advertises {stage} but {model.__name__} has no {step}"
            )


def test_reproduce_verb_shards_and_merges(package: Package) -> None:
    spec = package.spec()
    verbs = {v.name: v for v in spec.verbs}
    assert "reproduce" in verbs and isinstance(verbs["reproduce"], Verb)
    flags = {f for option in verbs["reproduce"].options for f in option.flags}
    assert {"--quick", "--seeds", "--shard", "--merge", "--jobs", "--out"} <= flags
    assert "--device" in flags, "make gpu-smoke runs `reproduce --quick --device cuda`"


# --------------------------------------------------------------------------------------------- runs
def test_train_then_evaluate_its_checkpoint_without_shared_data(package: Package, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    env = {"PAPERLAB_RUNS": str(runs), "PAPERLAB_SHARED_DATA": "none", "HF_HUB_OFFLINE": "1"}
    trained = _run(package, "train", "--trainer.fast_dev_run=true", cwd=tmp_path, env=env, timeout=600)
    assert trained.returncode == 0, trained.stderr[-4000:]
    (run,) = sorted((runs / package.import_name).iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["package"] == package.import_name and metrics["env"]["accelerator"] == "cpu"
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    evaluated = _run(package, "evaluate", "--ckpt", str(ckpt), cwd=tmp_path, env=env, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-4000:]
    (evaluation,) = [p for p in (runs / package.import_name).iterdir() if p != run]
    assert "test" in json.loads((evaluation / "metrics.json").read_text())


BAD_INPUTS = {
    "missing-data-root": ("train", "--data.root", "{tmp}/no/such/folder"),
    "unknown-preset": ("train", "--config", "no-such-preset"),
    "malformed-config-value": ("train", "--trainer.max_epochs=many"),
    "unknown-flag": ("train", "--no_such_flag", "1"),
    "missing-checkpoint": ("evaluate", "--ckpt", "{tmp}/missing.ckpt"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line(package: Package, case: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    args = [a.format(tmp=tmp_path) for a in BAD_INPUTS[case]]
    done = _run(package, *args, cwd=tmp_path, env={"PAPERLAB_RUNS": str(runs)}, timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(lines) <= 2, done.stderr
    assert lines[-1].startswith(f"{package.script}: error: "), done.stderr
    assert not any(runs.rglob("*")) if runs.exists() else True, "a failed run left a run folder"


# --------------------------------------------------------------------------------------------- results
def test_workspace_readme_tables_equal_their_records() -> None:
    """The root README's start-up tables come from docs/startup.json (scripts/startup_timings.py)."""
    readme = ROOT / "README.md"
    assert "<!-- results: docs/startup.json" in readme.read_text()
    assert check_readme(readme) == []


def test_readme_tables_equal_their_records(real_package: Package) -> None:
    readme = real_package.folder / "README.md"
    assert "<!-- results: " in readme.read_text(), "the README shows no table rendered from results/"
    assert check_readme(readme) == []
    for path in sorted((real_package.folder / "results").glob("*.json")):
        data = load_results(path)
        assert data["command"].startswith(real_package.script), f"{path}: command {data['command']!r}"


# --------------------------------------------------------------------------------------------- wheels
@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every workspace wheel, built offline without build isolation (hatchling comes from the dev group)."""
    dist = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        ["uv", "build", "--all-packages", "--wheel", "--no-build-isolation", "--offline", "-o", str(dist)],
        cwd=ROOT, capture_output=True, text=True, timeout=_limit(600),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dist


def test_wheel_installs_and_runs_outside_the_repo(
    real_package: Package, wheels: Path, tmp_path: Path
) -> None:
    """`pip install <pkg>; <pkg> train` from the built wheels only, in a fresh venv, offline, from an empty
    folder with ../shared/data hidden."""
    pkg = real_package
    venv, work = tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    lock = tmp_path / "pylock.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PAPERLAB_RUNS"))}
    env.update({"PAPERLAB_SHARED_DATA": "none", "HF_HUB_OFFLINE": "1", "PAPERLAB_THREADS": "1",
                "UV_OFFLINE": "1", "PYTHONPATH": ""})  # fmt: skip
    steps = [
        ["uv", "export", "--frozen", "--package", pkg.name, "--no-emit-workspace", "--no-dev",
         "--format", "pylock.toml", "-o", str(lock)],
        ["uv", "venv", "-q", "--python", sys.executable, str(venv)],
        ["uv", "pip", "install", "-q", "--offline", "-p", str(venv / "bin" / "python"), "-r", str(lock)],
        ["uv", "pip", "install", "-q", "--offline", "--no-deps", "-p", str(venv / "bin" / "python"),
         *map(str, wheels.glob("paperlab_core-*.whl")), *map(str, wheels.glob(f"{pkg.import_name}-*.whl"))],
        ["uv", "pip", "check", "-p", str(venv / "bin" / "python")],
    ]  # fmt: skip
    for step in steps:
        proc = subprocess.run(step, cwd=ROOT, env=env, capture_output=True, text=True, timeout=_limit(600))
        assert proc.returncode == 0, f"{' '.join(step)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    cli = venv / "bin" / pkg.script
    for args in (["--version"], ["--help"]):
        proc = subprocess.run(
            [str(cli), *args], cwd=work, env=env, capture_output=True, text=True, timeout=_limit(120)
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "paperlab_core.offline", pkg.entry, "--", "train",
         "--trainer.fast_dev_run=true"],
        cwd=work, env=env, capture_output=True, text=True, timeout=_limit(600),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert list((work / "runs" / pkg.import_name).glob("*/metrics.json")), "train wrote nothing under ./runs/"
