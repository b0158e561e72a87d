"""French first, English second: the pages switch language, and the English catalogs are
complete: django.po for Python and templates, djangojs.po for the pages' scripts (served at
/i18n/js/<lang>/).

When a catalog test fails after you added or changed a French string:

    .venv/bin/python manage.py makemessages -l en --ignore=.venv --ignore=.data --ignore=tests \
        --ignore=bench --ignore=staticfiles --no-obsolete
    .venv/bin/python manage.py makemessages -d djangojs -l en --ignore=.venv --ignore=.data \
        --ignore=tests --ignore=bench --ignore=staticfiles --no-obsolete
    # translate the listed msgids in locale/en/LC_MESSAGES/django.po and djangojs.po, remove
    # any "fuzzy" flag
    .venv/bin/python manage.py compilemessages -l en --ignore=.venv

and commit the .po and the .mo files (machines without gettext serve English from the .mo).
The French catalog (locale/fr) holds only the plural forms, so that French counts of 0 take
the singular: after makemessages -l fr (same options), copy each new plural entry's msgid and
msgid_plural into its msgstr[0] and msgstr[1], then compilemessages -l fr.
"""

from __future__ import annotations

import gettext
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

CATALOG = Path(settings.BASE_DIR) / "locale" / "en" / "LC_MESSAGES"
# gettext domains: django (Python and templates) and djangojs (the pages' scripts).
DOMAINS = ["django", "djangojs"]


@pytest.fixture(autouse=True)
def back_to_the_default_language():
    """LocaleMiddleware activates the request's language in this thread; don't leak English."""
    yield
    translation.deactivate()


# --- The pages -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_login_page_is_in_french_by_default(client):
    html = client.get(reverse("login")).content.decode()

    assert '<html lang="fr">' in html
    assert "Connexion" in html
    assert "Mot de passe" in html


@pytest.mark.django_db
def test_the_login_page_is_in_english_when_the_browser_asks_for_it(client):
    html = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9").content.decode()

    assert '<html lang="en">' in html
    assert "Log in" in html
    assert "Password" in html
    assert "Mot de passe" not in html


@pytest.mark.django_db
def test_the_language_cookie_wins_over_the_browser(client):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"

    html = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="fr").content.decode()

    assert "Password" in html


@pytest.mark.django_db
def test_the_language_menu_switches_to_english_and_back(client):
    login = reverse("login")

    response = client.post(reverse("set_language"), {"language": "en", "next": login})
    assert response.status_code == 302
    assert "Password" in client.get(login).content.decode()

    client.post(reverse("set_language"), {"language": "fr", "next": login})
    assert "Mot de passe" in client.get(login).content.decode()


# --- The scripts' catalog ----------------------------------------------------------------------


def script_catalog(body: str) -> dict:
    """The translations in a JavaScriptCatalog response: msgid -> text (or plural forms)."""
    match = re.search(r"const newcatalog = (\{.*?\n  \});", body, re.S)
    return json.loads(match.group(1)) if match else {}


def test_the_scripts_catalog_is_in_english_at_its_english_url(client):
    response = client.get(reverse("js-catalog", args=["en"]))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Content-Language"] == "en"
    body = response.content.decode()
    catalog = script_catalog(body)
    assert catalog["✓ Tout est envoyé"] == "✓ Everything sent"
    assert catalog["Légende"] == "Legend"
    assert catalog["%(count)s personne"] == ["%(count)s person", "%(count)s people"]
    assert "(n != 1)" in body  # English plural rule


def test_the_scripts_catalog_is_french_by_default_so_the_msgids_show(client):
    response = client.get(reverse("js-catalog", args=[settings.LANGUAGE_CODE]))

    assert response.status_code == 200
    assert response["Content-Language"] == "fr"
    body = response.content.decode()
    assert "django.gettext = function" in body
    catalog = script_catalog(body)
    # gettext() hands back the French it was given; only the plural forms are listed, so
    # that French takes its own rule: the singular for 0 and 1.
    assert all(isinstance(forms, list) for forms in catalog.values())
    assert catalog["%(count)s personne"] == ["%(count)s personne", "%(count)s personnes"]
    assert "(n > 1)" in body
    assert "Everything sent" not in body


