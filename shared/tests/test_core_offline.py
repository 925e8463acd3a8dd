from __future__ import annotations

import socket

import pytest

from paperlab_core import offline

pytest_plugins = ["pytester"]


def test_guard_blocks_before_any_packet(monkeypatch: pytest.MonkeyPatch) -> None:
    reached: list[object] = []
    monkeypatch.setitem(offline._originals, "connect", lambda sock, addr: reached.append(addr))
    with socket.socket() as sock, pytest.raises(offline.NetworkBlockedError, match="must run offline"):
        sock.connect(("192.0.2.1", 80))  # TEST-NET-1; the original connect is a recorder anyway
    assert reached == []


def test_guard_blocks_name_lookups() -> None:
    with pytest.raises(offline.NetworkBlockedError, match="example.invalid"):
        socket.getaddrinfo("example.invalid", 443)


def test_loopback_is_allowed() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            assert client.getpeername() == server.getsockname()


def test_a_test_that_opens_a_socket_fails_with_a_clear_message(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        import socket

        def test_download():
            assert socket.socket.connect.__name__ == "_guarded_connect"  # never send a packet unguarded
            socket.create_connection(("192.0.2.1", 80), timeout=0.1)
        """
    )
    result = pytester.runpytest_subprocess("-p", "paperlab_core.testing", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*NetworkBlockedError*paperlab network guard: blocked a connection*"])


@pytest.mark.allow_network
def test_allow_network_marker_lifts_the_guard() -> None:
    assert socket.socket.connect.__name__ != "_guarded_connect"


def test_offline_runner_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert offline.main([]) == 2
    assert offline.main(["--help"]) == 0
    with pytest.raises(ValueError, match="module:function"):
        offline.load_entry_point("no_colon")


def test_slow_tests_are_opt_in(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        import pytest

        @pytest.mark.slow
        def test_long():
            pass

        def test_short():
            pass
        """
    )
    default = pytester.runpytest_subprocess("-p", "paperlab_core.testing", "-p", "no:cacheprovider")
    default.assert_outcomes(passed=1, skipped=1)
    opted_in = pytester.runpytest_subprocess(
        "-p", "paperlab_core.testing", "-p", "no:cacheprovider", "-m", "slow"
    )
    opted_in.assert_outcomes(passed=1, deselected=1)
