"""Registry credentials and authentication, compatible with Docker's ``config.json`` and helpers.

Credentials live where Docker keeps them, so that ``docker login`` and ``dockyard login`` share
them: ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``) with

* ``auths``: ``{"localhost:5000": {"auth": base64("user:password")}}`` (Docker Hub's key is
  ``https://index.docker.io/v1/``); an ``identitytoken`` is an OAuth2 refresh token;
* ``credsStore`` / ``credHelpers``: an external ``docker-credential-<name>`` program spoken to with
  Docker's protocol (``get``/``store``/``erase`` on the command line, the server URL or a JSON
  object on stdin, JSON on stdout).

Authentication follows the registry's ``WWW-Authenticate`` challenge: ``Basic`` sends the
credentials with each request; ``Bearer`` fetches a token from the challenge's realm for a scope
(``repository:name:pull,push``), anonymously or with the credentials, and caches it until it
expires.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

from dockyard.errors import AuthError, RegistryError
from dockyard.records import Record
from dockyard.registry.config import DOCKER_HUB_CONFIG_KEY, DOCKER_HUB_DOMAIN, config_key

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    import httpx

    from dockyard.registry.client import StdlibHTTP

TOKEN_USERNAME = "<token>"  # what credential helpers answer when the secret is an identity token


class Credentials(Record):
    username: str
    password: str
    identity_token: str  # OAuth2 refresh token ("identitytoken")
    registry_token: str  # a bearer token to send as is ("registrytoken")
    _fields = ("username", "password", "identity_token", "registry_token")

    def __init__(self, username: str = "", password: str = "", identity_token: str = "",
                 registry_token: str = "") -> None:
        self.__dict__.update(username=username, password=password, identity_token=identity_token,
                             registry_token=registry_token)

    def __bool__(self) -> bool:
        return bool(self.username or self.password or self.identity_token or self.registry_token)


# ---- config.json -------------------------------------------------------------------------------
def config_dir() -> Path:
    d = os.environ.get("DOCKER_CONFIG")
    if d:
        return Path(d)
    return Path(os.path.expanduser("~")) / ".docker"


def config_path() -> Path:
    return config_dir() / "config.json"


def load_config() -> dict[str, Any]:
    p = config_path()
    try:
        text = p.read_text()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise AuthError(f"cannot read {p}: {e.strerror}")
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as e:
        raise AuthError(f"{p}: invalid JSON: {e}")
    if not isinstance(data, dict):
        raise AuthError(f"{p}: not a JSON object")
    return data


def save_config(data: dict[str, Any]) -> None:
    """Write config.json atomically (temp file + rename), readable by its owner only."""
    import tempfile

    p = config_path()
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=p.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _b64encode(data: bytes) -> str:
    import binascii  # base64's C half, without base64 (start-up time)

    return binascii.b2a_base64(data, newline=False).decode()


def _b64decode(text: object) -> bytes:
    """``base64.b64decode(text)``: ValueError (``binascii.Error`` is one) for what is not base64."""
    import binascii

    if not isinstance(text, str):
        raise ValueError("not a string")
    return binascii.a2b_base64(text.encode("ascii"))


def _hostname_of(key: str) -> str:
    """Docker's ConvertToHostname: ``https://host:5000/v1/`` -> ``host:5000``."""
    s = key
    for prefix in ("http://", "https://"):
        s = s.removeprefix(prefix)
    return s.split("/", 1)[0]


def _auths_entry(cfg: dict[str, Any], domain: str) -> tuple[str, dict[str, Any]] | None:
    auths = cfg.get("auths") or {}
    key = config_key(domain)
    if isinstance(auths.get(key), dict):
        return key, auths[key]
    want = "index.docker.io" if domain == DOCKER_HUB_DOMAIN else domain
    for k, v in auths.items():
        if isinstance(v, dict) and _hostname_of(k) in (want, domain):
            return k, v
    return None


def _decode_entry(entry: dict[str, Any]) -> Credentials:
    user, pw = entry.get("username", ""), entry.get("password", "")
    if entry.get("auth"):
        try:
            raw = _b64decode(entry["auth"]).decode()
        except (ValueError, UnicodeDecodeError):
            raise AuthError("invalid base64 \"auth\" in docker config.json")
        user, sep, pw = raw.partition(":")
        if not sep:
            raise AuthError("invalid \"auth\" in docker config.json: expected user:password")
    return Credentials(user, pw, entry.get("identitytoken", ""), entry.get("registrytoken", ""))


