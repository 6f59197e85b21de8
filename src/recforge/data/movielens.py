"""MovieLens in its three common on-disk shapes, normalized to one set of columns.

RecBole atomic files (`*.inter/.user/.item`), the raw 100K release (`u.data`, `u.user`, `u.item`) and the
raw 1M release (`ratings.dat`, `users.dat`, `movies.dat`) all become:

- behavior: user_id, item_id (string), rating (float64), timestamp (int64)
- users: user_id, age (int64), gender, occupation, zip_code (string)
- items: item_id, title (year stripped), release_year (string), genre (list<string>)
"""

from __future__ import annotations

import logging

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recforge.data.raw import RawTables
from recforge.data.readers import CsvOptions, data_error, iter_csv, read_bytes

log = logging.getLogger(__name__)

# u.genre of the 100K release, used when the directory has no u.genre file.
GENRES_100K = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
ATOMIC_TYPES = {
    "token": pa.string(),
    "float": pa.float64(),
    "token_seq": pa.string(),
    "float_seq": pa.string(),
}
ATOMIC_RENAMES = {"movie_title": "title", "class": "genre"}
YEAR_SUFFIX = r"\s*\((\d{4})\)\s*$"
STR = pa.string()


def load_movielens(path: str) -> RawTables:
    """Load a MovieLens directory; the format is chosen by which files it holds."""
    fs, root = fsspec.core.url_to_fs(str(path))
    if not fs.isdir(root):
        raise data_error(str(path), "is not a directory", "point `data.path` at the MovieLens directory")
    names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))
    base = str(path).rstrip("/")
    inter = [n for n in names if n.endswith(".inter")]
    if len(inter) > 1:
        raise data_error(base, f"holds several RecBole .inter files {inter}", "keep one data set per directory")
    if inter:
        tables = _load_atomic(base, inter[0][: -len(".inter")], names)
    elif "u.data" in names:
        tables = _load_raw_100k(base, names)
    elif "ratings.dat" in names:
        tables = _load_raw_1m(base, names)
    else:
        raise data_error(
            base,
            f"holds no MovieLens files (found {names[:20]})",
            "expected RecBole atomic files (*.inter), raw 100K files (u.data) or raw 1M files (ratings.dat)",
        )
    log.info("loaded MovieLens from %s: %s", base, tables.summary())
    return tables


def _read(path: str, options: CsvOptions, source: str | bytes | None = None) -> pa.Table:
    return pa.Table.from_batches(list(iter_csv(source or path, options, batch_rows=1 << 20, name=path)))


