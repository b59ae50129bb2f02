#!/usr/bin/env bash
# Benchmark: `ward scan` against checkov on the same 10,000-object dump, timed in the same run,
# with a risk-by-risk comparison of what each reports. See usage() below.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/scan-vs-checkov.sh [--write] [--help]

Generates (bench/scan-gen.py) a directory with a multi-document dump of OBJECTS objects
(Deployments reading Secrets through secretKeyRef and envFrom, ConfigMaps with credentials,
Roles reading Secrets bound to ServiceAccounts, escalating ClusterRoles, pod creators,
privileged hostPath Pods, literal credentials in env, Secret volumes with wide modes and
subPath, legacy token Secrets) and the static pods and configuration files of two
control-plane nodes. Then, on that directory:
  ward     `ward scan -o json DIR`, RUNS times (median reported)
  checkov  `checkov -d DIR --framework kubernetes -o json --quiet --compact --skip-download`,
           once (--skip-download: no calls to Prisma Cloud, which this machine cannot reach)
Prints a Markdown section: times, the ratio, and for each risk of issue #6 the number of
findings of ward and of the checkov checks that address the same risk.

Options:
  --write      also write the section into docs/benchmarks.md (between its markers)
  -h, --help   print this help

Environment:
  WARD_BIN     ward binary (default target/release/ward; built with
               `cargo build --release -p ward` when missing)
  CHECKOV      checkov executable (default: `pip install checkov` into a venv in the temp dir)
  OBJECTS      objects in the dump (default 10000)
  RUNS         ward runs (default 5)
  KEEP=1       keep the temp dir (its path is printed)

Example:
  bench/scan-vs-checkov.sh --write
  OBJECTS=1000 CHECKOV=~/venv/bin/checkov bench/scan-vs-checkov.sh
EOF
}

WRITE=0
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --write) WRITE=1 ;;
        *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OBJECTS="${OBJECTS:-10000}"
RUNS="${RUNS:-5}"
WARD_BIN="${WARD_BIN:-$ROOT/target/release/ward}"
TMP="$(mktemp -d)"
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi; }
trap cleanup EXIT

if [ ! -x "$WARD_BIN" ]; then
    echo "== building ward (release)" >&2
    (cd "$ROOT" && cargo build --release -p ward --locked >&2)
fi
if [ -z "${CHECKOV:-}" ]; then
    echo "== installing checkov into $TMP/venv" >&2
    python3 -m venv "$TMP/venv"
    "$TMP/venv/bin/pip" install -q checkov >&2
    CHECKOV="$TMP/venv/bin/checkov"
fi

DATA="$TMP/data"
python3 "$ROOT/bench/scan-gen.py" "$DATA" "$OBJECTS"
BYTES=$(du -sb "$DATA" | cut -f1)
FILES=$(find "$DATA" -type f | wc -l)

now() { date +%s.%N; }

echo "== ward scan x$RUNS" >&2
ward_times=()
for _ in $(seq "$RUNS"); do
    t0=$(now)
    "$WARD_BIN" scan --no-progress -o json "$DATA" > "$TMP/ward.json"
    t1=$(now)
    ward_times+=("$(echo "$t1 - $t0" | bc -l)")
done

echo "== checkov (may take minutes)" >&2
t0=$(now)
# Exit status 1 means "failed checks", not an error.
"$CHECKOV" -d "$DATA" --framework kubernetes -o json --quiet --compact --skip-download \
    > "$TMP/checkov.json" 2> "$TMP/checkov.err" || [ $? -eq 1 ]
t1=$(now)
checkov_time=$(echo "$t1 - $t0" | bc -l)

SECTION="$TMP/section.md"
python3 - "$TMP/ward.json" "$TMP/checkov.json" "$checkov_time" "$OBJECTS" "$BYTES $FILES" \
    "$("$CHECKOV" --version)" "$(git -C "$ROOT" rev-parse --short HEAD)" "${ward_times[@]}" \
    > "$SECTION" <<'PY'
import collections, json, os, platform, statistics, sys, time

ward_file, checkov_file, checkov_time, objects, size, checkov_version, commit = sys.argv[1:8]
size, files = size.split()
ward_times = sorted(float(t) for t in sys.argv[8:])
ward_time = statistics.median(ward_times)
checkov_time = float(checkov_time)

ward = collections.Counter(f["rule"] for f in json.load(open(ward_file))["findings"])
runs = json.load(open(checkov_file))
runs = runs if isinstance(runs, list) else [runs]
checkov, names = collections.Counter(), {}
for run in runs:
    for f in run["results"]["failed_checks"]:
        checkov[f["check_id"]] += 1
        names[f["check_id"]] = f["check_name"]

