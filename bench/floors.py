#!/usr/bin/env python3
"""updateDialog on one hot chat beside two floors, under the real `spin up`, in one run:
  floor   = one key-value get and one set (Spin's own floor, as spin-kv-floor)
  cas     = a postback's store calls and nothing else: get-many of three keys, then a
            compare-and-swap (current, swap) retried when it loses (bench/cas-floor)
  project = updateDialog, every request to one chat
floor and cas are one component, built with this repository's settings (128 KiB stack).
project/cas is what our own work costs; cas/floor what a compare-and-swap costs on the store.

Usage, from the repository root with `spin` and `wrk` on PATH and the components built
(scripts/build-wasm):
  python3 bench/floors.py [disk|memory]
Env: DURATION (default 8s), ROUNDS (default 3; rounds interleave the targets, the median
counts), SPIN (default `spin`).
"""
import json, os, re, socket, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODE = sys.argv[1] if len(sys.argv) > 1 else "disk"
DURATION = os.environ.get("DURATION", "8s")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SPIN = os.environ.get("SPIN", "spin")
TOKEN = "bench-token"


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    return port


def spin_up(app_dir, tmp, env):
    port = free_port()
    args = [SPIN, "up", "-f", os.path.join(app_dir, "spin.toml"), "--listen", f"127.0.0.1:{port}",
            "--state-dir", tempfile.mkdtemp(dir=tmp)]
    if MODE == "memory":
        config = os.path.join(tmp, "memory.toml")
        open(config, "w").write('[key_value_store.default]\ntype = "spin"\n')
        args += ["--runtime-config-file", config]
    proc = subprocess.Popen(args, cwd=app_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, **env))
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"spin up in {app_dir} exited early")
        try:
            socket.create_connection(("127.0.0.1", port), 0.3).close()
            return proc, port
        except OSError:
            time.sleep(0.2)
    sys.exit(f"spin up in {app_dir} did not listen")


def admin(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"authorization": f"Bearer {TOKEN}",
                                          "content-type": "application/json"})
    return json.loads(urllib.request.urlopen(req).read())


def ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def wrk(url):
    # wrk leaves requests slower than its timeout (2 s by default) out of its latency figures;
    # with 30 s every request counts, and any still timed out are reported.
    out = subprocess.run(["wrk", "-t2", "-c32", "-d" + DURATION, "--timeout", "30s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups())
    slowest = ms(*re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out).groups())
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        sys.exit(f"{url}: {bad.group(1)} answers were not 2xx")
    timeouts = re.search(r"timeout (\d+)", out)
    if timeouts and int(timeouts.group(1)):
        sys.exit(f"{url}: {timeouts.group(1)} requests took over 30 s")
    return rps, p99, slowest


def main():
    floor_dir = os.path.join(ROOT, "bench", "cas-floor")
    target = os.path.join(os.path.expanduser("~"), ".cache", "funnelhooks-bench", "cas-floor-target")
    subprocess.run(["cargo", "build", "-q", "--release", "--target", "wasm32-wasip2"], cwd=floor_dir,
                   check=True, env=dict(os.environ, CARGO_TARGET_DIR=target))
    built = os.path.join(floor_dir, "target", "wasm32-wasip2", "release")
    os.makedirs(built, exist_ok=True)
    subprocess.run(["cp", os.path.join(target, "wasm32-wasip2", "release", "cas_floor.wasm"), built],
                   check=True)
    tmp = tempfile.mkdtemp(prefix="floors-")
    procs = []
    try:
        proc, pport = spin_up(ROOT, tmp, {"SPIN_VARIABLE_ADMIN_TOKEN": TOKEN}); procs.append(proc)
        bot = admin(pport, "/api/bots", {"name": "bench"})["id"]
        link = admin(pport, f"/api/bots/{bot}/webhooks", {})["id"]
        proc, fport = spin_up(floor_dir, tmp, {}); procs.append(proc)
        urls = {
            "floor": f"http://127.0.0.1:{fport}/floor",
            "cas": f"http://127.0.0.1:{fport}/cas",
            "project": f"http://127.0.0.1:{pport}/api/bots/webhooks/{link}/updateDialog"
                       "?chatId=1227280&refID=12345&tracker.clickid=abc",
        }
        runs = {name: [] for name in urls}
        for _ in range(ROUNDS):
            for name, url in urls.items():
                runs[name].append(wrk(url))
    finally:
        for proc in procs:
            proc.terminate()
    for name, r in runs.items():
        print(f"{MODE}/one chat {name}, each round: "
              + ", ".join(f"{x:.0f} req/s p99 {y:.0f} ms slowest {z:.0f} ms" for x, y, z in r))
    median = {name: sorted(r)[len(r) // 2] for name, r in runs.items()}
    for name, (rps, p99, slowest) in median.items():
        print(f"{MODE}/one chat {name}: {rps:.0f} req/s, p99 {p99:.1f} ms, slowest {slowest:.0f} ms")
    rps = {name: r[0] for name, r in median.items()}
    print(f"{MODE}/one chat: project/floor {rps['project'] / rps['floor']:.2f}, "
          f"project/cas {rps['project'] / rps['cas']:.2f}, cas/floor {rps['cas'] / rps['floor']:.2f}")


if __name__ == "__main__":
    main()
