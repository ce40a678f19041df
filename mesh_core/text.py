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
Frame markers and the mesh's `[agent-mesh]` tag are made visibly inert too (below).
Each such character is shown *visibly* instead (ESC as `␛`, U+202E as `<U+202E>`), so the
text is shown literally and nothing is hidden. Zero-width joiner and non-joiner stay:
emoji sequences and several scripts need them, and they cannot hide text by themselves.
Rich markup is a separate matter: callers render with `Text(...)` / `markup=False`.

Names are held to more: `name_problem` refuses every default-ignorable code point (by
Unicode's own definition, below), every format, control, private-use or unassigned
character and every space but the plain one, so no two names that look alike differ.
`neutralise_markers` is the frame-marker check, made on text with those characters
removed, so `<<\u200d<END …` cannot pass for a marker; `neutralise_tags` does the same
for the `[agent-mesh]` tag that starts every line the mesh itself speaks to a model.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

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


# Printable ASCII but `<` and `[`, which start a marker or a tag: nothing to change.
_PLAIN = re.compile(r"[ -;=-Z\\-~]*")
# The same test for a caller that skips safe_text's calls when nothing needs changing.
plain = _PLAIN.fullmatch


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    if code < 0x20:
        return chr(0x2400 + code)  # Control Pictures: ␛ for ESC, ␇ for BEL …
    if code == 0x7F:
        return "\u2421"  # ␡
    return f"<U+{code:04X}>"


def safe_text(text: object, *, multiline: bool = True) -> str:
    """`text` with every control character made visible and no frame marker or
    `[agent-mesh]` tag left in it (an agent may read any output of ours, a table cell
    included). Newlines (and tabs) are kept when `multiline`, else shown as `⏎` (and a
    space) so a name or preview stays on one line."""
    value = "" if text is None else str(text)
    if _PLAIN.fullmatch(value):
        return value  # the common case: printable ASCII with nothing to neutralise
    value = value.replace("\r\n", "\n")
    if not multiline:
        value = value.replace("\n", " \u23ce ").replace("\t", " ")
    return _UNSAFE.sub(_visible, inert(value))


def safe_line(text: object, limit: int | None = None) -> str:
    """One line of untrusted text, optionally cut to `limit` characters with `…`."""
    value = safe_text(text, multiline=False)
    if limit is not None and len(value) > limit:
        value = value[: max(0, limit - 1)] + "…"
    return value


# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt) is Cf, plus the
# Variation_Selector and Other_Default_Ignorable_Code_Point properties of PropList.txt,
# minus a few. `unicodedata` gives the category but neither property, so these two
# ranges lists are those properties as PropList.txt (Unicode 15.1) states them.
_VARIATION_SELECTOR = ((0x180B, 0x180D), (0x180F, 0x180F), (0xFE00, 0xFE0F), (0xE0100, 0xE01EF))
_OTHER_DEFAULT_IGNORABLE = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x2065, 0x2065),
    (0x3164, 0x3164),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0xE0000, 0xE0000),
    (0xE0002, 0xE001F),
    (0xE0080, 0xE00FF),
    (0xE01F0, 0xE0FFF),
)
# Symbols that draw nothing though no Unicode property says so.
_BLANK_GLYPHS = frozenset({0x2800})  # BRAILLE PATTERN BLANK
# Categories a name may not hold: controls, format characters, surrogates, private use,
# unassigned, line and paragraph separators (Zs, other spaces, is handled apart).
_REFUSED_IN_NAMES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _in(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= code <= high for low, high in ranges)


