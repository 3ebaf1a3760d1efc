"""Crafted copies of a saved policy zip, for the safe loader's attack tests."""

from __future__ import annotations

import base64
import json
import zipfile
from pathlib import Path


def zip_with_data(source: Path, path: Path, **entries) -> Path:
    """A copy of the SB3 zip ``source`` at ``path`` whose ``data`` entries are replaced by
    ``entries`` (bytes are pickles, stored base64-encoded as SB3 stores them)."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w") as target:
        for item in original.infolist():
            content = original.read(item)
            if item.filename == "data":
                data = json.loads(content)
                for key, value in entries.items():
                    if isinstance(value, bytes):
                        value = {":type:": "x", ":serialized:": base64.b64encode(value).decode()}
                    data[key] = value
                content = json.dumps(data).encode()
            target.writestr(item, content)
    return path
