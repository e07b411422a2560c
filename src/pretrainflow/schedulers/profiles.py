"""``pretrainflow profiles install``: make ``snakemake --profile abci`` find the repository's profiles by bare name.

Snakemake resolves a bare profile name in the working directory, then in the user config dir
($XDG_CONFIG_HOME/snakemake, default ~/.config/snakemake) and the site config dir; not in profiles/. We link
profiles/<site> there (links, not copies, so edits to the repository's profiles take effect).
"""

from __future__ import annotations

import os
from pathlib import Path

from pretrainflow.errors import PretrainflowError

INSTALLED = ("abci", "tsubame", "slurm")


def repository_profiles() -> Path:
    """profiles/ of the source tree this package runs from (editable install: src/pretrainflow -> ../../profiles)."""
    here = Path(__file__).resolve().parents[3] / "profiles"
    if not here.is_dir():
        raise PretrainflowError(
            f"{here}: profiles directory not found (is pretrainflow installed editable from the repo?)"
        )
    return here


def default_target() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "snakemake"


def install_profiles(target: Path | None = None, force: bool = False, source: Path | None = None) -> list[str]:
    """Link each site profile into ``target``; returns one line per profile saying what happened."""
    source = source or repository_profiles()
    target = target or default_target()
    target.mkdir(parents=True, exist_ok=True)
    report = []
    for site in INSTALLED:
        src, dst = source / site, target / site
        if not (src / "config.yaml").is_file():
            raise PretrainflowError(f"{src}/config.yaml: missing (profile {site})")
        if dst.is_symlink() and dst.resolve() == src.resolve():
            report.append(f"{dst} -> {src} (already linked)")
            continue
        if dst.is_symlink() and not dst.exists():
            dst.unlink()  # a dangling link (e.g. to a deleted checkout) holds nothing of the user's: replace it
        if dst.exists() or dst.is_symlink():
            if not force:
                raise PretrainflowError(f"{dst}: exists and is not a link to {src}; rerun with --force to replace it")
            if dst.is_symlink() or dst.is_file():
                dst.unlink()
            else:
                raise PretrainflowError(f"{dst}: is a directory; move it away first (not deleting your files)")
        dst.symlink_to(src.resolve(), target_is_directory=True)
        report.append(f"{dst} -> {src}")
    return report
