"""A non-editable install carries the weights: the wheel holds every file of ``weights/``, and an
installed copy finds them (sha256-checked) without the repository beside it.

The wheel is built offline from a copy of the source files in tmp_path (setup.py's build step
copies ``weights/`` into ``crct_cli/_weights/``), so nothing is written into the checkout.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from crct_cli.models.weights import MANIFEST, resolve_weights_dir

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
#: What a build reads from the project root (pyproject.toml names README.md as the readme).
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "crct_cli", "weights")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest() -> dict[str, dict]:
    return json.loads((WEIGHTS / MANIFEST).read_text(encoding="utf-8"))["weights"]


def _setuptools_can_build() -> str | None:
    """Why the offline build cannot run here, or None (the `test` extra installs setuptools)."""
    try:
        import setuptools
    except ImportError:
        return "setuptools is not installed (pip install -e '.[test]' installs it)"
    if int(setuptools.__version__.split(".")[0]) < 77:
        return f"setuptools {setuptools.__version__} is older than the 77 pyproject.toml needs"
    return None


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files a build reads, copied out of the checkout (no build/ or egg-info left here)."""
    if not (WEIGHTS / MANIFEST).is_file():
        pytest.skip("no weights/manifest.json: not a crct checkout")
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    return src


@pytest.fixture(scope="module")
def wheel(source_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    why_not = _setuptools_can_build()
    if why_not:
        pytest.skip(why_not)
    dist = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation"]
    cmd += ["--no-index", "-q", "-w", str(dist)]
    done = subprocess.run(cmd, cwd=source_copy, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = dist.glob("crct-*.whl")
    return built


def test_the_wheel_holds_every_weight_file_the_manifest_lists(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        packaged = {n.removeprefix("crct_cli/_weights/") for n in names if "/_weights/" in n}
        on_disk = {p.name for p in WEIGHTS.iterdir() if p.is_file() and not p.name.startswith(".")}
        assert packaged == on_disk  # every file of weights/, nothing else
        for name, entry in _manifest().items():
            data = zf.read(f"crct_cli/_weights/{name}")
            assert _sha256(data) == entry["sha256"], name
        assert zf.read(f"crct_cli/_weights/{MANIFEST}") == (WEIGHTS / MANIFEST).read_bytes()
        assert not any(n.startswith("weights/") for n in names)  # no stray top-level folder
        assert "crct_cli/cli.py" in names
        assert "crct_cli/py.typed" in names  # type checkers read the installed API's hints
    # fp16 weights barely compress: the wheel is about their size, well under PyPI's 100 MB
    assert wheel.stat().st_size < 100 * 2**20


def test_an_installed_wheel_finds_and_checks_its_own_weights(wheel: Path, tmp_path: Path):
    """Installed away from the checkout (pip --target), crct resolves the packaged copy and
    loads every manifest file through the sha256 check; CRCT_WEIGHTS still wins."""
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q"]
    done = subprocess.run(
        [*install, "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    probe = (
        "import json, sys\n"
        "from crct_cli.models import weights\n"
        "names = json.loads((weights.WEIGHTS_DIR / weights.MANIFEST).read_text())['weights']\n"
        "from crct_cli.runtime.int8 import read_ranges\n"
        "from crct_cli.pose import read_face_model\n"
        "for name, entry in names.items():\n"
        "    if entry['kind'] == 'int8':\n"
        "        assert read_ranges(weights.WEIGHTS_DIR) is not None\n"
        "    elif entry['kind'] == 'face3d':\n"
        "        assert read_face_model(weights.WEIGHTS_DIR / name).shape == (68, 3)\n"
        "    else:\n"
        "        weights.load_weights(name, entry['kind'])\n"
        "print(weights.WEIGHTS_DIR)\n"
        "print(len(names))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CRCT_WEIGHTS", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), OMP_NUM_THREADS="1")
    run = [sys.executable, "-c", probe]
    done = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    folder, count = done.stdout.split()
    assert Path(folder) == site / "crct_cli" / "_weights"
    assert int(count) == len(_manifest())
    # the shell can ask where they are (to copy them for a training of one's own)
    asked = [sys.executable, "-m", "crct_cli", "--weights-path"]
    done = subprocess.run(asked, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and Path(done.stdout.strip()) == Path(folder), done.stderr

    # a damaged packaged file is refused by name, as in a checkout
    (site / "crct_cli" / "_weights" / "fv.pt").write_bytes(b"not a weight file")
    check = "from crct_cli.models import weights\nweights.load_weights('fv.pt', 'fv')\n"
    done = subprocess.run(
        [sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 and "fv.pt is not the one" in done.stderr

    own = tmp_path / "own"
    own.mkdir()
    env["CRCT_WEIGHTS"] = str(own)
    where = "from crct_cli.models import weights\nprint(weights.WEIGHTS_DIR)\n"
    done = subprocess.run(
        [sys.executable, "-c", where], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == own


def test_the_sdist_carries_weights_so_a_wheel_built_from_it_does_too(
    source_copy: Path, tmp_path: Path
):
    why_not = _setuptools_can_build()
    if why_not:
        pytest.skip(why_not)
    build = "import sys\nfrom setuptools import build_meta as b\nprint(b.build_sdist(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", build, str(tmp_path)],
        cwd=source_copy,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sdist = tmp_path / done.stdout.strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        names = {Path(n).relative_to(Path(n).parts[0]).as_posix() for n in tar.getnames()}
    assert {f"weights/{name}" for name in _manifest()} | {f"weights/{MANIFEST}"} <= names
    assert "setup.py" in names


def test_weights_resolve_env_then_checkout_then_package(tmp_path: Path):
    checkout = tmp_path / "repo" / "weights"
    packaged = tmp_path / "site" / "crct_cli" / "_weights"
    packaged.mkdir(parents=True)

    def where(environ: dict[str, str]) -> Path:
        return resolve_weights_dir(environ, checkout=checkout, packaged=packaged)

    assert where({}) == packaged  # installed: no checkout beside the package
    checkout.mkdir(parents=True)
    (checkout / MANIFEST).write_text("{}")
    assert where({}) == packaged  # a weights/ folder without pyproject.toml is not a checkout
    (checkout.parent / "pyproject.toml").write_text("")
    assert where({}) == checkout  # a clone or an editable install
    assert where({"CRCT_WEIGHTS": str(tmp_path / "mine")}) == tmp_path / "mine"
    assert where({"CRCT_WEIGHTS": ""}) == checkout  # empty means unset


def test_this_checkout_reads_its_own_weights_folder():
    """Running from the repository (tests, editable installs) uses weights/, never a copy."""
    if not (WEIGHTS / MANIFEST).is_file():
        pytest.skip("no weights/manifest.json: not a crct checkout")
    assert resolve_weights_dir({}) == WEIGHTS
    assert not (ROOT / "crct_cli" / "_weights").exists()  # the build never writes a copy here


def test_train_will_not_write_into_an_installed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a wheel, the default output of crct train is inside site-packages: refused."""
    from typer.testing import CliRunner

    from crct_cli.cli import app
    from crct_cli.models import weights

    packaged = tmp_path / "site-packages" / "crct_cli" / "_weights"
    packaged.mkdir(parents=True)
    monkeypatch.setattr(weights, "WEIGHTS_DIR", packaged)
    monkeypatch.setattr(weights, "PACKAGED_WEIGHTS", packaged)
    data = str(tmp_path)  # any folder: the output is checked before faces are read
    result = CliRunner().invoke(app, ["train", "fv", data, "--val", data, "--steps", "1"])
    assert result.exit_code == 2
    assert "--out" in result.output and "Traceback" not in result.output
    assert list(packaged.iterdir()) == []


def test_a_crct_weights_folder_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    """``$CRCT_WEIGHTS`` named wrong says so, not "reinstall crct", ``--weights-path`` too (a
    script copying the folder must not copy nothing)."""
    env = {**os.environ, "CRCT_WEIGHTS": str(tmp_path / "none"), "OMP_NUM_THREADS": "1"}
    photo = Path(__file__).resolve().parents[1] / "samples" / "astronaut.jpg"
    for args in (["align", str(photo)], ["track", str(photo.with_suffix(".mp4"))]):
        cmd = [sys.executable, "-m", "crct_cli", *args, "--out", str(tmp_path / "out")]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr
        line = f"crct: error: CRCT_WEIGHTS={tmp_path / 'none'}: no such weights folder"
        assert done.stderr.strip().splitlines() == [line]
    asked = [sys.executable, "-m", "crct_cli", "--weights-path"]
    done = subprocess.run(asked, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [line]
