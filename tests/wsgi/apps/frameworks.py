"""One request matrix on Falcon, Bottle and Flask (Debian's python3-falcon,
python3-bottle, python3-flask), for the byte-for-byte comparison of
csgi-server's wsgi plugin with gunicorn. Each app has the same routes:

  /plaintext  /json  /query?...  /path/<anything>  /upload (POST)
  /large  /stream  /file  /error (the framework's own 500)  /missing (404)
"""
import json
import os

import bottle
import falcon
import flask

HERE = os.path.dirname(os.path.abspath(__file__))
FILE = os.path.join(HERE, "frameworks.py")
LARGE = bytes(range(256)) * 4096  # 1 MiB


def stream_chunks():
    for i in range(50):
        yield (b"line %03d " % i) + b"x" * 1000 + b"\n"


def describe_upload(data):
    return json.dumps({"length": len(data), "head": data[:32].decode("latin-1"),
                       "sum": sum(data) % 65521}, sort_keys=True)


# ---------------------------------------------------------------- Falcon

class FalconText:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "Hello, World!"

    on_head = on_get


class FalconJson:
    def on_get(self, req, resp):
        resp.media = {"message": "Hello, World!"}


class FalconQuery:
    def on_get(self, req, resp):
        resp.media = {"params": sorted(req.params.items()), "qs": req.query_string}


class FalconPath:
    def on_get(self, req, resp, rest):
        resp.media = {"rest": rest, "path": req.path}


class FalconUpload:
    def on_post(self, req, resp):
        resp.content_type = falcon.MEDIA_JSON
        resp.text = describe_upload(req.stream.read())


class FalconLarge:
    def on_get(self, req, resp):
        resp.content_type = "application/octet-stream"
        resp.data = LARGE

    on_head = on_get


class FalconStream:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = stream_chunks()


class FalconFile:
    def on_get(self, req, resp):
        resp.content_type = "text/x-python"
        resp.stream = open(FILE, "rb")
        resp.content_length = os.path.getsize(FILE)


class FalconError:
    def on_get(self, req, resp):
        raise falcon.HTTPInternalServerError(title="boom", description="on purpose")


falcon_app = falcon.App()
falcon_app.add_route("/plaintext", FalconText())
falcon_app.add_route("/json", FalconJson())
falcon_app.add_route("/query", FalconQuery())
falcon_app.add_route("/path/{rest}", FalconPath())
falcon_app.add_route("/upload", FalconUpload())
falcon_app.add_route("/large", FalconLarge())
falcon_app.add_route("/stream", FalconStream())
falcon_app.add_route("/file", FalconFile())
falcon_app.add_route("/error", FalconError())

# ---------------------------------------------------------------- Bottle

bottle_app = bottle.Bottle()


@bottle_app.route("/plaintext")
def b_plaintext():
    bottle.response.content_type = "text/plain"
    return "Hello, World!"


@bottle_app.route("/json")
def b_json():
    return {"message": "Hello, World!"}


@bottle_app.route("/query")
def b_query():
    return {"params": sorted(bottle.request.query.allitems()),
            "qs": bottle.request.query_string}


@bottle_app.route("/path/<rest>")
def b_path(rest):
    return {"rest": rest, "path": bottle.request.path}


@bottle_app.route("/upload", method="POST")
def b_upload():
    bottle.response.content_type = "application/json"
    return describe_upload(bottle.request.body.read())


@bottle_app.route("/large")
def b_large():
    bottle.response.content_type = "application/octet-stream"
    return LARGE


@bottle_app.route("/stream")
def b_stream():
    bottle.response.content_type = "text/plain"
    return stream_chunks()


@bottle_app.route("/file")
def b_file():
    return bottle.static_file("frameworks.py", root=HERE, mimetype="text/x-python")


@bottle_app.route("/error")
def b_error():
    raise RuntimeError("on purpose")

# ---------------------------------------------------------------- Flask


flask_app = flask.Flask(__name__)


@flask_app.route("/plaintext")
def f_plaintext():
    return flask.Response("Hello, World!", mimetype="text/plain")


@flask_app.route("/json")
def f_json():
    return flask.jsonify(message="Hello, World!")


@flask_app.route("/query")
def f_query():
    return flask.jsonify(params=sorted(flask.request.args.items(multi=True)),
                         qs=flask.request.query_string.decode("latin-1"))


@flask_app.route("/path/<rest>")
def f_path(rest):
    return flask.jsonify(rest=rest, path=flask.request.path)


@flask_app.route("/upload", methods=["POST"])
def f_upload():
    return flask.Response(describe_upload(flask.request.get_data()),
                          mimetype="application/json")


@flask_app.route("/large")
def f_large():
    return flask.Response(LARGE, mimetype="application/octet-stream")


@flask_app.route("/stream")
def f_stream():
    return flask.Response(stream_chunks(), mimetype="text/plain")


@flask_app.route("/file")
def f_file():
    return flask.send_file(FILE, mimetype="text/x-python")


@flask_app.route("/error")
def f_error():
    raise RuntimeError("on purpose")
