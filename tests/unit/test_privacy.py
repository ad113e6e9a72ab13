"""Privacy filter: sensitive keys dropped at any depth, personal data masked inside strings,
innocent keys and numbers left alone, the input untouched, the report free of values."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from fincoach.tracking.privacy import is_sensitive_key, mask_text, scrub, scrub_with_report

# (key, sample value) per sensitive family; the values also feed the no-leak test.
SENSITIVE_KEYS = [
    ("password", "hunter2-pw"),
    ("passwd", "pw-passwd-1"),
    ("pwd", "pw-pwd-1"),
    ("passphrase", "correct horse battery"),
    ("userPassword", "pw-camel-1"),
    ("access_token", "tok-access-1"),
    ("refreshToken", "tok-refresh-1"),
    ("auth", "auth-value-1"),
    ("Authorization", "Bearer abc.def.ghi"),
    ("bearer", "bearer-value-1"),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9.e30.sig"),
    ("api_key", "ak-live-123"),
    ("apiKey", "ak-live-456"),
    ("X-Api-Key", "ak-live-789"),
    ("session_token", "st-0001"),
    ("cookie", "sid=cookie-value"),
    ("Set-Cookie", "sid=set-cookie-value"),
    ("client_secret", "cs-secret-1"),
    ("email", "plain-email-value"),
    ("e_mail", "e-mail-value"),
    ("E-Mail", "e-mail-header-value"),
    ("mail", "mail-value"),
    ("userEmail", "user-email-value"),
    ("emailAddress", "email-address-value"),
    ("phone", "phone-value"),
    ("phoneNumber", "phone-number-value"),
    ("mobile", "mobile-value"),
    ("mobile_number", "mobile-number-value"),
    ("telephone", "telephone-value"),
    ("tel", "tel-value"),
    ("msisdn", "msisdn-value"),
    ("card", "card-value"),
    ("cardNumber", "card-number-camel"),
    ("card_number", "card-number-snake"),
    ("credit_card", "credit-card-value"),
    ("creditCard", "credit-card-camel"),
    ("cc", "cc-value"),
    ("ccnum", "ccnum-value"),
    ("pan", "pan-value"),
    ("cvv", "cvv-value"),
    ("cvc", "cvc-value"),
    ("expiry", "expiry-value"),
    ("iban", "iban-value"),
    ("bic", "bic-value"),
    ("swift", "swift-value"),
    ("account_number", "account-number-value"),
    ("routing_number", "routing-number-value"),
    ("sort_code", "sort-code-value"),
    ("ssn", "ssn-value"),
    ("social_security", "social-security-value"),
    ("national_id", "national-id-value"),
    ("tax_id", "tax-id-value"),
    ("passport", "passport-value"),
    ("address", "address-value"),
    ("billing_address", "billing-address-value"),
    ("street", "street-value"),
    ("postcode", "postcode-value"),
    ("zip", "zip-value"),
    ("zipcode", "zipcode-value"),
    ("ip", "ip-value"),
    ("ip_address", "ip-address-value"),
    ("ipAddress", "ip-address-camel"),
    ("IPAddress", "ip-address-acronym"),
    ("remote_addr", "remote-addr-value"),
    ("X-Forwarded-For", "xff-value"),
    ("x_forwarded_for", "xff-snake-value"),
    ("dob", "dob-value"),
    ("date_of_birth", "date-of-birth-value"),
    ("dateOfBirth", "date-of-birth-camel"),
    ("birthdate", "birthdate-value"),
    # issue 14: short credential keys, holders and names
    ("pw", "pw-short-1"),
    ("pass", "pass-short-1"),
    ("user_pass", "pass-user-1"),
    ("passcode", "passcode-value-1"),
    ("holder", "holder-value-1"),
    ("account_holder", "account-holder-1"),
    ("accountHolderName", "account-holder-2"),
    ("first_name", "first-name-1"),
    ("payee_name", "payee-name-1"),
    ("beneficiary", "beneficiary-1"),
]
SENSITIVE_IDS = [key for key, _ in SENSITIVE_KEYS]

INNOCENT_KEYS = [
    "category",
    "page",
    "description",
    "amount",
    "route",
    "duration_ms",
    "session_id",
    "event_id",
    "tipping",  # "ip" only as a whole token
    "recipient",
    "company",  # "pan" only as a whole token
    "expand",
    "hotel",  # "tel" only as a whole token
    "discard",  # "card" only as a whole token
    "cardinality",
    "recommendation_card_id",  # a UI card: "card" needs a qualifier when not alone
    "is_mobile",  # a device class: so does "mobile"
    "bicycle",
    "author",
    "search_query",
    "goal_id",
    "target_amount",
    "merchant",
]

# (id, text, expected); the expected text is what scrub stores.
MASKED_TEXTS = [
    ("email", "write to jane.doe+fin@example.co.uk today", "write to [email] today"),
    ("card-compact", "4111111111111111", "[card]"),
    ("card-spaced", "paid with 4111 1111 1111 1111 exp 12/27", "paid with [card] exp 12/27"),
    ("card-dashed", "5500-0000-0000-0004", "[card]"),
    ("card-amex-layout", "3782 822463 10005", "[card]"),
    ("card-after-number", "qty 5 4111 1111 1111 1111", "qty 5 [card]"),
    ("iban-spaced", "IBAN DE89 3704 0044 0532 0130 00.", "IBAN [iban]."),
    ("iban-compact", "GB82WEST12345698765432", "[iban]"),
    ("iban-then-number", "BE68 5390 0754 7034 2026", "[iban] 2026"),
    ("phone-e164", "call +14155552671", "call [phone]"),
    ("phone-intl-spaced", "+44 20 7946 0958", "[phone]"),
    ("phone-parens", "(555) 123-4567", "[phone]"),
    ("phone-dashed", "555-123-4567", "[phone]"),
    ("phone-intl-parens", "+1 (555) 123-4567", "[phone]"),
    ("ipv4", "from 192.168.10.254.", "from [ip]."),
    ("ipv6", "client 2001:db8::8a2e:370:7334", "client [ip]"),
    ("ipv6-full", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "[ip]"),
    ("ipv4-mapped-ipv6", "::ffff:192.0.2.1", "[ip]"),
    # issue 14: what the first filter missed
    ("ssn-dashed", "ssn 123-45-6789 on file", "ssn [ssn] on file"),
    ("ssn-spaced", "123 45 6789", "[ssn]"),
    ("card-dots", "4111.1111.1111.1111", "[card]"),
    ("card-slashes", "4111/1111/1111/1111", "[card]"),
    ("card-nbsp", "4111\u00a01111\u00a01111\u00a01111", "[card]"),
    ("card-narrow-nbsp", "4111\u202f1111\u202f1111\u202f1111", "[card]"),
    ("card-after-comma", "paid,4111111111111111", "paid,[card]"),
    ("card-before-decimal", "4111 1111 1111 1111 and 1.5", "[card] and 1.5"),
    ("phone-uk-mobile", "ring 07700 900123", "ring [phone]"),
    ("phone-uk-mobile-bare", "07700900123", "[phone]"),
    ("phone-uk-london", "020 7946 0958", "[phone]"),
    ("phone-uk-parens", "(020) 7946 0958", "[phone]"),
    ("phone-uk-intl", "+44 7700 900123", "[phone]"),
    ("iban-lowercase", "gb82west12345698765432", "[iban]"),
    ("iban-lowercase-spaced", "de89 3704 0044 0532 0130 00", "[iban]"),
    ("email-idn-domain", "jose@bücher.de", "[email]"),
    ("email-idn-local", "josé.müller@example.com", "[email]"),
    ("email-cjk", "用户@例子.中国", "[email]"),
    ("email-fullwidth-at", "jane＠example.com", "[email]"),
    ("email-end-of-sentence", "mail jane@example.com.", "mail [email]."),
    (
        "several",
        "jane@example.com, +14155552671, 10.0.0.1",
        "[email], [phone], [ip]",
    ),
]

UNMASKED_TEXTS = [
    ("luhn-invalid-16", "1234567812345678"),
    ("luhn-invalid-spaced", "4111 1111 1111 1112"),
    ("amount", "1234.56"),
    ("amount-grouped", "12,345.67 USD"),
    ("year", "2026"),
    ("date", "2026-11-24"),
    ("date-range", "2026-11-24 2026-12-01"),
    ("iso-timestamp", "2026-11-24T10:15:30+00:00"),
    ("iso-timestamp-micro", "2026-11-24T10:15:30.123456Z"),
    ("uuid", "123e4567-e89b-12d3-a456-426614174000"),
    ("uuid-digits", "12345678-1234-1234-9456-426614174000"),
    ("uuid-hex", "0f8fad5bd9cb469fa16570867728950e"),
    ("epoch-ms", "1732456789012"),
    ("time", "10:15:30"),
    ("bad-iban-checksum", "DE00 3704 0044 0532 0130 00"),
    ("short-number", "+1234"),
    ("mac-address", "00:1a:2b:3c:4d:5e"),
    ("version", "v1.2.3"),
    ("words", "grocery run at the farmers market"),
    ("bare-id-10", "0123456789"),
    ("padded-id", "00012345678"),
    ("ip-like-version", "1.2.3"),
    ("word-like-iban", "ab12 abcd efgh ijkl"),
    ("date-slashes", "24/11/2026"),
    ("date-dots", "24.11.2026"),
    ("amount-dots", "1.234.567,89"),
]


@pytest.mark.parametrize(("key", "value"), SENSITIVE_KEYS, ids=SENSITIVE_IDS)
def test_scrub_drops_sensitive_key_at_top_level(key: str, value: str) -> None:
    out = scrub({key: value, "category": "groceries"})
    assert out == {"category": "groceries"}


@pytest.mark.parametrize(("key", "value"), SENSITIVE_KEYS, ids=SENSITIVE_IDS)
def test_scrub_drops_sensitive_key_nested_in_list_in_dict(key: str, value: str) -> None:
    data = {"items": [{"sku": "A1", "details": {key: value, "page": 2}}], "page": 1}
    out = scrub(data)
    assert out == {"items": [{"sku": "A1", "details": {"page": 2}}], "page": 1}


@pytest.mark.parametrize("key", INNOCENT_KEYS)
def test_scrub_keeps_innocent_key(key: str) -> None:
    assert not is_sensitive_key(key)
    assert scrub({key: "x", "nested": {key: 1}}) == {key: "x", "nested": {key: 1}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [(text, expected) for _, text, expected in MASKED_TEXTS],
    ids=[case_id for case_id, _, _ in MASKED_TEXTS],
)
def test_scrub_masks_personal_data_in_strings(text: str, expected: str) -> None:
    assert scrub({"note": text}) == {"note": expected}
    assert scrub({"a": [{"b": [text]}]}) == {"a": [{"b": [expected]}]}


@pytest.mark.parametrize(
    "text", [text for _, text in UNMASKED_TEXTS], ids=[i for i, _ in UNMASKED_TEXTS]
)
def test_scrub_leaves_numbers_dates_and_ids_alone(text: str) -> None:
    assert mask_text(text) == (text, [])
    assert scrub({"note": text, "list": [text]}) == {"note": text, "list": [text]}


def test_scrub_keeps_non_string_values() -> None:
    data = {"amount": 4111111111111112, "ratio": 0.5, "ok": True, "none": None, "n": [1, 2]}
    assert scrub(data) == data


def test_scrub_drops_key_that_is_itself_personal_data() -> None:
    out, report = scrub_with_report({"prefs": {"jane@example.com": True, "theme": "dark"}})
    assert out == {"prefs": {"theme": "dark"}}
    assert report == ["dropped:prefs.[email]"]


def test_scrub_does_not_mutate_input() -> None:
    data: dict[str, Any] = {
        "email": "jane@example.com",
        "note": "card 4111111111111111",
        "items": [{"phone": "+14155552671", "tags": ["ip 10.0.0.1"]}],
    }
    before = copy.deepcopy(data)
    out = scrub(data)
    assert data == before
    assert out is not data
    assert out["items"] is not data["items"]
    assert out["items"][0] is not data["items"][0]


def test_scrub_report_names_paths_and_kinds_without_values() -> None:
    data = {
        "email": "jane@example.com",
        "route": "/goals",
        "items": [
            {"card_number": "4111111111111111", "note": "paid 4111 1111 1111 1111"},
            {"tags": ["ok", "from 192.168.0.1 or +14155552671"]},
        ],
        "profile": {"billing": {"street": "1 Main St"}},
    }
    out, report = scrub_with_report(data)
    assert out == {
        "route": "/goals",
        "items": [{"note": "paid [card]"}, {"tags": ["ok", "from [ip] or [phone]"]}],
        "profile": {"billing": {}},
    }
    assert sorted(report) == sorted(
        [
            "dropped:email",
            "dropped:items[0].card_number",
            "masked:card:items[0].note",
            "masked:ip:items[1].tags[1]",
            "masked:phone:items[1].tags[1]",
            "dropped:profile.billing.street",
        ]
    )
    text = json.dumps(report)
    for secret in ("jane@example.com", "4111", "192.168", "+1415", "Main St"):
        assert secret not in text


def test_scrub_report_is_empty_for_clean_data() -> None:
    data = {"page": "/coaching", "duration_ms": 120, "filters": [{"category": "groceries"}]}
    assert scrub_with_report(data) == (data, [])


def test_scrubbed_output_contains_no_sensitive_sample_value() -> None:
    masked_samples = [text for _, text, _ in MASKED_TEXTS]
    data = {
        "event": "checkout",
        "top": dict(SENSITIVE_KEYS),
        "nested": [{"deeper": dict(SENSITIVE_KEYS), "notes": masked_samples}],
        "notes": masked_samples,
    }
    out = scrub(data)
    text = json.dumps(out, ensure_ascii=False)
    leaked = [value for _, value in SENSITIVE_KEYS if value in text]
    assert leaked == []
    pii = [
        "jane.doe+fin@example.co.uk",
        "4111111111111111",
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "3782 822463 10005",
        "DE89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432",
        "BE68 5390 0754 7034",
        "+14155552671",
        "+44 20 7946 0958",
        "(555) 123-4567",
        "555-123-4567",
        "192.168.10.254",
        "2001:db8::8a2e:370:7334",
        "::ffff:192.0.2.1",
        "10.0.0.1",
    ]
    assert [value for value in pii if value in text] == []
    assert out["event"] == "checkout"


def test_scrub_masks_a_card_sent_as_a_json_number() -> None:
    out, report = scrub_with_report({"n": 4111111111111111, "qty": 3, "ts": 1732456789012})
    assert out == {"n": "[card]", "qty": 3, "ts": 1732456789012}
    assert report == ["masked:card:n"]


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("Jane Doe", True),
        ("José María López", True),
        ("Mary-Ann O'Neil", True),
        ("Emergency fund", False),
        ("Trip", False),
        ("groceries", False),
        ("Goal 2027", False),
    ],
)
def test_scrub_masks_a_person_under_a_name_key(value: str, masked: bool) -> None:
    out = scrub({"name": value, "goal": {"name": value}})
    expected = "[name]" if masked else value
    assert out == {"name": expected, "goal": {"name": expected}}


def test_scrub_replaces_an_unboundedly_long_string_whole() -> None:
    from fincoach.tracking.privacy import MAX_SCAN_CHARS

    text = "a " * MAX_SCAN_CHARS
    assert mask_text(text) == ("[too_long]", ["too_long"])


# The worst inputs we know per pattern: runs that almost match and fail at the very end, which
# a backtracking pattern retries from every position inside them (quadratic time).
ADVERSARIAL = {
    "digit-groups-then-decimal": "1 " * 4000 + "1.5",
    "dash-groups-then-decimal": "1-" * 4000 + "1.5",
    "dot-groups-then-letter": "1." * 4000 + "1a",
    "nbsp-groups": "1\u00a0" * 4000 + "x",
    "email-local-no-at": "a." * 4000,
    "email-domain-no-tld": "a@" + "b." * 4000 + "1",
    "email-many-ats": "a@" * 4000,
    "iban-like": "DE89 " * 1600,
    "phone-plus": "+1 " * 2700,
    "ipv6-colons": "1:" * 4000,
    "ipv4-dots": "1." * 4000,
    "uk-phone": "01 " * 2700,
    "ssn": "123-45-" * 1100,
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_scrub_time_is_linear_in_the_text(text: str) -> None:
    """Doubling the input at most ~doubles the time (a quadratic pattern quadruples it). Times
    are the minimum of a few runs; the bound is generous so a busy machine does not fail it.
    bench/scrub_bench.py measures the absolute times (bench/RESULTS.md)."""
    import time

    def best(t: str) -> float:
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            mask_text(t)
            runs.append(time.perf_counter() - start)
        return min(runs)

    small, large = best(text[: len(text) // 4]), best(text)
    assert large < max(small * 12, 0.002), (small, large)