def test_french_counts_of_zero_and_one_take_the_singular():
    singular, plural = (
        "%(n)d personne rencontrée ici ces 4 dernières semaines",
        ("%(n)d personnes rencontrées ici ces 4 dernières semaines"),
    )
    with translation.override("fr"):
        forms = [translation.ngettext(singular, plural, n) for n in (0, 1, 2)]
    assert forms == [singular, singular, plural]


@pytest.mark.parametrize(("lang", "asked", "shows"), [("fr", "en", None), ("en", "fr", "Legend")])
def test_the_scripts_catalog_follows_its_url_not_the_browser(client, lang, asked, shows):
    """One URL, one language: the team app's service worker keeps each URL's copy offline."""
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = asked

    body = client.get(reverse("js-catalog", args=[lang]), HTTP_ACCEPT_LANGUAGE=asked).content

    assert script_catalog(body.decode()).get("Légende") == shows


def test_the_scripts_catalog_of_an_unknown_language_is_not_found(client):
    assert client.get("/i18n/js/de/").status_code == 404


# --- The catalog -----------------------------------------------------------------------------


@dataclass
class Entry:
    msgid: str
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)  # plural index -> text; 0 if singular
    flags: set[str] = field(default_factory=set)
    line: int = 0


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), text.strip()[1:-1])


def parse_po(path: Path) -> list[Entry]:
    """The live entries of a .po file (obsolete `#~` ones are skipped), header included."""
    entries: list[Entry] = []
    current: Entry | None = None
    flags: set[str] = set()
    key: tuple[str, int] | None = None  # the field a continuation line extends

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#,"):
            flags |= {flag.strip() for flag in line[2:].split(",")}
            continue
        if not line or line.startswith("#"):
            key = None
            continue
        if line.startswith('"'):
            if current is None or key is None:
                raise AssertionError(f"{path}:{number}: string outside any field")
            name, index, text = key[0], key[1], _unquote(line)
        else:
            match = re.match(r"(msgctxt|msgid_plural|msgid|msgstr)(?:\[(\d+)\])?\s+(\".*\")$", line)
            if not match:
                raise AssertionError(f"{path}:{number}: cannot parse {raw!r}")
            name, index, text = match.group(1), int(match.group(2) or 0), _unquote(match.group(3))
            # An entry starts at its msgctxt, or at its msgid when it has no context.
            if name == "msgctxt" or (name == "msgid" and (current is None or current.msgstr)):
                current = Entry(msgid="", flags=flags, line=number)
                entries.append(current)
                flags = set()
            if current is None:
                raise AssertionError(f"{path}:{number}: {name} before any msgid")
            key = (name, index)
        if name == "msgid":
            current.msgid += text
        elif name == "msgid_plural":
            current.msgid_plural = (current.msgid_plural or "") + text
        elif name == "msgctxt":
            current.msgctxt = (current.msgctxt or "") + text
        else:
            current.msgstr[index] = current.msgstr.get(index, "") + text
    return entries


def messages(po: Path) -> list[Entry]:
    assert po.is_file(), f"{po} is missing: run makemessages (see this module's docstring)"
    return [entry for entry in parse_po(po) if entry.msgid]


def describe(entry: Entry) -> str:
    context = f" [context {entry.msgctxt!r}]" if entry.msgctxt else ""
    return f"  line {entry.line}: {entry.msgid!r}{context}"


@pytest.fixture(params=DOMAINS)
def domain(request) -> str:
    return request.param


@pytest.fixture
def po(domain) -> Path:
    return CATALOG / f"{domain}.po"


def test_the_english_catalog_has_a_proper_header(po):
    header = next(entry for entry in parse_po(po) if not entry.msgid).msgstr[0]

    assert "Language: en\n" in header
    assert "Plural-Forms: nplurals=2; plural=(n != 1);\n" in header
    assert "charset=UTF-8" in header


FRENCH = Path(settings.BASE_DIR) / "locale" / "fr" / "LC_MESSAGES"


