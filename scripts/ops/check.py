"""Static checks of the operator's pack, run by scripts/ops-check (which runs promtool itself).

    python3 scripts/ops/check.py COMPOSE_SCHEMA_JSON QUERIES_OUT

Checks docker-compose.yml (the Compose Specification's JSON Schema, then the structure the stack
relies on), ops/prometheus/, ops/grafana/ and docs/OPERATIONS.md against each other and against
the code: every metric the rules, the dashboards and the runbook's PromQL name is one the code
exports. Writes the dashboards' and the runbook's queries to QUERIES_OUT as recording rules, for
`promtool check rules` to parse. Prints every problem and exits 1 if there is any.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "ops/prometheus/prometheus.yml"
ALERTS = ROOT / "ops/prometheus/alerts.yml"
ALERT_TESTS = ROOT / "ops/prometheus/alerts.test.yml"
GRAFANA = ROOT / "ops/grafana"
DASHBOARDS = GRAFANA / "dashboards"
RUNBOOK = ROOT / "docs/OPERATIONS.md"
OPENAPI = ROOT / "api/openapi.json"
CODE_DIRS = ["api/src", "shared/src", "worker/src", "scheduler/src"]
JOBS_DIR = ROOT / "shared/src/jobs"


# Series Prometheus makes itself for every target or alert.
PROMETHEUS_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
    "ALERTS",
    "ALERTS_FOR_STATE",
}

# The processes of the stack and the services of the observability profile.
APP_SERVICES = ["api", "worker", "scheduler"]
CORE_SERVICES = ["postgres", "redis", "migrate", *APP_SERVICES]
OBSERVABILITY = "observability"
OBSERVABILITY_SERVICES = {"prometheus": "prom/prometheus", "grafana": "grafana/grafana"}
SEVERITIES = {"critical", "warning"}
# Alerts the unit tests must cover (a firing case each).
MUST_BE_TESTED = {"JobQueueBacklogAge", "SchedulerLeaderMissing", "PaymentMismatch"}

problems: list[str] = []


def problem(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def load_yaml(path: Path):
    try:
        with path.open(encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        problem(rel(path), f"cannot be read as YAML: {e}")
        return None


def load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        problem(rel(path), f"cannot be read as JSON: {e}")
        return None


# --- docker-compose.yml ---------------------------------------------------------------------------

DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|ms|m|s|us))+$")
UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}
DEFAULT_VALUE = re.compile(r"^\$\{[A-Z0-9_]+:?-([^}]*)\}$")


def seconds(duration) -> float | None:
    """A compose duration (`45s`, `1m30s`) in seconds; None if it is not one."""
    if isinstance(duration, (int, float)):
        return float(duration)
    if not isinstance(duration, str) or not DURATION.match(duration):
        return None
    return sum(float(n) * UNIT_SECONDS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", duration))


def env_value(service: dict, name: str):
    """The value compose gives `name` in a service (its default when it is `${VAR:-default}`)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    value = env.get(name)
    if isinstance(value, str):
        m = DEFAULT_VALUE.match(value)
        if m:
            return m.group(1)
    return value


def port_of(addr) -> int | None:
    m = re.search(r":(\d+)$", str(addr or ""))
    return int(m.group(1)) if m else None


