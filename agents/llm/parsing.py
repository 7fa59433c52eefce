"""Strict reading of a free-text reply as one option letter, or None (the reply's validity).

A reply is read with the answer phrases of the prompt set it was asked in (`answer_phrases` in
scenarios/data/prompts/*.yaml, checked by scenarios.phrases.AnswerPhrases; English by default).
None is never turned into a guess: the policy sends it to the LLM extractor, then re-asks, and
records the item as invalid if those fail too. The rules, in order:

1. Normalise: drop markdown emphasis, code ticks, heading and bullet marks; straighten quotes and
   dashes; remove the language's `abbreviations` ("e.g.", "z. B."), whose letters are not options;
   drop option lines echoed from the prompt ("A: 50, 100") when two or more of them are present.
2. A bare letter ("C", "(c)", "'H'", "I.") is that letter.
3. Letters. A letter is a single A-Z or a-z standing alone (not in "C'est", "e-mail"). A lowercase
   letter counts only before punctuation, a bracket, a dash or the end of a line ("i choose c.",
   never "I choose a fair split"). An uppercase letter that is also a word of the language
   (`letter_words`: the article "A", Spanish "A mi juicio") or a pronoun (`pronouns`: "I") is a
   letter only when an option word precedes it ("option A", "la A"), when punctuation, a bracket,
   a dash or the end of the line follows it (for pronouns, not a comma: "I, as a prosocial
   person"), or when one of `letter_verbs` follows it ("I is fairest", "A es mejor"); right after
   a choosing phrase or a copula it is always a letter ("I choose I", "my answer is A"). A
   lowercase letter word ("a", "y") is a letter only there, or after an option word.
4. Answer statements, each naming one letter:
   - the reply opens with a letter and a delimiter ("C) 85, 68", "E - fair", "B, because"), or
     with an option word and a letter ("Option C", "La C, porque...");
   - a label with a colon: "Answer: C", "Mon choix : C". When no letter follows directly ("Answer:
     I believe C is best"), the sentence after the colon is read: if it names exactly one letter
     and no negation, hedge or correction, that letter is stated;
   - a label, a copula and the letter ("my answer is C", "meine Antwort lautet C", "mi elección es
     la C"), or the reverse, closing its clause ("C is my choice.", "La C es mi elección.");
   - a choosing phrase and the letter ("I'd go with option F", "je choisis l'option C", "ich würde
     Option C wählen", "me quedo con la E"), with optional `fillers` between ("donc", "daher");
   - the last line, when it is a bare letter.
   A statement with one of `negations` among the three words before it, in its clause, is not
   one ("I wouldn't say my answer is A"). A statement is hedged when another letter follows it
   through an alternative ("C or D", "C/D", "A, B", "de la A a la C").
5. Final statements: those made with a `final_labels` phrase ("Final answer: E", "respuesta final:
   E"), and a label statement that is the whole last line ("...\\nAnswer: I", the chain_of_thought
   form).
6. Refusals (`refusals`: "I cannot", "as an AI", "je refuse", "ich kann ... nicht", "no puedo")
   anywhere make the reply None, unless a final statement follows the last refusal.
7. If there are final statements (after the last refusal), they decide: one letter among them, no
   hedge, gives that letter; anything else is None.
8. Otherwise all statements must name one and the same letter, unhedged; none, or two different
   letters ("C. Wait, my answer is D"), give None: the first is never taken.
9. A reply that contains a hedge or correction phrase (`hedges`, `corrections`: "if",
   "otherwise", "wait", "actually", "en fait", "eigentlich", "pensándolo bien") and names any
   other allowed letter anywhere (here an uppercase letter word such as the article "A" counts as
   a letter; a pronoun only as in rule 3) is None unless rule 7
   decided: "C. Wait, no - E is better." and "I choose E if fairness matters, else A." are None.
   This is conservative: "C. If I chose A, the other would get more." is None too. After the last
   final statement the same holds from that statement on, and a later statement of another letter
   makes the reply None ("Final answer: E. Wait, actually C.").
10. The result must be one of the allowed letters, else None.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from scenarios.phrases import AnswerPhrases
from scenarios.prompts import load_prompt_set

__all__ = ["default_phrases", "is_refusal", "normalise_reply", "parse_choice"]

_TRANSLATE = str.maketrans(
    {
        "\u2019": "'",
        "\u2018": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u00a0": " ",
        "\u202f": " ",
        "\u2009": " ",
    }
)
_BARE = re.compile(r"^[(\[\"']*(?P<L>[A-Za-z])[)\]\"']*[.:!]?$")
_TOKEN = re.compile(r"(?<![\w-])(?<!\w')(?P<L>[A-Za-z])(?!\w)(?!'\w)(?!-\w)")
# What may follow a letter that is clearly a letter: a bracket or quote, punctuation (French puts a
# blank before ": ; ! ?"), the end of a line, a dash or an opening bracket.
_DELIM = re.compile(r"[)\]\"'.,]|[ \t]?[;:!?]|[ \t]*(?:\n|$)|[ \t]+-(?:\s|$)|[ \t]+\(")
_LOWER_LEAD = re.compile(r"[)\].:;]|[ \t]*(?:\n|$)")
_SENTENCE_END = re.compile(r"[.!?;](?=\s|$)|\n")
_OPTION_LINE = re.compile(r"^[(\[]?(?P<L>[A-Za-z])[)\]]?\s*[:.)=-]\s*\(?\d[\d\s.,;/()%-]*$")
# A letter, optionally bracketed or quoted; a closing quote only after an opening one ("n' " is not).
_LETTER = (
    r"(?P<open>[(\[\"'])?(?P<L>[A-Za-z])"
    r"(?P<close>(?:[)\]]|(?<=[\"'][A-Za-z])[\"'])(?!\w))?(?![\w'-])"
)


def default_phrases() -> AnswerPhrases:
    """The English answer phrases (prompt set "paper")."""
    return load_prompt_set("paper").answer_phrases


def _phrase(p: str) -> str:
    suffix = p.startswith("-")
    body = p[1:] if suffix else p
    words = body.split()
    out = re.escape(words[0])
    k = 1
    while k < len(words):
        if words[k] == "...":
            out += r"(?:\s+[^\s.!?;:]+){0,4}?\s+" + re.escape(words[k + 1])
            k += 2
        else:
            out += r"\s+" + re.escape(words[k])
            k += 1
    left = r"(?<=\w)" if suffix else (r"(?<!\w)" if re.match(r"\w", body) else "")
    right = r"(?!\w)" if re.search(r"\w$", body) else ""
    return left + out + right


def _alt(phrases: Iterable[str]) -> str:
    return "(?:" + "|".join(_phrase(p) for p in sorted(phrases, key=len, reverse=True)) + ")"


@dataclass(frozen=True)
class _Grammar:
    """An AnswerPhrases block compiled to patterns (see module docstring)."""

    words: frozenset[str]
    pronouns: frozenset[str]
    abbreviations: re.Pattern | None
    option_before: re.Pattern
    verb_after: re.Pattern | None
    lead: re.Pattern
    lead_option: re.Pattern
    label: re.Pattern
    copula: re.Pattern
    reverse: re.Pattern
    slot: re.Pattern
    choose: tuple[re.Pattern, ...]
    hedge_after: re.Pattern
    ambiguity: re.Pattern
    refusal: re.Pattern
    negation: re.Pattern


@lru_cache(maxsize=32)
def _grammar(ph: AnswerPhrases) -> _Grammar:
    f = re.IGNORECASE
    opt = _alt(ph.option_words)
    labels = rf"(?:(?P<fin>{_alt(ph.final_labels)})|(?P<lab>{_alt(ph.labels)}))"
    fill = rf"(?:{_alt(ph.fillers)}\s+){{0,2}}" if ph.fillers else ""
    slot = rf"{fill}(?P<opt>{opt}\s+)?{_LETTER}"
    by_tail: dict[str, list[str]] = {}
    for p in ph.choose:
        head, _, tail = p.partition("{letter}")
        by_tail.setdefault(tail.strip(), []).append(head.strip())
    choose = tuple(
        re.compile(rf"{_alt(heads)}(?:[ \t]*:)?\s+{slot}" + (rf"\s+{_phrase(tail)}" if tail else ""), f)
        for tail, heads in by_tail.items()
    )
    return _Grammar(
        words=frozenset(ph.letter_words),
        pronouns=frozenset(ph.pronouns),
        abbreviations=re.compile(_alt(ph.abbreviations), f) if ph.abbreviations else None,
        option_before=re.compile(rf"{opt}\s+[(\[\"']?$", f),
        verb_after=re.compile(rf"[ \t]+{_alt(ph.letter_verbs)}", f) if ph.letter_verbs else None,
        lead=re.compile(_LETTER),
        lead_option=re.compile(rf"(?P<opt>{opt}\s+){_LETTER}", f),
        label=re.compile(rf"{labels}(?:[ \t]*[:=]|[ \t]+-(?=[ \t]))\s*", f),
        copula=re.compile(rf"{labels}[ \t]*,?[ \t]+{_alt(ph.copulas)}(?:[ \t]*:)?\s+", f),
        reverse=re.compile(
            rf"(?<![\w'-])(?P<opt>{opt}\s+)?{_LETTER}\s+{_alt(ph.copulas)}\s+{labels}(?=[ \t]*(?:[.,;:!?]|$|\n))",
            f,
        ),
        slot=re.compile(slot, f),
        choose=choose,
        hedge_after=re.compile(
            rf"[ \t]*(?P<conn>,|/|&|\+|-|{_alt(ph.alternatives)})[ \t]*(?P<opt>{opt}\s+)?"
            rf"(?P<open>[(\[\"'])?(?P<L>[A-Za-z])(?![\w'-])",
            f,
        ),
        ambiguity=re.compile(_alt(ph.hedges + ph.corrections), f),
        refusal=re.compile(_alt(ph.refusals), f),
        negation=re.compile(_alt(ph.negations), f),
    )


@dataclass(frozen=True)
class _Statement:
    start: int
    letter: str
    final: bool
    hedged: bool


def normalise_reply(text: str, phrases: AnswerPhrases | None = None) -> str:
    """Strip markdown, straighten quotes and dashes; with `phrases`, drop their abbreviations."""
    t = text.translate(_TRANSLATE)
    t = t.replace("**", "").replace("__", "").replace("`", "")
    t = re.sub(r"(?<!\w)\*(?=\S)|(?<=\S)\*(?!\w)", "", t)
    t = re.sub(r"(?m)^[ \t]*(?:#{1,6}|[-*\u2022>])[ \t]+", "", t)
    if phrases is not None and phrases.abbreviations:
        t = _grammar(phrases).abbreviations.sub(" ", t)
    t = re.sub(r"[ \t]+", " ", t)
    return t.strip()


def is_refusal(text: str, phrases: AnswerPhrases | None = None) -> bool:
    """Whether the reply declines or disclaims anywhere (`refusals` of `phrases`, English by default)."""
    ph = phrases or default_phrases()
    return bool(_grammar(ph).refusal.search(normalise_reply(text, ph)))


def parse_choice(
    text: str | None, letters: Iterable[str], phrases: AnswerPhrases | None = None
) -> str | None:
    """The option letter a reply clearly chooses among `letters`, or None (module docstring).

    phrases: the answer phrases of the prompt set the reply answers (`PromptSet.answer_phrases`);
    English ("paper") by default.
    """
    allowed = {c.upper() for c in letters}
    if text is None:
        return None
    ph = phrases or default_phrases()
    g = _grammar(ph)
    t = _drop_option_lines(normalise_reply(text, ph))
    if not t:
        return None
    m = _BARE.match(t)
    if m:
        return _allowed(m["L"].upper(), allowed)

    stmts = _statements(t, g)
    refusals = [r.end() for r in g.refusal.finditer(t)]
    last_refusal = max(refusals, default=-1)
    finals = [s for s in stmts if s.final and s.start >= last_refusal]
    if finals:
        chosen = {s.letter for s in finals}
        if len(chosen) != 1 or any(s.hedged for s in finals):
            return None
        c = chosen.pop()
        last = max(s.start for s in finals)
        if any(s.start > last and s.letter != c for s in stmts) or _ambiguous(t, g, c, allowed, last):
            return None  # taken back after the final answer ("Final answer: E. Wait, C.")
        return _allowed(c, allowed)
    if refusals or not stmts or any(s.hedged for s in stmts):
        return None
    chosen = {s.letter for s in stmts}
    if len(chosen) != 1:
        return None
    c = chosen.pop()
    return None if _ambiguous(t, g, c, allowed, 0) else _allowed(c, allowed)


def _ambiguous(t: str, g: _Grammar, c: str, allowed: set[str], pos: int) -> bool:
    """Rule 9 from pos on: a hedge or correction phrase, and a letter other than c after pos."""
    m = g.ambiguity.search(t, pos)
    if m is None:
        return False
    return bool({x for x in _mentions(t, g, possible=True, start=pos) if x in allowed} - {c})


def _allowed(c: str, allowed: set[str]) -> str | None:
    return c if c in allowed else None


def _drop_option_lines(t: str) -> str:
    """Remove option lines echoed from the prompt ("A: 50, 100"), when two or more are present."""
    lines = t.split("\n")
    echoed = [k for k, ln in enumerate(lines) if _OPTION_LINE.match(ln.strip())]
    if len({_OPTION_LINE.match(lines[k].strip())["L"].upper() for k in echoed}) < 2:
        return t
    return "\n".join("" if k in echoed else ln for k, ln in enumerate(lines)).strip()


def _is_letter(t: str, start: int, end: int, g: _Grammar, *, possible: bool = False) -> bool:
    """Whether the token t[start:end] is an option letter (rule 3); `possible`: letter words too."""
    c = t[start]
    delim = _DELIM.match(t, end) is not None
    word = c in g.words or c in g.pronouns
    if c.islower():
        return delim and (not word or g.option_before.search(t, 0, start) is not None)
    if not word or (possible and c in g.words):
        return True
    if g.option_before.search(t, 0, start) is not None:
        return True
    if delim and not (c in g.pronouns and t.startswith(",", end)):
        return True
    return g.verb_after is not None and g.verb_after.match(t, end) is not None


def _mentions(t: str, g: _Grammar, *, possible: bool = False, start: int = 0, end: int | None = None):
    end = len(t) if end is None else end
    return [
        m["L"].upper()
        for m in _TOKEN.finditer(t, start, end)
        if _is_letter(t, m.start(), m.end(), g, possible=possible)
    ]


def _slot_ok(t: str, m: re.Match, g: _Grammar, *, after_label: bool) -> bool:
    """Whether the letter of a marker's slot is a letter (rule 3 after markers)."""
    c, end = m["L"], m.end("L")
    if c.islower():
        return m["close"] is not None or _DELIM.match(t, end) is not None
    if after_label and m["opt"] is None and m["open"] is None and (c in g.words or c in g.pronouns):
        return _is_letter(t, m.start("L"), end, g)
    return True


