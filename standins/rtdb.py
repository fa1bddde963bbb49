"""A local stand-in for the Firebase Realtime Database: the REST subset firebase-admin speaks.

It lets the Firebase store run (and be tested) with no account and no Java emulator: point
FIREBASE_DATABASE_EMULATOR_HOST at it. One JSON tree per namespace (`ns=` query parameter),
ETags with conditional writes, `print=silent`, shallow reads, ordered queries with range and
limit filters, `{".sv": "timestamp"}`, and, when given a rules file, the "Index not defined"
refusal for queries on children the rules do not index. Read/write rules are not evaluated:
the SDK connects as the admin (`Bearer owner`), which bypasses them anyway.

    python -m standins.rtdb --port 9000 [--rules database.rules.json]
"""

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import threading
import time

from aiohttp import web

_FORBIDDEN_KEY = re.compile(r"[.$#\[\]/\x00-\x1f\x7f]")
_PUSH_CHARS = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_INT_KEY = re.compile(r"^(0|-?[1-9][0-9]{0,9})$")


class BadRequest(Exception):
    """The request cannot be served (bad JSON, bad key, unindexed query); becomes HTTP 400."""


# the tree --------------------------------------------------------------------------------

def normalise(value, now_ms):
    """What the database would store for value: no empty nodes, lists as int-keyed objects,
    server values resolved, keys checked."""
    if isinstance(value, list):
        value = {str(i): v for i, v in enumerate(value)}
    if isinstance(value, dict):
        if set(value) == {".sv"}:
            if value[".sv"] == "timestamp":
                return now_ms
            raise BadRequest("unsupported server value %r" % (value[".sv"],))
        out = {}
        for key, child in value.items():
            if key in (".priority", ".value"):
                continue
            if not key or _FORBIDDEN_KEY.search(key) or len(key.encode()) > 768:
                raise BadRequest("Invalid data; couldn't parse key %r" % key)
            child = normalise(child, now_ms)
            if child is not None:
                out[key] = child
        return out or None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def as_served(value):
    """Firebase turns objects whose keys are small integers into JSON arrays when dense."""
    if not isinstance(value, dict):
        return value
    served = {k: as_served(v) for k, v in value.items()}
    if all(_INT_KEY.match(k) and int(k) >= 0 for k in served):
        top = max(int(k) for k in served)
        if top < 2 * len(served):
            return [served.get(str(i)) for i in range(top + 1)]
    return served


def etag_of(value):
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()


class Tree:
    """One namespace's data as nested dicts; every method is synchronous, hence atomic."""

    def __init__(self):
        self.root = None

    def get(self, path):
        node = self.root
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    def set(self, path, value):
        if not path:
            self.root = value
            return
        if not isinstance(self.root, dict):
            self.root = {}
        parents = [self.root]
        node = self.root
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
            parents.append(node)
        if value is None:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
        # Firebase keeps no empty nodes: prune emptied parents bottom up.
        for depth in range(len(path) - 1, 0, -1):
            if parents[depth]:
                break
            parents[depth - 1].pop(path[depth - 1], None)
        if not self.root:
            self.root = None


# queries ----------------------------------------------------------------------------------

def _rank(value):
    """Firebase's cross-type ordering: null, false, true, numbers, strings, objects."""
    if value is None:
        return (0,)
    if value is False:
        return (1,)
    if value is True:
        return (2,)
    if isinstance(value, (int, float)):
        return (3, value)
    if isinstance(value, str):
        return (4, value)
    return (5,)


def _key_rank(key):
    if _INT_KEY.match(key):
        return (0, int(key), "")
    return (1, 0, key)


def _child(value, child_path):
    for key in child_path.split("/"):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def run_query(node, params):
    """Order, filter and limit the children of node as the REST API does; returns an object."""
    if not isinstance(node, dict):
        return node
    order_by = params["orderBy"]
    if order_by == "$key":
        def index(key, _value):
            return _key_rank(key)

        def bound(raw):
            return _key_rank(str(raw))
    else:
        def index(key, value):
            picked = value if order_by == "$value" else _child(value, order_by)
            return _rank(picked) + (_key_rank(key),)

        def bound(raw):
            return _rank(raw)

    entries = sorted(node.items(), key=lambda kv: index(*kv))
    for name, keep in (("equalTo", lambda i, b: i[:len(b)] == b),
                       ("startAt", lambda i, b: i[:len(b)] >= b),
                       ("endAt", lambda i, b: i[:len(b)] <= b)):
        if name in params:
            b = bound(params[name])
            entries = [kv for kv in entries if keep(index(*kv), b)]
    if "limitToFirst" in params:
        entries = entries[:params["limitToFirst"]]
    if "limitToLast" in params:
        entries = entries[len(entries) - params["limitToLast"]:] if params["limitToLast"] else []
    return {k: v for k, v in entries}


def _rules_node(rules, path):
    node = rules.get("rules", {}) if isinstance(rules, dict) else {}
    for key in path:
        if not isinstance(node, dict):
            return {}
        if key in node:
            node = node[key]
        else:
            wild = [k for k in node if k.startswith("$")]
            node = node[wild[0]] if wild else {}
    return node if isinstance(node, dict) else {}


def check_indexed(rules, path, order_by):
    if rules is None or order_by in ("$key", "$priority"):
        return
    wanted = ".value" if order_by == "$value" else order_by
    index_on = _rules_node(rules, path).get(".indexOn", [])
    if isinstance(index_on, str):
        index_on = [index_on]
    if wanted not in index_on:
        raise BadRequest('Index not defined, add ".indexOn": "%s", for path "/%s", to the rules'
                         % (wanted, "/".join(path)))


# HTTP -------------------------------------------------------------------------------------

