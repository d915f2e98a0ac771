"""Reading Asterisk's ``.conf`` files as the rendering tests look at them: sections of lines,
a section's ``key = value`` options."""

from __future__ import annotations


def conf_sections(text: str) -> dict[str, list[str]]:
    """``{section header: [non-comment lines]}``; repeated headers are numbered ``name#2``."""
    sections: dict[str, list[str]] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith("["):
            current = line
            n = 2
            while current in sections:
                current = f"{line}#{n}"
                n += 1
            sections[current] = []
        else:
            sections.setdefault(current, []).append(line)
    return sections


def conf_options(lines: list[str]) -> dict[str, str]:
    """``key = value`` and ``key => value`` lines of a section as a dictionary (the last wins)."""
    result: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            result[key.strip()] = value.lstrip(">").strip()
    return result
