"""``python -m monitor.evaluation.table``: the results table of docs/detectors.md, regenerated in one command.

Writes the simulator's labelled set (``--seed 0``), runs ``monitor.evaluate`` for every detector (the
defaults, plus the tuned rows whose parameters were chosen on the ``--seed 1`` set) on it and on the
NAB subset (``--nab``, default ``../shared/datasets/nab`` beside the repository), and prints one Markdown
table, with NAB's standard profile cross-validated by leaving one category out
(``monitor.evaluation.crossval``) and, on the simulator, the fraction of rows flagged inside prolonged
anomalies. Results go under ``--out`` (default ``var/eval``, ignored by git).
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Sequence
from pathlib import Path

from monitor.evaluate import evaluate
from simulator.labelled import build
from streamwatch.cli import ArgumentParser, run
from streamwatch.errors import DataError

# The shared data sets sit beside the repository's checkout: <root>/../shared/datasets/nab.
NAB_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "nab"
# (label in the table, detector, results name, parameters)
ROWS: list[tuple[str, str, str, dict[str, str]]] = [
    ("sma", "sma", "sma", {}),
    ("ema", "ema", "ema", {}),
    ("ema tuned", "ema", "ematuned", {"alpha": "0.3", "threshold": "3"}),
    ("iqr", "iqr", "iqr", {}),
    ("trend", "trend", "trend", {}),
    ("ensemble", "ensemble", "ensemble", {}),
    (
        "ensemble tuned",
        "ensemble",
        "ensembletuned",
        {
            "sma.window": "5",
            "sma.threshold": "4",
            "ema.alpha": "0.3",
            "ema.threshold": "2.5",
            "iqr.window": "10",
            "iqr.multiplier": "3",
        },
    ),
    ("prophet band", "prophet", "prophet", {}),
    # The band's residuals re-scored by their own recent history (monitor.detectors.normalise).
    ("prophet band, normalised", "prophet", "prophetnormalised", {"normalise": "true"}),
    ("seasonal", "seasonal", "seasonal", {}),
    ("adaptive", "adaptive", "adaptive", {}),
    ("iforest", "iforest", "iforest", {}),
]


# Rows scored by their alarm onsets (monitor.evaluation.onsets), with this quiet period in rows: the
# detectors whose score stays above 1 for as long as a series is out.
ONSETS: dict[str, int] = {"adaptive": 200}


def fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None or v != v else f"{v:.{digits}f}"


def delay(v: float | None) -> str:
    if v is None or v != v:
        return "-"
    return f"{v:.0f} s" if v < 600 else f"{v / 60:.0f} min"


def line(label: str, set_name: str, o: dict[str, object]) -> str:
    cv = "-"
    if o.get("nab_standard_cv_folds"):
        cv = f"{fmt(o['nab_standard_cv_mean'], 1)} ({fmt(o['nab_standard_cv_pooled'], 1)})"  # type: ignore[arg-type]
    return (
        f"| {label} | {set_name} | {o['windows']} | {o['tp']} | {o['fp']} | {o['fn']} | "
        f"{fmt(o['precision'])} | {fmt(o['recall'])} | {fmt(o['f1'])} | {delay(o['mean_delay_s'])} | "  # type: ignore[arg-type]
        f"{fmt(o['nab_standard_fixed'], 1)} | {fmt(o['nab_standard_swept'], 1)} "  # type: ignore[arg-type]
        f"(th {fmt(o['nab_swept_threshold'], 3)}) | "  # type: ignore[arg-type]
        f"{fmt(o['nab_low_fp_fixed'], 1)} / {fmt(o['nab_low_fp_swept'], 1)} | "  # type: ignore[arg-type]
        f"{fmt(o['nab_low_fn_fixed'], 1)} / {fmt(o['nab_low_fn_swept'], 1)} | {cv} | "  # type: ignore[arg-type]
        f"{fmt(o.get('prolonged_flagged'))} |"  # type: ignore[arg-type]
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = ArgumentParser(prog="python -m monitor.evaluation.table", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("var/eval"))
    ap.add_argument("--nab", type=Path, default=NAB_DIR, help=f"NAB data set root (default {NAB_DIR})")
    args = ap.parse_args(argv)
    if not (args.nab / "data").is_dir():  # found out now, not after the simulator rows' minutes
        raise DataError(f"--nab {args.nab}: no data/ folder there (a NAB layout: data/, labels/)")
    sim = args.out / "simset"
    build(sim, hours=6.0, seed=0)
    sets = [
        ("simulator", sim / "data", sim / "labels", args.out / "sim"),
        ("NAB subset", args.nab / "data", args.nab / "labels", args.out / "nab"),
    ]
    print(
        "| detector | set | windows | TP | FP | FN | precision | recall | F1 | mean delay "
        "| NAB std (score>0.5) | NAB std (swept) | NAB low-FP (score>0.5 / swept) "
        "| NAB low-FN (score>0.5 / swept) | NAB std, leave one category out: mean (pooled) "
        "| flagged in prolonged anomalies |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for set_name, data, labels, out in sets:
        prolonged = labels / "prolonged.json"
        for label, detector, name, params in ROWS:
            with contextlib.redirect_stdout(io.StringIO()):
                summary = evaluate(
                    detector,
                    params,
                    data,
                    labels / "combined_windows.json",
                    out,
                    name,
                    onsets=ONSETS.get(name, 0),
                    prolonged=prolonged if prolonged.is_file() else None,
                )
            print(line(label, set_name, summary["overall"]), flush=True)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(run(main, prog="python -m monitor.evaluation.table"))
