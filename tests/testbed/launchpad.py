"""In-process stand-in for the flagd-testbed launchpad, driving `ensign serve`.

The testbed's launchpad is a Go control server in a Docker image that starts
flagd with one of `launchpad/configs/*.json` and offers start / stop / restart /
change over HTTP. Here the same actions are plain method calls:

- `start(config)`: (re)start Ensign with a testbed configuration (`default`,
  `ssl`, `metadata`, `sync-payload`), then wait for /readyz.
- `restart(seconds)`: "the connection is lost for Ns". Stops Ensign with SIGTERM
  (graceful shutdown: event streams get provider_shutdown, sync streams end),
  and starts it again on the same ports N seconds later *in the background*,
  returning at once, as the launchpad's /restart does: scenarios evaluate while
  the server is away.
- `change()`: "the flag was modified". Toggles `changing-flag`'s defaultVariant
  foo <-> bar in `rawflags/changing-flag.json`, rewrites `flags/allFlags.json` in
  place (as the launchpad's file watcher does) and returns once Ensign serves the
  new variant.
- `stop()`.

Working directory layout (Ensign runs with it as cwd, so each source is named by
the relative path the scenarios use in selectors):

    rawflags/*.json          copies of the testbed's flags/*.json
    flags/allFlags.json      deep merge of rawflags/*.json except selector-*
    ssl/                     self-signed CA + server certificate (config `ssl`)
    logs/ensign-N.log        one log per start
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
from openfeature.schemas.protobuf.flagd.evaluation.v2 import (
    evaluation_pb2,
    evaluation_pb2_grpc,
)

ALL_FLAGS = "flags/allFlags.json"
SELECTOR_FLAGS = "rawflags/selector-flags.json"
COMBINED_METADATA_FLAGS = "rawflags/selector-flag-combined-metadata.json"
CHANGING_FLAG_FILE = "rawflags/changing-flag.json"

# launchpad/configs/*.json, translated to `ensign serve` arguments.
# `sync-payload` differs from `default` only by `disable-sync-metadata`, which
# makes the sync API's GetMetadata answer UNIMPLEMENTED (in-process providers
# then rely on SyncFlags' `sync_context`; RPC providers never call it); it is
# passed on when the binary offers the option.
CONFIGS: dict[str, dict] = {
    "default": {"sources": [ALL_FLAGS, SELECTOR_FLAGS], "context": {"injectedmetadata": "set"}},
    "ssl": {"sources": [ALL_FLAGS, SELECTOR_FLAGS], "context": {"injectedmetadata": "set"}, "tls": True},
    "metadata": {"sources": [COMBINED_METADATA_FLAGS], "context": {}},
    "sync-payload": {"sources": [ALL_FLAGS, SELECTOR_FLAGS], "context": {"injectedmetadata": "set"},
                     "disable_sync_metadata": True},
}

# Listeners `ensign serve` may have besides --port and --management-port; each
# one the binary offers gets its own free loopback port.
EXTRA_PORT_OPTIONS = ("--sync-port", "--ofrep-port")

START_BUDGET_S = 10.0
# After /readyz: how long the provider's port may take to answer a gRPC call.
CONNECT_BUDGET_S = 3.0
STOP_BUDGET_S = 5.0
CHANGE_BUDGET_S = 2.0


HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def default_testbed_dir() -> Path:
    """$TESTBED_DIR, else ../shared/flagd-testbed beside the repository."""
    env = os.environ.get("TESTBED_DIR")
    return Path(env).resolve() if env else (REPO.parent / "shared" / "flagd-testbed").resolve()


def default_ensign_binary() -> Path:
    return REPO / "target" / "debug" / "ensign"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deep_merge(dst: dict, src: dict) -> dict:
    """The launchpad's merge: nested objects merge key by key, anything else is replaced."""
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            deep_merge(dst[key], value)
        else:
            dst[key] = value
    return dst


class LaunchpadError(RuntimeError):
    pass


