"""Which distribution this is, and whether another project shares the ``taskqueue`` import name.

The package index name is ``taskqueue-py``; the import package and the command are ``taskqueue``.
Two unrelated projects also install an import package called ``taskqueue`` (``taskqueue`` and
``task-queue`` on the index). Installed into the same environment, their files and ours overwrite
each other, so ``taskqueue --version`` and every CLI start look for their metadata next to this
package and say so.
"""

from __future__ import annotations

import os
from pathlib import Path

DISTRIBUTION = "taskqueue-py"
#: The first words of this project's summary (``description`` in pyproject.toml).
SUMMARY = "Background jobs for Python"

#: Metadata folder prefixes of the other projects whose import package is ``taskqueue``
#: (``task-queue`` and the placeholder ``taskqueue``), normalised as wheels spell them.
FOREIGN_PROJECTS = ("task_queue", "taskqueue")


def package_dir() -> Path:
    return Path(__file__).resolve().parent


def foreign_installs() -> list[str]:
    """Metadata folders of other projects that install ``taskqueue``, beside this package.

    One directory listing of the folder this package was imported from (site-packages in an
    installed environment); a source checkout has none there.
    """
    try:
        names = os.listdir(package_dir().parent)
    except OSError:
        return []
    found = []
    for name in names:
        if not name.endswith((".dist-info", ".egg-info")):
            continue
        project = name.rsplit(".", 1)[0].split("-", 1)[0].lower().replace(".", "_")
        if project in FOREIGN_PROJECTS and not _is_ours(package_dir().parent / name):
            found.append(name)
    return sorted(found)


def _is_ours(metadata_dir: Path) -> bool:
    """True for this project's own metadata under its old name (``taskqueue`` before 0.2)."""
    for file in ("METADATA", "PKG-INFO"):
        try:
            with open(metadata_dir / file, encoding="utf-8") as fh:
                head = fh.read(4096)
        except OSError:
            continue
        return f"Summary: {SUMMARY}" in head
    return False


def clash_warning() -> str | None:
    found = foreign_installs()
    if not found:
        return None
    return (f"warning: {', '.join(found)} is installed beside taskqueue ({DISTRIBUTION}) in "
            f"{package_dir().parent}; it is a different project that also imports as "
            f"'taskqueue', and the two overwrite each other's files. Uninstall it "
            f"(pip uninstall {found[0].split('-', 1)[0]}) and reinstall {DISTRIBUTION}.")


def version_line(version: str) -> str:
    return f"taskqueue {version} (distribution {DISTRIBUTION}, imported from {package_dir()})"
