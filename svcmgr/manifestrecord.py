"""Which svcmgr read a manifest file, and a hash of its bytes: the key of the boot's manifest records.

SMF's manifest-import keeps each manifest's hash in the repository (the ``smf/manifest``
property group, ``svccfg``'s mhash) and skips a file whose hash is unchanged. svcmgr's boot
import does the same (``svcmgr.bootimport``): the repository keeps, for each file it imported,
``Repository.manifests``' record, and a later boot takes a file from it when

* the file's bytes hash the same (SHA-256 of the whole file; size, mtime and inode are kept
  beside it, but the file is always read and hashed, never trusted by its stat alone: a file
  rewritten in the same second with the same size is still seen), and
* the record was made by this very svcmgr (``format_key``: the record's layout, svcmgr's version,
  Python's, and a fingerprint of the code that reads manifests and keeps their normal form:
  an upgrade, even one that keeps the version number, reads every file anew).

What a manifest becomes depends only on its bytes, its path and the code reading it, so such a
file would read into the very services recorded.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys

import svcmgr

__all__ = ["RECORD_FORMAT", "digest", "format_key"]

#: The record's own layout; raise it when what is recorded or how it is compared changes.
RECORD_FORMAT = 1
#: The packages whose code makes a manifest's services (svcmgr, and the extensions a manifest may use).
_PACKAGES = ("svcmgr", "vrrp", "lb")


def digest(blob: bytes) -> str:
    """A manifest file's hash: what decides whether it changed."""
    return hashlib.sha256(blob).hexdigest()


@functools.cache
def format_key() -> str:
    """This svcmgr's format: a record made by any other is not used (see the module's text)."""
    h = hashlib.sha256(f"{RECORD_FORMAT}\0{svcmgr.__version__}\0{sys.version}".encode())
    top = os.path.dirname(os.path.dirname(os.path.abspath(svcmgr.__file__)))
    for pkg in _PACKAGES:
        for folder, dirs, names in os.walk(os.path.join(top, pkg)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(names):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue
                    h.update(f"{os.path.relpath(path, top)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return f"{RECORD_FORMAT}:{svcmgr.__version__}:{h.hexdigest()[:32]}"

