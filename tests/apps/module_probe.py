"""An app whose one task writes the modules its worker process has loaded, for the test that
keeps heavy modules off the worker path (tests/integration/test_worker_imports.py)."""

from __future__ import annotations

import json
import os
import sys

from taskqueue import task


@task(name="probe.modules")
def loaded_modules(path: str) -> None:
    with open(path, "w") as fh:
        json.dump({"pid": os.getpid(), "modules": sorted(sys.modules)}, fh)
