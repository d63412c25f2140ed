"""The article's frameworks for the WSGI races (issue 14): the same two
endpoints on Falcon, Bottle and Flask, served by csgi-server's wsgi plugin,
gunicorn (sync and gthread workers) and uWSGI alike.

    GET /plaintext  -> "Hello, World!" (text/plain)
    GET /json       -> {"message": "Hello, World!"}
"""

import json

import bottle
import falcon
import flask

HELLO = "Hello, World!"


class Plaintext:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = HELLO


class Json:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps({"message": HELLO})


falcon_app = falcon.App()
falcon_app.add_route("/plaintext", Plaintext())
falcon_app.add_route("/json", Json())

bottle_app = bottle.Bottle()


@bottle_app.route("/plaintext")
def bottle_plaintext():
    bottle.response.content_type = "text/plain"
    return HELLO


@bottle_app.route("/json")
def bottle_json():
    bottle.response.content_type = "application/json"
    return json.dumps({"message": HELLO})


flask_app = flask.Flask(__name__)


@flask_app.route("/plaintext")
def flask_plaintext():
    return flask.Response(HELLO, mimetype="text/plain")


@flask_app.route("/json")
def flask_json():
    return flask.Response(json.dumps({"message": HELLO}), mimetype="application/json")