def _hedged(t: str, pos: int, g: _Grammar) -> bool:
    """Whether another letter follows position pos through an alternative ("C or D", "A, B")."""
    m = g.hedge_after.match(t, pos)
    if m is None:
        return False
    if m["L"].islower() or (m["conn"] in ",-+" and m["opt"] is None and m["open"] is None):
        return _is_letter(t, m.start("L"), m.end("L"), g)
    return True


def _negated(t: str, start: int, g: _Grammar) -> bool:
    clause = max(t.rfind(ch, 0, start) for ch in ".!?;,:\n") + 1
    return g.negation.search(" ".join(t[clause:start].split()[-3:])) is not None


def _statement(t: str, m: re.Match, start: int, g: _Grammar, *, final: bool = False) -> _Statement:
    return _Statement(start, m["L"].upper(), final, _hedged(t, m.end(), g))


def _statements(t: str, g: _Grammar) -> list[_Statement]:
    """Every answer statement of the reply (rule 4), with its finality (rule 5)."""
    out: list[_Statement] = []
    out.extend(_leads(t, g))
    out.extend(_labelled(t, g))
    for m in g.copula.finditer(t):
        s = g.slot.match(t, m.end())
        if s and _slot_ok(t, s, g, after_label=False) and not _negated(t, m.start(), g):
            out.append(_statement(t, s, m.start(), g, final=m["fin"] is not None))
    for m in g.reverse.finditer(t):
        if m["L"].isupper() and not _negated(t, m.start(), g):
            out.append(_Statement(m.start(), m["L"], m["fin"] is not None, False))
    for pattern in g.choose:
        for m in pattern.finditer(t):
            if _slot_ok(t, m, g, after_label=False) and not _negated(t, m.start(), g):
                out.append(_statement(t, m, m.start(), g))
    lines = [ln.strip() for ln in t.split("\n") if ln.strip()]
    if len(lines) > 1:
        m = _BARE.match(lines[-1])
        if m:
            out.append(_Statement(t.rindex(lines[-1]), m["L"].upper(), False, False))
    return out