class _PushIds:
    """Push keys sort by creation time, like Firebase's: 8 time chars and 12 random ones."""

    def __init__(self):
        self._last_ms = -1
        self._tail = []

    def next(self, now_ms):
        if now_ms == self._last_ms:
            i = 11
            while self._tail[i] == 63:
                self._tail[i] = 0
                i -= 1
            self._tail[i] += 1
        else:
            self._last_ms = now_ms
            self._tail = [random.randrange(64) for _ in range(12)]
        head = ""
        for _ in range(8):
            head = _PUSH_CHARS[now_ms % 64] + head
            now_ms //= 64
        return head + "".join(_PUSH_CHARS[i] for i in self._tail)


def _parse_path(request):
    raw = request.match_info["tail"]
    if not raw.endswith(".json"):
        raise web.HTTPNotFound(text=json.dumps({"error": "paths end in .json"}),
                               content_type="application/json")
    return [seg for seg in raw[:-len(".json")].split("/") if seg]


def _query_params(request):
    params = {}
    for name in ("orderBy", "equalTo", "startAt", "endAt", "limitToFirst", "limitToLast"):
        if name in request.query:
            try:
                params[name] = json.loads(request.query[name])
            except ValueError:
                raise BadRequest("%s must be JSON-encoded" % name) from None
    for name in ("limitToFirst", "limitToLast"):
        if name in params and (type(params[name]) is not int or params[name] < 0):
            raise BadRequest("%s must be a non-negative integer" % name)
    if params and "orderBy" not in params:
        raise BadRequest("orderBy must be defined when other query parameters are defined")
    return params


class RtdbServer:
    """The database state plus the aiohttp handler; namespaces are created on first use."""

    def __init__(self, rules=None, clock_ms=None):
        self.rules = rules
        self.trees = {}
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._push_ids = _PushIds()

    def tree(self, namespace):
        return self.trees.setdefault(namespace, Tree())

    def make_app(self):
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request):
        try:
            body = await request.read()
            return self._serve(request, _parse_path(request), body)
        except BadRequest as error:
            return web.json_response({"error": str(error)}, status=400)

    def _serve(self, request, path, body):
        tree = self.tree(request.query.get("ns", "default"))
        method = request.method
        if method == "GET":
            return self._get(request, tree, path)
        if method not in ("PUT", "PATCH", "POST", "DELETE"):
            return web.json_response({"error": "method not allowed"}, status=405)
        value = None
        if method != "DELETE":
            try:
                value = json.loads(body.decode("utf-8")) if body else None
            except (UnicodeDecodeError, ValueError):
                raise BadRequest("Invalid data; couldn't parse JSON object") from None
        current = tree.get(path)
        if_match = request.headers.get("if-match")
        if if_match is not None and if_match != etag_of(current):
            return web.json_response(as_served(current), status=412,
                                     headers={"ETag": etag_of(current)})
        result = self._write(tree, method, path, value)
        if request.query.get("print") == "silent":
            return web.Response(status=204)
        return web.json_response(as_served(result), headers={"ETag": etag_of(tree.get(path))})

    def _get(self, request, tree, path):
        value = tree.get(path)
        params = _query_params(request)
        if "orderBy" in params:
            check_indexed(self.rules, path, params["orderBy"])
            value = run_query(value, params)
            if isinstance(value, dict):
                # query results stay objects: the SDK sorts them by key itself
                value = {k: as_served(v) for k, v in value.items()}
                return web.json_response(value)
        elif request.query.get("shallow") == "true" and isinstance(value, dict):
            value = {k: True if isinstance(v, dict) else v for k, v in value.items()}
        headers = {}
        if request.headers.get("X-Firebase-ETag") == "true":
            headers["ETag"] = etag_of(tree.get(path))
        if request.headers.get("if-none-match") == etag_of(tree.get(path)):
            return web.Response(status=304, headers=headers)
        return web.json_response(as_served(value), headers=headers)

    def _write(self, tree, method, path, value):
        now = self._clock_ms()
        if method == "DELETE":
            tree.set(path, None)
            return None
        if method == "PUT":
            stored = normalise(value, now)
            tree.set(path, stored)
            return stored
        if method == "POST":
            key = self._push_ids.next(now)
            tree.set(path + [key], normalise(value, now))
            return {"name": key}
        if not isinstance(value, dict):
            raise BadRequest("PATCH needs a JSON object")
        writes = []
        for rel, child in value.items():
            segments = [s for s in rel.split("/") if s]
            if not segments:
                raise BadRequest("Invalid data; empty path in update")
            normalise({s: 1 for s in segments}, now)  # checks every key
            writes.append((path + segments, normalise(child, now)))
        # Validate everything before writing anything: an update is all or nothing.
        for target, child in writes:
            tree.set(target, child)
        return tree.get(path)


# running it -------------------------------------------------------------------------------

class LocalRtdb:
    """The server on its own thread and event loop, so synchronous SDK calls can reach it."""

    def __init__(self, host="127.0.0.1", port=0, rules=None):
        self.server = RtdbServer(rules=rules)
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._runner = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def emulator_host(self):
        """The value for FIREBASE_DATABASE_EMULATOR_HOST."""
        return "%s:%d" % (self.host, self.port)

    def start(self):
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self):
        self._runner = web.AppRunner(self.server.make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self):
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def load_rules(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("RTDB_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--rules", help="database.rules.json: enforce .indexOn on queries")
    args = parser.parse_args(argv)
    server = RtdbServer(rules=load_rules(args.rules) if args.rules else None)
    print("rtdb stand-in on http://%s:%d (FIREBASE_DATABASE_EMULATOR_HOST=%s:%d)"
          % (args.host, args.port, args.host, args.port), flush=True)
    web.run_app(server.make_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