# The checkov checks (kubernetes framework, 3.x) that address each risk, in whole or in part.
MAP = {
    "secret-env-var": ["CKV_K8S_35"],
    "secret-like-configmap": [],
    "literal-credential-env": [],
    "rbac-secret-read": ["CKV2_K8S_5"],
    "rbac-implied-secret-access": [],
    "rbac-escalation": ["CKV_K8S_157", "CKV_K8S_158"],
    "hostpath-mount": ["CKV_K8S_27"],
    "privileged-node-access": ["CKV_K8S_16", "CKV_K8S_17", "CKV_K8S_18", "CKV_K8S_19"],
    "encryption-missing": ["CKV_K8S_104"],
    "encryption-identity-first": [],
    "encryption-resource-uncovered": [],
    "encryption-weak-provider": [],
    "encryption-key-colocated": [],
    "etcd-transport-insecure": ["CKV_K8S_99", "CKV_K8S_102", "CKV_K8S_116", "CKV_K8S_117",
                                "CKV_K8S_118"],
    "audit-logs-secret-values": [],
    "secret-file-mode": [],
    "secret-subpath-mount": [],
    "sa-token-automount": ["CKV_K8S_38"],
    "legacy-sa-token-secret": [],
}
mapped = {c for cs in MAP.values() for c in cs}

cpu = "?"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass

p = print
p("## `ward scan` vs checkov: a 10,000-object dump")
p()
p("Command: `bench/scan-vs-checkov.sh --write` (input generated by `bench/scan-gen.py`)")
p()
p(f"Input: {int(objects):,} objects in one multi-document `dump.yaml` plus the static pods and")
p(f"configuration files of two control-plane nodes, {int(size) / 1e6:.1f} MB in {files} files.")
p()
p("| tool | command | wall time |")
p("|---|---|---:|")
p(f"| ward {commit} (release) | `ward scan --no-progress -o json DIR` | {ward_time:.3f} s "
  f"(median of {len(ward_times)}: {ward_times[0]:.3f}-{ward_times[-1]:.3f}) |")
p(f"| checkov {checkov_version} | `checkov -d DIR --framework kubernetes -o json --quiet "
  f"--compact --skip-download` | {checkov_time:.1f} s |")
p()
p(f"- **checkov / ward time ratio: {checkov_time / ward_time:.0f}x** (goal of issue #6: "
  f">= 50x)")
p(f"- Machine: {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python "
  f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
  "other builds may have been running.")
p()
p("Risk by risk: findings of ward's rule, and failed checks of the checkov checks that address")
p("the same risk (0 = the check exists but did not fire; - = no such check).")
p()
p("| risk (ward rule) | ward | checkov checks | checkov |")
p("|---|---:|---|---:|")
for rule, checks in MAP.items():
    if checks:
        got = sum(checkov[c] for c in checks)
        listed = ", ".join(f"{c} ({checkov[c]})" for c in checks)
    else:
        got, listed = "-", "none"
    p(f"| {rule} | {ward[rule]} | {listed} | {got} |")
p()
others = sorted(c for c in checkov if c not in mapped)
p(f"checkov also reported {sum(checkov[c] for c in others):,} failures of {len(others)} checks")
p("outside the secrets threat model (resource limits, probes, image digests, seccomp,")
p("apiserver hardening flags, ...): " + ", ".join(f"{c} ({checkov[c]})" for c in others) + ".")
p()
p("Notes:")
p()
p("- Both tools read the same directory from the page cache; ward's time includes process")
p("  start, parsing, all 19 rules and the JSON report; checkov's includes its start (~2 s).")
p("  checkov runs with `--skip-download`, so it makes no network calls (without it, it")
p("  tries to fetch guidelines from Prisma Cloud, which fails here).")
p("- checkov's secrets framework (`--framework secrets`) would catch some literal credentials")
p("  and credential-like ConfigMap values; it was not run, as the comparison is of the")
p("  Kubernetes checks. checkov reads kube-apiserver/etcd flags but not the")
p("  EncryptionConfiguration or audit policy files, which is where five of the risks are.")
PY

cat "$SECTION"
if [ "$WRITE" = 1 ]; then
    python3 - "$ROOT/docs/benchmarks.md" "$SECTION" <<'PY'
import sys
doc, section = sys.argv[1], open(sys.argv[2]).read()
begin = "<!-- bench/scan-vs-checkov.sh: begin (generated, edits are overwritten) -->\n"
end = "<!-- bench/scan-vs-checkov.sh: end -->\n"
text = open(doc).read()
block = begin + section + end
if begin in text and end in text:
    text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + "\n\n" + block
open(doc, "w").write(text)
PY
    echo "== wrote docs/benchmarks.md" >&2
fi
