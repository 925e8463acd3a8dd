"""Network guard: refuse non-loopback connections so offline code paths are proven offline.

Used by the pytest plugin (:mod:`paperlab_core.testing`) and as a runner for CLI checks::

    python -m paperlab_core.offline tinymim.cli:main -- train --trainer.fast_dev_run=true
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


class NetworkBlockedError(ConnectionRefusedError):
    """Raised when code under the guard tries to reach a non-loopback address."""


_originals: dict[str, Any] = {}


def _is_loopback(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]")
    if host in {"", "localhost", "localhost.localdomain", "ip6-localhost"}:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(target: Any) -> NetworkBlockedError:
    return NetworkBlockedError(
        f"paperlab network guard: blocked a connection to {target!r}. This code must run offline "
        "(tests and embedded defaults never download); use a local file or a fixture instead."
    )


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
        raise _refuse(address)
    return _originals["connect"](self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
        raise _refuse(address)
    return _originals["connect_ex"](self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_loopback(host):
        raise _refuse(host)
    return _originals["getaddrinfo"](host, *args, **kwargs)


def install_network_guard() -> None:
    """Block every IPv4/IPv6 connection and name lookup that is not loopback. Idempotent."""
    if _originals:
        return
    _originals["connect"] = socket.socket.connect
    _originals["connect_ex"] = socket.socket.connect_ex
    _originals["getaddrinfo"] = socket.getaddrinfo
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]


def remove_network_guard() -> None:
    """Restore the original socket functions."""
    if not _originals:
        return
    socket.socket.connect = _originals.pop("connect")  # type: ignore[method-assign]
    socket.socket.connect_ex = _originals.pop("connect_ex")  # type: ignore[method-assign]
    socket.getaddrinfo = _originals.pop("getaddrinfo")  # type: ignore[assignment]


def set_offline_env() -> None:
    """Tell Hugging Face libraries not to reach the hub."""
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value


def load_entry_point(spec: str) -> Callable[..., Any]:
    """Resolve ``module:function``."""
    import importlib

    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ValueError(f"entry point must look like 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module_name), attr)


def main(argv: list[str] | None = None) -> int:
    """Run ``module:function`` with the remaining arguments, offline and with the network guard on."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print("usage: python -m paperlab_core.offline module:function [--] [args ...]")
        return 0 if argv else 2
    spec, rest = argv[0], argv[1:]
    if rest and rest[0] == "--":
        rest = rest[1:]
    set_offline_env()
    install_network_guard()
    entry = load_entry_point(spec)
    # sys.argv is left as it is: Lightning's DDP launcher re-runs it (``python -m paperlab_core.offline ...``)
    result = entry(rest)
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
