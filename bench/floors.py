#!/usr/bin/env python3
"""Our request paths beside their floors, under the real `spin up`, in one run.

`postback` (the default): updateDialog on one hot chat beside two floors:
  floor   = one key-value get and one set (Spin's own floor, as spin-kv-floor)
  cas     = a postback's store calls and nothing else: get-many of three keys, then a
            compare-and-swap (current, swap) retried when it loses (bench/cas-floor)
  project = updateDialog, every request to one chat
project/cas is what our own work costs; cas/floor what a compare-and-swap costs on the store.

`delivery`: the paths that send webhooks beside the least a durable delivery does, counted in
deliveries per second until a loopback receiver has every one:
  step floor   = one write recording the delivery, the request, one write with its outcome
  step         = a postback moving a new chat into a send-webhook step (answered, then sent)
  fanout floor = one write recording HOOKS deliveries, the requests at once, one write with
                 their outcomes
  call event   = a call-start event to a service with HOOKS hooks (answered, then sent)

The floors are one component (bench/cas-floor), built with this repository's settings.

Usage, from the repository root with `spin` and `wrk` on PATH and the components built
(scripts/build-wasm):
  python3 bench/floors.py [disk|memory] [postback|delivery]
Env: DURATION (default 8s), ROUNDS (default 3; rounds interleave the targets, the median
counts), SPIN (default `spin`), HOOKS (default 10), ONLY (delivery: the targets to run,
comma-separated, e.g. `ONLY=step` to profile one path; the ratios then need both).
"""
import asyncio, json, os, re, socket, subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODE = sys.argv[1] if len(sys.argv) > 1 else "disk"
WHAT = sys.argv[2] if len(sys.argv) > 2 else "postback"
HOOKS = int(os.environ.get("HOOKS", "10"))
DURATION = os.environ.get("DURATION", "8s")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SPIN = os.environ.get("SPIN", "spin")
# Only these targets (comma-separated names as printed), e.g. to profile one path.
ONLY = [t for t in os.environ.get("ONLY", "").split(",") if t]
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
    # Its own process group: the trigger is a child of `spin up`, and the group is stopped.
    proc = subprocess.Popen(args, cwd=app_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, **env), start_new_session=True)
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


def stop(proc):
    try:
        os.killpg(proc.pid, 15)
        proc.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, 9)


def wrk(url, script=None):
    # wrk leaves requests slower than its timeout (2 s by default) out of its latency figures;
    # with 30 s every request counts, and any still timed out are reported.
    args = ["wrk", "-t2", "-c32", "-d" + DURATION, "--timeout", "30s", "--latency"]
    if script:
        args += ["-s", script]
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups())
    slowest = ms(*re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out).groups())
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        sys.exit(f"{url}: {bad.group(1)} answers were not 2xx")
    timeouts = re.search(r"timeout (\d+)", out)
    if timeouts and int(timeouts.group(1)):
        sys.exit(f"{url}: {timeouts.group(1)} requests took over 30 s")
    if script:
        return int(re.search(r"(\d+) requests in", out).group(1)), p99
    return rps, p99, slowest


