"""The article's pick as a peer target: Falcon under gunicorn.

Endpoints where a comparison with the C targets makes sense (TechEmpower's
plaintext and json test types):

    GET /plaintext  -> "Hello, World!" (text/plain)
    GET /json       -> {"message": "Hello, World!"}

Run: gunicorn --chdir bench/peers falcon_app:app
"""

import json

import falcon


class Plaintext:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "Hello, World!"


class Json:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps({"message": "Hello, World!"})


app = falcon.App()
app.add_route("/plaintext", Plaintext())
app.add_route("/json", Json())
