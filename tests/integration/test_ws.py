"""WebSocket over a real csgi-server: plugins/chat (echo and room) against
Debian's python3-websockets as the client (SPEC 4.15, issue 12).

Run by meson with /usr/bin/python3; CSGI_SERVER names the server and
CSGI_EXAMPLES the built plugins (chat.so, sse.so). The client library judges
our frames; what it will not send (invalid UTF-8 in a text frame, an unmasked
frame) goes out as raw frames on a socket after a handshake done by hand.
Every wait is bounded; the server is our child, stopped by its PID.
"""
import asyncio
import base64
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest

import websockets
from websockets.exceptions import ConnectionClosed

SERVER = os.environ["CSGI_SERVER"]
PLUGINS = os.environ["CSGI_EXAMPLES"]
TLS_CERTS = os.environ["CSGI_TLS_CERTS"]  # tls_certs.sh
T = 10.0  # seconds, for any single wait
N_WS = 24  # WebSocket clients in the reload test
N_SSE = 8  # SSE subscribers in the reload test


class Server:
    """One csgi-server (one worker, one thread) serving chat.so and sse.so."""

    def __init__(self, validated=False, tls=False, workers=1, extra=()):
        self.dir = tempfile.mkdtemp(prefix="csgi-ws-")
        self.tls = tls
        plugins = os.path.join(self.dir, "plugins")
        os.mkdir(plugins)
        for so in ("chat.so", "sse.so") + (("validator.so",) if validated else ()):
            shutil.copy(os.path.join(PLUGINS, so), plugins)
        self.log = os.path.join(self.dir, "error.log")
        bind = ["--bind", "127.0.0.1:0"]
        if tls:
            certs = os.path.join(self.dir, "certs")
            subprocess.run(["sh", TLS_CERTS, certs], check=True, timeout=60)
            bind = ["--bind", "https://127.0.0.1:0", "--tls-cert", os.path.join(certs, "a.pem"),
                    "--tls-key", os.path.join(certs, "a.key")]
            self.ssl = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
        self.proc = subprocess.Popen(
            [SERVER] + bind + ["--plugins", plugins, "--error-log", self.log,
             "--tmp-dir", self.dir, "--workers", str(workers), "--threads", "1",
             "--graceful-timeout", "5", "--set", "chat.max_message=65536"]
            + (["--wrap", "chat=validator"] if validated else []) + list(extra),
            stdin=subprocess.DEVNULL)
        self.port = 0
        self.wait_log("worker ready", workers)
        scheme = "https" if tls else "http"
        for line in self.text().splitlines():
            if f"listening on {scheme}://127.0.0.1:" in line:
                self.port = int(line.split(f"listening on {scheme}://127.0.0.1:")[1].split()[0].strip("/"))
        assert self.port, self.text()

    def text(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, needle, n):
        end = time.monotonic() + T
        while time.monotonic() < end:
            if self.text().count(needle) >= n:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no {n} x {needle!r} in the log:\n{self.text()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(T)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, path):
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}{path}"

    def connect(self, path, **kw):
        """A websockets client to path (over TLS, trusting the test CA, for a TLS server)."""
        if self.tls:
            kw["ssl"] = self.ssl
        return websockets.connect(self.url(path), **kw)

    def cpu_ticks(self):
        """The user and system clock ticks of the server's one worker so far."""
        worker = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                                text=True, timeout=T).stdout.split()
        assert len(worker) == 1, worker
        with open(f"/proc/{worker[0]}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 3 * T))


def connect(port, ssl_ctx=None, rcvbuf=None):
    """A connection to the server (over TLS with @ssl_ctx; @rcvbuf: SO_RCVBUF, set first)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(T)
    s.connect(("127.0.0.1", port))
    return ssl_ctx.wrap_socket(s, server_hostname="localhost") if ssl_ctx else s


def recv_until(s, needle, got=b""):
    """Read from @s until what came (after @got) holds @needle; returns all of it."""
    while needle not in got:
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    return got


def read_to_end(s):
    """Everything @s delivers until the server closes."""
    got = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return got
        got += chunk


def raw_handshake(port, path, rcvbuf=None):
    """A WebSocket opening handshake by hand: the socket, after the 101."""
    s = connect(port, rcvbuf=rcvbuf)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:  # a byte at a time: nothing of what follows is read
        chunk = s.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 "), head
    return s


def sse_subscribe(port, ssl_ctx=None):
    """An SSE subscription on its own connection, read up to its ": subscribed"."""
    s = connect(port, ssl_ctx)
    s.sendall(b"GET /sse/ HTTP/1.1\r\nHost: x\r\n\r\n")
    recv_until(s, b": subscribed")
    return s


def http_post(port, target, body, ssl_ctx=None):
    """POST on a connection of its own: the response's bytes."""
    s = connect(port, ssl_ctx)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
              % (target.encode(), len(body)) + body)
    reply = read_to_end(s)
    s.close()
    return reply


