"""Human size strings, with the exact grammar of gpucoord's C code (DESIGN.md section 7).

``Ki Mi Gi Ti`` (also ``KiB``...) are powers of 1024, ``K M G T`` and ``KB MB GB TB``
powers of 1000, a bare number (or ``B``) is bytes; units are case-insensitive and may
follow the number after one space. Fractions floor to whole bytes (``4.7Gi`` is
``floor(4.7 * 2**30)``), at most 12 fraction digits, never on bare bytes. Anything past
2**64 - 1 is rejected. This mirrors ``gpucoord_size_parse()`` in libgpucoord.
"""
import re

__all__ = ["parse_size", "format_size", "SIZE_MAX"]

SIZE_MAX = (1 << 64) - 1
# Longest size string accepted (GC_SIZE_TEXT_MAX in src/common/size.h).
_TEXT_MAX = 64
_FRAC_DIGITS_MAX = 12

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000,
    "m": 1000 ** 2, "mb": 1000 ** 2,
    "g": 1000 ** 3, "gb": 1000 ** 3,
    "t": 1000 ** 4, "tb": 1000 ** 4,
    "ki": 1 << 10, "kib": 1 << 10,
    "mi": 1 << 20, "mib": 1 << 20,
    "gi": 1 << 30, "gib": 1 << 30,
    "ti": 1 << 40, "tib": 1 << 40,
}

# Digits, an optional fraction, at most one space, then letters (the unit, maybe none).
_SIZE_RE = re.compile(r"([0-9]+)(?:\.([0-9]*))?(?: (?=[A-Za-z]))?([A-Za-z]*)", re.ASCII)


def parse_size(value):
    """Returns a size in bytes (an int) from an int or a size string such as "20Gi".

    Raises ValueError for malformed, negative or overflowing sizes, TypeError for
    anything that is neither an int nor a str.
    """
    if isinstance(value, bool):
        raise TypeError("a size must be an int or a string, not bool")
    if isinstance(value, int):
        if value < 0 or value > SIZE_MAX:
            raise ValueError("size %d is outside 0..2^64-1" % value)
        return value
    if not isinstance(value, str):
        raise TypeError("a size must be an int or a string like '20Gi', not %s"
                        % type(value).__name__)
    if len(value) > _TEXT_MAX:
        raise ValueError("size string longer than %d characters" % _TEXT_MAX)
    m = _SIZE_RE.fullmatch(value)
    if m is None:
        raise ValueError("malformed size %r (examples: 20Gi, 4.7Gi, 512Mi, 1.5G, 1000)" % value)
    whole, frac, unit = m.group(1), m.group(2), m.group(3)
    mult = _UNITS.get(unit.lower())
    if mult is None:
        raise ValueError("unknown unit %r in size %r (use Ki Mi Gi Ti, K M G T, KB MB GB TB)"
                         % (unit, value))
    nbytes = int(whole) * mult
    if frac is not None:
        if frac == "":
            raise ValueError("malformed size %r: no digits after the point" % value)
        if len(frac) > _FRAC_DIGITS_MAX:
            raise ValueError("size %r has more than %d fraction digits"
                             % (value, _FRAC_DIGITS_MAX))
        if mult == 1:
            raise ValueError("size %r is a fraction of a byte" % value)
        nbytes += int(frac) * mult // 10 ** len(frac)
    if nbytes > SIZE_MAX:
        raise ValueError("size %r is larger than 2^64-1 bytes" % value)
    return nbytes


def format_size(nbytes):
    """Formats bytes for humans as the C code does: 19.6Gi, 512Mi, 1Ki, 1023."""
    nbytes = parse_size(nbytes)
    for name, shift in (("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)):
        unit = 1 << shift
        if nbytes >= unit:
            # Hundredths, rounded half up, never past what parse_size() reads back.
            h = (nbytes * 100 + unit // 2) >> shift
            if h * unit // 100 > SIZE_MAX:
                h -= 1
            whole, frac = divmod(h, 100)
            if frac == 0:
                return "%d%s" % (whole, name)
            if frac % 10 == 0:
                return "%d.%d%s" % (whole, frac // 10, name)
            return "%d.%02d%s" % (whole, frac, name)
    return str(nbytes)
