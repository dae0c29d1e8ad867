"""The example app: a Flask app that draws a PNG with Pillow and knows its libpq."""
import importlib.metadata
import io

import flask
import PIL
import psycopg2
import psycopg2.extensions
import requests
from PIL import Image

app = flask.Flask(__name__)


@app.route("/badge.png")
def badge():
    img = Image.new("RGB", (32, 16), (40, 120, 200))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return flask.Response(buf.getvalue(), mimetype="image/png")


@app.route("/versions")
def versions():
    return {"flask": importlib.metadata.version("flask"),
            "pillow": PIL.__version__, "requests": requests.__version__,
            "psycopg2": psycopg2.__version__.split()[0],
            "libpq": psycopg2.extensions.libpq_version()}
