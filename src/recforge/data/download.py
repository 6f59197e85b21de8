"""Fetch a file over HTTP(S) with resume (HTTP Range) after a dropped connection, a progress bar and a
pinned checksum; nothing lands at the destination until the checksum matches."""

from __future__ import annotations

import hashlib
import http.client
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

from recforge.errors import DataError
from recforge.progress import Progress

log = logging.getLogger(__name__)

CHUNK = 1 << 16
DROPS = (http.client.HTTPException, ConnectionError, TimeoutError, urllib.error.URLError, OSError)


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_once(url: str, partial: Path, progress: Progress, timeout: float) -> bool:
    """Append to `partial` from where it stops (Range); True when the server sent the whole rest."""
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if have and response.status != 206:  # the server ignored Range: start over
            log.info("%s: the server does not resume, downloading from the start", url)
            have = 0
        length = response.headers.get("Content-Length")
        progress.reset(have + int(length) if length is not None else None, have)
        with partial.open("ab" if have else "wb") as out:
            while block := response.read(CHUNK):
                out.write(block)
                progress.update(len(block))
    return length is None or partial.stat().st_size == progress.total


def download(
    url: str, dest: Path, checksum: tuple[str, str], *, retries: int = 5, timeout: float = 30.0, progress: bool = True
) -> Path:
    """`url` saved at `dest` once its (algorithm, hex digest) matches; a dropped connection resumes.

    The bytes collect in `dest.partial`, so a rerun after a crash also resumes.
    """
    algorithm, expected = checksum
    if dest.exists() and file_digest(dest, algorithm) == expected:
        log.info("%s already downloaded and verified", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    with Progress(f"download {dest.name}", unit="B", enabled=progress) as bar:
        for attempt in range(retries + 1):
            try:
                if _fetch_once(url, partial, bar, timeout):
                    break
                log.warning("%s: connection closed early at %s bytes; resuming", url, f"{bar.done:,}")
            except urllib.error.HTTPError as exc:
                raise DataError(f"{url}: HTTP {exc.code} {exc.reason}\n  fix: check the URL, or retry later") from None
            except DROPS as exc:
                log.warning("%s: %s at %s bytes; resuming (attempt %d)", url, exc, f"{bar.done:,}", attempt + 1)
            time.sleep(min(2.0**attempt, 10.0) * 0.1)
        else:
            raise DataError(f"{url}: still incomplete after {retries} resumes\n  fix: check the network and rerun")
    got = file_digest(partial, algorithm)
    if got != expected:
        partial.unlink()
        raise DataError(
            f"{url}: {algorithm} {got} does not match the pinned {expected}; the download was deleted"
            "\n  fix: rerun; if it persists the file changed upstream (report it)"
        )
    partial.replace(dest)
    return dest
