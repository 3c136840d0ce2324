"""``python -m monitor.evaluate``: score a detector on a labelled data set in the NAB layout.

    python -m monitor.evaluate --detector ensemble [--param k=2 ...] DATA_DIR LABELS.json --out RESULTS_DIR

Each file is streamed through a fresh detector in row order (``update_many``: every value is scored
before it is learnt). Writes ``RESULTS_DIR/<name>/<category>/<name>_<file>.csv`` with
``timestamp,value,anomaly_score,label`` (the input's rows in order; ``anomaly_score = s / (1 + s)``, which
maps the common scale monotonically into [0, 1) with the alert threshold s = 1 at 0.5; infinite scores
map to 1), which is the layout NAB's scorer reads, plus ``summary.csv`` and ``summary.json`` there, and
prints the table. Metrics: see ``monitor.evaluation.metrics`` (precision/recall/F1 at the detector's own
threshold, score above 1) and ``monitor.evaluation.nabscore`` (NAB's standard, low-FP and low-FN profiles,
each at that threshold and at its own swept best threshold, as NAB's optimiser picks one per profile).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import logging
import math
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.detectors.base import Detector
from monitor.detectors.prophet import ProphetParams
from monitor.detectors.registry import NAMES, create, detector_class, make_params, needs_fit, parse_params
from monitor.detectors.scores import ANOMALY_THRESHOLD
from monitor.evaluation import nabscore
from monitor.evaluation.columnar import stream_rows
from monitor.evaluation.crossval import leave_one_category_out
from monitor.evaluation.dataset import LabelledFile, load, rows_of
from monitor.evaluation.metrics import Counts, count, flagged_fraction
from monitor.evaluation.onsets import onsets as onset_scores
from monitor.evaluation.prophet_causal import score_file
from monitor.period import PeriodError
from streamwatch.atomic import atomic_write_text
from streamwatch.cli import ArgumentParser, run
from streamwatch.errors import DataError, UserError

MAX_QUIET_ROWS = 100_000


@dataclass(frozen=True)
class FileResult:
    key: str
    rows: int
    counts: Counts
    nab_raw: float  # standard profile at the fixed threshold


def unit_score(raw: np.ndarray) -> np.ndarray:
    """Map the common scale [0, inf] monotonically into [0, 1]: s / (1 + s); NaN -> 0, inf -> 1."""
    s = np.nan_to_num(np.asarray(raw, dtype=np.float64), nan=0.0, posinf=np.inf)
    s = np.maximum(s, 0.0)
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(s), 1.0, s / (1.0 + s))


def detector_scores(name: str, params: dict[str, str], f: LabelledFile, data_dir: Path) -> np.ndarray:
    if needs_fit(name):  # fitted on the probationary prefix, then scores the rest
        try:
            p = make_params(name, params)
            assert isinstance(p, ProphetParams)
            return score_file(f.ts, f.values, p)
        except PeriodError as exc:
            raise DataError(f"{data_dir / f.key}: {exc}") from None
    detector = create(name, params)  # fresh per file: no state leaks between series
    return np.asarray(detector.update_many(f.values, f.ts).score, dtype=np.float64)


def results_name(name: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9]", "", name)
    if not clean:
        raise UserError(f"--name must contain letters or digits, got {name!r}")
    return clean


def check_out(out: Path) -> None:
    """Refuse an --out that cannot hold a folder before any detector runs (a Prophet fit takes seconds)."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                raise UserError(f"--out {out}: {p} is a file, not a directory")
            return


@contextlib.contextmanager
def writing_to(out: Path) -> Iterator[None]:
    """Results that cannot be written (full disk, no permission, a file in the way) are the user's to fix."""
    try:
        yield
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write results: {exc.strerror or exc}") from None


def write_results(out: Path, label: str, f: LabelledFile, unit: np.ndarray) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["timestamp", "value", "anomaly_score", "label"])
    labels = f.label()
    for i in range(len(unit)):
        w.writerow([f.timestamps_raw[i], f.values_raw[i], repr(float(unit[i])), int(labels[i])])
    atomic_write_text(out / label / f.category / f"{label}_{f.name}", buf.getvalue())


def fmt(v: float, digits: int = 3) -> str:
    return "-" if v != v else f"{v:.{digits}f}"


