"""Restricted names derived from tenants' column names (mlops_platform/schema/columns.py)."""

import pytest

from mlops_platform.schema.columns import restricted_name, restricted_names


@pytest.mark.parametrize(
    ("source", "restricted"),
    [
        ("mean radius", "mean_radius"),
        ("od280/od315_of_diluted_wines", "od280_od315_of_diluted_wines"),
        ("Prix (€) TTC", "prix_ttc"),
        ("Ünïcode.Spalte", "unicode_spalte"),
        ("1st payment", "c_1st_payment"),
        ("日付", "c_"),
        ("x" * 300, "x" * 128),
    ],
)
def test_a_source_name_derives_one_restricted_name(source: str, restricted: str) -> None:
    assert restricted_name(source) == restricted


def test_two_names_that_derive_the_same_name_are_refused_in_one_sentence() -> None:
    with pytest.raises(ValueError, match=r"^columns 'a b' and 'A-B' would both be named 'a_b' .*rename one of them$"):
        restricted_names(["a b", "A-B"])


@pytest.mark.parametrize(("source", "words"), [("  ", "other than spaces"), ("a\nb", "control characters")])
def test_an_unusable_source_name_is_refused_in_words_not_a_pattern(source: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as refused:
        restricted_names([source])
    assert "[" not in str(refused.value)