def check_compose(schema_path: Path) -> dict:
    where = rel(COMPOSE)
    compose = load_yaml(COMPOSE)
    if not isinstance(compose, dict):
        problem(where, "is not a mapping")
        return {}

    schema = load_json(schema_path)
    if schema is not None:
        validator = jsonschema.Draft7Validator(schema)
        for error in sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path)):
            path = "/".join(str(p) for p in error.absolute_path) or "(top level)"
            problem(where, f"Compose Specification: {path}: {error.message}")

    services = compose.get("services") or {}
    volumes = compose.get("volumes") or {}
    for name in [*CORE_SERVICES, *OBSERVABILITY_SERVICES]:
        if name not in services:
            problem(where, f"service {name} is missing")

    for name, service in services.items():
        if not isinstance(service, dict):
            problem(where, f"service {name} is not a mapping")
            continue
        if "image" not in service and "build" not in service:
            problem(where, f"service {name} has neither image nor build")
        depends = service.get("depends_on") or {}
        targets = depends if isinstance(depends, dict) else {t: {} for t in depends}
        for target, spec in targets.items():
            if target not in services:
                problem(where, f"service {name} depends on {target}, which does not exist")
                continue
            condition = (spec or {}).get("condition", "service_started")
            if condition == "service_healthy" and "healthcheck" not in services[target]:
                problem(where, f"service {name} waits for {target} to be healthy, which has no healthcheck")
            if not service.get("profiles") and services[target].get("profiles"):
                problem(where, f"service {name} (every profile) depends on {target}, which is only in a profile")
        for mount in service.get("volumes") or []:
            source = mount.split(":", 1)[0] if isinstance(mount, str) else (mount or {}).get("source")
            if not source:
                continue
            if source.startswith((".", "/")):
                if not (ROOT / source).exists():
                    problem(where, f"service {name} mounts {source}, which does not exist")
            elif source not in volumes:
                problem(where, f"service {name} mounts volume {source}, which is not declared")
        grace = service.get("stop_grace_period")
        if grace is not None and seconds(grace) is None:
            problem(where, f"service {name}: stop_grace_period {grace!r} is not a duration")

    for name in CORE_SERVICES:
        if services.get(name, {}).get("profiles"):
            problem(where, f"service {name} must run without a profile")
    for name, image in OBSERVABILITY_SERVICES.items():
        service = services.get(name) or {}
        if OBSERVABILITY not in (service.get("profiles") or []):
            problem(where, f"service {name} must be in the {OBSERVABILITY} profile")
        if not str(service.get("image", "")).startswith(image + ":"):
            problem(where, f"service {name} must use the official image {image} with a tag")

    # The app's health checks ask their own listener.
    for name, var, path in [
        ("api", "API_ADDR", "/health/ready"),
        ("worker", "METRICS_ADDR", "/health/live"),
        ("scheduler", "METRICS_ADDR", "/health/live"),
    ]:
        service = services.get(name) or {}
        check = service.get("healthcheck") or {}
        test = check.get("test")
        text = " ".join(test) if isinstance(test, list) else str(test or "")
        port = port_of(env_value(service, var))
        if not test or check.get("disable"):
            problem(where, f"service {name} has no healthcheck")
        elif port is None:
            problem(where, f"service {name}: {var} has no port")
        elif f"/dev/tcp/127.0.0.1/{port}" not in text or path not in text:
            problem(where, f"service {name}: the healthcheck must ask {path} on port {port} ({var})")
        elif "curl" in text or "wget" in text:
            problem(where, f"service {name}: the runtime image has no curl or wget")

    # The worker is given time to drain before SIGKILL.
    worker = services.get("worker") or {}
    drain = env_value(worker, "WORKER_SHUTDOWN_TIMEOUT_SECS")
    drain = 30 if drain in (None, "") else drain
    grace = seconds(worker.get("stop_grace_period", "10s"))
    try:
        drain = float(drain)
    except ValueError:
        problem(where, f"worker: WORKER_SHUTDOWN_TIMEOUT_SECS {drain!r} is not a number")
    else:
        if grace is None or grace <= drain:
            problem(
                where,
                f"worker: stop_grace_period ({worker.get('stop_grace_period', '10s')}) must be longer "
                f"than WORKER_SHUTDOWN_TIMEOUT_SECS ({drain:g} s)",
            )
    return compose


# --- Prometheus -----------------------------------------------------------------------------------


