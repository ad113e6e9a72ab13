"""Which ``event_data`` keys name personal data or a credential.

Keys are matched after normalisation: camelCase and acronyms are split (``ipAddress`` and
``IPAddress`` both give ``ip address``), ``-``, ``_``, ``.`` and spaces separate tokens, and all
is lowercased. A key is sensitive when

* a run of adjacent tokens joined together equals a *token term* (``ip``, ``pan``, ``tel``,
  ``api key`` -> ``apikey``, ``e_mail`` -> ``email``, ``date of birth``); terms this short
  never match inside a longer word, so ``tipping``, ``recipient``, ``company``, ``expand``,
  ``hotel``, ``discard`` and ``bicycle`` are kept;
* its tokens joined together contain a *substring term*, reserved for words long and specific
  enough to be unambiguous (``password``, ``token``, ``secret``, ``email``, ``address``,
  ``passport``, ``creditcard``), so ``userEmail``, ``billingaddress`` and ``csrftoken`` go;
* ``card`` or ``mobile`` stands alone or next to a qualifier (``cardNumber``, ``credit_card``,
  ``card_cvv``, ``mobile_phone``). In other compounds they name UI cards and device classes,
  so ``recommendation_card_id`` and ``is_mobile`` are kept; the value masks still catch a card
  or phone number stored under such a key.

A key that itself looks like personal data (an e-mail address, a card number used as a key)
is dropped too; in the report it appears as its kind, e.g. ``prefs.[email]``.
"""

from __future__ import annotations

import re
from typing import Final

# Matched only as whole adjacent-token runs; plurals are listed explicitly.
_TOKEN_TERMS: Final = frozenset(
    {
        # credentials
        "pw", "pwd", "pass", "passwd", "passcode", "pword", "pin", "auth", "oauth", "bearer",
        "jwt", "jwts", "apikey", "apikeys", "privatekey", "otp",
        # contact
        "mail", "mails", "phone", "phones", "tel", "msisdn",
        # card
        "pan", "cc", "ccnum", "ccnumber", "cvv", "cvv2", "cvc", "cvc2", "expiry", "last4",
        # bank
        "iban", "ibans", "bic", "swift", "accountnumber", "accountno", "accountnum", "acctno",
        "acctnumber", "routingnumber", "routingno", "sortcode",
        # identity
        "ssn", "ssns", "nino", "nationalid", "taxid", "firstname", "lastname",
        "fullname", "surname", "givenname", "familyname", "middlename", "maidenname",
        "holder", "holders", "holdername", "accountholder", "accountname", "payeename",
        "beneficiary", "beneficiaryname", "customername", "username", "realname",
        "legalname",
        # location
        "addr", "street", "postcode", "postcodes", "postalcode", "zip", "zipcode",
        # network
        "ip", "ips", "ipv4", "ipv6", "remoteaddr", "xforwardedfor", "forwardedfor", "xrealip",
        # birth
        "dob", "birth", "birthdate", "birthday", "dateofbirth",
    }
)  # fmt: skip
# Matched anywhere in the joined tokens: long, unambiguous words only.
_SUBSTRING_TERMS: Final = (
    "password", "passwd", "passphrase", "secret", "token", "authorization", "cookie",
    "credential", "email", "telephone", "phonenumber", "msisdn", "creditcard", "debitcard",
    "cardnumber", "cardholder", "accountholder", "iban", "accountnumber", "routingnumber",
    "socialsecurity", "nationalinsurance", "passport", "address", "dateofbirth",
)  # fmt: skip
# Words that are sensitive alone or next to a qualifier, innocent in other compounds.
_QUALIFIED_TERMS: Final[dict[str, frozenset[str]]] = {
    "card": frozenset(
        {"number", "num", "no", "nr", "credit", "debit", "payment", "bank", "holder",
         "security", "code", "pan", "cvv", "cvc", "expiry", "exp", "expiration", "last4"}
    ),
    "mobile": frozenset({"number", "num", "no", "nr", "phone", "tel"}),
}  # fmt: skip

_LONGEST_TOKEN_TERM: Final = max(map(len, _TOKEN_TERMS))

_CAMEL_1 = re.compile(r"([a-z0-9])([A-Z])")
_CAMEL_2 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")


def key_tokens(key: str) -> list[str]:
    spaced = _CAMEL_2.sub(r"\1 \2", _CAMEL_1.sub(r"\1 \2", key))
    return [t.lower() for t in _SEPARATORS.split(spaced) if t]


def is_sensitive_key(key: str) -> bool:
    """Whether a key names personal data or a credential (see the module docstring)."""
    tokens = key_tokens(key)
    if not tokens:
        return False
    joined = "".join(tokens)
    if any(term in joined for term in _SUBSTRING_TERMS):
        return True
    for start in range(len(tokens)):
        run = ""
        for token in tokens[start:]:
            run += token
            if len(run) > _LONGEST_TOKEN_TERM:  # keeps a key of thousands of tokens linear
                break
            if run in _TOKEN_TERMS:
                return True
    for term, qualifiers in _QUALIFIED_TERMS.items():
        plural = term + "s"
        if term in tokens or plural in tokens:
            others = {t for t in tokens if t not in (term, plural)}
            if not others or others & qualifiers:
                return True
    return False
