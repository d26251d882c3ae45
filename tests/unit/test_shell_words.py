from __future__ import annotations

import random
import shlex

import pytest

from workers.shell_words import shell_words


@pytest.mark.parametrize("line", [
    "", "  ", "a b\tc\r\nd", "'a b' \"c d\"", "a'b c'd", "\"a\\\"b\\\\c\\d\"", "a\\ b",
    "'a\\'", "\"\"", "a ''", "--index-url=\"https://x\" -r 'f g.txt'", "a#b # c", "\u00a0x\x0cy",
])
def test_words_are_those_shlex_reads(line: str) -> None:
    assert shell_words(line) == shlex.split(line)


@pytest.mark.parametrize("line", ["'a", "\"a\\\"", "a\\", "\"a b"])
def test_an_unclosed_quote_or_a_final_backslash_is_a_value_error(line: str) -> None:
    with pytest.raises(ValueError):
        shlex.split(line)
    with pytest.raises(ValueError):
        shell_words(line)


def test_random_lines_read_as_shlex_reads_them() -> None:
    characters = ["a", "b", " ", "\t", "\n", "\r", "\\", '"', "'", "#", "\x0c", "é", "="]
    chance = random.Random(7)
    for _ in range(20_000):
        line = "".join(chance.choice(characters) for _ in range(chance.randint(0, 12)))
        try:
            expected: list[str] | None = shlex.split(line)
        except ValueError:
            expected = None
        try:
            got: list[str] | None = shell_words(line)
        except ValueError:
            got = None
        assert got == expected, line
