"""tally.http.hangups: a watched socket's callback runs once its peer closes, and only then."""
from __future__ import annotations

import socket
import threading

import pytest

from tally.http.hangups import Hangups, peer_closed
from tests.support import processes as procs


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_a_peer_that_closes_is_reported(pair):
    ours, theirs = pair
    hangups, gone = Hangups(), threading.Event()
    hangups.watch(ours, gone.set)
    assert hangups.watching() == 1 and not gone.is_set()
    theirs.close()
    assert gone.wait(10)
    procs.wait_until(lambda: hangups.watching() == 0, 10, "the closed socket to be dropped")


def test_a_forgotten_socket_is_not_reported(pair):
    ours, theirs = pair
    hangups, gone = Hangups(wake_seconds=0.05), threading.Event()
    hangups.watch(ours, gone.set)
    hangups.forget(ours)
    theirs.close()
    assert hangups.watching() == 0
    # a second socket's hang-up is reported: the watch still runs, and skipped the first
    other, other_peer = socket.socketpair()
    seen = threading.Event()
    hangups.watch(other, seen.set)
    other_peer.close()
    assert seen.wait(10) and not gone.is_set()
    other.close()


def test_a_peer_that_sends_data_is_left_alone(pair):
    ours, theirs = pair
    hangups, gone = Hangups(), threading.Event()
    hangups.watch(ours, gone.set)
    theirs.sendall(b"GET / HTTP/1.1\r\n")
    procs.wait_until(lambda: hangups.watching() == 0, 10, "the talking socket to be dropped")
    assert not gone.is_set()
    assert ours.recv(3) == b"GET"  # the data is still there for whoever reads it


def test_peer_closed_tells_open_talking_and_closed_apart(pair):
    ours, theirs = pair
    assert peer_closed(ours) is None
    theirs.sendall(b"x")
    assert peer_closed(ours) is False
    assert ours.recv(1) == b"x"
    theirs.close()
    assert peer_closed(ours) is True
