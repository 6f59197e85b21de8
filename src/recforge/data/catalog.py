"""Public recommendation datasets by name for `recforge data get`: where each comes from, its pinned checksum,
its licence, and the `data:` block that reads what was unpacked."""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

from recforge.data.download import download
from recforge.errors import DataError
from recforge.registry import Registry

log = logging.getLogger(__name__)

GROUPLENS = "https://files.grouplens.org/datasets/movielens"
MOVIELENS_LICENCE = (
    "MovieLens (GroupLens Research, University of Minnesota): use for research; do not redistribute without "
    "permission; do not imply endorsement; cite F. Maxwell Harper and Joseph A. Konstan, 2015, The MovieLens "
    "Datasets: History and Context, ACM TiiS 5(4). Full terms: the README in the archive and {home}."
)


@dataclass(frozen=True)
class Dataset:
    """One downloadable archive. `checksum` is (hashlib algorithm, hex digest); `checksum_source` says who
    published it (GroupLens' `.md5` files sit next to each zip)."""

    name: str
    url: str
    checksum: tuple[str, str]
    checksum_source: str
    folder: str  # top-level folder inside the archive
    licence: str
    data_block: str  # how a pipeline YAML reads the unpacked folder ({path} is filled in)


DATASETS: Registry[Dataset] = Registry("dataset")


def _movielens(name: str, checksum: tuple[str, str], source: str, data_block: str) -> None:
    home = "https://grouplens.org/datasets/movielens/"
    DATASETS.register(name)(
        Dataset(
            name,
            f"{GROUPLENS}/{name}.zip",
            checksum,
            source,
            name,
            MOVIELENS_LICENCE.format(home=home),
            data_block,
        )
    )


MOVIELENS_DIR = "--set data.source=movielens --set data.path={path}"
MOVIELENS_CSV = (  # ml-20m and ml-latest-small: ratings.csv + movies.csv (title carries the year)
    "--set data.source=tables --set data.tables.behavior={path}/ratings.csv --set data.tables.items={path}/movies.csv "
    "--set data.tables.user_key=userId --set data.tables.item_key=movieId"
)
_movielens("ml-100k", ("md5", "0e33842e24a9c977be4e0107933c0723"), "GroupLens ml-100k.zip.md5", MOVIELENS_DIR)
_movielens("ml-1m", ("md5", "c4d9eecfca2ab87c1945afe126590906"), "GroupLens ml-1m.zip.md5", MOVIELENS_DIR)
_movielens("ml-20m", ("md5", "cd245b17a1ae2cc31bb14903e1204af3"), "GroupLens ml-20m.zip.md5", MOVIELENS_CSV)
_movielens(
    "ml-latest-small",
    ("sha256", "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436"),
    "TensorFlow Datasets url_checksums/movielens.txt (September 2018 release)",
    MOVIELENS_CSV,
)


@dataclass
class Fetched:
    dataset: Dataset
    archive: Path
    folder: Path


def get_dataset(dataset: Dataset, to: Path, *, url: str | None = None, progress: bool = True) -> Fetched:
    """Download (resuming), verify and unpack `dataset` (e.g. `DATASETS.get("ml-100k")`) under `to`;
    `url` overrides the source (a mirror)."""
    to.mkdir(parents=True, exist_ok=True)
    archive = download(url or dataset.url, to / f"{dataset.name}.zip", dataset.checksum, progress=progress)
    folder = to / dataset.folder
    try:
        with zipfile.ZipFile(archive) as zipped:
            outside = [n for n in zipped.namelist() if not (to / n).resolve().is_relative_to(to.resolve())]
            if outside:
                raise DataError(f"{archive}: refuses to unpack {outside[0]!r} outside {to}\n  fix: delete the archive")
            zipped.extractall(to)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{archive}: not a zip archive ({exc})\n  fix: delete it and rerun") from None
    if not folder.is_dir():
        raise DataError(f"{archive}: has no folder {dataset.folder!r}\n  fix: delete it and rerun")
    log.info("unpacked %s into %s", archive, folder)
    return Fetched(dataset, archive, folder)
