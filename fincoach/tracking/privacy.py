"""Privacy filter for ``event_data``: drop sensitive keys, mask personal data inside strings.

Keys: see ``sensitive_keys.is_sensitive_key``.

Values are masked inside strings, in this order (earlier patterns protect their digits from
later ones): e-mail (internationalised letters, full-width "@"), IBAN (any case, known country,
mod-97 checked), US SSN (3-2-4), card number (13-19 digits, Luhn checked, first digit 2-9 so that
millisecond epoch timestamps are left alone; groups separated by spaces, non-breaking spaces,
dashes, dots or slashes must follow a card layout, so two dates in a row are not a card), IPv6,
IPv4, phone (``+`` and 8-15 digits, the North American ``(555) 123-4567`` / ``555-123-4567`` /
``555.123.4567`` forms, UK national ``020 7946 0958`` / ``07700 900123``). Bare digit runs
without a ``+`` or separators are never phone numbers (they are as likely ids), except a UK
mobile ``07...``. UUIDs are never masked. A card sent as a JSON number is masked too, and a
person's name (two to four capitalised words) under a bare ``name`` key.

Every pattern runs in linear time and a string over MAX_SCAN_CHARS is replaced whole, so the
work per event is bounded (bench/scrub_bench.py measures the worst inputs we know).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from fincoach.tracking.sensitive_keys import is_sensitive_key, key_tokens

# ---- value masks -------------------------------------------------------------------------

# Every value pattern runs in time linear in the text: runs are matched possessively (``++``,
# ``*+``) or atomically so that a failed candidate is never retried shorter, and lookbehinds
# keep a pattern from starting again inside a run it already rejected. A string longer than
# MAX_SCAN_CHARS is not scanned at all: it is replaced whole (events cap event_data at 8 KB, so
# only other callers can meet it).
MAX_SCAN_CHARS: Final = 16_384
# Full-width and small commercial at signs, and dots some keyboards type in place of ".".
_AT = "@\uff20\ufe6b"
_DOT = ".\uff0e\u3002\uff61"
# Local part and domain labels take any letter or digit (internationalised addresses); the
# top-level domain is letters only, so "v1.2@3.4" is not an address.
_EMAIL = re.compile(
    rf"(?<![\w.%+\-{_DOT}])[\w%+\-]++(?:[{_DOT}][\w%+\-]++)*+[{_AT}]"
    rf"(?:[^\W_][\w\-]*+[{_DOT}](?=[^\W_]))++[^\W\d_]{{2,}}+(?![\w\-])"
)
# Either compact (11-30 BBAN characters) or printed in groups of four, any case; the mod-97
# check (1 in 97 random strings pass) and a known country code keep ordinary words out.
_IBAN = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}"
    r"(?:[A-Za-z0-9]{11,30}+|(?: [A-Za-z0-9]{4}){2,7}+(?: [A-Za-z0-9]{1,4})?+)"
    r"(?![A-Za-z0-9])"
)
_IBAN_COUNTRIES: Final = frozenset(
    "AD AE AL AT AZ BA BE BG BH BI BR BY CH CR CY CZ DE DJ DK DO EE EG ES FI FK FO FR GB GE GI "
    "GL GR GT HR HU IE IL IQ IS IT JO KW KZ LB LC LI LT LU LV LY MC MD ME MK MN MR MT MU NI NL "
    "NO OM PK PL PS PT QA RO RS RU SA SC SD SE SI SK SM SO ST SV TL TN TR UA VA VG XK YE".split()
)
# US social security numbers, printed 3-2-4 (area 000, 666 and 9xx are never issued).
_SSN = re.compile(
    r"(?<![\w\-.])(?!000|666|9)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w\-])(?!\.\d)"
)
# A maximal run of digit groups separated by one space (ordinary or non-breaking), dash, dot or
# slash, not part of a word; the cards inside it are found by _replace_cards. It starts only
# where no run continues from the left, so a rejected run costs its length once.
_RUN_SEPARATORS = " \u00a0\u202f\u2007./\\-"
_DIGIT_RUN = re.compile(
    rf"(?<!\w)(?<!\d[{_RUN_SEPARATORS}])\d++(?:[{_RUN_SEPARATORS}]\d++)*+(?!\w)"
)
_RUN_SEPARATOR = re.compile(rf"([{_RUN_SEPARATORS}])")
# Printed card layouts besides groups of four (the last may be shorter): Amex 4-6-5, Diners 4-6-4.
_CARD_LAYOUTS: Final = ((4, 6, 5), (4, 6, 4))
# UUIDs are ids, never personal data; they are left out of every mask.
_UUID = re.compile(
    r"(?<![0-9A-Fa-f-])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    r"(?![0-9A-Fa-f-])"
)
_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    r"(?!\w)(?!\.\d)"
)
# Atomic, so that an invalid candidate is not retried as a shorter (valid) prefix.
_IPV6_CANDIDATE = re.compile(
    r"(?<![\w:.])(?>[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[\d.]{1,15})?(?:%[\w.]{1,32})?)"
    r"(?![\w:])"
)
_PHONE = re.compile(
    r"(?<![\w+])\+\d(?:[ -]?\(?\d\)?){7,14}+(?!\w)(?![-.]\d)"  # international, 8-15 digits
    r"|(?<![\w(])(?:\(\d{3}\) ?|\d{3}([-. ]))\d{3}(?(1)\1|[-. ])\d{4}(?!\w)(?![-.]\d)"
    # UK national numbers: 0 then 9-10 digits, as 0xx(x)(x) xxx(x) xxx(x) or (0xx) xxxx xxxx;
    # a leading 00 is a padded id, not a phone number.
    r"|(?<![\w(+])(?:\(0[1-9]\d{1,3}\)|0[1-9]\d{1,3})[ -]?\d{3,4}(?:[ -]?\d{3,4})?"
    r"(?!\w)(?![-.]\d)"
)
# A person's name as the value of a bare ``name`` key: two to four words of letters, each
# capitalised ("Jane Doe", "José María López"); "Emergency fund" and "trip" are kept.
_NAME_WORDS = re.compile(r"[^\W\d_]++(?:['’\-][^\W\d_]++)*+")
_NAME_KEYS: Final = frozenset({"name", "names", "displayname", "nickname"})


def _looks_like_a_person(value: str) -> bool:
    words = value.split()
    return (
        2 <= len(words) <= 4
        and len(value) <= 100
        and all(_NAME_WORDS.fullmatch(w) and w[0].isupper() for w in words)
    )


_DIGIT = re.compile(r"\d")


_DOUBLED: Final = str.maketrans("0123456789", "0246813579")  # digit * 2, digits summed


def _luhn_ok(digits: str) -> bool:
    total = sum(map(int, digits[-1::-2])) + sum(map(int, digits[-2::-2].translate(_DOUBLED)))
    return total % 10 == 0


def _is_card(groups: list[str]) -> bool:
    if len(groups) > 1:
        sizes = tuple(len(g) for g in groups)
        fours = all(n == 4 for n in sizes[:-1]) and 1 <= sizes[-1] <= 4
        if not fours and sizes not in _CARD_LAYOUTS:
            return False  # e.g. two dates, "2026-11-24 2026-12-01"
    digits = "".join(groups)
    # No issuer uses a leading 0 or 1 (1 is UATP, airline-only); epoch milliseconds start with 1.
    return 13 <= len(digits) <= 19 and digits[0] not in "01" and _luhn_ok(digits)


def _replace_cards(run: str) -> str | None:
    """``run`` with each card number in it masked (leftmost, then longest first), or None."""
    parts = _RUN_SEPARATOR.split(run)  # digits, sep, digits, sep, ...
    groups, seps = parts[::2], parts[1::2]
    out: list[str] = []
    found = False
    i = 0
    while i < len(groups):
        # Every layout starts with a group of four, or is one group of 13-19 digits.
        end = i
        if len(groups[i]) == 4 or 13 <= len(groups[i]) <= 19:
            n_digits = 0
            while end < len(groups) and n_digits + len(groups[end]) <= 19:
                n_digits += len(groups[end])
                end += 1
        for j in range(end, i, -1):  # groups[i:j]
            if _is_card(groups[i:j]):
                out.append("[card]")
                if j < len(groups):
                    out.append(seps[j - 1])
                found, i = True, j
                break
        else:
            out.append(groups[i])
            if i < len(seps):
                out.append(seps[i])
            i += 1
    return "".join(out) if found else None


def _replace_iban(candidate: str) -> str | None:
    """The longest prefix of ``candidate`` (whole groups) that passes mod-97, masked."""
    if candidate[:2].upper() not in _IBAN_COUNTRIES:
        return None
    groups = candidate.split(" ")
    for n in range(len(groups), 0, -1):
        iban = "".join(groups[:n])
        if 15 <= len(iban) <= 34 and _mod97_ok(iban):
            rest = " ".join(groups[n:])
            return "[iban]" + (" " + rest if rest else "")
    return None


def _mod97_ok(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _replace_ipv6(candidate: str) -> str | None:
    if not any(ch not in ":." for ch in candidate):
        return None
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return None
    return "[ip]"


def _replace_phone(candidate: str) -> str | None:
    digits = len(_DIGIT.findall(candidate))
    if candidate.startswith("+"):
        return "[phone]" if 8 <= digits <= 15 else None
    if candidate.startswith(("0", "(0")):
        # UK national: 10 or 11 digits; without separators only a mobile (07...), since other
        # bare digit runs are as likely ids.
        if not 10 <= digits <= 11:
            return None
        if candidate.isdigit() and not candidate.startswith("07"):
            return None
    return "[phone]"


def _always(kind: str) -> Callable[[str], str | None]:
    return lambda _: f"[{kind}]"


# (kind, candidate pattern, candidate -> replacement or None to keep it). Order matters: an
# e-mail or IBAN holds digit runs a later pattern would take for a card or phone number.
_MASKS: Final[tuple[tuple[str, re.Pattern[str], Callable[[str], str | None]], ...]] = (
    ("email", _EMAIL, _always("email")),
    ("iban", _IBAN, _replace_iban),
    ("ssn", _SSN, _always("ssn")),
    ("card", _DIGIT_RUN, _replace_cards),
    ("ip", _IPV6_CANDIDATE, _replace_ipv6),
    ("ip", _IPV4, _always("ip")),
    ("phone", _PHONE, _replace_phone),
)


def _mask_segment(text: str, kinds: list[str]) -> str:
    for kind, pattern, replacement in _MASKS:

        def replace(m: re.Match[str], kind: str = kind, replacement: Any = replacement) -> str:
            new: str | None = replacement(m.group(0))
            if new is None:
                return m.group(0)
            if kind not in kinds:
                kinds.append(kind)
            return new

        text = pattern.sub(replace, text)
    return text


def mask_text(text: str) -> tuple[str, list[str]]:
    """``text`` with personal data replaced by ``[kind]``, and the kinds found (each once).

    A text longer than MAX_SCAN_CHARS is replaced whole by ``[too_long]``: the work per string
    stays bounded and nothing unscanned is kept."""
    if len(text) > MAX_SCAN_CHARS:
        return "[too_long]", ["too_long"]
    kinds: list[str] = []
    parts: list[str] = []
    start = 0
    for m in _UUID.finditer(text):
        parts.append(_mask_segment(text[start : m.start()], kinds))
        parts.append(m.group(0))
        start = m.end()
    parts.append(_mask_segment(text[start:], kinds))
    return "".join(parts), kinds


# ---- the walk ----------------------------------------------------------------------------


def _child_path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _scrub_value(value: Any, path: str, report: list[str]) -> Any:
    if isinstance(value, str):
        masked, kinds = mask_text(value)
        report.extend(f"masked:{kind}:{path or '$'}" for kind in kinds)
        return masked
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        # A card number sent as a JSON number.
        digits = str(value)
        if 13 <= len(digits) <= 19 and _is_card([digits]):
            report.append(f"masked:card:{path or '$'}")
            return "[card]"
        return value
    if isinstance(value, Mapping):
        return _scrub_mapping(value, path, report)
    if isinstance(value, list | tuple):
        return [_scrub_value(item, f"{path}[{i}]", report) for i, item in enumerate(value)]
    return value


def _scrub_mapping(data: Mapping[Any, Any], path: str, report: list[str]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for key, value in data.items():
        name = str(key)
        masked_name, kinds = mask_text(name)
        if kinds:
            # The key itself is personal data: report its kind, never its text.
            report.append(f"dropped:{_child_path(path, masked_name)}")
            continue
        if is_sensitive_key(name):
            report.append(f"dropped:{_child_path(path, name)}")
            continue
        child = _child_path(path, name)
        if isinstance(value, str) and "".join(key_tokens(name)) in _NAME_KEYS:
            if _looks_like_a_person(value):
                report.append(f"masked:name:{child}")
                out[key] = "[name]"
                continue
        out[key] = _scrub_value(value, child, report)
    return out


def scrub_with_report(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A scrubbed copy of ``data`` and what was removed, without the values.

    Report entries are ``dropped:<key path>`` and ``masked:<kind>:<key path>`` with paths
    like ``items[0].note``; ``data`` is not modified.
    """
    report: list[str] = []
    return _scrub_mapping(data, "", report), report


def scrub(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with sensitive keys dropped and personal data masked in strings."""
    return scrub_with_report(data)[0]
