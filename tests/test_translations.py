"""The Korean catalog: every text translated, none left fuzzy, and compiled.

`make messages` updates the catalogs from the code. A new text then has an empty
Korean translation, or a "fuzzy" guess copied from a similar one (shown to no
one, and often wrong); and the compiled `.mo` the server reads is only as new as
the last `compilemessages`.
"""

import ast
import gettext
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LOCALE = Path(__file__).resolve().parent.parent / "locale"


@dataclass
class Entry:
    msgid: str = ""
    plural: str | None = None
    context: str | None = None
    translations: list[str] = field(default_factory=list)
    fuzzy: bool = False


def read_catalog(path: Path) -> list[Entry]:
    """Return the entries of a `.po` file (its header left out)."""
    entries, entry, target = [], Entry(), None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if target is not None:
                entries.append(entry)
            entry, target = Entry(), None
        elif line.startswith("#,"):
            entry.fuzzy = "fuzzy" in line
        elif line.startswith("#"):
            continue
        else:
            keyword, _, rest = line.partition(" ")
            if line.startswith('"'):
                keyword, rest = None, line
            text = ast.literal_eval(rest)
            if keyword == "msgctxt":
                entry.context, target = text, "context"
            elif keyword == "msgid":
                entry.msgid, target = text, "msgid"
            elif keyword == "msgid_plural":
                entry.plural, target = text, "plural"
            elif keyword is not None and keyword.startswith("msgstr"):
                entry.translations.append(text)
                target = "msgstr"
            elif target == "context":
                entry.context += text
            elif target == "msgid":
                entry.msgid += text
            elif target == "plural":
                entry.plural += text
            else:
                entry.translations[-1] += text
    return [entry for entry in entries if entry.msgid]


@pytest.fixture(scope="module")
def korean() -> list[Entry]:
    return read_catalog(LOCALE / "ko" / "LC_MESSAGES" / "django.po")


def test_the_reader_reads_the_catalog(korean: list[Entry]) -> None:
    assert len(korean) > 500
    plurals = [entry for entry in korean if entry.plural]
    assert plurals
    assert all(len(entry.translations) == 1 for entry in plurals)  # Korean: 1 form
    login = next(entry for entry in korean if entry.msgid == "Log in")
    assert login.translations == ["로그인"]


def test_every_korean_text_is_translated_and_none_is_fuzzy(
    korean: list[Entry],
) -> None:
    untranslated = [
        entry.msgid
        for entry in korean
        if not entry.translations or not all(entry.translations)
    ]
    fuzzy = [entry.msgid for entry in korean if entry.fuzzy]

    assert untranslated == []
    assert fuzzy == []


def test_the_compiled_korean_catalog_is_the_current_one(korean: list[Entry]) -> None:
    with (LOCALE / "ko" / "LC_MESSAGES" / "django.mo").open("rb") as compiled:
        catalog = gettext.GNUTranslations(compiled)

    stale = []
    for entry in korean:
        if entry.plural is not None and entry.context is not None:
            found = catalog.npgettext(entry.context, entry.msgid, entry.plural, 1)
        elif entry.plural is not None:
            found = catalog.ngettext(entry.msgid, entry.plural, 1)
        elif entry.context is not None:
            found = catalog.pgettext(entry.context, entry.msgid)
        else:
            found = catalog.gettext(entry.msgid)
        if found != entry.translations[0]:
            stale.append(entry.msgid)

    assert stale == []
