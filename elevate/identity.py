"""Canonical usernames: one spelling per person, wherever a person is compared or counted.

NFKC folds compatibility forms (full-width letters, ligatures) and casefold makes
`Carol@Example.com` and `carol@example.com` one person. Stdlib only: the workflow sandbox
imports this too.
"""

from __future__ import annotations

import unicodedata


class InvalidName(ValueError):
    """A username that cannot name one person unambiguously."""


def fold(name: str) -> str:
    """The comparison key of a name, refusing nothing (names already stored, policy matching).
    NFKC again after casefold: casefolding can leave a string that is not NFKC."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def _has_control(name: str) -> bool:
    return any(unicodedata.category(ch)[0] == "C" or ch in "\u2028\u2029" for ch in name)


def canonical(name: str) -> str:
    """The one spelling of a username arriving from outside (a token, a policy, a filter).

    Refused rather than folded: whitespace at either end, control or format characters
    (`al\\u200bice`), and compatibility spellings (full-width `ａｌｉｃｅ`) — an identity
    provider may hold those as accounts of their own, and merging them would let that account
    act as the plain-spelled person."""
    if not name or name != name.strip():
        raise InvalidName("a username must not be empty or start or end with whitespace")
    if _has_control(name):
        raise InvalidName("a username must not contain control or format characters")
    if unicodedata.normalize("NFKC", name) != name:
        raise InvalidName("a username must not use compatibility characters (NFKC form only)")
    return fold(name)


def same_person(a: str, b: str) -> bool:
    return fold(a) == fold(b)
