"""hello: the demo service. Serves its release identity on / and liveness on /health.

Settings come from the environment file that the instance's user data writes (/etc/hello/env)."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def identity():
    return {
        "app": "hello",
        "env": os.environ.get("APP_ENV", "unknown"),
        "commit": os.environ.get("RELEASE_COMMIT", "unknown"),
    }


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body, status = b"ok\n", 200
        elif self.path == "/":
            body, status = (json.dumps(identity()) + "\n").encode(), 200
        else:
            body, status = b"not found\n", 404
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


def serve(port, host="0.0.0.0"):
    return ThreadingHTTPServer((host, port), Handler)


if __name__ == "__main__":
    serve(int(os.environ.get("PORT", "8080"))).serve_forever()
