from __future__ import annotations

import socket

import pytest

from leadscore.local.server import StackError, _ensure_free

pytestmark = pytest.mark.loopback


def test_a_taken_emulator_port_is_refused_with_a_clear_message() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]

        with pytest.raises(StackError, match=f"port {taken} .* already in use.*--emulator-port"):
            _ensure_free(taken, "--emulator-port")
