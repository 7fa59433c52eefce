"""Strict reading of a free-text reply as one option letter, or None.

The parser accepts only replies whose choice is clear: a bare letter ("C", "(C)", "c."), a reply
that opens with its answer ("C) 85, 68 because...", "Option C", "Answer: C", "I choose C"), or
explicit answer phrases elsewhere that all name the same letter ("... so my answer is C."). A final
"Answer: X" line (chain-of-thought) also counts. Anything else is None: refusals, hedges ("A or
B", "between C and D"), letters outside the allowed range, negated mentions only, and prose
without a marked choice. None is never turned into a guess; the policy sends it to the extractor
and re-asks, and records it as invalid if those fail too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["is_refusal", "normalise_reply", "parse_choice"]

_REFUSAL = re.compile(
    r"\b(?:i\s+(?:can(?:'|no)?t|cannot|won'?t|will\s+not|am\s+(?:not\s+able|unable)|'m\s+(?:not\s+able|unable)|"
    r"do\s+not\s+feel\s+comfortable|don'?t\s+feel\s+comfortable|refuse|decline|must\s+decline|prefer\s+not)|"
    r"as\s+an\s+ai\b|as\s+a\s+language\s+model|i'?m\s+(?:just\s+)?an\s+ai\b|i\s+am\s+(?:just\s+)?an\s+ai\b|"
    r"i\s+don'?t\s+have\s+(?:personal\s+)?(?:values|preferences|opinions))",
    re.IGNORECASE,
)

# Phrases that mark the letter after them as the reply's choice: "my answer is", "choice:",
# "I choose", "I'd go with"... A bare noun ("choice A gives...") is a mention, not a marker.
_NOUN = (
    r"(?:(?:my|the|final|correct|best|preferred)\s+)*(?:answer|choice|selection|pick|decision)"
    r"(?:\s+for\s+me)?(?:\s+(?:is|would\s+be|will\s+be|=)\s*:?|\s*[:=\-])"
)
_VERB = (
    r"(?:i\s+(?:would\s+|will\s+|shall\s+|do\s+)?|i'd\s+|i'll\s+)"
    r"(?:choose|chose|pick|select|go\s+(?:with|for)|opt\s+for)"
    r"|i\s+am\s+(?:choosing|picking|selecting|going\s+with)|i'm\s+(?:choosing|picking|selecting|going\s+with)"
)
_MARKER = _NOUN + "|" + _VERB
_OPTION = r"(?:(?:option|choice|letter)\s+)?"
# Case matters for the letter even inside case-insensitive patterns: an uppercase letter needs a
# non-letter after it; a lowercase one needs punctuation or the end ("I choose a fair split" is
# not option A).
_LETTER = (
    r"[\(\[\"']?(?:(?-i:(?P<up>[A-Z]))(?![A-Za-z'])|(?-i:(?P<low>[a-z]))(?=[\)\]\"'.,;:!?]|\s*$))[\)\]\"']?"
)
_HEDGE_AFTER = re.compile(
    r"^\s*(?:[\)\]\"'.]\s*)?(?:,|/|&|\bor\b|\band\b|\bto\b|-)\s*(?:option\s+)?[\(\[]?(?-i:[A-Z])\b"
    r"|^\s*(?:[\)\]\"'.]\s*)?(?:/|\bor\b)\s*(?:option\s+)?[\(\[]?[a-z]\b",
    re.IGNORECASE,
)
_NEGATION = re.compile(r"(?:\bnot|n't|\bnever|\bno)\s+(?:\w+\s+){0,2}$", re.IGNORECASE)

_BARE = re.compile(r"^[\(\[\"']*([A-Za-z])[\)\]\"']*[.:!]?$")
_LEAD_MARKER = re.compile(r"^(?:" + _MARKER + r"|choose|pick|select)\s*" + _OPTION + _LETTER, re.IGNORECASE)
# "Option C: 85, 68" counts; "Option A gives me more, but..." is a mention, not an answer.
_LEAD_OPTION = re.compile(
    r"^(?:option|choice|letter)\s+" + _LETTER + r"(?=[.):,\]!]|\s+-\s|\s*$)", re.IGNORECASE
)
# A reply that opens with the letter and a delimiter: "C.", "C) 85, 68", "(C) because", "C - fair".
_LEAD_LETTER = re.compile(
    r"^[\(\[]?(?:(?P<up>[A-Z])|(?P<low>[a-z])(?=[\)\].:]))[\)\]]?(?P<delim>[.):\]!]|,|\s+-\s|\s*$)"
)
_ANYWHERE = re.compile(r"(?:\b" + _MARKER + r")\s*" + _OPTION + _LETTER, re.IGNORECASE)
_FINAL = re.compile(r"^(?:final\s+)?answer\s*[:\-=]\s*" + _OPTION + _LETTER + r"[.!]?\s*$", re.IGNORECASE)


def normalise_reply(text: str) -> str:
    """Strip markdown emphasis, code ticks, curly quotes and surrounding blanks."""
    t = text.replace("**", "").replace("__", "").replace("`", "")
    t = re.sub(r"(?<!\w)\*(?=\S)|(?<=\S)\*(?!\w)", "", t)
    t = t.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    t = re.sub(r"[ \t]+", " ", t)
    return t.strip()


def is_refusal(text: str) -> bool:
    """Whether the reply declines or disclaims (then only a reply that opens with a letter counts)."""
    return bool(_REFUSAL.search(text))


def _letter(m: re.Match) -> str:
    return (m.group("up") or m.group("low")).upper()


def _hedged(rest: str) -> bool:
    return bool(_HEDGE_AFTER.match(rest))


def parse_choice(text: str | None, letters: Iterable[str]) -> str | None:
    """The option letter a reply clearly chooses among `letters`, or None (see module docstring)."""
    allowed = {c.upper() for c in letters}
    if text is None:
        return None
    t = normalise_reply(text)
    if not t:
        return None

    def ok(c: str) -> str | None:
        return c if c in allowed else None

    m = _BARE.match(t)
    if m:
        return ok(m.group(1).upper())

    first_line = t.splitlines()[0].strip()
    for lead in (_LEAD_MARKER, _LEAD_OPTION, _LEAD_LETTER):
        m = lead.match(first_line)
        if m is None:
            continue
        if lead is _LEAD_LETTER and m.group("up") == "I" and m.group("delim") == ",":
            continue  # "I, as a prosocial person, ..." is the pronoun
        end = m.end("up") if m.group("up") else m.end("low")
        if _hedged(first_line[end:]):
            return None
        c = _letter(m)
        later = _marked(t[m.end() :])
        if later is None or later - {c}:
            return None  # hedged or contradicted later ("B. Wait, actually my answer is D.")
        return ok(c)

    if is_refusal(t):
        return None

    lines = [ln.strip() for ln in t.splitlines() if ln.strip()]
    m = _FINAL.match(lines[-1]) if lines else None
    if m:
        return ok(_letter(m))

    found = _marked(t)
    if found is not None and len(found) == 1:
        return ok(found.pop())
    return None


def _marked(t: str) -> set[str] | None:
    """Letters named by explicit, non-negated answer phrases in t; None if one of them is hedged."""
    found: set[str] = set()
    for m in _ANYWHERE.finditer(t):
        if _NEGATION.search(t[: m.start()]):
            continue
        end = m.end("up") if m.group("up") else m.end("low")
        if _hedged(t[end:]):
            return None
        found.add(_letter(m))
    return found