@lru_cache(maxsize=4096)
def is_ignorable(char: str) -> bool:
    """True for a format character (Cf) or a default-ignorable code point: characters a
    renderer may draw as nothing, which can hide inside a marker or a name."""
    code = ord(char)
    return (
        unicodedata.category(char) == "Cf"
        or _in(code, _VARIATION_SELECTOR)
        or _in(code, _OTHER_DEFAULT_IGNORABLE)
    )


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a workspace name (None if it can): a name must look like
    what it is, so nothing in it may be invisible, a control, or an odd space."""
    for char in name:
        code = ord(char)
        category = unicodedata.category(char)
        if category in _REFUSED_IN_NAMES or is_ignorable(char):
            return f"it contains U+{code:04X}, a control, format, bidi or invisible character"
        if category == "Zs" and char != " ":
            return f"it contains U+{code:04X}, a space other than the plain space"
        if code in _BLANK_GLYPHS:
            return f"it contains U+{code:04X}, which draws nothing"
    return None


# A marker is `<<<BEGIN …`/`<<<END …`: three or more of `<` or look-alikes, with any
# default-ignorable characters between them.
_ANGLES = "<\u2039\uff1c\ufe64\u2329\u3008\u27e8"  # < ‹ ＜ ﹤ 〈 〈 ⟨
_ANY_ANGLE = re.compile(f"[{_ANGLES}]")


def neutralise_markers(text: str) -> str:
    """`text` in which no run of three or more `<` (or look-alikes), counted with the
    default-ignorable and format characters between them removed, is left: each such run
    becomes as many `‹`, its invisible characters dropped, so it is visibly not a frame
    marker whatever a renderer or a model makes of the invisible ones."""
    if _ANY_ANGLE.search(text) is None:
        return text  # the common case: one C-speed scan
    out: list[str] = []
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        if char not in _ANGLES:
            out.append(char)
            index += 1
            continue
        end, angles = index, 0
        while end < length and (text[end] in _ANGLES or is_ignorable(text[end])):
            angles += text[end] in _ANGLES
            end += 1
        if angles >= 3:
            out.append("\u2039" * angles)
        else:
            out.append(text[index:end])
        index = end
    return "".join(out)


# The tag our own lines to a model start with. In untrusted text it becomes `(agent-mesh)`,
# so a body or a name cannot hold a line that reads as the mesh speaking.
_TAG = "agent-mesh]"
_OPEN_BRACKETS = "[\uff3b\u27e6\u298b\u2045"  # [ ［ ⟦ ⦋ ⁅
_ANY_OPEN_BRACKET = re.compile(f"[{re.escape(_OPEN_BRACKETS)}]")
_HYPHENS = frozenset("-_\u2010\u2011\u2012\u2013\u2014\u2212\ufe63\uff0d")


def _tag_end(text: str, start: int) -> int | None:
    """Where a `[agent-mesh]` tag opened at `start` ends, None if there is none: letters
    compared case-insensitively in their compatibility form (fullwidth ones too), with
    spaces and invisible characters between them skipped, the hyphen optional."""
    index, want, length = start + 1, 0, len(text)
    while index < length and want < len(_TAG):
        char = text[index]
        if char.isspace() or is_ignorable(char):
            index += 1
            continue
        folded = unicodedata.normalize("NFKC", char).casefold()
        if _TAG[want] == "-":
            want += 1
            if folded in _HYPHENS or char in _HYPHENS:
                index += 1
            continue
        if _TAG[want] == "]" and folded in ("]", "\u27e7", "\u298c", "\u2046"):
            return index + 1
        if folded != _TAG[want]:
            return None
        want += 1
        index += 1
    return None


def inert(text: str) -> str:
    """`text` that cannot pass for structure the mesh gives a model: no frame marker and
    no `[agent-mesh]` tag, however they are disguised."""
    return neutralise_tags(neutralise_markers(text))


def neutralise_tags(text: str) -> str:
    """`text` in which no `[agent-mesh]` tag (or a look-alike: invisible characters,
    spaces or another case inside it) is left: each becomes `(agent-mesh)`."""
    if _ANY_OPEN_BRACKET.search(text) is None:
        return text  # the common case: one C-speed scan
    out: list[str] = []
    index = 0
    for found in _ANY_OPEN_BRACKET.finditer(text):
        if found.start() < index:
            continue
        end = _tag_end(text, found.start())
        if end is not None:
            out.append(text[index : found.start()])
            out.append("(agent-mesh)")
            index = end
    out.append(text[index:])
    return "".join(out)