def evaluate(
    name: str,
    params: dict[str, str],
    data_dir: Path,
    labels: Path,
    out: Path,
    label: str,
    *,
    onsets: int = 0,
    prolonged: Path | None = None,
) -> dict[str, object]:
    """Score detector ``name`` on every file of ``labels``; with ``onsets`` > 0, NAB and the window counts
    see only alarm onsets with that quiet period in rows (``monitor.evaluation.onsets``), and with
    ``prolonged`` (a windows JSON of the rows inside prolonged anomalies, ``simulator.labelled``) the
    fraction of those rows whose score is above 1 is reported."""
    check_out(out)
    # A bad parameter is reported before the data is read.
    if needs_fit(name):
        make_params(name, params)
    else:
        create(name, params)
    files = load(data_dir, labels)
    inside = rows_of(prolonged, files) if prolonged is not None else None
    flagged_in = [0, 0]  # rows flagged inside prolonged anomalies, rows there
    results: list[FileResult] = []
    swept: dict[str, list[tuple[np.ndarray, nabscore.RowWeights]]] = {k: [] for k in nabscore.PROFILES}
    fixed = dict.fromkeys(nabscore.PROFILES, 0.0)
    by_category: dict[str, list[tuple[str, np.ndarray, nabscore.RowWeights]]] = {
        k: [] for k in nabscore.PROFILES
    }
    # A columnar detector scores every file at once, a row each (monitor.evaluation.columnar).
    columnar = None if needs_fit(name) else create(name, params)
    batch = (
        stream_rows(columnar, [f.values for f in files], [f.ts for f in files])
        if isinstance(columnar, Detector)
        else None
    )
    for i, f in enumerate(files):
        live = batch[i] if batch is not None else detector_scores(name, params, f, data_dir)
        if inside is not None:
            k, m = flagged_fraction(live > ANOMALY_THRESHOLD, inside[f.key])
            flagged_in[0] += k
            flagged_in[1] += m
        raw = onset_scores(live, onsets) if onsets > 0 else live
        unit = unit_score(raw)
        with writing_to(out):
            write_results(out, label, f, unit)
        flags = raw > ANOMALY_THRESHOLD
        for key, profile in nabscore.PROFILES.items():
            rw = nabscore.row_weights(len(raw), f.windows, profile)
            swept[key].append((unit, rw))
            by_category[key].append((f.category, unit, rw))
            fixed[key] += nabscore.raw_score(flags, rw, profile)
        rw = nabscore.row_weights(len(raw), f.windows)
        results.append(
            FileResult(f.key, len(raw), count(flags, f.windows, f.ts), nabscore.raw_score(flags, rw))
        )
    total = sum((r.counts for r in results), Counts(0, 0, 0))
    n_windows = total.windows
    fixed_raw = sum(r.nab_raw for r in results)
    threshold, best_raw = nabscore.best_threshold(swept["standard"])
    # NAB's other two profiles, each at its own best threshold as NAB's optimiser finds it, and above 1.
    others: dict[str, object] = {}
    for key, short in (("reward_low_FP_rate", "low_fp"), ("reward_low_FN_rate", "low_fn")):
        profile = nabscore.PROFILES[key]
        th, best = nabscore.best_threshold(swept[key], profile)
        others[f"nab_{short}_fixed"] = nabscore.normalised(fixed[key], n_windows, profile)
        others[f"nab_{short}_swept"] = nabscore.normalised(best, n_windows, profile)
        others[f"nab_{short}_threshold"] = th
    # Leave one category out: each held out in turn, scored at the threshold swept on the others.
    for key, short in (
        ("standard", "standard"),
        ("reward_low_FP_rate", "low_fp"),
        ("reward_low_FN_rate", "low_fn"),
    ):
        cv = leave_one_category_out(by_category[key], nabscore.PROFILES[key])
        others[f"nab_{short}_cv_mean"] = cv.mean if cv else math.nan
        others[f"nab_{short}_cv_pooled"] = cv.pooled if cv else math.nan
        if key == "standard":
            others["nab_standard_cv_folds"] = (
                [{"category": h.category, "threshold": h.threshold, "score": h.score} for h in cv.folds]
                if cv
                else []
            )
    others["onsets_quiet_rows"] = onsets
    others["prolonged_flagged"] = flagged_in[0] / flagged_in[1] if flagged_in[1] else math.nan
    summary: dict[str, object] = {
        "detector": name,
        "params": params,
        "files": [_row(r.key, r.rows, r.counts, r.nab_raw) for r in results],
        "overall": {
            **_row("overall", sum(r.rows for r in results), total, fixed_raw),
            "nab_standard_fixed": nabscore.normalised(fixed_raw, n_windows),
            "nab_standard_swept": nabscore.normalised(best_raw, n_windows),
            "nab_swept_threshold": threshold,
            **others,
        },
    }
    with writing_to(out):
        _write_summary(out / label, summary)
    return summary


def _row(key: str, rows: int, c: Counts, nab_raw: float) -> dict[str, object]:
    return {
        "file": key,
        "rows": rows,
        "windows": c.windows,
        "tp": c.tp,
        "fp": c.fp,
        "fn": c.fn,
        "precision": c.precision,
        "recall": c.recall,
        "f1": c.f1,
        "mean_delay_s": c.mean_delay_s,
        "nab_raw": nab_raw,
    }


def _clean(v: object) -> object:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _write_summary(where: Path, summary: dict[str, object]) -> None:
    rows = [*summary["files"], summary["overall"]]  # type: ignore[misc]
    cols = [
        "file",
        "rows",
        "windows",
        "tp",
        "fp",
        "fn",
        "precision",
        "recall",
        "f1",
        "mean_delay_s",
        "nab_raw",
    ]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([r[c] for c in cols])
    atomic_write_text(where / "summary.csv", buf.getvalue())
    doc = json.loads(json.dumps(summary, default=str), parse_constant=lambda _: None)
    doc = _walk(doc)
    atomic_write_text(where / "summary.json", json.dumps(doc, indent=2) + "\n")


