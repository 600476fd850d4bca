"""Print the tables of saved benchmark JSON files as Markdown (for docs/performance.md).

    python -m benchmarks.markdown docs/results/*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks._common import _fmt


def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    for name in sys.argv[1:]:
        data = json.loads(Path(name).read_text())
        print(f"### {name}\n\nmachine: `{json.dumps(data.get('machine'))}`\n")
        for key, value in data.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                print(f"**{key}**\n\n{table(value)}\n")
            elif isinstance(value, dict) and key != "machine":
                print(f"**{key}**: `{json.dumps(value)}`\n")
            elif not isinstance(value, (dict, list)):
                print(f"**{key}**: {_fmt(value)}\n")


if __name__ == "__main__":
    main()
