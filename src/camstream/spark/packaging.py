"""What Spark ships to its executors: the core and the worker side of the job, as a zip.

Executors run `camstream.spark.worker`, which imports `camstream.core` and
`camstream.errors` only; nothing else of camstream goes to them, but the data those modules
read (the frame contract's source, `core/contract.json`).
"""

from __future__ import annotations

from pathlib import Path

# Paths below the package that executors import (and nothing else).
EXECUTOR_MODULES = ("__init__.py", "errors.py", "core", "spark/__init__.py", "spark/worker.py")


def package_zip() -> Path:
    """The executors' part of camstream as a zip for `addPyFile` (built from this install)."""
    import atexit
    import shutil
    import tempfile
    import zipfile

    import camstream

    package = Path(camstream.__file__).resolve().parent
    folder = tempfile.mkdtemp(prefix="camstream-pyfiles-")
    # Spark's file server reads it whenever an executor starts: keep it while we run.
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    target = Path(folder) / "camstream.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for module in EXECUTOR_MODULES:
            root = package / module
            paths = sorted(root.rglob("*.py")) if root.is_dir() else [root]
            if root.is_dir():
                paths += sorted(root.rglob("*.json"))  # the contract's source
            for path in paths:
                archive.write(path, Path("camstream") / path.relative_to(package))
    return target
