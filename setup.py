"""Build hook: the wheel carries the repository's ``weights/`` as ``crct_cli/_weights/``.

Everything else is declared in pyproject.toml. The weight files live in one place in the
repository, the top-level ``weights/`` folder; this step copies them into the *built* package
(``build/lib/crct_cli/_weights/``, never into the source tree), so ``pip install .``,
``pip install git+URL`` and a wheel all carry every file that ``weights/manifest.json`` lists.
An editable install needs no copy: crct reads ``weights/`` in the checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

#: The repository's weight folder (setup.py is run from the project root, or from an sdist).
WEIGHTS_SOURCE = Path(__file__).resolve().parent / "weights"
#: Where the copy goes inside the built package; crct_cli/models/weights.py looks there.
PACKAGED_WEIGHTS = ("crct_cli", "_weights")


def weight_files(folder: Path = WEIGHTS_SOURCE) -> list[Path]:
    """Every regular, non-hidden file of ``weights/`` (the .pt files and manifest.json)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


class BuildPyWithWeights(build_py):
    """setuptools' build_py, then a fresh copy of ``weights/`` into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads weights/ in the checkout
        files = weight_files()
        if not files:
            raise SystemExit(f"crct build: no weight files in {WEIGHTS_SOURCE}")
        target = Path(self.build_lib, *PACKAGED_WEIGHTS)
        if target.exists():  # a file removed from weights/ must not linger from a previous build
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for source in files:
            self.copy_file(str(source), str(target / source.name), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not getattr(self, "editable_mode", False):
            target = Path(self.build_lib, *PACKAGED_WEIGHTS)
            outputs += [str(target / source.name) for source in weight_files()]
        return outputs


setup(cmdclass={"build_py": BuildPyWithWeights})
