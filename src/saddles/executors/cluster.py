"""The Ray cluster a :class:`~saddles.executors.ray_pool.RayExecutor` runs on.

Three cases, in this order:

1. Ray is already initialised in this process (``ray.init`` was called by the user, or by a
   test fixture): use it, and leave it running.
2. ``RAY_ADDRESS`` is set (``ray start --head`` on a node, see the README's "Running on a
   cluster"): connect to that cluster, and disconnect afterwards.
3. Otherwise start a local cluster on this machine, bound to the loopback interface only,
   and shut it down afterwards.

A local cluster uses ``127.0.0.1`` for every address. Ray resolves ``127.0.0.1`` to the
machine's outward address unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (its single-machine
mode), so that is set for the cluster's lifetime, in the environment its processes inherit and
in this process's copy of Ray's constants. It also gets a random authentication token in the
environment (``RAY_AUTH_TOKEN``; one per process, since Ray's client keeps the first it reads),
so nothing is written to ``~/.ray``, and its session
files go to a temporary folder of its own, removed at shutdown. The same loopback settings
apply when ``RAY_ADDRESS`` names a loopback address (a cluster started on this machine).
"""

from __future__ import annotations

import builtins
import os
import secrets
import shutil
import tempfile
from typing import Any

#: What to install when Ray is missing.
RAY_MISSING = (
    "executor='ray' needs Ray, which is not installed: pip install 'saddles[ray]' "
    "(or pip install 'ray>=2.9')"
)
LOOPBACK = "127.0.0.1"


def import_ray():
    """The ``ray`` module, or an ImportError saying what to install."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(RAY_MISSING) from exc
    return ray


def is_loopback(address: str) -> bool:
    host = address.split("://")[-1].rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "::1", "[::1]")


class Cluster:
    """A connection to a Ray cluster, opened by :meth:`connect` and released by :meth:`close`.

    ``close`` shuts down only what :meth:`connect` started or joined; a Ray that was already
    initialised in this process stays as it was.
    """

    def __init__(self, num_cpus: int | None = None, temp_dir: str | os.PathLike | None = None):
        self.ray = import_ray()
        self.num_cpus = num_cpus
        self.temp_dir = temp_dir
        self.kind: str | None = None  # "existing", "address" or "local" once connected
        self.address: str | None = None
        self._own_temp: str | None = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_constant: Any = None

    def connect(self) -> Cluster:
        ray = self.ray
        if self.kind is not None:
            return self
        # Ray's driver may replace builtins.print (for its tqdm bars); numba then cannot
        # compile functions that print, e.g. pynndescent's. Keep print, restore it on close.
        os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")
        self._print = builtins.print
        if ray.is_initialized():
            self.kind = "existing"
        elif os.environ.get("RAY_ADDRESS"):
            self.address = os.environ["RAY_ADDRESS"]
            if is_loopback(self.address):
                self._loopback_env(token=False)
            ray.init(address=self.address, **self._node_ip())
            self.kind = "address"
        else:
            self._loopback_env(token=True)
            if self.temp_dir is None:
                self._own_temp = tempfile.mkdtemp(prefix="saddles-ray-")
            ray.init(
                num_cpus=self.num_cpus,
                include_dashboard=False,
                _node_ip_address=LOOPBACK,
                _temp_dir=str(self.temp_dir or self._own_temp),
            )
            self.kind = "local"
        self.address = self.address or ray.get_runtime_context().gcs_address
        return self

    def cpus(self) -> int:
        """CPUs the cluster offers in all."""
        return int(self.ray.cluster_resources().get("CPU", 1))

    def close(self) -> None:
        if self.kind in ("address", "local"):
            self.ray.shutdown()
        if getattr(self, "_print", None) is not None:
            builtins.print = self._print
        self.kind = None
        self._restore_env()
        if self._own_temp is not None:
            shutil.rmtree(self._own_temp, ignore_errors=True)
            self._own_temp = None

    def _node_ip(self) -> dict[str, str]:
        return {"_node_ip_address": LOOPBACK} if self._saved_env else {}

    def _loopback_env(self, token: bool) -> None:
        """Ray's single-machine mode (loopback addresses) and, for a new cluster, a token."""
        from ray._private import ray_constants

        wanted = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        if token and "RAY_AUTH_MODE" not in os.environ:
            wanted |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": _process_token()}
        for key, value in wanted.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        self._saved_constant = ray_constants.ENABLE_RAY_CLUSTER
        ray_constants.ENABLE_RAY_CLUSTER = False
        refresh_ray_config()

    def _restore_env(self) -> None:
        if not self._saved_env:
            return
        from ray._private import ray_constants

        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}
        ray_constants.ENABLE_RAY_CLUSTER = self._saved_constant
        refresh_ray_config()


_TOKEN: list[str] = []


def _process_token() -> str:
    """One random token for every cluster this process starts: Ray's client keeps the first
    token it reads for the life of the process, so a second cluster with a fresh token would
    refuse this process (InvalidAuthToken when its GCS starts)."""
    if not _TOKEN:
        _TOKEN.append(secrets.token_hex(32))
    return _TOKEN[0]


def refresh_ray_config() -> None:
    """Make this process's Ray read its settings (the authentication mode) from the
    environment again; Ray caches them when it is imported."""
    from ray._raylet import Config

    Config.initialize("")
