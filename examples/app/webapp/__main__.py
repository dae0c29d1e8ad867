"""python -m webapp --check: the app's own check (routes answer, libraries load)."""
import json
import sys

from webapp import app


def check():
    client = app.test_client()
    png = client.get("/badge.png")
    assert png.status_code == 200 and png.data[:8] == b"\x89PNG\r\n\x1a\n", png.status_code
    got = client.get("/versions").get_json()
    assert got["libpq"] > 0, got
    print(json.dumps({"ok": True, **got}, sort_keys=True))


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        check()
    else:
        app.run(host="0.0.0.0", port=8000)