def _helper_for(cfg: dict[str, Any], domain: str) -> str | None:
    helpers = cfg.get("credHelpers") or {}
    for k in (domain, config_key(domain), "index.docker.io" if domain == DOCKER_HUB_DOMAIN else domain):
        if helpers.get(k):
            return str(helpers[k])
    store = cfg.get("credsStore")
    return str(store) if store else None


def _run_helper(helper: str, action: str, stdin: str) -> str:
    import subprocess  # here: a push or pull without a helper has no other use for it

    prog = f"docker-credential-{helper}"
    try:
        r = subprocess.run([prog, action], input=stdin.encode(), capture_output=True, timeout=60)
    except FileNotFoundError:
        raise AuthError(f"error getting credentials - err: exec: \"{prog}\": executable file not found "
                        "in $PATH")
    except subprocess.TimeoutExpired:
        raise AuthError(f"{prog} {action}: timed out")
    out = r.stdout.decode(errors="replace").strip()
    if r.returncode != 0:
        msg = out or r.stderr.decode(errors="replace").strip()
        if "credentials not found" in msg:
            raise LookupError(msg)
        raise AuthError(f"{prog} {action}: {msg or f'exit status {r.returncode}'}")
    return out


def get_credentials(domain: str) -> Credentials:
    """The stored credentials for a registry (empty ``Credentials`` when there are none)."""
    cfg = load_config()
    helper = _helper_for(cfg, domain)
    if helper:
        try:
            out = _run_helper(helper, "get", config_key(domain))
        except LookupError:
            return Credentials()
        try:
            d = json.loads(out)
        except ValueError:
            raise AuthError(f"docker-credential-{helper} get: invalid JSON answer")
        user, secret = d.get("Username", ""), d.get("Secret", "")
        if user == TOKEN_USERNAME:
            return Credentials(identity_token=secret)
        return Credentials(user, secret)
    found = _auths_entry(cfg, domain)
    return _decode_entry(found[1]) if found else Credentials()


def store_credentials(domain: str, creds: Credentials) -> Path | str:
    """Save credentials (helper or config.json); returns where they went."""
    cfg = load_config()
    key = config_key(domain)
    helper = _helper_for(cfg, domain)
    if helper:
        secret_user = TOKEN_USERNAME if creds.identity_token else creds.username
        secret = creds.identity_token or creds.password
        payload = {"ServerURL": key, "Username": secret_user, "Secret": secret}
        _run_helper(helper, "store", json.dumps(payload))
        auths = cfg.setdefault("auths", {})
        auths[key] = {}
        save_config(cfg)
        return f"docker-credential-{helper}"
    auths = cfg.setdefault("auths", {})
    old = _auths_entry(cfg, domain)
    if old and old[0] != key:
        auths.pop(old[0], None)
    entry: dict[str, Any] = {}
    if creds.identity_token:
        entry["identitytoken"] = creds.identity_token
    else:
        entry["auth"] = _b64encode(f"{creds.username}:{creds.password}".encode())
    auths[key] = entry
    save_config(cfg)
    return config_path()


def erase_credentials(domain: str) -> bool:
    """Forget a registry's credentials; True when something was removed."""
    cfg = load_config()
    removed = False
    helper = _helper_for(cfg, domain)
    if helper:
        try:
            _run_helper(helper, "erase", config_key(domain))
            removed = True
        except LookupError:
            pass
    auths = cfg.get("auths") or {}
    while (found := _auths_entry(cfg, domain)) is not None:
        auths.pop(found[0])
        removed = True
    if removed or helper:
        save_config(cfg)
    return removed


# ---- WWW-Authenticate --------------------------------------------------------------------------
class Challenge(Record):
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str]
    _fields = ("scheme", "params")

    def __init__(self, scheme: str, params: dict[str, str]) -> None:
        self.__dict__.update(scheme=scheme, params=params)


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM_RE = re.compile(rf"\s*({_TOKEN})\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|({_TOKEN}))\s*(,|$)")


