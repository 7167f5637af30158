"""Usernames nobody may take, and what makes two names look alike.

``skeleton(name)`` is what a name looks like, after the idea of Unicode TR39's skeleton
(https://www.unicode.org/reports/tr39/#Confusable_Detection): NFKC (fullwidth and other
compatibility forms become their plain letters), casefold, accents dropped (NFD, then without
combining marks), and each letter of ``LOOKALIKES`` replaced by the Latin letter it imitates.
Two names with the same skeleton are the same name for sign-up and renames. The table is ours:
PyPI's candidates (confusable-homoglyphs, whose last release is 2024-01, and confusables, 2021-03)
detect mixed scripts or list variants but offer no skeleton to compare two names with, so a small
documented table of the common Cyrillic and Greek look-alikes (and 0/1 for o/l) does it.

``RESERVED_USERNAMES``: the service account's name (setting TASKS OWNER) and these names, whose
owner users would take for the operators of the server. Documented in README (Accounts).
"""

import unicodedata

from django.conf import settings

RESERVED_USERNAMES = frozenset(
    {
        "admin",
        "administrator",
        "root",
        "system",
        "support",
        "staff",
        "taskhub",
        "superuser",
        "operator",
        "security",
        "postmaster",
        "webmaster",
        "hostmaster",
        "abuse",
        "noreply",
        "no-reply",
        "celery",
        "service",
        "django-tasks",
    }
)

# Letters of other scripts that render like a Latin letter, and digits that pass for letters.
LOOKALIKES = str.maketrans(
    {
        # Cyrillic
        "а": "a",
        "в": "b",
        "с": "c",
        "ԁ": "d",
        "е": "e",
        "ё": "e",
        "һ": "h",
        "і": "i",
        "ї": "i",
        "ј": "j",
        "к": "k",
        "ӏ": "l",
        "м": "m",
        "н": "h",
        "о": "o",
        "р": "p",
        "ԛ": "q",
        "ѕ": "s",
        "т": "t",
        "у": "y",
        "ԝ": "w",
        "х": "x",
        "ү": "y",
        # Greek
        "α": "a",
        "β": "b",
        "ε": "e",
        "η": "n",
        "ι": "i",
        "κ": "k",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "χ": "x",
        "ω": "w",
        # Latin and digits
        "ı": "i",
        "ł": "l",
        "0": "o",
        "1": "l",
        "|": "l",
    }
)


def skeleton(name: str) -> str:
    """What ``name`` looks like: equal skeletons are names a reader cannot tell apart."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    bare = "".join(c for c in unicodedata.normalize("NFD", folded) if not unicodedata.combining(c))
    looks = unicodedata.normalize("NFC", bare).translate(LOOKALIKES)
    return looks.replace("rn", "m").replace("vv", "w")


def reserved_skeletons() -> frozenset[str]:
    owner = settings.TASKS.get("default", {}).get("OPTIONS", {}).get("OWNER", "django-tasks")
    return frozenset(skeleton(name) for name in {*RESERVED_USERNAMES, owner})


def is_reserved(name: str) -> bool:
    return skeleton(name) in reserved_skeletons()
