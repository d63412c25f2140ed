"""The WebSocket codec against an independent client: Python's websockets.

Run by meson with Debian's /usr/bin/python3 (python3-websockets); WS_PEER names
tests/unit/ws_peer, which puts csgi/websocket.h between two pipes. The client
is websockets' sans-I/O protocol object, so its own checks judge our bytes:
the handshake (Sec-WebSocket-Accept, the subprotocol), every frame we send,
and the close codes we answer its faults with. No sockets, no server: the
upgrade over real HTTP is tested where the host takes the connection over.
"""
import os
import select
import subprocess
import unittest

try:
    from websockets.client import ClientProtocol
except ImportError:  # websockets < 11 (Debian 12 has 10.4)
    from websockets.client import ClientConnection as ClientProtocol
from websockets.frames import OP_BINARY, OP_CLOSE, OP_PONG, OP_TEXT, Close, Frame
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

PEER = os.environ["WS_PEER"]
TIMEOUT = 10.0


class Peer:
    """One ws_peer process and the client talking to it."""

    def __init__(self, *args, subprotocols=None):
        self.proc = subprocess.Popen(
            [PEER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self.client = ClientProtocol(
            parse_uri("ws://127.0.0.1/chat"),
            subprotocols=[Subprotocol(p) for p in subprotocols] if subprotocols else None,
        )
        self.client.send_request(self.client.connect())
        self.flush()
        self.frames = []
        while self.client.state.name == "CONNECTING" and self.client.handshake_exc is None:
            self.read_some()
        if self.client.handshake_exc is not None:
            raise AssertionError(f"handshake refused by the client: {self.client.handshake_exc!r}")

    def flush(self):
        for chunk in self.client.data_to_send():
            self.write(chunk)

    def write(self, data):
        try:
            if data:
                self.proc.stdin.write(data)
            else:
                self.proc.stdin.close()  # the client's end of stream
        except (BrokenPipeError, ValueError):
            pass  # ws_peer is gone already (it closed after a failure)

    def read_some(self):
        ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
        if not ready:
            raise AssertionError("ws_peer sent nothing for %.0f s" % TIMEOUT)
        data = os.read(self.proc.stdout.fileno(), 65536)
        if data:
            self.client.receive_data(data)
        else:
            self.client.receive_eof()
        for event in self.client.events_received():
            if isinstance(event, Frame):
                self.frames.append(event)
        self.flush()  # pongs and the close reply the client makes itself
        return bool(data)

    def expect(self, n):
        """The next n frames from ws_peer."""
        while len(self.frames) < n:
            if not self.read_some():
                raise AssertionError(f"end of stream after {self.frames!r}")
        got, self.frames = self.frames[:n], self.frames[n:]
        return got

    def expect_close(self):
        (frame,) = self.expect(1)
        assert frame.opcode == OP_CLOSE, frame
        return Close.parse(frame.data)

    def finish(self):
        """ws_peer's exit status and log once it is done."""
        if not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            err = self.proc.stderr.read().decode()
            self.proc.stdout.close()
            self.proc.stderr.close()
        self.client.receive_eof()  # ws_peer closed the "connection" by exiting
        return self.proc.returncode, err


def raw_handshake(head):
    """ws_peer's answer to a request head the test writes itself."""
    proc = subprocess.run([PEER], input=head, capture_output=True, timeout=TIMEOUT)
    return proc.stdout.decode()


class Handshake(unittest.TestCase):
    def test_client_accepts_our_answer(self):
        peer = Peer()
        self.assertEqual(peer.client.state.name, "OPEN")
        self.assertIsNone(peer.client.subprotocol)
        peer.client.send_close(1000)
        peer.flush()
        self.assertEqual(peer.expect_close().code, 1000)
        self.assertEqual(peer.finish()[0], 0)

    def test_subprotocol_by_server_preference(self):
        for offered, chosen in ((["v9", "chat"], "chat"), (["chat", "superchat"], "superchat")):
            peer = Peer(subprotocols=offered)
            self.assertEqual(peer.client.subprotocol, chosen)
            peer.finish()

    def test_refusals(self):
        base = (
            "GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        )
        answer = raw_handshake((base + "Sec-WebSocket-Version: 8\r\n\r\n").encode())
        self.assertTrue(answer.startswith("HTTP/1.1 426 "), answer)
        self.assertIn("\r\nSec-WebSocket-Version: 13\r\n", answer)
        answer = raw_handshake((base + "\r\n").encode())  # no version at all
        self.assertTrue(answer.startswith("HTTP/1.1 400 "), answer)
        answer = raw_handshake(b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.assertTrue(answer.startswith("HTTP/1.1 200 "), answer)


class Messages(unittest.TestCase):
    def test_echo_whole_and_fragmented(self):
        peer = Peer()
        kosme = "κόσμε".encode()
        peer.client.send_text(b"Hello")
        peer.client.send_binary(bytes(range(256)) * 40)
        # Fragments cut inside a UTF-8 sequence, a ping between them.
        peer.client.send_text(kosme[:3], fin=False)
        peer.client.send_ping(b"between")
        peer.client.send_continuation(kosme[3:], fin=True)
        peer.flush()
        pong, text, binary, joined = sorted(peer.expect(4), key=lambda f: f.opcode != OP_PONG)
        self.assertEqual((pong.opcode, pong.data), (OP_PONG, b"between"))
        self.assertEqual((text.opcode, text.data), (OP_TEXT, b"Hello"))
        self.assertEqual((binary.opcode, binary.data), (OP_BINARY, bytes(range(256)) * 40))
        self.assertEqual((joined.opcode, joined.data, joined.fin), (OP_TEXT, kosme, True))
        peer.client.send_close(1001, "leaving")
        peer.flush()
        close = peer.expect_close()
        self.assertEqual(close.code, 1001)  # echoed
        rc, log = peer.finish()
        self.assertEqual(rc, 0, log)
        self.assertIn("exit in state 2", log)

    def test_server_starts_the_closing_handshake(self):
        peer = Peer()
        peer.client.send_text(b"close-me")
        peer.flush()
        close = peer.expect_close()
        self.assertEqual((close.code, close.reason), (1000, "bye"))
        # The client's reply completes it: ws_peer's codec reaches CLOSED and it exits.
        rc, log = peer.finish()
        self.assertEqual(rc, 0, log)
        self.assertIn("exit in state 2", log)
        self.assertEqual(peer.client.close_code, 1000)


class Faults(unittest.TestCase):
    def assert_closes_with(self, code, send, *args):
        peer = Peer(*args)
        send(peer)
        peer.flush()
        self.assertEqual(peer.expect_close().code, code)
        rc, log = peer.finish()
        self.assertEqual(rc, 0, log)
        self.assertIn(f"event 6 code {code}", log)

    def test_oversize_message_1009(self):
        self.assert_closes_with(1009, lambda p: p.client.send_binary(b"x" * 1001), "1000")

    def test_oversize_fragments_1009(self):
        def send(p):
            p.client.send_binary(b"x" * 600, fin=False)
            p.client.send_continuation(b"x" * 401, fin=True)

        self.assert_closes_with(1009, send, "1000")

    def test_invalid_utf8_1007(self):
        self.assert_closes_with(1007, lambda p: p.client.send_text(b"ok \xed\xa0\x80"))

    def test_invalid_utf8_across_fragments_1007(self):
        def send(p):
            p.client.send_text(b"\xe2\x82", fin=False)
            p.client.send_continuation(b"(", fin=True)

        self.assert_closes_with(1007, send)

    def test_unmasked_frame_1002(self):
        self.assert_closes_with(1002, lambda p: p.write(b"\x81\x05Hello"))

    def test_reserved_close_code_1002(self):
        frame = Frame(OP_CLOSE, b"\x03\xed")  # 1005 may not be sent
        self.assert_closes_with(1002, lambda p: p.write(frame.serialize(mask=True)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
