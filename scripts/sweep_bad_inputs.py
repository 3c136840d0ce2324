"""Sweep bad inputs through every service's flags, config keys, files and HTTP fields, on real processes.

    .venv/bin/python scripts/sweep_bad_inputs.py [--root DIR] [--jobs 2] [--only cli,config,files,http]
                                                 [--out sweep.jsonl]

Every case runs the services of the checkout at ``--root`` (default: this one) and gets one outcome:

- clean: exit status 2 with one line on stderr and no traceback, or an HTTP 4xx with a JSON error;
- traceback: a traceback, another exit status, an HTTP 5xx, or a server that died or stopped answering;
- accepted: a bad value that started the service (still running after the time limit), exited 0, or got
  an HTTP 2xx. A value that lies inside the setting's documented range (streamwatch.ranges) is counted
  apart as "in range": accepting it is right.

It prints the counts per outcome and per service, and writes one JSON line per case to ``--out``. Run it
on an old checkout (``git worktree add /tmp/old <commit>``; ``--root /tmp/old``) to compare. It takes
several minutes: each case starts a process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

PY = sys.executable
SERVER_WAIT_S = 6.0  # a bad value still running after this long was accepted
MONITOR_WAIT_S = 12.0  # the monitor imports Prophet first


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Result:
    service: str
    kind: str  # cli, config, files, http
    case: str
    outcome: str  # clean, traceback, accepted, in range
    detail: str = ""


@dataclass
class Ctx:
    root: Path
    tmp: Path
    results: list[Result] = field(default_factory=list)


# --- running a command ------------------------------------------------------------------------------


def run_cmd(argv: list[str], root: Path, wait_s: float) -> tuple[str, str]:
    """Run ``argv`` in ``root``; (outcome, detail) by its exit or by still running after ``wait_s``."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            argv,
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            rc = proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            err.seek(0)
            text = err.read().decode("utf-8", "replace")
            if "Traceback" in text:
                return "traceback", _last(text)
            return "accepted", "still running"
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if "Traceback" in text or rc not in (0, 2):
        return "traceback", f"rc={rc} {_last(text)}"
    if rc == 0:
        return "accepted", "exit 0"
    if len(lines) != 1:
        return "traceback", f"{len(lines)} lines: {_last(text)}"
    return "clean", lines[0][:200]


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


# --- the services' command lines --------------------------------------------------------------------


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def program(ctx: Ctx, service: str, extra: list[str], tmp: Path) -> tuple[list[str], float]:
    """A runnable command line of ``service`` with ``extra`` flags, and how long to let it run."""
    port = str(free_port())
    if service == "simulator":
        return [PY, "simulator.py", "serve", "--port", port, *extra], SERVER_WAIT_S
    if service == "simulator-generate":
        return [
            PY,
            "simulator.py",
            "generate",
            "--metric",
            "energy_price",
            "--out",
            str(tmp / "g.json"),
            *extra,
        ], (SERVER_WAIT_S)
    if service == "dashboard":
        return [PY, "-m", "dashboard", "--port", port, "--prometheus-url", dead_url(), *extra], SERVER_WAIT_S
    if service == "incident":
        argv = [PY, "incident_detector.py", "--port", port, "--prometheus-url", dead_url()]
        return [*argv, "--log", str(tmp / "incidents.log"), *extra], SERVER_WAIT_S
    if service == "receiver":
        return [
            PY,
            "-m",
            "incident.webhook",
            "--port",
            port,
            "--log",
            str(tmp / "alerts.log"),
            *extra,
        ], SERVER_WAIT_S
    if service == "monitor":
        train = str(ctx.root / "datasets" / "energy_price_train.json")
        argv = [PY, "monitor.py", "energy_price", train, port, "--prometheus-url", dead_url()]
        return [*argv, "--model-dir", str(tmp / "models"), *extra], MONITOR_WAIT_S
    if service == "stack":  # the stack's config is only loaded: a sweep must not start the whole stack
        code = (
            "import sys; from streamwatch.cli import run; from stack.config import load_stack; "
            "sys.exit(run(lambda a: load_stack(sys.argv[2]) and 0, prog='stack'))"
        )
        return [PY, "-c", code, *extra], SERVER_WAIT_S
    raise ValueError(service)


