"""A loopback stand-in for the Hugging Face Hub: the few endpoints a push and a pull use.

It keeps repos in memory, checks the bearer token on every request, and logs every request
so a test can assert exactly what the real huggingface_hub client sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

TOKEN = "hf_fake_token_for_tests"
REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
KIND = r"(?:models|spaces)"  # a push goes to a model repo, `hf upload --repo-type space` to a Space


@dataclass
class Repo:
    files: dict[str, bytes] = field(default_factory=dict)
    sha: str = "0" * 40
    private: bool = False


class FakeHub:
    """Start with ``FakeHub()``; ``endpoint`` is the HF_ENDPOINT; ``close()`` stops it."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.log: list[tuple[str, str]] = []  # (method, path without query), in arrival order
        self.queries: list[str] = []  # the query strings, same order (for reading, not asserting)
        self.refused: list[str] = []  # requests without the right token, or with no route
        self.fail_with: int | None = None  # set to an HTTP status to play a Hub that is down
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client expects

        def log_message(self, *args) -> None:  # quiet: the test reads hub.log instead
            pass

        def do_GET(self) -> None:
            self._route("GET")

        def do_HEAD(self) -> None:
            self._route("HEAD")

        def do_POST(self) -> None:
            self._route("POST")

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            hub.log.append((method, path))
            hub.queries.append(url.query)
            body = self._body()
            if hub.fail_with is not None:
                return self._json(hub.fail_with, {"error": "fake hub: down for the test"})
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                hub.refused.append(f"{method} {path} (token)")
                return self._json(401, {"error": "Invalid credentials in Authorization header"})
            routes = [
                ("GET", r"/api/whoami-v2", self._whoami),
                ("POST", r"/api/repos/create", self._create),
                ("POST", r"/api/validate-yaml", lambda: self._json(200, {"errors": [], "warnings": []})),
                ("POST", rf"/api/{KIND}/{REPO}/preupload/(?P<rev>[^/]+)", self._preupload),
                ("POST", rf"/api/{KIND}/{REPO}/commit/(?P<rev>[^/]+)", self._commit),
                ("GET", rf"/api/models/{REPO}/revision/(?P<rev>[^/]+)", self._info),
                ("GET", rf"/api/models/{REPO}/tree/(?P<rev>[^/]+)", self._tree),
                ("GET", rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", self._resolve),
                ("HEAD", rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", self._resolve),
            ]
            for verb, pattern, action in routes:
                match = re.fullmatch(pattern, path)
                if verb == method and match:
                    self.match, self.body = match, body
                    return action()
            hub.refused.append(f"{method} {path} (no route)")
            self._json(404, {"error": f"fake hub: no route for {method} {path}"})

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # streamed NDJSON commits
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _json(self, status: int, data: object, headers: dict[str, str] | None = None) -> None:
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _repo(self) -> Repo | None:
            repo = hub.repos.get(self.match["repo"])
            if repo is None:  # the Hub's answer for a missing repo
                self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            return repo

        def _whoami(self) -> None:
            self._json(200, {"type": "user", "name": "user", "auth": {"accessToken": {"role": "write"}}})

        def _create(self) -> None:
            data = json.loads(self.body)
            repo_id = f"{data.get('organization') or 'user'}/{data['name']}"
            if repo_id in hub.repos:
                url = f"{hub.endpoint}/{repo_id}"
                return self._json(409, {"error": "You already created this model repo", "url": url})
            hub.repos[repo_id] = Repo(private=data.get("visibility") == "private" or bool(data.get("private")))
            self._json(200, {"url": f"{hub.endpoint}/{repo_id}", "name": repo_id, "id": repo_id})

        def _preupload(self) -> None:
            if self._repo() is not None:
                files = json.loads(self.body)["files"]
                self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                           for f in files], "commitOid": hub.repos[self.match["repo"]].sha})

        def _commit(self) -> None:
            repo = self._repo()
            if repo is None:
                return
            for line in self.body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    repo.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            tree = sorted((name, _git_blob_id(data)) for name, data in repo.files.items())
            repo.sha = hashlib.sha1(json.dumps(tree).encode()).hexdigest()  # new content, new commit id
            self._json(200, {"success": True, "commitOid": repo.sha,
                             "commitUrl": f"{hub.endpoint}/{self.match['repo']}/commit/{repo.sha}"})

        def _info(self) -> None:
            repo = self._repo()
            if repo is not None:
                siblings = [{"rfilename": name, "size": len(data)} for name, data in sorted(repo.files.items())]
                self._json(200, {"id": self.match["repo"], "modelId": self.match["repo"], "sha": repo.sha,
                                 "private": repo.private, "siblings": siblings})

        def _tree(self) -> None:
            repo = self._repo()
            if repo is not None:  # git blob ids, as the Hub gives them for regular (non-LFS) files
                self._json(200, [{"type": "file", "path": name, "size": len(data), "oid": _git_blob_id(data)}
                                 for name, data in sorted(repo.files.items())])

        def _resolve(self) -> None:
            repo = self._repo()
            if repo is None:
                return
            data = repo.files.get(self.match["file"])
            if data is None:
                return self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Repo-Commit", repo.sha)
            self.send_header("ETag", f'"{_git_blob_id(data)}"')
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(data)

    return Handler


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