def _leads(t: str, g: _Grammar) -> list[_Statement]:
    """A reply that opens with its letter ("C) 85, 68", "B, because") or "Option C"."""
    for pattern in (g.lead, g.lead_option):
        m = pattern.match(t)
        if m is None:
            continue
        c, after = m["L"], m.end()
        if c.islower():
            ok = m["close"] is not None or _LOWER_LEAD.match(t, after) is not None
        elif m["close"] is not None or pattern is g.lead_option:
            ok = _DELIM.match(t, after) is not None or m["close"] is not None
        else:
            ok = _DELIM.match(t, after) is not None and not (c in g.pronouns and t.startswith(",", after))
        if ok:
            return [_Statement(0, c.upper(), False, _hedged(t, after, g))]
    return []


def _labelled(t: str, g: _Grammar) -> list[_Statement]:
    """'Label: C' statements, the sentence after a label's colon, and the last-line final form."""
    out = []
    for m in g.label.finditer(t):
        if _negated(t, m.start(), g):
            continue
        final = m["fin"] is not None
        s = g.slot.match(t, m.end())
        if s and _slot_ok(t, s, g, after_label=True):
            line_start = t.rfind("\n", 0, m.start()) + 1
            rest = t[s.end() :].strip()
            last_line = not t[line_start : m.start()].strip() and rest in ("", ".", "!")
            out.append(_statement(t, s, m.start(), g, final=final or last_line))
            continue
        end = _SENTENCE_END.search(t, m.end())
        stop = end.start() if end else len(t)
        span = t[m.end() : stop]
        if g.negation.search(span) or g.ambiguity.search(span):
            continue
        named = set(_mentions(t, g, start=m.end(), end=stop))
        if len(named) == 1:
            out.append(_Statement(m.start(), named.pop(), final, False))
    return out