def check_prometheus(compose: dict) -> None:
    where = rel(PROMETHEUS)
    config = load_yaml(PROMETHEUS)
    if not isinstance(config, dict):
        return
    services = compose.get("services") or {}
    expected_ports = {
        "api": port_of(env_value(services.get("api") or {}, "API_ADDR")),
        "worker": port_of(env_value(services.get("worker") or {}, "METRICS_ADDR")),
        "scheduler": port_of(env_value(services.get("scheduler") or {}, "METRICS_ADDR")),
    }
    jobs = {}
    for scrape in config.get("scrape_configs") or []:
        jobs[scrape.get("job_name")] = scrape
    for job, port in expected_ports.items():
        scrape = jobs.get(job)
        if scrape is None:
            problem(where, f"no scrape job {job}")
            continue
        if scrape.get("metrics_path", "/metrics") != "/metrics":
            problem(where, f"job {job}: metrics_path must be /metrics")
        targets = [t for s in scrape.get("static_configs") or [] for t in s.get("targets") or []]
        for sd in scrape.get("dns_sd_configs") or []:
            if sd.get("type", "SRV") != "A":
                problem(where, f"job {job}: compose DNS answers A records (type: A)")
            targets += [f"{n}:{sd.get('port')}" for n in sd.get("names") or []]
        if job != "api" and not scrape.get("dns_sd_configs"):
            problem(where, f"job {job}: every replica is found with dns_sd_configs")
        if f"{job}:{port}" not in targets:
            problem(where, f"job {job} must scrape {job}:{port} (got {targets})")
    service = services.get("prometheus") or {}
    mounts = [m for m in service.get("volumes") or [] if isinstance(m, str)]
    if not any(m.startswith("./ops/prometheus:/etc/prometheus") for m in mounts):
        problem(rel(COMPOSE), "prometheus must mount ./ops/prometheus at /etc/prometheus")
    if "--config.file=/etc/prometheus/prometheus.yml" not in (service.get("command") or []):
        problem(rel(COMPOSE), "prometheus must run with --config.file=/etc/prometheus/prometheus.yml")
    if [Path(f).name for f in config.get("rule_files") or []] != [ALERTS.name]:
        problem(where, f"rule_files must load {ALERTS.name}")


def runbook_anchors() -> set[str]:
    """GitHub's anchors of the runbook's headings."""
    try:
        text = RUNBOOK.read_text(encoding="utf-8")
    except OSError as e:
        problem(rel(RUNBOOK), f"cannot be read: {e}")
        return set()
    anchors = set()
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m and not in_code:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def check_alerts() -> tuple[list[tuple[str, str]], set[str]]:
    """Checks the rules' shape and runbooks; returns (where, expr) of every rule and the alert names."""
    where = rel(ALERTS)
    rules = load_yaml(ALERTS) or {}
    anchors = runbook_anchors()
    exprs = []
    names: set[str] = set()
    for group in rules.get("groups") or []:
        for rule in group.get("rules") or []:
            name = rule.get("alert") or rule.get("record")
            exprs.append((f"{where}: {name}", str(rule.get("expr", ""))))
            if "alert" not in rule:
                continue
            if name in names:
                problem(where, f"alert {name} is defined twice")
            names.add(name)
            severity = (rule.get("labels") or {}).get("severity")
            if severity not in SEVERITIES:
                problem(where, f"alert {name}: severity must be one of {sorted(SEVERITIES)}, not {severity!r}")
            annotations = rule.get("annotations") or {}
            for key in ("summary", "description", "runbook"):
                if not str(annotations.get(key, "")).strip():
                    problem(where, f"alert {name} has no {key} annotation")
            runbook = str(annotations.get("runbook", ""))
            m = re.fullmatch(r"docs/OPERATIONS\.md#([\w-]+)", runbook)
            if runbook and not m:
                problem(where, f"alert {name}: runbook must be docs/OPERATIONS.md#<section>, not {runbook!r}")
            elif m and m.group(1) not in anchors:
                problem(where, f"alert {name}: docs/OPERATIONS.md has no section #{m.group(1)}")
            elif m and m.group(1) != name.lower():
                problem(where, f"alert {name}: its runbook section should be #{name.lower()}")

    tests = load_yaml(ALERT_TESTS) or {}
    tested = set()
    for test in tests.get("tests") or []:
        for case in test.get("alert_rule_test") or []:
            alert = case.get("alertname")
            if alert not in names:
                problem(rel(ALERT_TESTS), f"tests alert {alert}, which alerts.yml does not define")
            if case.get("exp_alerts"):
                tested.add(alert)
    for alert in sorted(MUST_BE_TESTED - tested):
        problem(rel(ALERT_TESTS), f"has no test in which {alert} fires")
    untested = sorted(names - tested)
    if untested:
        print(f"[ops-check] note: alerts without a firing unit test: {', '.join(untested)}")
    return exprs, names


