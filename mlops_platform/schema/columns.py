"""Column names as tenants' data has them, and the restricted names derived from them.

A tenant keys its features and target by the source column names exactly as they appear in its data:
spaces, slashes, dots and any Unicode letters included. Where a service restricts names (Glue and
Athena columns, XGBoost feature names, CloudWatch metric dimensions, Parquet columns of the curated
zone), the platform uses :func:`restricted_name` of the source name instead:

1. Unicode compatibility decomposition (NFKD), accents and other non-ASCII marks dropped;
2. lower case;
3. every run of characters other than ``a-z`` and ``0-9`` becomes one ``_``, and ``_`` at either end
   is dropped;
4. a name that is then empty or starts with a digit gets the prefix ``c_``;
5. cut to :data:`MAX_RESTRICTED_LENGTH` characters.

So ``mean radius`` becomes ``mean_radius`` and ``od280/od315_of_diluted_wines`` becomes
``od280_od315_of_diluted_wines``. Two source names of one dataset that derive the same name are
refused at synth (:func:`restricted_names`), never merged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

MAX_SOURCE_LENGTH = 255
# Athena and Glue accept 255; 128 leaves room for the prefixes and suffixes the platform adds.
MAX_RESTRICTED_LENGTH = 128

_OTHER = re.compile(r"[^a-z0-9]+")


def source_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a source column name, in words; ``None`` when it can."""
    if not name.strip():
        return "a column name must contain at least one character other than spaces"
    if len(name) > MAX_SOURCE_LENGTH:
        return f"a column name must be at most {MAX_SOURCE_LENGTH} characters long, not {len(name)}"
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in name):
        return "a column name must not contain control characters such as line breaks or tabs"
    return None


def restricted_name(source: str) -> str:
    """The name services that restrict names see for the source column ``source`` (see the module)."""
    ascii_text = unicodedata.normalize("NFKD", source).encode("ascii", "ignore").decode("ascii")
    name = _OTHER.sub("_", ascii_text.lower()).strip("_")
    if not name or name[0].isdigit():
        name = f"c_{name}"
    return name[:MAX_RESTRICTED_LENGTH]


def restricted_names(sources: Iterable[str]) -> dict[str, str]:
    """Each source name's restricted name; raises ``ValueError`` (one sentence) when two collide."""
    names: dict[str, str] = {}
    owners: dict[str, str] = {}
    for source in sources:
        problem = source_name_problem(source)
        if problem:
            raise ValueError(f"column {source!r} cannot be used: {problem}")
        name = restricted_name(source)
        if name in owners:
            raise ValueError(
                f"columns {owners[name]!r} and {source!r} would both be named {name!r} where names are "
                "restricted (lowercase letters, digits and underscores); rename one of them"
            )
        owners[name] = source
        names[source] = name
    return names
