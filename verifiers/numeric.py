"""``numeric``: GSM8K-style final-number verifier.

Extraction order (first that matches wins):
  1. the number after ``####`` (lm-eval gsm8k ``strict-match``),
  2. ``\\boxed{...}`` (last one),
  3. ``The answer is N`` (lm-eval gsm8k-cot ``strict-match``; last one),
  4. the last number in the text (lm-eval ``flexible-extract``, which takes the last regex hit).

Numbers are normalised: commas, ``$``/currency signs and a trailing ``.`` are dropped; ``-`` is kept;
``12.0`` equals ``12``; simple fractions ``3/4`` and ``-1 1/2`` are read as values.

Comparison is by value and **exact** whenever the gold answer is exact: integers, decimals written out
(``0.75``), fractions and mixed numbers are held as :class:`fractions.Fraction`, so gold ``1,450,000`` scores
``1450001`` wrong (lm-eval's exact match agrees).  A tolerance (``rel_tol``/``abs_tol``) applies only where the
gold itself is not exact: a binary float in the doc (``{"answer": 0.1}``), scientific notation (``1.2e-5``) or
a gold marked approximate (``~3.14``, ``≈ 3.14``).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from .base import Verifier, VerifierError, VerifierResult, register_verifier

_NUM = r"-?(?:[$€£¥]\s?)?(?:\d[\d,]*(?:\.\d+)?|\.\d+)"
# strict '#### 1,234' (lm-eval: "#### (\-?[0-9\.\,]+)"; we also allow a currency sign and a fraction)
_HASH_RE = re.compile(r"####\s*(" + _NUM + r"(?:\s*/\s*\d+)?)")
_BOXED_RE = re.compile(r"\\boxed\s*\{((?:[^{}]|\{[^{}]*\})*)\}")
_ANSWER_IS_RE = re.compile(r"[Tt]he (?:final )?answer is[:\s]*\$?\\?\(?\s*(" + _NUM + r"(?:\s*/\s*\d+)?)")
# last-number fallback: mixed numbers "1 1/2", fractions "3/4", plain numbers
_ANY_RE = re.compile(r"(-?\d+\s+\d+/\d+|" + _NUM + r"(?:/\d+)?)")
_FRAC_TEX_RE = re.compile(r"\\[dt]?frac\s*\{([^{}]+)\}\s*\{([^{}]+)\}")


def normalize_number_text(s: str) -> str:
    """Strip what lm-eval's gsm8k exact_match ignores (``,``, ``$``, trailing ``.``) plus spaces and ``\\!``."""
    s = s.strip()
    s = s.replace("\\!", "").replace("\\,", "").replace("\\$", "$")
    s = re.sub(r"[,$€£¥\s]", "", s)
    s = re.sub(r"\.+$", "", s)
    return s


def parse_number(s: str | None) -> Fraction | None:
    """Value of a number string (``"1,234.50"``, ``"$-3"``, ``"3/4"``, ``"-1 1/2"``, ``"\\frac{1}{2}"``) or None."""
    if s is None:
        return None
    s = s.strip()
    m = _FRAC_TEX_RE.search(s)
    if m:
        a, b = parse_number(m.group(1)), parse_number(m.group(2))
        if a is None or b is None or b == 0:
            return None
        sign = -1 if s.lstrip().startswith("-") else 1
        return sign * a / b
    s = s.replace("\\%", "").replace("%", "").replace("−", "-")
    mixed = re.fullmatch(r"(-?)\s*[$€£¥]?\s*(\d+)\s+(\d+)\s*/\s*(\d+)", s)
    if mixed:
        sign, whole, num, den = mixed.groups()
        if int(den) == 0:
            return None
        v = Fraction(int(whole)) + Fraction(int(num), int(den))
        return -v if sign else v
    t = normalize_number_text(s)
    frac = re.fullmatch(r"(-?\d+(?:\.\d+)?)/(-?\d+(?:\.\d+)?)", t)
    try:
        if frac:
            den = Fraction(frac.group(2))
            return None if den == 0 else Fraction(frac.group(1)) / den
        if re.fullmatch(r"-?(?:\d+(?:\.\d*)?|\.\d+)", t):
            return Fraction(t)
    except (ValueError, ZeroDivisionError):
        return None
    return None