# --- Grafana --------------------------------------------------------------------------------------


def panels_of(dashboard: dict):
    for panel in dashboard.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []


def check_grafana(compose: dict) -> list[tuple[str, str]]:
    datasources = [
        ds
        for path in sorted((GRAFANA / "provisioning/datasources").glob("*.yml"))
        for ds in (load_yaml(path) or {}).get("datasources") or []
    ]
    uids = {ds.get("uid") for ds in datasources if ds.get("type") == "prometheus"}
    services = compose.get("services") or {}
    for ds in datasources:
        host = re.match(r"^https?://([^:/]+)", str(ds.get("url", "")))
        if not host or host.group(1) not in services:
            problem("ops/grafana/provisioning/datasources", f"data source {ds.get('name')}: url must name a compose service")
    if not uids:
        problem("ops/grafana/provisioning/datasources", "no Prometheus data source")

    providers = [
        p
        for path in sorted((GRAFANA / "provisioning/dashboards").glob("*.yml"))
        for p in (load_yaml(path) or {}).get("providers") or []
    ]
    mounts = [m for m in (services.get("grafana") or {}).get("volumes") or [] if isinstance(m, str)]
    mounted = {m.split(":")[1]: m.split(":")[0] for m in mounts if m.count(":") >= 1}
    for p in providers:
        path = (p.get("options") or {}).get("path")
        if mounted.get(path) != "./ops/grafana/dashboards":
            problem(rel(COMPOSE), f"grafana must mount ./ops/grafana/dashboards at {path} (the provider's path)")
    if mounted.get("/etc/grafana/provisioning") != "./ops/grafana/provisioning":
        problem(rel(COMPOSE), "grafana must mount ./ops/grafana/provisioning at /etc/grafana/provisioning")

    exprs = []
    files = sorted(DASHBOARDS.glob("*.json"))
    if not files:
        problem(rel(DASHBOARDS), "no dashboard")
    for path in files:
        dashboard = load_json(path)
        if not isinstance(dashboard, dict):
            continue
        where = rel(path)
        for key in ("uid", "title", "panels"):
            if not dashboard.get(key):
                problem(where, f"has no {key}")
        ids = [p.get("id") for p in panels_of(dashboard)]
        if len(ids) != len(set(ids)):
            problem(where, "panel ids are not unique")
        for panel in panels_of(dashboard):
            if panel.get("type") == "row":
                continue
            title = panel.get("title", "?")
            for target in [panel, *(panel.get("targets") or [])]:
                uid = (target.get("datasource") or {}).get("uid")
                if uid not in uids:
                    problem(where, f"panel {title!r}: data source uid {uid!r} is not provisioned")
            if not panel.get("targets"):
                problem(where, f"panel {title!r} has no query")
            for target in panel.get("targets") or []:
                if not str(target.get("expr", "")).strip():
                    problem(where, f"panel {title!r}: query {target.get('refId')} is empty")
                exprs.append((f"{where}: panel {title!r}", str(target.get("expr", ""))))
    return exprs


# --- metric names: referenced versus exported -----------------------------------------------------

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
            "offset", "bool", "inf", "nan"}
