import socket

import pytest


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test: the data sets are embedded."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