def frame(opcode, payload, mask=True):
    """One final client frame; masked unless told otherwise (RFC 6455 5.2)."""
    first = bytes([0x80 | opcode])
    n = len(payload)
    length = bytes([n]) if n < 126 else bytes([126]) + struct.pack("!H", n)
    if not mask:
        return first + length + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return first + bytes([length[0] | 0x80]) + length[1:] + key + body


def read_close(s):
    """The server's next frame: must be a close; returns its code. Then the server's EOF."""
    data = b""
    while len(data) < 4:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    assert data[0] == 0x88, data  # FIN + close, unmasked (server frames are)
    assert data[1] & 0x80 == 0, data
    code = struct.unpack("!H", data[2:4])[0]
    s.sendall(frame(0x8, struct.pack("!H", code)))  # the closing handshake's reply
    while s.recv(4096):
        pass
    return code


class WebSocketTest(unittest.TestCase):
    def setUp(self):
        self.srv = Server()

    def tearDown(self):
        self.srv.stop()

    def test_echo_messages_fragments_ping_close(self):
        async def go():
            async with websockets.connect(self.srv.url("/chat/echo"), max_size=None) as ws:
                await ws.send("héllo")
                self.assertEqual(await ws.recv(), "héllo")
                await ws.send(b"\x00\x01\xff")
                self.assertEqual(await ws.recv(), b"\x00\x01\xff")
                # Fragmented: one message in three frames (and a binary one in two).
                await ws.send(["frag", "ment", "ed ✓"])
                self.assertEqual(await ws.recv(), "fragmented ✓")
                await ws.send([b"ab", b"cd"])
                self.assertEqual(await ws.recv(), b"abcd")
                # 64 KiB exactly is allowed (chat.max_message=65536).
                await ws.send("x" * 65536)
                self.assertEqual(len(await ws.recv()), 65536)
                pong = await ws.ping(b"are you there")
                await asyncio.wait_for(pong, T)
                await ws.close(4000, "done here")
            # The server echoed our close code.
            self.assertEqual(ws.close_code, 4000)
        run(go())

    def test_oversize_answered_1009(self):
        async def go():
            async with websockets.connect(self.srv.url("/chat/echo"), max_size=None) as ws:
                await ws.send("y" * 65537)
                with self.assertRaises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), T)
            self.assertEqual(ws.close_code, 1009)
        run(go())

    def test_invalid_utf8_answered_1007(self):
        s = raw_handshake(self.srv.port, "/chat/echo")
        s.sendall(frame(0x1, "ok ".encode() + b"\xc3\x28 broken"))
        self.assertEqual(read_close(s), 1007)
        s.close()

    def test_unmasked_frame_refused_1002(self):
        s = raw_handshake(self.srv.port, "/chat/ws")
        s.sendall(frame(0x1, b"unmasked", mask=False))
        self.assertEqual(read_close(s), 1002)
        s.close()

    def test_not_a_handshake(self):
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=T)
        s.sendall(b"GET /chat/ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = read_to_end(s)
        s.close()
        self.assertTrue(reply.startswith(b"HTTP/1.1 426 "), reply)
        self.assertIn(b"Sec-WebSocket-Version: 13\r\n", reply)

    def test_room_broadcast(self):
        async def go():
            clients = [await websockets.connect(self.srv.url("/chat/ws")) for _ in range(3)]
            await clients[1].send("hi all")
            for c in clients:
                self.assertEqual(await asyncio.wait_for(c.recv(), T), "hi all")
            await clients[2].send(["in ", "parts"])
            for c in clients:
                self.assertEqual(await asyncio.wait_for(c.recv(), T), "in parts")
            for c in clients:
                await c.close()
                self.assertEqual(c.close_code, 1000)
        run(go())

    def chat_stats(self):
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.srv.port}/chat/stats",
                                    timeout=T) as r:
            return r.read().decode()

    def test_member_too_slow_is_closed(self):
        """A room member that never reads: once its queues are full it is sent 1008 and
        closed without waiting for a reply it would not send (the host bounds the drain)."""
        slow = raw_handshake(self.srv.port, "/chat/ws", rcvbuf=4096)

        async def go():
            async with websockets.connect(self.srv.url("/chat/ws"), max_size=None) as a:
                block = "z" * 65536
                for _ in range(160):  # 10 MiB: more than the socket buffers and both queues
                    await a.send(block)
                    self.assertEqual(len(await asyncio.wait_for(a.recv(), T)), 65536)
                deadline = time.monotonic() + 25
                while "members=1 " not in self.chat_stats():
                    self.assertLess(time.monotonic(), deadline, self.chat_stats())
                    await asyncio.sleep(0.2)
                await a.send("still here")
                self.assertEqual(await asyncio.wait_for(a.recv(), T), "still here")
        asyncio.run(asyncio.wait_for(go(), 60))
        slow.close()
        self.assertNotIn("AddressSanitizer", self.srv.text())

    def test_reload_under_load(self):
        """SIGHUP under WebSocket and SSE load: each old client is told (1001, event:
        shutdown) and closed, reconnects to the new generation, nobody crashes."""
        sse = []
        for _ in range(N_SSE):
            sse.append(sse_subscribe(self.srv.port))

        async def go():
            clients = [await websockets.connect(self.srv.url("/chat/ws")) for _ in range(N_WS)]
            await clients[0].send("before")
            for c in clients:
                self.assertEqual(await asyncio.wait_for(c.recv(), T), "before")
            old_pid = self.srv.proc.pid
            os.kill(old_pid, signal.SIGHUP)
            for c in clients:
                with self.assertRaises(ConnectionClosed):
                    await asyncio.wait_for(c.recv(), T)
                await asyncio.wait_for(c.wait_closed(), T)
                self.assertEqual(c.close_code, 1001)
                self.assertEqual(c.close_reason, "server restarts")
            self.srv.wait_log("worker ready", 2)
            again = [await websockets.connect(self.srv.url("/chat/ws")) for _ in range(N_WS)]
            await again[-1].send("after")
            for c in again:
                self.assertEqual(await asyncio.wait_for(c.recv(), T), "after")
            for c in again:
                await c.close()
        run(go())
        for s in sse:
            recv_until(s, b"event: shutdown")
            s.close()
        self.srv.wait_log(") stopped", 1)  # the old worker exited
        log = self.srv.text()
        self.assertIn("worker 0 (gen 1, pid", log)
        self.assertNotIn("killed by signal", log)
        self.assertNotIn("graceful timeout", log)
        self.assertNotIn("AddressSanitizer", log)
        self.assertNotIn("runtime error", log)

    def test_stop_does_not_wait_for_silent_clients(self):
        """SIGTERM with a member that never answers the 1001: the server closes after the
        frame and a second's linger, well before --graceful-timeout (5 s here) runs out."""
        s = raw_handshake(self.srv.port, "/chat/ws")
        time.sleep(0.2)
        t0 = time.monotonic()
        self.srv.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.srv.proc.wait(T), 0)
        took = time.monotonic() - t0
        data = read_to_end(s)
        s.close()
        self.assertTrue(data.startswith(b"\x88"), data)  # the close frame
        self.assertEqual(struct.unpack("!H", data[2:4])[0], 1001)
        self.assertLess(took, 4.0)
        self.assertNotIn("graceful timeout", self.srv.text())

    def test_stop_tells_clients(self):
        async def go():
            clients = [await websockets.connect(self.srv.url(p)) for p in ("/chat/ws", "/chat/echo")]
            t0 = time.monotonic()
            self.srv.proc.send_signal(signal.SIGTERM)
            for c in clients:
                with self.assertRaises(ConnectionClosed):
                    await asyncio.wait_for(c.recv(), T)
                self.assertEqual(c.close_code, 1001)
            return t0
        t0 = run(go())
        self.assertEqual(self.srv.proc.wait(T), 0)
        self.assertLess(time.monotonic() - t0, 5.0)