# --- 1. flags ---------------------------------------------------------------------------------------

NUMBERS = ["-1", "0", "1e-9", "1e12", "1e308", "nan", "abc"]
FLAGS: dict[str, dict[str, list[str]]] = {
    "simulator": {
        "--port": ["0", "-1", "70000", "abc", "1e3"],
        "--seed": ["-1", "1e3", "99999999999999999999", "abc"],
        "--series": ["0", "-1", "100000000", "abc"],
        "--churn-every": NUMBERS,
        "--churn-count": ["-1", "100000000", "abc"],
        "--host": ["", "not a host", "8.8.8.8"],
        "--allowed-host": ["a b", "http://x/", ":99999"],
        "--log-format": ["xml"],
    },
    "simulator-generate": {
        "--duration": ["100000d", "0s", "-1h", "1e308s", "abc", ""],
        "--step": ["0s", "1e-9s", "100000d", "abc"],
        "--end": ["-1", "1e308", "nan", "inf", "abc"],
        "--seed": ["-1", "abc"],
        "--metric": ["nope", ""],
        "--out": ["/proc/x.json", "/proc/version"],  # never a real device: it must not be replaced
    },
    "dashboard": {
        "--port": ["0", "-1", "70000", "abc"],
        "--refresh": NUMBERS,
        "--metric": ["bad name", "", 'x"} or up{'],
        "--prometheus-url": ["ftp://x", "not a url", ""],
        "--simulator-url": ["ftp://x", ""],
        "--incident-url": ["ftp://x", ""],
        "--allowed-host": ["a b"],
    },
    "incident": {
        "--port": ["0", "-1", "70000", "abc"],
        "--interval": NUMBERS,
        "--prometheus-url": ["ftp://x", "not a url", ""],
        "--log-format": ["xml"],
        "--log": ["/proc/x.log", "/"],
    },
    "receiver": {
        "--port": ["0", "-1", "70000", "abc"],
        "--log": ["/proc/x.log", "/"],
        "--allowed-host": ["a b", ":99999"],
    },
    "monitor": {
        "--interval": NUMBERS,
        "--period": NUMBERS,
        "--retrain-every": NUMBERS,
        "--prometheus-url": ["ftp://x", ""],
        "--query": ["", "rate(", "up{"],
        "--shard": ["0/0", "2/1", "x/y", "auto/0"],
        "--port": ["-1", "abc"],
        "--detector": ["nope"],
        "--param": ["k=-1", "k=1e308", "nope=1", "k", "fourier_order=100000"],
        "--model-dir": ["/dev/null/x"],
    },
}


def flag_cases(ctx: Ctx) -> list[Callable[[], Result]]:
    cases = []
    for service, flags in FLAGS.items():
        for flag, values in flags.items():
            for value in values:
                cases.append(_flag_case(ctx, service, flag, value))
    return cases


def _flag_case(ctx: Ctx, service: str, flag: str, value: str) -> Callable[[], Result]:
    def run() -> Result:
        tmp = Path(tempfile.mkdtemp(dir=ctx.tmp))
        argv, wait = program(ctx, service, [flag, value], tmp)
        if service in ("simulator", "dashboard", "incident", "receiver") and flag == "--port":
            argv = [*_drop_first_port(argv), flag, value]
        outcome, detail = run_cmd(argv, ctx.root, wait)
        return Result(service, "cli", f"{flag} {value!r}", outcome, detail)

    return run


def _drop_first_port(argv: list[str]) -> list[str]:
    i = argv.index("--port")
    return argv[:i] + argv[i + 2 :]


# --- 2. config keys ---------------------------------------------------------------------------------

