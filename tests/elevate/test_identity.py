"""Canonical usernames: every spelling of one person is one person (API.md "Identity")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from elevate.contracts import Principal
from elevate.identity import InvalidName, canonical, fold, same_person
from elevate.policy import matches

_LETTERS = st.text(st.characters(min_codepoint=ord("a"), max_codepoint=ord("z")), min_size=1)


def _full_width(ch: str) -> str:
    return chr(ord(ch) - ord("a") + ord("ａ")) if "a" <= ch <= "z" else ch


@st.composite
def two_spellings(draw: st.DrawFn) -> tuple[str, str]:
    """A name and another spelling of it: any letter upper-cased or full-width."""
    local = draw(_LETTERS)
    name = f"{local}@example.com"
    styles = draw(st.lists(st.sampled_from(["same", "upper", "wide"]), min_size=len(name)))
    styled = {"same": str, "upper": str.upper, "wide": _full_width}
    other = "".join(styled[s](ch) for ch, s in zip(name, styles, strict=False))
    return name, other + name[len(styles) :]


@given(two_spellings())
def test_two_spellings_that_fold_alike_are_one_approver(pair: tuple[str, str]) -> None:
    name, other = pair
    assert fold(name) == fold(other)
    assert same_person(name, other)
    # Named in a policy one way, the person approves in the other spelling, and the reverse.
    assert matches(other, [], [Principal("user", name)])
    assert matches(name, [], [Principal("user", other)])
    approvals = {fold(n) for n in (name, other)}
    assert len(approvals) == 1


@given(st.text())
def test_fold_is_stable(text: str) -> None:
    assert fold(fold(text)) == fold(text)


@given(st.text(min_size=1))
def test_canonical_names_are_their_own_fold(text: str) -> None:
    try:
        name = canonical(text)
    except InvalidName:
        return
    assert canonical(name) == name == fold(text)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " alice@example.com",
        "alice@example.com ",
        "alice@example.com\n",
        "al\u200bice@example.com",  # zero-width space
        "ali\x00ce@example.com",
        "ａｌｉｃｅ@example.com",  # full-width
    ],
)
def test_ambiguous_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidName):
        canonical(bad)


def test_case_folds_to_one_name() -> None:
    assert canonical("Carol@Example.COM") == "carol@example.com"
    assert canonical("STRASSE@example.com") == canonical("straße@example.com")