def format_number(v: Fraction) -> str:
    if v.denominator == 1:
        return str(v.numerator)
    f = float(v)
    return repr(round(f, 10)).rstrip("0").rstrip(".") if math.isfinite(f) else str(v)


_SCI_RE = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))[eE]([-+]?\d+)\s*$")
_APPROX_RE = re.compile(r"^\s*(?:~|≈|\\approx|approx\.?|approximately)\s*", re.IGNORECASE)


def parse_gold(gold: object) -> tuple[Fraction | None, bool]:
    """``(value, exact)`` of a gold answer.

    Exact: ``int`` and every string :func:`parse_number` reads (integers, written-out decimals, fractions).
    Not exact: a ``float`` (a binary approximation), scientific notation, or a string marked approximate.
    """
    if isinstance(gold, bool):
        return None, True
    if isinstance(gold, int):
        return Fraction(gold), True
    if isinstance(gold, float):
        return (Fraction(gold), False) if math.isfinite(gold) else (None, False)
    s = str(gold)
    m = _APPROX_RE.match(s)
    if m:
        return parse_gold(s[m.end():])[0], False
    m = _SCI_RE.match(normalize_number_text(s))
    if m:
        return Fraction(m.group(1)) * Fraction(10) ** int(m.group(2)), False
    return parse_number(s), True


class NumericVerifier(Verifier):
    """Final-number verifier; exact for exact golds, ``rel_tol``/``abs_tol`` only for inexact ones."""

    name = "numeric"

    def __init__(self, gold_key: str | None = None, rel_tol: float = 1e-6, abs_tol: float = 1e-9):
        """gold_key: doc field with the gold answer (default: ``answer`` -- the text after ``####`` is used when
        present, as in GSM8K -- then ``target``, ``gold``).  ``rel_tol``/``abs_tol`` apply only to a gold that
        is not exact (see :func:`parse_gold`)."""
        if rel_tol < 0 or abs_tol < 0:
            raise VerifierError("numeric: tolerances must be >= 0")
        self.gold_key = gold_key
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol

    @staticmethod
    def extract(output: str) -> tuple[str | None, str]:
        """Return (number text as written, method) where method is hash / boxed / answer_is / last / none."""
        if not isinstance(output, str):
            raise VerifierError(f"numeric: output must be a str, got {type(output).__name__}")
        m = _HASH_RE.search(output)
        if m:
            return m.group(1).strip(), "hash"
        boxed = _BOXED_RE.findall(output)
        for b in reversed(boxed):
            inner = b.strip()
            if parse_number(inner) is not None:
                return inner, "boxed"
            nums = _ANY_RE.findall(inner)
            if nums:
                return nums[-1].strip(), "boxed"
        ms = _ANSWER_IS_RE.findall(output)
        if ms:
            return ms[-1].strip(), "answer_is"
        ms = [x for x in _ANY_RE.findall(output) if re.search(r"\d", x)]
        if ms:
            return ms[-1].strip(), "last"
        return None, "none"

    def gold_value(self, doc: dict) -> object:
        """The raw gold: the doc field's value (a ``float`` stays a float), or the text after ``####``."""
        keys = (self.gold_key,) if self.gold_key else ("answer", "target", "gold")
        for k in keys:
            if k in doc and doc[k] is not None:
                g = doc[k]
                if isinstance(g, (int, float)) and not isinstance(g, bool):
                    return g
                g = str(g)
                if "####" in g:
                    g = g.split("####")[-1]
                return g.strip()
        raise VerifierError(f"numeric: doc has none of the gold fields {keys}; fields: {sorted(doc)}")

    def gold_text(self, doc: dict) -> str:
        return str(self.gold_value(doc))

    def verify(self, doc: dict, output: str) -> VerifierResult:
        raw = self.gold_value(doc)
        gold, exact = parse_gold(raw)
        if gold is None:
            raise VerifierError(f"numeric: gold answer {str(raw)!r} is not a number")
        extracted, method = self.extract(output)
        value = parse_number(extracted)
        if value is None:
            ok = False
        elif exact:
            ok = value == gold
        else:
            ok = math.isclose(float(value), float(gold), rel_tol=self.rel_tol, abs_tol=self.abs_tol)
        details = {
            "gold": str(raw),
            "method": method,
            "value": None if value is None else format_number(value),
            "exact": exact,
        }
        return VerifierResult(1.0 if ok else 0.0, extracted, details)


register_verifier("numeric", NumericVerifier)
