r"""Writing a file atomically: a reader sees the old file or the new one, never half of either.

The bytes go to a temporary file in the target's folder, are flushed to disk, take the permissions any
new file would get (the umask's, not ``mkstemp``'s private 0600), and replace the target in one
``os.replace``; on any error the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def _umask() -> int:
    # the only way to read the umask is to set it; set it straight back
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    r"""Call ``write(f)`` on a binary file that becomes ``path`` only once it is complete; return ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