# The config classes a user writes, where their keys go in a file, and which program reads it.
CONFIGS = [
    ("incident", "incident.config.IncidentConfig", ""),
    ("receiver", "incident.webhook.WebhookConfig", ""),
    ("simulator", "simulator.config.SimulatorConfig", ""),
    ("simulator", "simulator.config.MetricSpec", "[[metrics]]"),
    ("dashboard", "dashboard.config.DashboardConfig", "[dashboard]"),
    ("monitor", "monitor.config.MonitorConfig", "[monitor]"),
    ("stack", "stack.config.StackConfig", "[stack]"),
]
# port, host and prometheus_url: the sweep gives every server its own by flag, which wins over the file.
SKIP_KEYS = {"metrics", "queries", "services", "model_dir", "data_dir", "log", "port", "host"}
SKIP_KEYS |= {"prometheus_url"}
VALUES = {
    "float": ["-1e308", "1e-9", "1e12", "1e308", "nan", '"text"'],
    "int": ["-1", "1000000000000000", '"text"'],
    "str": ['""', "5"],
    "bool": ['"yes"'],
    "list": ['"notalist"'],
    "other": ['"zzz"'],
}
FIELDS_CODE = """
import dataclasses, importlib, json, sys, typing
out = {}
for name in sys.argv[1:]:
    mod, _, cls = name.rpartition(".")
    c = getattr(importlib.import_module(mod), cls)
    hints = typing.get_type_hints(c)
    out[name] = {f.name: str(hints[f.name]) for f in dataclasses.fields(c) if f.init}
print(json.dumps(out))
"""


def kind_of(type_text: str) -> str:
    t = type_text.replace("typing.", "").replace("<class '", "").replace("'>", "")
    if t.startswith(("list", "tuple", "dict")):
        return "list"
    if "float" in t:
        return "float"
    if t in ("int", "int | None", "Optional[int]"):
        return "int"
    if t == "bool":
        return "bool"
    if "str" in t or "Path" in t:
        return "str"
    return "other"


def config_cases(ctx: Ctx) -> list[Callable[[], Result]]:
    names = [c for _, c, _ in CONFIGS]
    done = subprocess.run(
        [PY, "-c", FIELDS_CODE, *names], cwd=ctx.root, capture_output=True, text=True, check=True
    )
    fields = json.loads(done.stdout)
    ranges = _ranges()
    cases = []
    for service, cls, section in CONFIGS:
        for key, tp in fields[cls].items():
            if key in SKIP_KEYS:
                continue
            for value in VALUES[kind_of(tp)]:
                cases.append(
                    _config_case(ctx, service, cls, section, key, value, ranges.get(cls, {}).get(key))
                )
    return cases


def _ranges() -> dict[str, dict[str, Any]]:
    """This checkout's documented ranges (to tell a rightly accepted value from a silent accept)."""
    try:
        import render_settings_docs  # type: ignore[import-not-found]
    except ImportError:
        sys.path.insert(0, str(HERE / "scripts"))
        import render_settings_docs  # type: ignore[import-not-found]
    out = {}
    for name in render_settings_docs.CONFIGS:
        out[name] = dict(getattr(render_settings_docs.config_class(name), "RANGES", {}))
    return out


def _config_case(
    ctx: Ctx, service: str, cls: str, section: str, key: str, value: str, rng: Any
) -> Callable[[], Result]:
    def run() -> Result:
        tmp = Path(tempfile.mkdtemp(dir=ctx.tmp))
        conf = tmp / "c.toml"
        if cls.endswith("MetricSpec"):
            body = 'name = "m"\nmin = 0.0\nmax = 10.0\nstep = 1.0\n'
            body = "\n".join(line for line in body.splitlines() if not line.startswith(f"{key} ")) + "\n"
            conf.write_text(f"{section}\n{body}{key} = {value}\n")
        elif service == "stack":
            text = (ctx.root / "stack.toml").read_text()
            conf.write_text(text.replace("[stack]\n", f"[stack]\n{key} = {value}\n", 1))
        else:
            conf.write_text(f"{section}\n{key} = {value}\n")
        argv, wait = program(ctx, service, ["--config", str(conf)], tmp)
        outcome, detail = run_cmd(argv, ctx.root, wait)
        if outcome == "accepted" and rng is not None and _in_range(rng, value):
            outcome = "in range"
        return Result(service, "config", f"{cls.rsplit('.', 1)[1]}.{key} = {value}", outcome, detail)

    return run


def _in_range(rng: Any, value: str) -> bool:
    try:
        v = float(value)
    except ValueError:
        return False
    return bool(rng.contains(v))


# --- 3. files ---------------------------------------------------------------------------------------