class Launchpad:
    def __init__(self, binary: Path, testbed: Path, workdir: Path, mode: str = "rpc") -> None:
        self.binary = binary
        self.testbed = testbed
        self.workdir = workdir
        self.port = free_port()
        self.management_port = free_port()
        self.serve_options = self._serve_options()
        self.extra_ports = {opt: free_port() for opt in EXTRA_PORT_OPTIONS if opt in self.serve_options}
        # The port the scenarios' provider talks to: the evaluation API (rpc) or
        # the sync API (in-process).
        self.provider_port = self.sync_port if mode == "in-process" else self.port
        # Generation used for the next start; set per scenario from its tags.
        self.fractional = "v3"
        self.config = "default"
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.starts = 0
        self.last_stop_seconds: float | None = None
        self._lock = threading.RLock()
        self._restart_timer: threading.Timer | None = None
        self._restart_epoch = 0
        # An error raised by a delayed (background) start; reported by the next step.
        self.background_error: BaseException | None = None
        self._tls_dir: Path | None = None

    def _serve_options(self) -> set[str]:
        r = subprocess.run([str(self.binary), "serve", "--help"], capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if not k.startswith("ENSIGN_")})
        if r.returncode != 0:
            raise LaunchpadError(f"`{self.binary} serve --help` failed:\n{r.stderr}")
        return {tok.rstrip(",") for tok in r.stdout.split() if tok.startswith("--")}

    # --- files ---------------------------------------------------------------

    def reset_files(self) -> None:
        """Fresh copies of the testbed flag files, changing-flag back to `foo`."""
        raw = self.workdir / "rawflags"
        if raw.exists():
            shutil.rmtree(raw)
        raw.mkdir(parents=True)
        for f in sorted((self.testbed / "flags").glob("*.json")):
            shutil.copyfile(f, raw / f.name)
            (raw / f.name).chmod(0o644)
        self.write_all_flags()

    def merged_flags(self) -> dict:
        merged: dict = {}
        raw = self.workdir / "rawflags"
        for f in sorted(raw.iterdir(), key=lambda p: p.name):
            if f.suffix == ".json" and not f.name.startswith("selector-"):
                deep_merge(merged, json.loads(f.read_text(encoding="utf-8")))
        return merged

    def write_all_flags(self) -> None:
        path = self.workdir / ALL_FLAGS
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.merged_flags(), indent=2, ensure_ascii=False)
        # In place (truncate, then write), as the launchpad's os.WriteFile does:
        # a watcher may see the file empty or half written for a moment.
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)

    # --- TLS -----------------------------------------------------------------

    def tls_dir(self) -> Path:
        """A throw-away CA and a server certificate for localhost / 127.0.0.1."""
        if self._tls_dir is not None:
            return self._tls_dir
        d = self.workdir / "ssl"
        d.mkdir(parents=True, exist_ok=True)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

        def openssl(*args: str) -> None:
            r = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True)
            if r.returncode != 0:
                raise LaunchpadError(f"openssl {' '.join(args)} failed:\n{r.stderr}")

        openssl("req", "-x509", *ec, "-keyout", "ca-key.pem", "-out", "ca-cert.pem", "-days", "2",
                "-subj", "/CN=ensign testbed CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        openssl("req", *ec, "-keyout", "server-key.pem", "-out", "server.csr", "-subj", "/CN=localhost")
        (d / "server-ext.cnf").write_text(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
        )
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca-cert.pem", "-CAkey", "ca-key.pem",
                "-set_serial", "2", "-days", "2", "-out", "server-cert.pem", "-extfile", "server-ext.cnf")
        self._tls_dir = d
        return d

    @property
    def sync_port(self) -> int:
        """Port of Ensign's flagd.sync.v1 listener (in-process providers)."""
        if "--sync-port" not in self.extra_ports:
            raise LaunchpadError(f"`{self.binary} serve` has no --sync-port option (no sync API to test)")
        return self.extra_ports["--sync-port"]

    @property
    def ca_cert(self) -> Path:
        return self.tls_dir() / "ca-cert.pem"

    # --- process -------------------------------------------------------------

    def _command(self) -> list[str]:
        cfg = CONFIGS[self.config]
        cmd = [
            str(self.binary), "serve",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--management-port", str(self.management_port),
            "--fractional", self.fractional,
        ]
        for opt, port in self.extra_ports.items():
            cmd += [opt, str(port)]
        if cfg.get("disable_sync_metadata") and "--disable-sync-metadata" in self.serve_options:
            cmd.append("--disable-sync-metadata")
        for uri in cfg["sources"]:
            cmd += ["--uri", f"file:{uri}"]
        for key, value in cfg["context"].items():
            cmd += ["-X", f"{key}={value}"]
        if cfg.get("tls"):
            d = self.tls_dir()
            cmd += ["--server-cert-path", str(d / "server-cert.pem"),
                    "--server-key-path", str(d / "server-key.pem")]
        return cmd

    def _spawn_and_wait_ready(self) -> None:
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.log_path = logs / f"ensign-{self.starts:04d}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENSIGN_")}
        env.setdefault("NO_COLOR", "1")
        cmd = self._command()
        with open(self.log_path, "w") as log:
            log.write(f"# cwd={self.workdir}\n# {' '.join(cmd)}\n")
            log.flush()
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + START_BUDGET_S
        url = f"http://127.0.0.1:{self.management_port}/readyz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LaunchpadError(f"ensign exited during start-up (status {self.proc.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=0.5) as r:
                    if r.status == 200:
                        self._check_provider_port()
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.02)
        raise LaunchpadError(f"ensign was not ready within {START_BUDGET_S} s:\n{self.log_tail()}")

    def _grpc_channel(self, port: int) -> grpc.Channel:
        target = f"localhost:{port}"
        if CONFIGS[self.config].get("tls"):
            return grpc.secure_channel(target, grpc.ssl_channel_credentials(self.ca_cert.read_bytes()))
        return grpc.insecure_channel(target)

    def _check_provider_port(self) -> None:
        """Once ready, the provider's port must answer a gRPC call: a call to a
        method no Ensign port serves (gRPC health), so any gRPC status but
        UNAVAILABLE / DEADLINE_EXCEEDED (UNIMPLEMENTED, normally) shows that TCP,
        TLS when configured, HTTP/2 and gRPC framing work, without exercising a
        service the scenarios test. This turns a listener that drops every
        connection into one clear start-up error instead of a provider that never
        becomes READY. The port is bound by then: two attempts are enough."""
        failure = ""
        for attempt in range(2):
            channel = self._grpc_channel(self.provider_port)
            try:
                call = channel.unary_unary("/grpc.health.v1.Health/Check",
                                           request_serializer=None, response_deserializer=None)
                call(b"", timeout=CONNECT_BUDGET_S / 2)
                return
            except grpc.RpcError as e:
                if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    return
                failure = f"{e.code().name}: {e.details()}"
            finally:
                channel.close()
            time.sleep(0.2)
        raise LaunchpadError(
            f"ensign is ready, but port {self.provider_port} (the provider's) does not answer gRPC "
            f"({failure}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the current Ensign log, after its first panic message if any
        (a backtrace would otherwise push it out of the tail)."""
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        all_lines = self.log_path.read_text(errors="replace").splitlines()
        tail = "\n".join(all_lines[-lines:])
        for i, line in enumerate(all_lines):
            if "panicked at" in line:
                panics = sum("panicked at" in l for l in all_lines)
                first = "\n".join(all_lines[i:i + 2])
                return f"[{panics} panic(s) in the log; the first:]\n{first}\n[log tail:]\n{tail}"
        return tail

    def _stop_locked(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_BUDGET_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise LaunchpadError(
                f"ensign did not exit within {STOP_BUDGET_S} s of SIGTERM (killed):\n{self.log_tail()}")
        self.last_stop_seconds = time.monotonic() - t0
        if self.log_path is not None:
            with open(self.log_path, "a") as log:
                log.write(f"# launchpad: exited {proc.returncode} {self.last_stop_seconds:.3f} s after SIGTERM\n")

    def _cancel_restart_locked(self) -> None:
        self._restart_epoch += 1
        if self._restart_timer is not None:
            self._restart_timer.cancel()
            self._restart_timer = None

    # --- launchpad actions ---------------------------------------------------

    def start(self, config: str = "default") -> None:
        """POST /start?config=<config>: stop whatever runs, fresh files, start, wait ready."""
        if config not in CONFIGS:
            raise LaunchpadError(f"unknown testbed configuration {config!r}")
        with self._lock:
            self._cancel_restart_locked()
            self._stop_locked()
            self.config = config
            self.background_error = None
            self.reset_files()
            self._spawn_and_wait_ready()

    def stop_pending_restart(self) -> None:
        with self._lock:
            self._cancel_restart_locked()

    def stop(self) -> None:
        with self._lock:
            self._cancel_restart_locked()
            self._stop_locked()

    def restart(self, seconds: float) -> None:
        """POST /restart?seconds=N: stop now, start again in N s on the same ports."""
        with self._lock:
            self._cancel_restart_locked()
            self._stop_locked()
            epoch = self._restart_epoch

            def delayed_start() -> None:
                with self._lock:
                    if epoch != self._restart_epoch:
                        return
                    self._restart_timer = None
                    try:
                        self.write_all_flags()
                        self._spawn_and_wait_ready()
                    except BaseException as e:  # surfaced by the next step / teardown
                        self.background_error = e

            self._restart_timer = threading.Timer(seconds, delayed_start)
            self._restart_timer.daemon = True
            self._restart_timer.start()

    def change(self) -> str:
        """POST /change: toggle changing-flag's defaultVariant; return once it is served."""
        with self._lock:
            path = self.workdir / CHANGING_FLAG_FILE
            doc = json.loads(path.read_text(encoding="utf-8"))
            flag = doc["flags"]["changing-flag"]
            flag["defaultVariant"] = "bar" if flag.get("defaultVariant") == "foo" else "foo"
            new_variant = flag["defaultVariant"]
            path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
            self.write_all_flags()
        deadline = time.monotonic() + CHANGE_BUDGET_S
        last = None
        while time.monotonic() < deadline:
            last = self.probe_variant("changing-flag")
            if last == new_variant:
                return new_variant
            time.sleep(0.01)
        raise LaunchpadError(
            f"ensign did not serve changing-flag={new_variant!r} within {CHANGE_BUDGET_S} s "
            f"of the file change (last answer: {last!r}):\n{self.log_tail()}")

    def probe_variant(self, flag_key: str) -> str | None:
        """Plumbing only (the launchpad's "is it served" probe): the variant Ensign serves now.

        Asked over the evaluation API in both modes: it reads the store the sync
        streams are fed from, so it tells when the file change has been taken
        in; whether the SyncFlags stream then delivers it is the scenario's to
        check (through the provider's change event)."""
        channel = self._grpc_channel(self.port)
        try:
            stub = evaluation_pb2_grpc.ServiceStub(channel)
            r = stub.ResolveString(evaluation_pb2.ResolveStringRequest(flag_key=flag_key), timeout=1)
            return r.variant
        except grpc.RpcError as e:
            return f"<{e.code().name}>"
        finally:
            channel.close()

    def close(self) -> None:
        self.stop()
