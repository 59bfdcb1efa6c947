"""The prompt block list: words and phrases an admin refuses in prompts, checked before a job
is queued (or a live session renders), and the refused attempts counted per account.

Matching works on folded text, so simple disguises do not get through: Unicode compatibility
forms (NFKC: full-width letters, ligatures, circled and styled letters), case (casefold),
accents and other combining marks, common Cyrillic and Greek look-alikes of Latin letters,
anything that is not a letter or digit between the letters (spaces, dots, dashes, zero-width
characters: "N.u-d E" is "nude"), and digits or signs written for letters ("nud3", "@ss").
A term matches whole words of the prompt, or letters that only separators split; a term ending
in `*` also matches longer words that start with it ("nude*" matches "nudes"). Scripts written
without spaces (Chinese, Japanese, Thai, ...) match anywhere. No regular expressions: terms are
plain text, so a term cannot make matching slow; the work is bounded by the prompt's length
times the longest term."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from aiedit.store.db import Database, utcnow
from aiedit.store.models import BlockedTerm, PromptRefusal

MAX_KEY_CHARS = 64
MAX_TERM_CHARS = 200

# Letters of other scripts that look like Latin ones (a few per script; NFKC keeps them apart).
_CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "ɡ": "g", "ӏ": "l", "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v",
    "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w",
})


# Digits and signs written for letters ("nud3", "@ss"): a prompt holding any is also checked
# with them read as letters.
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                       "$": "s", "!": "i"})


class BlocklistError(ValueError):
    """A term could not be added or removed; the message says why."""


def fold(text: str) -> str:
    """Text as the block list compares it: NFKC, casefolded, without combining marks, with
    look-alike letters mapped to Latin ones."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return unicodedata.normalize("NFKC", text.translate(_CONFUSABLES))


def words(text: str) -> list[str]:
    """The folded text's runs of letters and digits; letters of scripts without case or
    spaces between words (category Lo: CJK, kana, Thai, ...) each on their own."""
    out: list[str] = []
    run: list[str] = []
    for char in fold(text):
        category = unicodedata.category(char)
        if category == "Lo":
            if run:
                out.append("".join(run))
                run = []
            out.append(char)
        elif category[0] in "LN":
            run.append(char)
        elif run:
            out.append("".join(run))
            run = []
    if run:
        out.append("".join(run))
    return out


def term_key(term: str) -> str:
    """The folded form a term is stored and matched by ("nude*" for a prefix term)."""
    term = term.strip()
    if not term or len(term) > MAX_TERM_CHARS:
        raise BlocklistError(f"a term has 1 to {MAX_TERM_CHARS} characters")
    prefix = term.endswith("*")
    key = "".join(words(term.rstrip("*")))
    if not key:
        raise BlocklistError(f"the term {term!r} has no letters or digits to match")
    if len(key) > MAX_KEY_CHARS:
        raise BlocklistError(f"a term has at most {MAX_KEY_CHARS} letters and digits")
    return key + ("*" if prefix else "")


class Matcher:
    """The terms, ready to look for in texts."""

    def __init__(self, keys: Iterable[str]):
        keys = list(keys)
        self.exact = {k for k in keys if not k.endswith("*")}
        self.prefix = {k[:-1] for k in keys if k.endswith("*")}
        self.prefix_lengths = sorted({len(k) for k in self.prefix})
        self.longest = max((len(k) for k in self.exact | self.prefix), default=0)

    def __bool__(self) -> bool:
        return self.longest > 0

    def find(self, text: str) -> str | None:
        """The first term found in `text`, or None. Each start word is joined with the words
        after it while the joined letters are no longer than the longest term."""
        if not self:
            return None
        found = self._find(words(text))
        leet = text.translate(_LEET)
        if found is None and leet != text:
            found = self._find(words(leet))
        return found

    def _find(self, found: list[str]) -> str | None:
        for start in range(len(found)):
            joined = ""
            for word in found[start:]:
                before = len(joined)
                joined += word
                if joined in self.exact:
                    return joined
                for n in self.prefix_lengths:
                    if before < n <= len(joined) and joined[:n] in self.prefix:
                        return joined[:n] + "*"
                if len(joined) >= self.longest:
                    break
        return None


# --- stored terms -----------------------------------------------------------------------------


def add_term(db: Database, term: str) -> BlockedTerm:
    key = term_key(term)
    row = BlockedTerm(key=key, term=term.strip(), created_at=utcnow())
    try:
        with db.session() as s:
            if s.get(BlockedTerm, key) is not None:
                raise BlocklistError(f"{term.strip()!r} is already on the block list")
            s.add(row)
    except IntegrityError:  # added by someone else at the same moment
        raise BlocklistError(f"{term.strip()!r} is already on the block list") from None
    return row


def remove_term(db: Database, term: str) -> bool:
    """Remove a term (written as when added, or any text that folds the same)."""
    key = term_key(term)
    with db.session() as s:
        row = s.get(BlockedTerm, key)
        if row is None:
            return False
        s.delete(row)
    return True


def list_terms(db: Database) -> list[BlockedTerm]:
    with db.session() as s:
        return list(s.scalars(select(BlockedTerm).order_by(BlockedTerm.key)))


def matcher(db: Database) -> Matcher:
    with db.statements() as s:  # one read, no transaction round trips: every job asks
        return Matcher(s.scalars(select(BlockedTerm.key)))


def checked(name: str) -> bool:
    """Params holding what the model is asked to draw or write: every `*prompt*` but negative
    ones (they say what to avoid), and an edit's `text`."""
    return name == "text" or ("prompt" in name and "negative" not in name)


def refused_field(db: Database, params: dict) -> str | None:
    """The name of the first checked parameter that holds a blocked term, or None. A job
    without text to check (an upscale, a restore) does not read the list."""
    texts = [(name, value) for name, value in params.items()
             if checked(name) and isinstance(value, str) and value]
    if not texts:
        return None
    match = matcher(db)
    if not match:
        return None
    for name, value in texts:
        if match.find(value) is not None:
            return name
    return None


def count_refusal(db: Database, owner: str, now: datetime | None = None) -> None:
    now = now or utcnow()
    for _ in range(3):  # insert, or count up the row another request inserted first
        with db.session() as s:
            changed = s.execute(
                update(PromptRefusal).where(PromptRefusal.owner == owner)
                .values(count=PromptRefusal.count + 1, last_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
        if changed:
            return
        try:
            with db.session() as s:
                s.add(PromptRefusal(owner=owner, count=1, last_at=now))
            return
        except IntegrityError:
            continue


def refusals(db: Database) -> dict[str, PromptRefusal]:
    """Refused attempts per owner."""
    with db.session() as s:
        return {row.owner: row for row in s.scalars(select(PromptRefusal))}