def file_cases(ctx: Ctx) -> list[Callable[[], Result]]:
    def make(name: str, writer: Callable[[Path], None]) -> Callable[[Path], Path]:
        def build(tmp: Path) -> Path:
            p = tmp / name
            writer(p)
            return p

        return build

    deep = "[" * 100_000 + "]" * 100_000
    files: dict[str, Callable[[Path], Path]] = {
        "/dev/zero": lambda tmp: Path("/dev/zero"),
        "a FIFO": make("fifo", lambda p: os.mkfifo(p)),
        "not UTF-8": make("bin", lambda p: p.write_bytes(b"\xff\xfe\x00garbage")),
        "100k-deep JSON": make("deep.json", lambda p: p.write_text('{"a": ' + deep + "}")),
        "1e999 JSON": make("inf.json", lambda p: p.write_text('{"status": "success", "data": 1e999}')),
        "a directory": make("dir", lambda p: p.mkdir()),
    }
    toml_deep = make("deep.toml", lambda p: p.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n"))
    cases: list[Callable[[], Result]] = []
    for what, build in files.items():
        cases.append(_file_case(ctx, "monitor", "training file", what, build))
    cases.append(
        _file_case(ctx, "monitor", "training file", "empty", make("empty", lambda p: p.write_text("")))
    )
    for service in ("simulator", "dashboard", "incident", "receiver", "monitor"):
        for what, build in [*files.items(), ("100k-deep TOML", toml_deep)]:
            if what in ("1e999 JSON", "100k-deep JSON"):
                continue
            cases.append(_file_case(ctx, service, "config file", what, build))
    state_docs = {
        "state not UTF-8": b"\xff\xfe{",
        "state 100k-deep": ('{"version": 1, "x": ' + deep + "}").encode(),
        "state forged unwritten": json.dumps(
            {
                "version": 1,
                "tracker": {"last_ts": 1.7e9, "series": [], "in_trouble": [], "current": None, "recent": []},
                "deltas": {"last": {}, "baselined": True},
                "unwritten": ["forged line 1", "forged line 2"],
            }
        ).encode(),
        "state severity 7": json.dumps(
            {
                "version": 1,
                "tracker": {
                    "last_ts": 1.7e9,
                    "series": [],
                    "in_trouble": [],
                    "current": {
                        "incident_id": "x",
                        "started_at": 1.7e9,
                        "ended_at": None,
                        "severity": 7,
                        "peak_severity": 7,
                        "metrics": ["a"],
                    },
                    "recent": [],
                },
                "deltas": {"last": {}, "baselined": True},
                "unwritten": [],
            }
        ).encode(),
        "state last_ts 1e300": json.dumps(
            {
                "version": 1,
                "tracker": {"last_ts": 1e300, "series": [], "in_trouble": [], "current": None, "recent": []},
                "deltas": {"last": {}, "baselined": True},
                "unwritten": [],
            }
        ).encode(),
    }
    for what, raw in state_docs.items():
        cases.append(_state_case(ctx, what, raw))
    return cases


def _file_case(
    ctx: Ctx, service: str, role: str, what: str, build: Callable[[Path], Path]
) -> Callable[[], Result]:
    def run() -> Result:
        tmp = Path(tempfile.mkdtemp(dir=ctx.tmp))
        path = build(tmp)
        if role == "training file":
            argv, wait = program(ctx, service, [], tmp)
            argv[3] = str(path)
        else:
            argv, wait = program(ctx, service, ["--config", str(path)], tmp)
        outcome, detail = run_cmd(argv, ctx.root, wait)
        return Result(service, "files", f"{role}: {what}", outcome, detail)

    return run


def _state_case(ctx: Ctx, what: str, raw: bytes) -> Callable[[], Result]:
    def run() -> Result:
        tmp = Path(tempfile.mkdtemp(dir=ctx.tmp))
        (tmp / "incidents.log.state.json").write_bytes(raw)
        argv, wait = program(ctx, "incident", [], tmp)
        outcome, detail = run_cmd(argv, ctx.root, wait)
        log = tmp / "incidents.log"
        if outcome != "traceback" and log.exists() and "forged" in log.read_text(errors="replace"):
            outcome, detail = "accepted", "forged lines written into the incident log"
        return Result("incident", "files", what, outcome, detail)

    return run


# --- 4. HTTP fields ---------------------------------------------------------------------------------

DEEP = "[" * 5000 + "]" * 5000


def sim_requests() -> list[tuple[str, str, str, Any, dict[str, str]]]:
    base = {"metric": "energy_price", "kind": "spike", "magnitude": 3.0, "duration_s": 10}
    j = {"Content-Type": "application/json"}
    out: list[tuple[str, str, str, Any, dict[str, str]]] = []
    for key, bads in {
        "metric": [1, "", "x" * 10_000, None, "nope"],
        "kind": [1, "nope", None],
        "magnitude": ["x", -1, 1e308, True, None],
        "duration_s": [0, -1, 1e308, "x", None],
        "series": [-1, "x", 10**9, 1.5],
    }.items():
        for bad in bads:
            out.append(
                (
                    f"POST /anomalies {key}={bad!r:.30}",
                    "POST",
                    "/anomalies",
                    json.dumps({**base, key: bad}),
                    j,
                )
            )
    for raw in ('{"metric": "energy_price", "kind": "spike", "magnitude": 1e999, "duration_s": 10}',
                '{"metric": "energy_price", "kind": "spike", "magnitude": NaN, "duration_s": 10}',
                DEEP, "[]", '"str"', "not json", json.dumps({**base, "extra": 1})):  # fmt: skip
        out.append((f"POST /anomalies body {raw[:30]!r}", "POST", "/anomalies", raw, j))
    out.append(
        ("POST /anomalies text/plain", "POST", "/anomalies", json.dumps(base), {"Content-Type": "text/plain"})
    )
    out.append(
        (
            "POST /anomalies foreign Origin",
            "POST",
            "/anomalies",
            json.dumps(base),
            {**j, "Origin": "http://evil"},
        )
    )
    for aid in ("nope", "x" * 5000, "..%2F..%2Fx"):
        out.append((f"DELETE /anomalies/{aid[:20]}", "DELETE", f"/anomalies/{aid}", None, {}))
    return out


def dash_requests() -> list[tuple[str, str, str, Any, dict[str, str]]]:
    j = {"Content-Type": "application/json"}
    out: list[tuple[str, str, str, Any, dict[str, str]]] = []
    for q in (
        "name=nope&metric=energy_price", "name=band&metric=nope", "name=band&metric=energy_price&range=9y",
        "name=band&metric=energy_price&series=" + DEEP, 'name=band&metric=energy_price&series={"a":1e999}',
        'name=band&metric=energy_price&series={"a b":"1"}', "name=band", "metric=" + "x" * 10_000,
    ):  # fmt: skip
        out.append((f"GET /api/series?{q[:40]}", "GET", f"/api/series?{q}", None, {}))
    for q in ("range=9y", "range=-5m", "range=" + "x" * 5000):
        out.append((f"GET /api/summary?{q[:30]}", "GET", f"/api/summary?{q}", None, {}))
    for body in ('{"case": "nope"}', '{"case": 1}', "[]", DEEP, '{"case": 1e999}', "not json"):
        out.append((f"POST /api/inject {body[:30]!r}", "POST", "/api/inject", body, j))
    return out


def receiver_requests() -> list[tuple[str, str, str, Any, dict[str, str]]]:
    j = {"Content-Type": "application/json"}
    ok = {"status": "firing", "labels": {"alertname": "A"}}
    out: list[tuple[str, str, str, Any, dict[str, str]]] = []
    for name, alert in {
        "annotations list": {**ok, "annotations": ["a"]},
        "annotations string": {**ok, "annotations": "a"},
        "labels list": {**ok, "labels": ["a"]},
        "labels number values": {**ok, "labels": {"alertname": 1}},
        "startsAt number": {**ok, "startsAt": 5},
        "status list": {**ok, "status": ["x"]},
    }.items():
        out.append((f"POST / {name}", "POST", "/", json.dumps({"alerts": [ok, alert]}), j))
    raw_inf = '{"alerts": [{"status": "firing", "labels": {"alertname": "A"}, "startsAt": 1e999}]}'
    raws = {"startsAt 1e999": raw_inf, "alerts not a list": '{"alerts": 1}', "deep": DEEP, "not json": "{"}
    raws["receiver object"] = '{"receiver": {}, "alerts": []}'
    for name, raw in raws.items():
        out.append((f"POST / {name}", "POST", "/", raw, j))
    return out


def incident_requests() -> list[tuple[str, str, str, Any, dict[str, str]]]:
    return [
        ("GET /nope", "GET", "/nope", None, {}),
        ("GET " + "/x" * 10, "GET", "/x" * 5000, None, {}),
        ("POST /state", "POST", "/state", "{}", {"Content-Type": "application/json"}),
    ]


def run_http(ctx: Ctx) -> list[Result]:
    results: list[Result] = []
    for service, reqs in (
        ("simulator", sim_requests()),
        ("dashboard", dash_requests()),
        ("receiver", receiver_requests()),
        ("incident", incident_requests()),
    ):
        tmp = Path(tempfile.mkdtemp(dir=ctx.tmp))
        argv, _ = program(ctx, service, [], tmp)
        port = argv[argv.index("--port") + 1]
        base = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(argv, cwd=ctx.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    requests.get(f"{base}/healthz", timeout=1)
                    break
                except requests.RequestException:
                    time.sleep(0.2)
            for name, method, path, body, headers in reqs:
                results.append(
                    Result(service, "http", name, *_http_outcome(proc, base, method, path, body, headers))
                )
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(10)
    return results


def _http_outcome(
    proc: subprocess.Popen[bytes], base: str, method: str, path: str, body: Any, headers: dict[str, str]
) -> tuple[str, str]:
    headers = {"Host": base.removeprefix("http://"), **headers}
    try:
        r = requests.request(method, base + path, data=body, headers=headers, timeout=10)
    except requests.RequestException as exc:
        return "traceback", f"no answer: {type(exc).__name__}"
    if proc.poll() is not None:
        return "traceback", "server died"
    if r.status_code in (502, 503, 504) and _is_json(r):
        return "accepted", f"HTTP {r.status_code} (passed the checks; its upstream is down in the sweep)"
    if r.status_code >= 500:
        return "traceback", f"HTTP {r.status_code}"
    if r.status_code >= 400:
        try:
            r.json()
        except ValueError:
            return "traceback", f"HTTP {r.status_code} without a JSON error"
        return "clean", f"HTTP {r.status_code}"
    return "accepted", f"HTTP {r.status_code}"


def _is_json(r: requests.Response) -> bool:
    try:
        r.json()
    except ValueError:
        return False
    return True


# --- main -------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=HERE, help="the checkout whose services are swept")
    p.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    p.add_argument("--only", default="cli,config,files,http", help="which kinds of cases (comma-separated)")
    p.add_argument("--out", type=Path, help="one JSON line per case")
    args = p.parse_args(argv)
    kinds = set(args.only.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="sweep-"))
    ctx = Ctx(args.root.resolve(), tmp)
    cases: list[Callable[[], Result]] = []
    if "cli" in kinds:
        cases += flag_cases(ctx)
    if "config" in kinds:
        cases += config_cases(ctx)
    if "files" in kinds:
        cases += file_cases(ctx)
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(lambda case: case(), cases))
        if "http" in kinds:
            results += run_http(ctx)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.out:
        with args.out.open("w") as fh:
            for r in results:
                fh.write(json.dumps(r.__dict__) + "\n")
    report(results, time.monotonic() - started)
    return 0


def report(results: list[Result], seconds: float) -> None:
    total = Counter(r.outcome for r in results)
    print(f"{len(results)} bad inputs in {seconds:.0f} s: " + ", ".join(f"{k} {total[k]}" for k in OUTCOMES))
    by = Counter((r.service, r.outcome) for r in results)
    for service in sorted({r.service for r in results}):
        print(f"  {service:20} " + "  ".join(f"{k} {by[(service, k)]}" for k in OUTCOMES))
    for r in results:
        if r.outcome in ("traceback", "accepted"):
            print(f"  {r.outcome:9} {r.service:18} {r.kind:6} {r.case}: {r.detail}")


OUTCOMES = ("clean", "traceback", "accepted", "in range")

if __name__ == "__main__":
    raise SystemExit(main())