class RelayTest(unittest.TestCase):
    """plugins/sse with relay_dir and two workers: a publish taken by one worker
    reaches the subscribers of both; a reload and a stop leave no socket behind."""

    def setUp(self):
        self.relay = tempfile.mkdtemp(prefix="csgi-relay-")
        os.rmdir(self.relay)  # the plugin makes it (0700)
        self.srv = Server(workers=2, extra=["--stats", "127.0.0.1:0",
                                            "--set", "sse.relay_dir=" + self.relay])
        for line in self.srv.text().splitlines():
            if "stats on http://127.0.0.1:" in line:
                self.stats = int(line.split("stats on http://127.0.0.1:")[1].split()[0].strip("/"))

    def tearDown(self):
        self.srv.stop()
        shutil.rmtree(self.relay, ignore_errors=True)

    def connections(self):
        """Each serving worker's open connections, by pid (the stats endpoint)."""
        import json
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats}/stats.json", timeout=T) as r:
            j = json.load(r)
        return {w["pid"]: w["connections"] for w in j["workers"] if w["state"] == "ready"}

    def test_publish_reaches_every_worker(self):
        self.assertEqual(stat_mode(self.relay), 0o700)
        self.assertEqual(len([n for n in os.listdir(self.relay) if n.endswith(".sock")]), 2)
        subs = []
        # Until both workers hold subscribers (the acceptor spreads connections out).
        while len(subs) < 16:
            subs.append(sse_subscribe(self.srv.port))
            counts = self.connections()
            if len(subs) >= 4 and len(counts) == 2 and min(counts.values()) >= 1:
                break
        counts = self.connections()
        self.assertEqual(len(counts), 2, counts)
        self.assertGreaterEqual(min(counts.values()), 1, counts)
        reply = http_post(self.srv.port, "/sse/publish", b"to all\nworkers")
        self.assertIn(b" workers=2\n", reply)
        for s in subs:
            recv_until(s, b"data: to all\ndata: workers\n\n")
        # A reload: the new generation's two sockets replace the old ones.
        old = sorted(os.listdir(self.relay))
        os.kill(self.srv.proc.pid, signal.SIGHUP)
        self.srv.wait_log("worker ready", 4)
        for s in subs:
            recv_until(s, b"event: shutdown")
            s.close()
        self.srv.wait_log(") stopped", 2)
        new = sorted(os.listdir(self.relay))
        self.assertEqual(len(new), 2, new)
        self.assertFalse(set(old) & set(new), (old, new))
        self.srv.stop()
        self.assertEqual(os.listdir(self.relay), [])
        log = self.srv.text()
        self.assertNotIn("relay", log.replace("relay_dir", ""))  # no relay warning or error

    def test_websocket_echo_on_both_workers(self):
        # Upgraded connections on two workers at once (each on its worker's loop).
        async def go():
            clients = []
            while len(clients) < 12:  # until both workers hold some (the acceptor spreads them)
                clients.append(await websockets.connect(self.srv.url("/chat/echo")))
                counts = self.connections()
                if len(clients) >= 4 and len(counts) == 2 and min(counts.values()) >= 1:
                    break
            self.assertEqual(len(counts), 2, counts)
            self.assertGreaterEqual(min(counts.values()), 1, counts)
            for i, c in enumerate(clients):
                await c.send(f"n{i}")
            for i, c in enumerate(clients):
                self.assertEqual(await asyncio.wait_for(c.recv(), T), f"n{i}")
                await c.close()
        run(go())

    def test_directory_others_may_write_is_refused(self):
        # Anyone who can write to the directory could read or inject events.
        shared = tempfile.mkdtemp(prefix="csgi-relay-shared-")
        os.chmod(shared, 0o777)
        srv = Server(extra=["--set", "sse.relay_dir=" + shared])
        try:
            srv.wait_log("others may write to it", 1)
            self.assertIn('plugin "chat" loaded', srv.text())  # the rest keep serving
            self.assertEqual(os.listdir(shared), [])
        finally:
            srv.stop()
            shutil.rmtree(shared, ignore_errors=True)

    def test_dead_worker_socket_is_dropped(self):
        # A socket whose process is gone (a crashed worker): the next publish removes it.
        stale = os.path.join(self.relay, "999999999.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(stale)
        s.close()
        reply = http_post(self.srv.port, "/sse/publish", b"x")
        self.assertIn(b" workers=2\n", reply)
        self.assertFalse(os.path.exists(stale))


def stat_mode(path):
    return os.stat(path).st_mode & 0o777


class TlsTest(unittest.TestCase):
    """WebSocket (wss://) and SSE over csgi-server's own TLS listener: libmicrohttpd
    relays an upgraded TLS connection through a socket pair, and a parked SSE
    response waits on a TLS connection; neither may lose data or keep the worker
    busy while nothing happens."""

    def setUp(self):
        self.srv = Server(tls=True)

    def tearDown(self):
        self.srv.stop()

    def test_wss_echo_room_and_sse(self):
        sse = sse_subscribe(self.srv.port, self.srv.ssl)

        async def go():
            async with self.srv.connect("/chat/echo", max_size=None) as ws:
                await ws.send("héllo")
                self.assertEqual(await ws.recv(), "héllo")
                await ws.send(["frag", "ment"])
                self.assertEqual(await ws.recv(), "fragment")
                big = os.urandom(65536)  # many TLS records each way
                await ws.send(big)
                self.assertEqual(await ws.recv(), big)
                await asyncio.wait_for(await ws.ping(b"tls"), T)
                members = [await self.srv.connect("/chat/ws") for _ in range(2)]
                # Idle: an open wss connection, two room members and an SSE subscriber.
                await asyncio.sleep(0.3)
                before = self.srv.cpu_ticks()
                await asyncio.sleep(2.0)
                idle = self.srv.cpu_ticks() - before
                await members[0].send("over tls")
                for m in members:
                    self.assertEqual(await asyncio.wait_for(m.recv(), T), "over tls")
                for m in members:
                    await m.close()
                    self.assertEqual(m.close_code, 1000)
                await ws.close(4002)
            self.assertEqual(ws.close_code, 4002)
            return idle
        idle = run(go())
        # A spinning worker burns ~200 ticks in 2 s; the heartbeat costs about none.
        self.assertLess(idle, 40, "the worker was busy while every connection was idle")

        # The subscriber gets an event published over another TLS connection.
        reply = http_post(self.srv.port, "/sse/publish", b"over-tls!", self.srv.ssl)
        self.assertRegex(reply, rb"^HTTP/1\.1 200 ")
        recv_until(sse, b"data: over-tls!")
        sse.close()
        log = self.srv.text()
        self.assertNotIn("killed by signal", log)
        self.assertNotIn("AddressSanitizer", log)


class ValidatedTest(unittest.TestCase):
    """The chat behind the validator middleware (--wrap chat=validator): its use of
    upgrade(), upgrade_write() and upgrade_close() breaks no rule of SPEC 4.15."""

    def test_chat_through_the_validator(self):
        srv = Server(validated=True)
        try:
            async def go():
                async with websockets.connect(srv.url("/chat/echo")) as ws:
                    await ws.send(["a", "b"])
                    self.assertEqual(await ws.recv(), "ab")
                    await asyncio.wait_for(await ws.ping(b"x"), T)
                    await ws.close(4001)
                self.assertEqual(ws.close_code, 4001)
                members = [await websockets.connect(srv.url("/chat/ws")) for _ in range(2)]
                await members[0].send("room")
                for m in members:
                    self.assertEqual(await asyncio.wait_for(m.recv(), T), "room")
                await members[0].close()
                os.kill(srv.proc.pid, signal.SIGTERM)  # the other hears 1001
                with self.assertRaises(ConnectionClosed):
                    await asyncio.wait_for(members[1].recv(), T)
                self.assertEqual(members[1].close_code, 1001)
            run(go())
            self.assertEqual(srv.proc.wait(T), 0)
            log = srv.text()
            self.assertIn('validator: checking "chat"', log)
            self.assertNotIn("csgi validator:", log)
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
