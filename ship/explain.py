"""`zuoxiao predict --explain --format text`: a bundle's word attributions (Bundle.explain) for people.

Each word gets a background by its attribution, green for the label and red against it, full colour for the
text's largest |attribution| (the web page's scale, ship/web/app.js); a plain line lists the strongest words
with their numbers, so the output still says it where colours are lost (a pipe, a log file).
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

FOR, AGAINST, PAPER = (48, 164, 108), (229, 72, 77), (255, 255, 255)
TOP_WORDS = 5


def _blend(colour: tuple[int, int, int], weight: float) -> str:
    r, g, b = (round(p + (c - p) * weight) for c, p in zip(colour, PAPER, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def highlighted(text: str, explanation: dict) -> Text:
    """The text with each explained word on a background for its attribution."""
    out = Text("  ")
    top = max([abs(w["attribution"]) for w in explanation["words"]] + [1e-9])
    at = 0
    for w in explanation["words"]:
        out.append(text[at:w["start"]])
        weight = abs(w["attribution"]) / top
        colour = FOR if w["attribution"] >= 0 else AGAINST
        out.append(text[w["start"]:w["end"]], style=f"black on {_blend(colour, weight)}" if weight >= 0.05 else "")
        at = w["end"]
    out.append(text[at:])
    return out


def strongest(explanation: dict, n: int = TOP_WORDS) -> str:
    """'why pos (p 0.9312): good +0.41, boring -0.12, ...' (largest |attribution| first)."""
    words = sorted(explanation["words"], key=lambda w: -abs(w["attribution"]))[:n]
    listed = ", ".join(f"{w['word']!r} {w['attribution']:+.3g}" for w in words) or "(no words)"
    skipped = explanation["words_total"] - len(explanation["words"])
    more = f"; {skipped} word(s) after max_length or the word cap not explained" if skipped > 0 else ""
    return f"  why {explanation['label']} (p {explanation['probability']:.4f}): {listed}{more}"


def print_explanation(text: str, explanation: dict, console: Console | None = None) -> None:
    console = console or Console(highlight=False, soft_wrap=True)
    console.print(highlighted(text, explanation))
    console.print(strongest(explanation), markup=False)