class Receiver:
    """A loopback HTTP receiver answering 200 at once, counting requests (asyncio, its own thread)."""

    def __init__(self):
        self.count, self.last = 0, time.monotonic()
        self.port = free_port()
        ready = threading.Event()
        threading.Thread(target=lambda: asyncio.run(self.serve(ready)), daemon=True).start()
        ready.wait()

    async def serve(self, ready):
        server = await asyncio.start_server(self.connection, "127.0.0.1", self.port, backlog=1024)
        ready.set()
        async with server:
            await server.serve_forever()

    async def connection(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                if length:
                    await reader.readexactly(int(length.group(1)))
                self.count += 1
                self.last = time.monotonic()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


# Each request a new number (a new chat, a new call), unique across wrk's threads and runs
# (BASE: the run's own range).
UNIQUE = """
local n, tid = BASE, 0
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function init(args) tid = wrk.thread:get("tid") end
function request()
  n = n + 1
  local path = wrk.path:gsub("{n}", tostring(tid * 1000000000 + n))
  return wrk.format(METHOD, path)
end
"""


def delivering(rx, url, per_request, tmp, method="GET", sweep=None, explain=None):
    """Drives `url` (each request `per_request` deliveries) with wrk; returns deliveries per
    second until the receiver had them all, and the requests' p99 in ms. `sweep` is called
    every 10 s while waiting, as a scheduler calls the retry sweep (a chain that timed out on
    a starved host leaves its delivery to the sweep)."""
    delivering.runs = getattr(delivering, "runs", 0) + 1
    script = os.path.join(tmp, f"unique-{method}.lua")
    base = str(delivering.runs * 1_000_000)
    open(script, "w").write(UNIQUE.replace("METHOD", f'"{method}"').replace("BASE", base))
    before, started = rx.count, time.monotonic()
    requests, p99 = wrk(url, script)
    expected = before + requests * per_request
    deadline = time.monotonic() + 300
    next_sweep = time.monotonic() + 10
    while rx.count < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        if sweep and time.monotonic() > next_sweep:
            sweep()
            next_sweep = time.monotonic() + 10
    if rx.count < expected:
        if explain:
            explain()
        sys.exit(f"{url}: {rx.count - before} of {requests * per_request} deliveries arrived")
    return (rx.count - before) / (rx.last - started), p99


def delivery_floors(tmp, floor_dir):
    rx = Receiver()
    to = f"http://127.0.0.1:{rx.port}/d"
    procs = []
    try:
        proc, pport = spin_up(ROOT, tmp, {"SPIN_VARIABLE_ADMIN_TOKEN": TOKEN,
                                          "SPIN_VARIABLE_ALLOW_LOOPBACK_WEBHOOKS": "true",
                                          "SPIN_VARIABLE_MAX_NEW_DIALOGS_PER_MINUTE": "0"})
        procs.append(proc)
        bot = admin(pport, "/api/bots", {"name": "bench"})["id"]
        step = admin(pport, f"/api/bots/{bot}/steps",
                     {"key": "lead", "kind": "send-webhook", "webhook": {"url": to + "?c={chatId}"}})["id"]
        link = admin(pport, f"/api/bots/{bot}/webhooks", {})["id"]
        service = admin(pport, "/api/calls/services", {"name": "bench"})
        for h in range(HOOKS):
            admin(pport, f"/api/calls/services/{service['id']}/hooks",
                  {"protocol": "http", "host": "127.0.0.1", "port": rx.port, "path": f"/call/{h}",
                   "method": "GET", "event": "start", "parameters": [{"name": "call", "param": "id"}]})
        proc, fport = spin_up(floor_dir, tmp, {}); procs.append(proc)
        targets = {
            "step floor": (f"http://127.0.0.1:{fport}/deliver?to={to}&x={{n}}", 1, "GET"),
            "step": (f"http://127.0.0.1:{pport}/api/bots/webhooks/{link}/updateDialog"
                     f"?chatId={{n}}&stepId={step}&refID=12345&tracker.clickid=abc", 1, "GET"),
            "fanout floor": (f"http://127.0.0.1:{fport}/fanout?to={to}&n={HOOKS}&x={{n}}", HOOKS, "GET"),
            "call event": (f"http://127.0.0.1:{pport}/api/calls/services/{service['id']}/events"
                           f"?key={service['ingestKey']}&id={{n}}&hook_event=Call%20is%20processing",
                           HOOKS, "POST"),
        }
        if ONLY:
            targets = {name: t for name, t in targets.items() if name in ONLY}
        sweep = lambda: admin(pport, "/api/deliveries/retry-due", {})

        def explain():
            """What became of the deliveries that did not arrive: counts by status and error."""
            for status in ("pending", "retrying", "failed", "skipped"):
                req = urllib.request.Request(
                    f"http://127.0.0.1:{pport}/api/deliveries?status={status}&limit=200",
                    headers={"authorization": f"Bearer {TOKEN}"})
                items = json.loads(urllib.request.urlopen(req).read())["items"]
                errors = {}
                for d in items:
                    last = (d.get("attempts") or [{}])[-1]
                    why = d.get("error") or last.get("error") or str(last.get("status"))
                    errors[why] = errors.get(why, 0) + 1
                print(f"{status}: {len(items)} (of the newest 200) {errors}", file=sys.stderr)
            health = urllib.request.urlopen(f"http://127.0.0.1:{pport}/api/health").read()
            print(health.decode()[:600], file=sys.stderr)

        runs = {name: [] for name in targets}
        for _ in range(ROUNDS):
            for name, (url, per, method) in targets.items():
                runs[name].append(delivering(rx, url, per, tmp, method, sweep, explain))
    finally:
        for proc in procs:
            stop(proc)
    for name, r in runs.items():
        print(f"{MODE}/{name}, each round: "
              + ", ".join(f"{d:.0f} deliveries/s p99 {p:.0f} ms" for d, p in r))
    median = {name: sorted(r)[len(r) // 2] for name, r in runs.items()}
    for name, (d, p99) in median.items():
        print(f"{MODE}/{name}: {d:.0f} deliveries/s, requests' p99 {p99:.1f} ms")
    if ONLY:
        return
    print(f"{MODE}/delivery at 32 clients: step/floor {median['step'][0] / median['step floor'][0]:.2f}, "
          f"call event/floor {median['call event'][0] / median['fanout floor'][0]:.2f} ({HOOKS} hooks)")


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
    if WHAT == "delivery":
        return delivery_floors(tmp, floor_dir)
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
            stop(proc)
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