# Aggregations, which may put their grouping first: `sum by (kind) (...)`.
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
      | (?P<duration>(?:\d+(?:ms|[smhdwy]))+\b)
      | (?P<number>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
      | (?P<other>\S)""",
    re.VERBOSE,
)


def referenced_series(expr: str) -> tuple[set[str], list[tuple[str, str]]]:
    """The metric names an expression selects, and its (label, value) equality matchers."""
    expr = re.sub(r"\$__\w+|\$\{?\w+\}?", "1m", expr)  # Grafana's variables ($__rate_interval)
    matchers = re.findall(r'(\w+)\s*!?=\s*"([^"]*)"', expr)
    names: set[str] = set()
    tokens = [(m.lastgroup, m.group()) for m in TOKEN.finditer(expr)]
    depth_braces = depth_brackets = 0
    skip_group = False
    for i, (kind, text) in enumerate(tokens):
        if text == "{":
            depth_braces += 1
        elif text == "}":
            depth_braces -= 1
        elif text == "[":
            depth_brackets += 1
        elif text == "]":
            depth_brackets -= 1
        if depth_braces or depth_brackets or kind != "ident":
            if skip_group and text == ")":
                skip_group = False
            continue
        if skip_group:
            continue
        lowered = text.lower()
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if lowered in {"by", "without", "on", "ignoring", "group_left", "group_right"}:
            skip_group = nxt == "("
            continue
        if lowered in KEYWORDS or lowered in AGGREGATIONS or nxt == "(":
            continue  # a keyword, a function or an aggregation
        names.add(text)
    return names, matchers


def exported_metrics() -> tuple[set[str], set[str]]:
    """(names, histogram names) of the families the code exports: ops/metrics.txt, which a unit
    test of shared/src/metrics holds equal to what the processes render."""
    names, histograms = set(), set()
    for line in (ROOT / "ops/metrics.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, kind = line.split()
        names.add(name)
        if kind == "histogram":
            histograms.add(name)
    return names, histograms


def check_metric_names(exprs: list[tuple[str, str]]) -> None:
    exported, histograms = exported_metrics()
    if not exported:
        problem("ops/metrics.txt", "no metric families listed")
    known = set(exported) | PROMETHEUS_SERIES
    for h in histograms:
        known |= {f"{h}_bucket", f"{h}_sum", f"{h}_count"}

    routes = set()
    spec = load_json(OPENAPI) or {}
    for operations in (spec.get("paths") or {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and operation.get("operationId"):
                routes.add(operation["operationId"])
    kinds = set()
    for path in sorted(JOBS_DIR.glob("*.rs")):
        kinds |= set(re.findall(r'const NAME: &\'static str = "(\w+)"', path.read_text(encoding="utf-8")))

    for where, expr in exprs:
        names, matchers = referenced_series(expr)
        if not names:
            problem(where, f"selects no metric: {expr.strip()!r}")
        for name in sorted(names):
            if name in known:
                continue
            problem(where, f"metric {name} is not exported by the code")
        for label, value in matchers:
            if label == "route" and value not in routes and not value.startswith("/"):
                problem(where, f'route="{value}" is not an operationId of {rel(OPENAPI)}')
            if label == "kind" and value not in kinds:
                problem(where, f'kind="{value}" is not a job of shared/src/jobs')



def runbook_queries() -> list[tuple[str, str]]:
    """Every line of the runbook's ```promql blocks."""
    queries = []
    block = False
    try:
        lines = RUNBOOK.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []  # reported by runbook_anchors
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            block = line.strip() == "```promql"
            continue
        query = line.split(" #", 1)[0].strip()
        if block and query:
            queries.append((f"{rel(RUNBOOK)}:{number}", query))
    if not queries:
        problem(rel(RUNBOOK), "has no ```promql block")
    return queries


def write_query_rules(path: Path, groups: dict[str, list[tuple[str, str]]]) -> None:
    """The queries as recording rules (Grafana's $__interval variables as 1m), for promtool."""
    rules = {"groups": []}
    for name, queries in groups.items():
        rules["groups"].append({
            "name": name,
            "rules": [
                {"record": f"ops_check:{name}:{i}", "expr": re.sub(r"\$__\w+", "1m", expr),
                 "labels": {"source": where}}
                for i, (where, expr) in enumerate(queries)
            ],
        })
    path.write_text(yaml.safe_dump(rules, sort_keys=False, width=1000), encoding="utf-8")


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    compose = check_compose(Path(sys.argv[1]))
    check_prometheus(compose)
    rule_exprs, _ = check_alerts()
    dashboard_exprs = check_grafana(compose)
    runbook_exprs = runbook_queries()
    check_metric_names(rule_exprs + dashboard_exprs + runbook_exprs)
    write_query_rules(Path(sys.argv[2]), {"dashboards": dashboard_exprs, "runbook": runbook_exprs})
    for p in problems:
        print(f"[ops-check] FAIL {p}", file=sys.stderr)
    if problems:
        print(f"[ops-check] {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"[ops-check] compose, prometheus, alerts ({len(rule_exprs)} rules), dashboards "
          f"({len(dashboard_exprs)} queries), runbook ({len(runbook_exprs)} queries), metric names: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