def test_the_french_catalog_gives_every_plural_its_french_forms(domain):
    """French is the source language, but its catalog carries the plural entries: without
    them gettext falls back to the English rule and writes "0 personnes"."""
    entries = parse_po(FRENCH / f"{domain}.po")
    header = next(entry for entry in entries if not entry.msgid).msgstr[0]
    assert "Plural-Forms: nplurals=2; plural=(n > 1);\n" in header
    wrong = [
        describe(entry)
        for entry in entries
        if entry.msgid_plural is not None
        and entry.msgstr != {0: entry.msgid, 1: entry.msgid_plural}
    ]
    assert not wrong, (
        "plural entries of the French catalog must copy their msgid and msgid_plural (run "
        "makemessages -l fr, fill them, compilemessages -l fr):\n" + "\n".join(wrong)
    )
    assert {entry.msgid_plural for entry in messages(CATALOG / f"{domain}.po")} == {
        entry.msgid_plural for entry in entries if entry.msgid
    }


def test_every_french_string_has_an_english_translation(po):
    untranslated = []
    for entry in messages(po):
        forms = 2 if entry.msgid_plural is not None else 1
        if any(not entry.msgstr.get(i, "").strip() for i in range(forms)):
            untranslated.append(entry)

    assert not untranslated, (
        f"{len(untranslated)} message(s) without an English translation in {po}:\n"
        + "\n".join(map(describe, untranslated))
    )


def test_no_translation_is_left_fuzzy(po):
    """makemessages marks a guessed translation "fuzzy" when a French string changes; gettext
    ignores those, so the English page would silently show French."""
    fuzzy = [entry for entry in parse_po(po) if "fuzzy" in entry.flags]

    assert not fuzzy, (
        f"{len(fuzzy)} fuzzy entr(y/ies) in {po}: check the translation, then drop the flag:\n"
        + "\n".join(map(describe, fuzzy))
    )


# %(name)s, %d, %(x).0f and {name}: what the code fills in, so what a translation must keep.
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa%]")
_BRACES = re.compile(r"\{[^{}]*\}")


def test_translations_keep_the_placeholders(domain, po):
    broken = []
    for entry in messages(po):
        pattern = _BRACES if "python-brace-format" in entry.flags else _PERCENT
        # The scripts' strings carry no format flag: interpolate() fills every %(name)s.
        if "python-format" not in entry.flags and pattern is _PERCENT and domain != "djangojs":
            continue
        expected = sorted(pattern.findall(entry.msgid))
        for index, text in entry.msgstr.items():
            if not text:
                continue  # untranslated: reported by the test above
            found = sorted(pattern.findall(text))
            if found != expected:
                broken.append(f"{describe(entry)} msgstr[{index}] has {found}, not {expected}")

    assert not broken, "placeholders changed in translation:\n" + "\n".join(broken)


def test_the_compiled_catalog_matches_the_po(po):
    """The committed .mo is what Django serves; compare it with the .po entry by entry (a
    timestamp says nothing after a git checkout)."""
    mo = po.with_suffix(".mo")
    recompile = "run compilemessages -l en --ignore=.venv (see this module's docstring)"
    assert mo.is_file(), f"{mo} is missing: {recompile}"
    with mo.open("rb") as fp:
        compiled = gettext.GNUTranslations(fp)

    stale = []
    for entry in messages(po):
        if "fuzzy" in entry.flags or not all(entry.msgstr.values()):
            continue  # not compiled on purpose; the two tests above report these
        if entry.msgid_plural is None:
            got = {
                0: compiled.pgettext(entry.msgctxt, entry.msgid)
                if entry.msgctxt
                else compiled.gettext(entry.msgid)
            }
        else:
            got = {
                i: compiled.ngettext(entry.msgid, entry.msgid_plural, n)
                for i, n in ((0, 1), (1, 2))
            }
            if entry.msgctxt:
                got = {
                    i: compiled.npgettext(entry.msgctxt, entry.msgid, entry.msgid_plural, n)
                    for i, n in ((0, 1), (1, 2))
                }
        if any(got[i] != entry.msgstr.get(i, "") for i in got):
            stale.append(entry)

    assert not stale, f"{mo} is out of date for {len(stale)} message(s): {recompile}\n" + "\n".join(
        map(describe, stale)
    )
