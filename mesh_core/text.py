"""Making untrusted text safe to show.

Message bodies and agent names are written by other programs. Before they reach a
terminal they must not be able to act on it: no escape sequences (CSI, OSC — title
changes, OSC 52 clipboard writes), no C0/C1 control characters, no bidi controls that
reorder what a person reads. Each such character is shown *visibly* instead (ESC as
`␛`, a bidi override as `<U+202E>`), so the text is shown literally and nothing is hidden.
Rich markup is a separate matter: callers render with `Text(...)` / `markup=False`.
"""

from __future__ import annotations

import re

# Bidi embeddings, overrides, isolates and marks (Trojan Source).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def _visible(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # Control Pictures: ␛ for ESC, ␇ for BEL …
    if code == 0x7F:
        return "\u2421"  # ␡
    if char in BIDI_CONTROLS:
        return f"<U+{code:04X}>"
    return f"<U+{code:04X}>"  # C1 controls (0x80–0x9f), e.g. 8-bit CSI 0x9b


def safe_text(text: object, *, multiline: bool = True) -> str:
    """`text` with every control character made visible. Newlines (and tabs) are kept when
    `multiline`, else shown as `⏎` (and a space) so a name or preview stays on one line."""
    value = "" if text is None else str(text)
    value = value.replace("\r\n", "\n")
    if not multiline:
        value = value.replace("\n", " \u23ce ").replace("\t", " ")
    return _UNSAFE.sub(_visible, value)


def safe_line(text: object, limit: int | None = None) -> str:
    """One line of untrusted text, optionally cut to `limit` characters with `…`."""
    value = safe_text(text, multiline=False)
    if limit is not None and len(value) > limit:
        value = value[: max(0, limit - 1)] + "…"
    return value
