"""Answer phrases of one language, as validated data: what the strict reply parser reads.

Each prompt set (scenarios/data/prompts/*.yaml) carries one `answer_phrases` block, so a reply
is read with the phrases of the language it was asked in. agents.llm.parsing compiles the block
and its module docstring states exactly how each list is used; this module only checks the data.

Phrases are matched case-insensitively as whole words, with any run of blanks for a blank. Three
marks have a meaning:
- `{letter}` (in `choose` only): where the option letter stands ("ich würde {letter} wählen");
  without it the letter follows the phrase.
- `...` (in `refusals`, `hedges`, `corrections`): up to four words ("ich kann ... nicht").
- a leading `-` (in `negations`): the phrase ends a word ("-n't" in "wouldn't").
"""

from __future__ import annotations

import string

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["AnswerPhrases"]

Phrases = tuple[str, ...]


class AnswerPhrases(BaseModel):
    """The phrases a reply names, hedges or refuses its choice with, in one language.

    option_words: stand between a marker and the letter ("option", "l'option", "la").
    labels: answer nouns: "label: C", "label is C", "C is label." ("my answer", "mon choix").
    final_labels: like labels, and the letter they name is the reply's final answer.
    copulas: link a label to the letter ("is", "would be", "lautet", "c'est").
    choose: first-person choosing phrases ("I choose", "je choisis", "ich würde {letter} wählen").
    fillers: adverbs allowed between a marker and its letter ("therefore", "donc", "daher").
    alternatives: join two letters into a hedge ("or", "to": "C or D", "A to C").
    hedges: with a second letter named anywhere, make a reply ambiguous ("if", "otherwise").
    corrections: likewise; a self-correction ("wait", "actually", "en fait").
    refusals: make a reply invalid unless a final label follows ("I cannot", "als KI").
    negations: cancel a marker among the three words before it ("not", "-n't", "nicht").
    letter_words: one-letter words of the language (English article "A", Spanish "a", "y"): read
        as a letter only after a marker or option word, before punctuation or the line's end, or
        before one of `letter_verbs`.
    pronouns: like letter_words, and not a letter before a comma either (English "I").
    letter_verbs: verbs that a pronoun or article never precedes ("is", "gives"): "I is fairest".
    abbreviations: removed before reading, so that their letters are not options ("e.g.", "z. B.").
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    option_words: Phrases = Field(min_length=1)
    labels: Phrases = Field(min_length=1)
    final_labels: Phrases = Field(min_length=1)
    copulas: Phrases = Field(min_length=1)
    choose: Phrases = Field(min_length=1)
    fillers: Phrases = ()
    alternatives: Phrases = Field(min_length=1)
    hedges: Phrases = Field(min_length=1)
    corrections: Phrases = Field(min_length=1)
    refusals: Phrases = Field(min_length=1)
    negations: Phrases = Field(min_length=1)
    letter_words: Phrases = ()
    pronouns: Phrases = ()
    letter_verbs: Phrases = ()
    abbreviations: Phrases = ()

    @model_validator(mode="after")
    def _check(self) -> AnswerPhrases:
        for name in type(self).model_fields:
            for k, p in enumerate(getattr(self, name)):
                where = f"{name}[{k}] ({p!r})"
                if not p.strip() or p != p.strip():
                    raise ValueError(f"{where}: a phrase is non-empty text without outer blanks")
                if name in ("letter_words", "pronouns"):
                    if len(p) != 1 or p not in string.ascii_letters:
                        raise ValueError(f"{where}: must be one letter A-Z or a-z")
                    continue
                if "{" in p or "}" in p:
                    if (
                        name != "choose"
                        or p.replace("{letter}", "", 1).count("{")
                        or "}" in p.replace("{letter}", "", 1)
                    ):
                        raise ValueError(f"{where}: only `choose` may use {{letter}}, once")
                if "..." in p:
                    if name not in ("refusals", "hedges", "corrections"):
                        raise ValueError(f"{where}: '...' is allowed in refusals, hedges, corrections")
                    if p.startswith("...") or p.endswith("..."):
                        raise ValueError(f"{where}: '...' must stand between words")
                if p.startswith("-") and name != "negations":
                    raise ValueError(f"{where}: a leading '-' is allowed in negations only")
        return self