def _to_int(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """String or float column -> int64, with empty strings as nulls."""
    if pa.types.is_string(column.type):
        column = pc.if_else(pc.equal(column, ""), pa.scalar(None, STR), column)
        column = pc.cast(column, pa.float64())
    return pc.cast(pc.floor(column), pa.int64()) if pa.types.is_floating(column.type) else pc.cast(column, pa.int64())


def _split_title(title: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """'Toy Story (1995)' -> ('Toy Story', '1995'); a title without a year is kept, its year is null."""
    year = pc.struct_field(pc.extract_regex(title, r"\((?P<year>\d{4})\)\s*$"), [0])
    return pc.replace_substring_regex(title, YEAR_SUFFIX, ""), year


def _behavior(table: pa.Table) -> pa.Table:
    columns = {
        "user_id": pc.cast(table["user_id"], STR),
        "item_id": pc.cast(table["item_id"], STR),
        "rating": pc.cast(table["rating"], pa.float64()),
        "timestamp": _to_int(table["timestamp"]),
    }
    rest = {n: table[n] for n in table.column_names if n not in columns}
    return pa.table({**columns, **rest})


def _load_atomic(base: str, stem: str, names: list[str]) -> RawTables:
    """RecBole atomic files: tab-separated, header names carry `:type` suffixes, token_seq is space-joined."""
    behavior = _behavior(_read_atomic(f"{base}/{stem}.inter"))
    users = items = None
    if f"{stem}.user" in names:
        users = _read_atomic(f"{base}/{stem}.user")
        if "age" in users.column_names:
            users = users.set_column(users.column_names.index("age"), "age", _to_int(users["age"]))
    if f"{stem}.item" in names:
        items = _read_atomic(f"{base}/{stem}.item")
        if "genre" in items.column_names:
            items = items.set_column(items.column_names.index("genre"), "genre", _split_tokens(items["genre"]))
    return RawTables(behavior, users, items, origin=f"{base}/{stem}.inter")


def _split_tokens(column: pa.ChunkedArray | pa.Array, sep: str = " ") -> pa.ChunkedArray:
    """'Action Comedy' -> ['Action', 'Comedy']; empty and null strings become empty lists."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    parts = pc.split_pattern(pc.fill_null(column, ""), sep)
    flat = pc.list_flatten(parts)
    keep = pc.not_equal(flat, "")
    parents = pc.list_parent_indices(parts).to_numpy()
    lengths = np.bincount(parents[keep.to_numpy(zero_copy_only=False)], minlength=len(column))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.chunked_array([pa.ListArray.from_arrays(pa.array(offsets), pc.filter(flat, keep))])


def _read_atomic(path: str) -> pa.Table:
    header_options = CsvOptions(delimiter="\t", quoting=False, column_types={})
    raw_names = next(iter_csv(path, header_options, batch_rows=1)).schema.names
    types, renames = {}, []
    for raw in raw_names:
        name, _, kind = raw.partition(":")
        types[raw] = ATOMIC_TYPES.get(kind, STR)
        renames.append(ATOMIC_RENAMES.get(name, name))
    table = _read(path, CsvOptions(delimiter="\t", quoting=False, column_types=types))
    return table.rename_columns(renames)


def _load_raw_100k(base: str, names: list[str]) -> RawTables:
    """GroupLens 100K: tab-separated u.data, `|`-separated u.user and latin-1 u.item with 19 genre flags."""
    data = _read(
        f"{base}/u.data",
        CsvOptions(
            delimiter="\t",
            quoting=False,
            column_names=["user_id", "item_id", "rating", "timestamp"],
            column_types={"user_id": STR, "item_id": STR, "rating": pa.float64(), "timestamp": pa.int64()},
        ),
    )
    users = items = None
    if "u.user" in names:
        users = _read(
            f"{base}/u.user",
            CsvOptions(
                delimiter="|",
                quoting=False,
                column_names=["user_id", "age", "gender", "occupation", "zip_code"],
                column_types={
                    "user_id": STR,
                    "age": pa.int64(),
                    "gender": STR,
                    "occupation": STR,
                    "zip_code": STR,
                },
            ),
        )
    if "u.item" in names:
        genres = _genres_100k(base) if "u.genre" in names else list(GENRES_100K)
        items = _items_100k(base, genres)
    return RawTables(_behavior(data), users, items, origin=f"{base}/u.data")


def _genres_100k(base: str) -> list[str]:
    table = _read(
        f"{base}/u.genre",
        CsvOptions(delimiter="|", quoting=False, encoding="latin1", column_names=["genre", "index"]),
    )
    return [str(g) for g in table["genre"].to_pylist()]


def _items_100k(base: str, genres: list[str]) -> pa.Table:
    flags = [f"g{i}" for i in range(len(genres))]
    names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *flags]
    table = _read(
        f"{base}/u.item",
        CsvOptions(
            delimiter="|",
            quoting=False,
            encoding="latin1",
            column_names=names,
            column_types={n: STR for n in names[:5]} | {f: pa.int8() for f in flags},
        ),
    )
    title, title_year = _split_title(table["title"])
    date_year = pc.utf8_slice_codeunits(table["release_date"], -4)
    year = pc.if_else(pc.equal(pc.utf8_length(date_year), 4), date_year, title_year)
    return pa.table(
        {
            "item_id": table["item_id"],
            "title": title,
            "release_year": year,
            "genre": _flags_to_list(table, flags, genres),
        }
    )


def _flags_to_list(table: pa.Table, flags: list[str], genres: list[str]) -> pa.ListArray:
    """One 0/1 column per genre -> a list of the genre names set, in column order (vectorized)."""
    matrix = np.column_stack([pc.fill_null(table[f], 0).to_numpy() for f in flags]).astype(bool)
    _, cols = np.nonzero(matrix)  # row-major: each row's genres in column order
    offsets = np.concatenate([[0], np.cumsum(matrix.sum(axis=1))]).astype(np.int32)
    values = pa.array(np.asarray(genres, dtype=object)[cols].tolist() if len(cols) else [], STR)
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _read_double_colon(path: str, names: list[str], types: dict[str, pa.DataType]) -> pa.Table:
    """`::`-separated latin-1 file: Arrow needs a one-character delimiter, so `::` becomes 0x1f."""
    data = read_bytes(path).replace(b"::", b"\x1f")
    options = CsvOptions(delimiter="\x1f", quoting=False, encoding="latin1", column_names=names, column_types=types)
    return _read(path, options, source=data)


def _load_raw_1m(base: str, names: list[str]) -> RawTables:
    """GroupLens 1M: `::`-separated ratings.dat, users.dat, movies.dat ("Title (Year)", genres `|`-joined)."""
    data = _read_double_colon(
        f"{base}/ratings.dat",
        ["user_id", "item_id", "rating", "timestamp"],
        {"user_id": STR, "item_id": STR, "rating": pa.float64(), "timestamp": pa.int64()},
    )
    users = items = None
    if "users.dat" in names:
        users = _read_double_colon(
            f"{base}/users.dat",
            ["user_id", "gender", "age", "occupation", "zip_code"],
            {"user_id": STR, "gender": STR, "age": pa.int64(), "occupation": STR, "zip_code": STR},
        ).select(["user_id", "age", "gender", "occupation", "zip_code"])
    if "movies.dat" in names:
        movies = _read_double_colon(
            f"{base}/movies.dat",
            ["item_id", "title", "genres"],
            {"item_id": STR, "title": STR, "genres": STR},
        )
        title, year = _split_title(movies["title"])
        genre = _split_tokens(movies["genres"], "|")
        items = pa.table({"item_id": movies["item_id"], "title": title, "release_year": year, "genre": genre})
    return RawTables(_behavior(data), users, items, origin=f"{base}/ratings.dat")
