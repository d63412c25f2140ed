"""WSGI applications outside wsgiref.validate: failures the validator would
stop before the server sees them, and a second application for a second
mount."""
import os
import sys
import time


def failing(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/raise":
        raise ValueError("plain: raised on purpose")
    if path == "/raise-in-iter":
        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            raise KeyError("plain: raised in the body")
            yield b""
        return gen()
    if path == "/bad-header":
        start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
        return [b"never"]
    if path == "/not-latin1":
        start_response("200 OK", [("X-Name", "\u20ac")])
        return [b"never"]
    if path == "/str-body":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["a str is not bytes"]
    if path == "/exit":
        raise SystemExit(3)
    if path == "/print":
        print("plain: printed to stdout")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"printed\n"]
    if path == "/file":
        q = dict(kv.split("=") if "=" in kv else (kv, kv) for kv in
                 environ["QUERY_STRING"].split("&"))
        f = open(__file__, "rb")
        f.seek(int(next(iter(q))))
        headers = [("Content-Type", "text/x-python")]
        if "cl" in q:
            headers.append(("Content-Length", q["cl"]))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](f)
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"] or 0.3))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept %d\n" % os.getpid()]
    if path == "/slow-body":
        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            for i in range(4):
                time.sleep(0.1)
                yield b"slow %d\n" % i
        return gen()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"plain ok %s\n" % sys.version.split()[0].encode()]


def second(environ, start_response):
    body = ("second app: SCRIPT_NAME=%r PATH_INFO=%r\n"
            % (environ["SCRIPT_NAME"], environ["PATH_INFO"])).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