def parse_www_authenticate(header: str) -> list[Challenge]:
    """``Bearer realm="https://auth",service="registry",scope="repository:a:pull"`` -> challenges."""
    out: list[Challenge] = []
    s = header.strip()
    while s:
        m = re.match(rf"\s*({_TOKEN})(?:\s+|$)", s)
        if not m:
            break
        scheme = m.group(1).lower()
        s = s[m.end():]
        params: dict[str, str] = {}
        while True:
            pm = _PARAM_RE.match(s)
            if not pm:
                break
            value = pm.group(2) if pm.group(2) is not None else pm.group(3)
            params[pm.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            s = s[pm.end():]
            if pm.group(4) != ",":
                break
        out.append(Challenge(scheme, params))
        s = s.lstrip(", ")
    return out


def basic_header(creds: Credentials) -> str:
    return "Basic " + _b64encode(f"{creds.username}:{creds.password}".encode())


class Authenticator:
    """Answers a registry's challenges for one registry, caching bearer tokens per scope."""

    def __init__(self, creds: Credentials, http: httpx.Client | Callable[[], httpx.Client], *,
                 wire: StdlibHTTP | None = None) -> None:
        """``http``: the client for token requests, or a function making it at the first one (a push to
        a registry that takes Basic credentials, or none, never imports httpx); ``wire``: the registry
        client's ``StdlibHTTP``, which then carries the token requests instead (httpx is not imported).
        """
        self.creds = creds
        self._http = http
        self._wire = wire
        self.challenge: Challenge | None = None
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def learn(self, header: str | None) -> bool:
        """Remember the challenge of a 401; False when it is one we cannot answer."""
        for c in parse_www_authenticate(header or ""):
            if c.scheme in ("bearer", "basic"):
                self.challenge = c
                return True
        return False

    def header(self, scopes: list[str], *, refresh: bool = False) -> str | None:
        """The ``Authorization`` value for a request needing ``scopes`` (None: send nothing)."""
        c = self.challenge
        if c is None:
            return None
        if c.scheme == "basic":
            if not self.creds.username and not self.creds.password:
                return None
            return basic_header(self.creds)
        if self.creds.registry_token:
            return "Bearer " + self.creds.registry_token
        return "Bearer " + self.token(scopes, refresh=refresh)

    def token(self, scopes: list[str], *, refresh: bool = False, offline: bool = False) -> str:
        c = self.challenge
        assert c is not None
        realm = c.params.get("realm")
        if not realm:
            raise AuthError("registry's bearer challenge has no realm")
        service = c.params.get("service", "")
        key = (realm, service, " ".join(sorted(scopes)))
        now = time.time()
        with self._lock:
            hit = self._tokens.get(key)
            if hit and not refresh and hit[1] > now:
                return hit[0]
        tok, expires_in = self._fetch_token(realm, service, scopes, offline)
        with self._lock:
            # Refresh a little early; a token with no lifetime is good for 60s (the spec's minimum).
            self._tokens[key] = (tok, now + max(10, expires_in - 10))
        return tok

    @property
    def http(self) -> httpx.Client:
        h = self._http
        return h() if callable(h) else h

    def _fetch_token(self, realm: str, service: str, scopes: list[str], offline: bool) -> tuple[str, int]:
        params: list[tuple[str, str]] = []
        if service:
            params.append(("service", service))
        params += [("scope", s) for s in scopes]
        form: dict[str, str] | None = None
        headers: dict[str, str] = {}
        if self.creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": self.creds.identity_token,
                    "client_id": "dockyard", "scope": " ".join(scopes)}
            if service:
                form["service"] = service
        elif self.creds.username or self.creds.password:
            headers["Authorization"] = basic_header(self.creds)
            if offline:
                params += [("offline_token", "true"), ("client_id", "dockyard")]
        r: Any
        if self._wire is not None:
            from urllib.parse import urlencode

            from dockyard.registry.client import WireError, transport_message

            try:
                if form is not None:
                    r = self._wire.request("POST", realm, {"Content-Type": "application/x-www-form-urlencoded"},
                                           urlencode(form).encode())
                else:
                    url = realm + ("&" if "?" in realm else "?") + urlencode(params) if params else realm
                    r = self._wire.request("GET", url, headers)
            except WireError as e:
                raise RegistryError(transport_message(e, realm))
        else:
            import httpx

            try:
                if form is not None:
                    r = self.http.post(realm, data=form)
                else:
                    r = self.http.get(realm, params=tuple(params), headers=headers)
            except httpx.TransportError as e:
                from dockyard.registry.client import transport_message

                raise RegistryError(transport_message(e, realm))
        if r.status_code in (401, 403):
            if self.creds:
                raise AuthError("unauthorized: incorrect username or password")
            raise AuthError("unauthorized: authentication required")
        if r.status_code != 200:
            raise RegistryError(f"token request to {realm} failed: HTTP {r.status_code}")
        try:
            d = r.json()
        except ValueError:
            raise RegistryError(f"token server {realm} answered invalid JSON")
        tok = d.get("token") or d.get("access_token")
        if not tok:
            raise RegistryError(f"token server {realm} answered no token")
        try:
            expires = int(d.get("expires_in") or 60)
        except (TypeError, ValueError):
            expires = 60
        return str(tok), max(60, expires)


def hub_config_key() -> str:
    return DOCKER_HUB_CONFIG_KEY
