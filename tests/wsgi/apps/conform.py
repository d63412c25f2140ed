"""WSGI test application for the wsgi plugin, wrapped in wsgiref.validate.

Every endpoint runs inside wsgiref.validate.validator, and the validator's
warnings are errors: a PEP 3333 violation by the server (or by this app) makes
the request fail with 500 and a traceback in the error log.
"""
import io
import os
import sys
import warnings
from wsgiref.validate import validator, WSGIWarning

warnings.simplefilter("error", WSGIWarning)

# How often each result's close() ran, by request tag (read back by /closes).
CLOSES = {}


class Closing:
    """An iterable with close(), counting its calls."""

    def __init__(self, tag, chunks):
        self.tag = tag
        self.chunks = chunks

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        CLOSES[self.tag] = CLOSES.get(self.tag, 0) + 1


def text(start_response, body, status="200 OK", extra=()):
    data = body.encode("utf-8")
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(data)))] + list(extra))
    return [data]


def environ_dump(environ):
    keys = sorted(k for k, v in environ.items() if isinstance(v, str))
    lines = ["%s=%r" % (k, environ[k]) for k in keys]
    for k in ("wsgi.version", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once",
              "wsgi.input_terminated"):
        lines.append("%s=%r" % (k, environ.get(k)))
    return "\n".join(lines) + "\n"


def upload(environ, start_response):
    inp = environ["wsgi.input"]
    how = environ["QUERY_STRING"]
    if how == "lines":
        lines = inp.readlines()
        body = b"%d lines\n" % len(lines) + b"".join(lines)
    elif how == "iter":
        body = b"|".join(line for line in inp)
    elif how == "huge":
        body = inp.read(1 << 40)  # bounded by the body, not allocated
    elif how == "readline":
        first = inp.readline()
        part = inp.readline(3)
        body = first + b"<" + part + b">" + inp.read(1 << 20)
    else:
        chunks = []
        while True:
            c = inp.read(7)
            if not c:
                break
            chunks.append(c)
        body = b"".join(chunks)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


def exc_before(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise RuntimeError("replaced")
    except RuntimeError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")],
                       sys.exc_info())
    return [b"replaced by exc_info\n"]


def exc_after(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"partial ")
    try:
        raise RuntimeError("too late")
    except RuntimeError:
        try:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                           sys.exc_info())
        except RuntimeError as e:
            CLOSES["reraised"] = str(e)
            raise
    return [b"not reached"]


def route(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hello":
        return text(start_response, "Hello, world!\n")
    if path == "/environ" or path.startswith("/environ/"):
        return text(start_response, environ_dump(environ))
    if path == "/upload":
        return upload(environ, start_response)
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written, ")
        return [b"then ", b"returned\n"]
    if path == "/generator":
        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            for i in range(int(environ["QUERY_STRING"] or 3)):
                yield b"chunk %d\n" % i
        return gen()
    if path == "/closing":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing(environ["QUERY_STRING"], [b"a", b"b", b"c\n"])
    if path == "/closes":
        return text(start_response, repr(sorted(CLOSES.items())) + "\n")
    if path == "/file":
        f = open(__file__, "rb")
        f.seek(int(environ["QUERY_STRING"] or 0))
        start_response("200 OK", [("Content-Type", "text/x-python")])
        return environ["wsgi.file_wrapper"](f, 4096)
    if path == "/filelike":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"from a BytesIO\n" * 1000), 100)
    if path == "/errors":
        environ["wsgi.errors"].write("conform: a line for the error log\n")
        environ["wsgi.errors"].writelines(["conform: two ", "parts\n"])
        environ["wsgi.errors"].flush()
        return text(start_response, "logged\n")
    if path == "/exc-before":
        return exc_before(environ, start_response)
    if path == "/exc-after":
        return exc_after(environ, start_response)
    if path == "/large":
        block = bytes(range(256)) * 4096
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (block for _ in range(8))
    return text(start_response, "no such page\n", "404 Not Found")


application = validator(route)
