"""Names read from manifests, pointers and the command line -> paths that stay inside their root.

A model stream names its versions by manifest `version`, `LATEST`, `HISTORY` and a delta's `parent`;
a bundle names its files in `features.json`. Every such name is joined to a path here and nowhere
else, so a manifest can never reach outside its stream or bundle:

- a name is one plain path component from a safe charset (`SAFE_NAME`): no `/`, no `..`, not hidden;
- the joined path, with symlinks resolved, must lie strictly inside the resolved root;
- a parent chain is walked with a check for cycles and a length cap (`MAX_CHAIN`).

>>> from pathlib import Path
>>> inside(Path("/srv/stream"), "20261128-101500-ab12cd", where="LATEST").name
'20261128-101500-ab12cd'
>>> safe_name("../../x", where="manifest.json version")
Traceback (most recent call last):
...
recforge.errors.BundleError: manifest.json version '../../x' is not a safe name: ...
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

from recforge.errors import BundleError

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
NAME_RULE = (
    "a name is 1-128 characters of letters, digits, '.', '_', '+' and '-', starting with a letter or digit "
    "(no '/', no '..', no absolute path)"
)
MAX_CHAIN = 1000  # longest delta chain a reader follows; a stream publishes a full version far sooner
DEFAULT_FIX = "use a plain name such as 20261128-101500-ab12cd"


def safe_name(name: object, *, where: str, fix: str = DEFAULT_FIX) -> str:
    """`name` itself when it is one safe path component; a BundleError naming `where` and the rule otherwise."""
    if isinstance(name, str) and SAFE_NAME.fullmatch(name):
        return name
    raise BundleError(f"{where} {name!r} is not a safe name: {NAME_RULE}\n  fix: {fix}")


def inside(root: str | Path, name: object, *, where: str, fix: str = DEFAULT_FIX) -> Path:
    """`root / name` after `safe_name`, refused when it resolves (through symlinks) outside `root`.

    Returns the unresolved path, so its `.name` is the version or file name that was asked for.
    """
    base = Path(root)
    path = base / safe_name(name, where=where, fix=fix)
    real_root, real = base.resolve(), path.resolve()
    if real_root not in real.parents:
        raise BundleError(
            f"{where} {name!r}: {path} resolves to {real}, outside {real_root}; a name must stay inside its "
            f"stream or bundle\n  fix: replace the symlink {path} with the directory or file itself"
        )
    return path


def parent_dirs(
    root: Path, start: str, parent_of: Callable[[Path], object | None], *, where: str, max_length: int = MAX_CHAIN
) -> Iterator[Path]:
    """The directories `start` is built on, nearest parent first, each through `inside(root, ...)`.

    `parent_of(directory)` returns that directory's parent name, or None where the chain ends. A name
    seen before (a cycle) or a chain longer than `max_length` is a BundleError, so a walk always ends.
    """
    order = [start]
    name = parent_of(root / start)
    while name is not None:
        if name in order:
            loop = " -> ".join([*order[order.index(str(name)) :], str(name)])
            raise BundleError(
                f"{where}: the parent chain loops ({loop}); a version cannot be built on itself"
                "\n  fix: remove the looping versions from the stream and publish a full version"
            )
        if len(order) > max_length:
            raise BundleError(
                f"{where}: the parent chain is longer than {max_length} versions"
                "\n  fix: publish a full version (streaming: lower `full_every`)"
            )
        path = inside(root, name, where=f"{where} parent")
        yield path
        order.append(path.name)
        name = parent_of(path)
