"""Counted nouns in sentences people read: "1 epoch", "2 epochs", "1,000 digits"."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """n and the noun, singular for exactly one: count(1, "epoch") -> "1 epoch"."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