def _walk(v: object) -> object:
    if isinstance(v, dict):
        return {k: _walk(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_walk(x) for x in v]
    return _clean(v)


def print_table(summary: dict[str, object], stream: object = None) -> None:
    stream = stream or sys.stdout
    head = f"{'file':<58} {'win':>4} {'tp':>4} {'fp':>5} {'fn':>4} {'prec':>6} {'rec':>6} {'f1':>6}"
    print(f"{head} {'delay_s':>9}", file=stream)  # type: ignore[arg-type]
    for r in [*summary["files"], summary["overall"]]:  # type: ignore[misc]
        print(
            f"{r['file']:<58} {r['windows']:>4} {r['tp']:>4} {r['fp']:>5} {r['fn']:>4} "
            f"{fmt(r['precision']):>6} {fmt(r['recall']):>6} {fmt(r['f1']):>6} "
            f"{fmt(r['mean_delay_s'], 0):>9}",
            file=stream,  # type: ignore[arg-type]
        )
    o = summary["overall"]
    print(
        f"NAB standard score: {fmt(o['nab_standard_fixed'], 1)} at score > 0.5 (raw > 1); "  # type: ignore[index]
        f"{fmt(o['nab_standard_swept'], 1)} at NAB's swept threshold {fmt(o['nab_swept_threshold'], 4)}",  # type: ignore[index]
        file=stream,  # type: ignore[arg-type]
    )
    print(
        f"NAB low-FP profile: {fmt(o['nab_low_fp_fixed'], 1)} at score > 0.5; "  # type: ignore[index]
        f"{fmt(o['nab_low_fp_swept'], 1)} at its swept threshold; "  # type: ignore[index]
        f"low-FN profile: {fmt(o['nab_low_fn_fixed'], 1)} at score > 0.5; "  # type: ignore[index]
        f"{fmt(o['nab_low_fn_swept'], 1)} at its swept threshold",  # type: ignore[index]
        file=stream,  # type: ignore[arg-type]
    )
    folds = o.get("nab_standard_cv_folds") or []  # type: ignore[union-attr]
    if folds:
        each = ", ".join(f"{h['category']} {fmt(h['score'], 1)}" for h in folds)
        print(
            f"NAB standard, leave one category out: mean {fmt(o['nab_standard_cv_mean'], 1)} "  # type: ignore[index]
            f"(pooled {fmt(o['nab_standard_cv_pooled'], 1)}): {each}",  # type: ignore[index]
            file=stream,  # type: ignore[arg-type]
        )
    if o.get("prolonged_flagged") is not None and o["prolonged_flagged"] == o["prolonged_flagged"]:  # type: ignore[index,union-attr]
        print(f"flagged inside prolonged anomalies: {fmt(o['prolonged_flagged'])}", file=stream)  # type: ignore[index,arg-type]


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(
        prog="python -m monitor.evaluate",
        description="Score a detector on a labelled data set in the NAB layout (CSV files + labels JSON).",
    )
    ap.add_argument("--detector", required=True, choices=NAMES, help="detector to evaluate")
    ap.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="detector parameter, repeatable ("
        + "; ".join(
            f"{n}: {', '.join(f.name for f in dataclasses.fields(detector_class(n).Params))}" for n in NAMES
        )
        + ")",
    )
    ap.add_argument("--name", help="results name (letters and digits; default: the detector's name)")
    ap.add_argument("data_dir", type=Path, metavar="DATA_DIR")
    ap.add_argument("labels", type=Path, metavar="LABELS.json")
    ap.add_argument("--out", type=Path, required=True, metavar="RESULTS_DIR")
    ap.add_argument(
        "--onsets",
        type=int,
        default=0,
        metavar="ROWS",
        help="score only alarm onsets, with a quiet period of ROWS rows (0 to 100000; default 0: every row)",
    )
    ap.add_argument(
        "--prolonged",
        type=Path,
        metavar="WINDOWS.json",
        help="rows inside prolonged anomalies (simulator.labelled's labels/prolonged.json): report the "
        "fraction flagged",
    )
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Prophet logs "Importing plotly failed" on import: stderr is for the one error line (we never plot).
    logging.getLogger("prophet.plot").disabled = True
    params = parse_params(args.param)
    label = results_name(args.name or args.detector)
    if not 0 <= args.onsets <= MAX_QUIET_ROWS:
        raise UserError(f"--onsets must be between 0 and {MAX_QUIET_ROWS}, got {args.onsets}")
    summary = evaluate(
        args.detector,
        params,
        args.data_dir,
        args.labels,
        args.out,
        label,
        onsets=args.onsets,
        prolonged=args.prolonged,
    )
    print_table(summary)
    print(f"results: {args.out / label}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main, prog="python -m monitor.evaluate"))
