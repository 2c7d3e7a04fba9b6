import json
import os
import threading
import unittest
import urllib.request

import server


class ServerTest(unittest.TestCase):
    def setUp(self):
        self.httpd = server.serve(0, host="127.0.0.1")
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def tearDown(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return r.status, r.read().decode()

    def test_health(self):
        self.assertEqual(self.get("/health"), (200, "ok\n"))

    def test_identity_reads_env(self):
        os.environ["APP_ENV"] = "test"
        status, body = self.get("/")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["env"], "test")


if __name__ == "__main__":
    unittest.main()
