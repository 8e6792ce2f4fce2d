"""Replaces one marked section of docs/benchmarks.md (`<!-- NAME:begin -->` to
`<!-- NAME:end -->`), or appends it, so each benchmark script owns its own part."""

import re
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(name, section):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    section = f"{begin}\n{section.rstrip()}\n{end}\n"
    text = REPORT.read_text()
    if begin in text:
        text = re.sub(re.escape(begin) + ".*" + re.escape(end) + "\n", lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    REPORT.write_text(text)
    print(section)
