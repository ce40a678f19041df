"""Making untrusted text safe to show.

Message bodies and agent names are written by other programs. Before they reach a
terminal they must not be able to act on it or hide from the reader:
- no escape sequences: ESC (which starts CSI, OSC — title changes, OSC 52 clipboard
  writes, hyperlinks — and DCS) and every other C0 control but tab and newline;
- no C1 controls (0x80–0x9f: the 8-bit CSI 0x9b, OSC 0x9d, DCS 0x90, ST 0x9c, NEL 0x85);
- no bidi embeddings, overrides, isolates or marks, which reorder what a person reads
  (Trojan Source);
- no invisible characters that hide text or make two names look alike: zero-width space,
  word joiner, invisible operators, BOM, soft hyphen, Hangul fillers, the Mongolian vowel
  separator, interlinear annotation marks, and tag characters (U+E0000–U+E007F, which
  smuggle invisible ASCII to a model and a reader alike);
- no line or paragraph separators (U+2028/9), which some terminals break lines on;
- no lone surrogates (an undecodable byte that Python kept), which cannot be printed.
Each such character is shown *visibly* instead (ESC as `␛`, U+202E as `<U+202E>`), so the
text is shown literally and nothing is hidden. Zero-width joiner and non-joiner stay:
emoji sequences and several scripts need them, and they cannot hide text by themselves.
Rich markup is a separate matter: callers render with `Text(...)` / `markup=False`.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(
    "["
    "\x00-\x08\x0b-\x1f\x7f"  # C0 controls (ESC among them) but tab and newline; DEL
    "\x80-\x9f"  # C1 controls
    "\u00ad\u115f\u1160\u180e\u3164\uffa0"  # soft hyphen, Hangul fillers, Mongolian VS
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi marks, embeddings, isolates
    "\u200b\u2060-\u2064\ufeff\ufff9-\ufffb"  # zero-width and invisible characters
    "\u2028\u2029"  # line and paragraph separators
    "\ud800-\udfff"  # lone surrogates
    "\U000e0000-\U000e007f"  # tag characters
    "]"
)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    if code < 0x20:
        return chr(0x2400 + code)  # Control Pictures: ␛ for ESC, ␇ for BEL …
    if code == 0x7F:
        return "\u2421"  # ␡
    return f"<U+{code:04X}>"


def has_unsafe(text: str) -> bool:
    """True if `text` holds a character that `safe_text` would have to make visible
    (newline and tab included: a name is one line)."""
    return "\n" in text or "\t" in text or _UNSAFE.search(text) is not None


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
