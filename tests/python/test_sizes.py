#!/usr/bin/env python3
"""gpucoord.parse_size / format_size against the same tables as the C tests
(tests/unit/test_common.c: size_units, size_fractions, size_rejects, size_format)."""
import unittest

import gpucoord
from gpucoord import SIZE_MAX, format_size, parse_size

# tests/unit/test_common.c size_units + size_fractions, then a few more.
PARSE_OK = [
    ("0", 0), ("1000", 1000), ("1Ki", 1024), ("512Mi", 512 << 20), ("20Gi", 20 << 30),
    ("2Ti", 2 << 40), ("1K", 1000), ("1KB", 1000), ("3M", 3000000), ("1G", 1000000000),
    ("1GB", 1000000000), ("1T", 1000000000000), ("24564Mi", 24564 << 20),
    ("1GiB", 1 << 30), ("1 Gi", 1 << 30),
    ("4.7Gi", 5046586572), ("19.6Gi", 21045339750), ("1.5G", 1500000000), ("0.5Ki", 512),
    ("18446744073709551615", SIZE_MAX),
    # More: case-insensitive units, B for bytes, the longest fraction, exact floors.
    ("8gi", 8 << 30), ("8GI", 8 << 30), ("1mib", 1 << 20), ("10B", 10), ("1kb", 1000),
    ("1.000000000001Gi", (1 << 30) + (1 << 30) // 10 ** 12), ("0.0Gi", 0),
    ("0.1Ki", 102), ("0.001Ki", 1), ("0.0001Ki", 0), ("16777215.999Ti", 16777215 * (1 << 40) + 999 * (1 << 40) // 1000),
    ("007Mi", 7 << 20),
]

# tests/unit/test_common.c size_rejects, then a few more.
PARSE_BAD = [
    "", "-1", "-1Gi", "abc", "1X", "1.5", "1.", ".5Gi", "1e9", "Gi", "1Gi ", " 1Gi", "1 ", "1.5 ",
    "18446744073709551616", "20000000Ti", "1.0000000000001Gi", "1..2Gi", "0x10",
    # More.
    "16777216Ti", "1.0", "1.5B", "1  Gi", "1\tGi", "1Gi\n", "+1Gi", "1,5Gi", "1_000",
    "\u0661Gi",  # an Arabic-Indic digit: not ASCII
    "1" * 65, "1Pi", "1Gii", "Gi1",
]

FORMAT = [
    (0, "0"), (1023, "1023"), (1024, "1Ki"), (512 << 20, "512Mi"), (5046586572, "4.7Gi"),
    (21045339750, "19.6Gi"), (3 << 40, "3Ti"),
    # More.
    (1536, "1.5Ki"), ((1 << 30) - 1, "1024Mi"), (100 << 30, "100Gi"), (SIZE_MAX, "16777215.99Ti"),
    (24564 << 20, "23.99Gi"),
]


class ParseSize(unittest.TestCase):
    def test_accepts(self):
        for text, want in PARSE_OK:
            with self.subTest(text=text):
                self.assertEqual(parse_size(text), want)

    def test_rejects(self):
        for text in PARSE_BAD:
            with self.subTest(text=text):
                with self.assertRaises(ValueError):
                    parse_size(text)

    def test_ints(self):
        self.assertEqual(parse_size(0), 0)
        self.assertEqual(parse_size(8 << 30), 8 << 30)
        self.assertEqual(parse_size(SIZE_MAX), SIZE_MAX)
        with self.assertRaises(ValueError):
            parse_size(SIZE_MAX + 1)
        with self.assertRaises(ValueError):
            parse_size(-1)
        for bad in (1.5, None, True, b"1Gi", [1]):
            with self.subTest(bad=bad):
                with self.assertRaises(TypeError):
                    parse_size(bad)

    def test_exported(self):
        self.assertIs(gpucoord.parse_size, parse_size)


class FormatSize(unittest.TestCase):
    def test_table(self):
        for nbytes, want in FORMAT:
            with self.subTest(nbytes=nbytes):
                self.assertEqual(format_size(nbytes), want)

    def test_strings_and_round_trip(self):
        self.assertEqual(format_size("4.7Gi"), "4.7Gi")
        for text in ("512Mi", "20Gi", "1Ki", "3Ti", "1.5Ki"):
            self.assertEqual(format_size(parse_size(text)), text)
        with self.assertRaises(ValueError):
            format_size(-1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
