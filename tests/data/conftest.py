"""Tiny hand-written data files for the data-layer tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def raw_100k_dir(tmp_path: Path) -> Path:
    """Three ratings, two users and two items in the GroupLens 100K layout (u.item is latin-1)."""
    d = tmp_path / "ml-100k-raw"
    d.mkdir()
    (d / "u.data").write_text("1\t10\t5\t881250949\n2\t10\t3\t891717742\n2\t20\t4\t878887116\n")
    (d / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    flags_10 = "|".join(["0", "0", "0", "1", "1", "1"] + ["0"] * 13)  # Animation, Children's, Comedy
    flags_20 = "|".join(["1"] + ["0"] * 18)  # unknown
    items = f"10|Misérables, Les (1995)|01-Jan-1995||http://x|{flags_10}\n20|unknown||||{flags_20}\n"
    (d / "u.item").write_bytes(items.encode("latin-1"))
    return d


@pytest.fixture
def raw_1m_dir(tmp_path: Path) -> Path:
    """Three ratings, two users and two movies in the GroupLens 1M `::` layout (latin-1)."""
    d = tmp_path / "ml-1m"
    d.mkdir()
    (d / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    (d / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    movies = (
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::Cité des enfants perdus, La (1995)::Adventure|Sci-Fi\n"
    )
    (d / "movies.dat").write_bytes(movies.encode("latin-1"))
    return d
