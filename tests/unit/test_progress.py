"""A job's log tail -> phase, percent, ETA (service.progress)."""

from __future__ import annotations

from service.progress import parse_progress

ESC = "\x1b[A"


def bar(desc: str, n: int, total: int, elapsed: str = "00:01", eta: str = "00:03") -> str:
    pct = 100 * n // total
    return f"{desc}{': ' if desc else ''}{pct:3d}%|{'#' * (pct // 10):<10}| {n}/{total} [{elapsed}<{eta},  1.2it/s]"


def test_outer_bar_with_description_is_the_phase() -> None:
    tail = ["grouped 2-fold CV on 158 statements", bar("CV transformer", 1, 4, eta="01:02:03"),
            ESC + bar("", 2, 3), ESC + "{'train_loss': '1.0', 'epoch': '1'}"]
    info = parse_progress(tail)
    assert info["phase"] == "CV transformer"
    assert info["percent"] == 25 and info["eta_s"] == 3723
    assert (info["step"], info["total"]) == ("1", "4")


def test_plain_line_after_finished_bars_is_the_phase_and_inner_bar_gives_percent() -> None:
    tail = [bar("CV keywords", 2, 2, eta="00:00"), "final model on all 158 training statements",
            bar("Loading weights", 21, 21), bar("", 2, 5, eta="00:07")]
    info = parse_progress(tail)
    assert info["phase"] == "final model on all 158 training statements"
    assert info["percent"] == 40 and info["eta_s"] == 7


def test_unknown_eta_and_no_bar() -> None:
    assert parse_progress([bar("CV transformer", 0, 2, eta="?")])["eta_s"] is None
    info = parse_progress(["exporting the int8 ONNX model", "  "])
    assert info == {"phase": "exporting the int8 ONNX model", "percent": None, "eta_s": None,
                    "step": None, "total": None}
    assert parse_progress([])["phase"] is None
