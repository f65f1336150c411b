"""YAML files read safely: plain data only, no aliases (no "billion laughs"), bounded size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1_000_000


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases (*name) are not allowed")
        return super().compose_node(parent, index)


def load_yaml(path: str | Path, max_bytes: int = MAX_BYTES) -> Any:
    """Parse a YAML file; raise ``ValueError`` with a one-line reason when it cannot be used."""
    p = Path(path)
    try:
        if not p.is_file():
            raise ValueError(f"no such file: {p}")
        if p.stat().st_size > max_bytes:
            raise ValueError(f"{p} is larger than {max_bytes:,} bytes")
        text = p.read_text(encoding="utf-8")
        return yaml.load(text, Loader=_NoAliasLoader)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {p}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{p} is not valid YAML: {str(exc).splitlines()[0]}") from None
