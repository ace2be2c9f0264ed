"""Registry commands: pull, push, login, logout, search, registry serve."""

from __future__ import annotations

import sys

from dockyard.cli.common import Parser, engine
from dockyard.errors import AuthError, DockyardError, InvalidArgument, RegistryError


def pull(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry")
    p.add_argument("image")
    p.add_argument("-a", "--all-tags", action="store_true",
                   help="Download all tagged images in the repository")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable (os/arch[/variant])")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("--disable-content-trust", action="store_true", default=True,
                   help="Skip image verification (always: Dockyard has no content trust)")
    a = p.parse_args(argv)
    from dockyard.ops.pull import pull as do_pull

    with engine() as eng:
        do_pull(eng, a.image, platform=a.platform, all_tags=a.all_tags, quiet=a.quiet, out=sys.stdout)
    return 0


def push(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] NAME[:TAG]", "Upload an image to a registry")
    p.add_argument("image")
    p.add_argument("-a", "--all-tags", action="store_true",
                   help="Push all tags of an image to the repository")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("--disable-content-trust", action="store_true", default=True,
                   help="Skip image signing (always: Dockyard has no content trust)")
    a = p.parse_args(argv)
    from dockyard.ops.push import push as do_push

    with engine() as eng:
        do_push(eng, a.image, quiet=a.quiet, out=sys.stdout, all_tags=a.all_tags)
    return 0


def login(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] [SERVER]",
               "Log in to a registry.\nIf no server is specified, the default is Docker Hub.")
    p.add_argument("server", nargs="?")
    p.add_argument("-u", "--username", help="Username")
    p.add_argument("-p", "--password", help="Password")
    p.add_argument("--password-stdin", action="store_true", help="Take the password from stdin")
    a = p.parse_args(argv)
    from dockyard.registry import auth
    from dockyard.registry.config import normalize_server

    domain = normalize_server(a.server)
    if a.password and a.password_stdin:
        raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    password = a.password
    if a.password:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    if a.password_stdin:
        if not a.username:
            raise InvalidArgument("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    username = a.username
    if not username and password is None:
        stored = auth.get_credentials(domain)
        if stored:
            try:
                _verify(domain, stored)
                print("Authenticating with existing credentials...")
                print("Login Succeeded")
                return 0
            except AuthError:
                pass
    if not username or password is None:
        if not sys.stdin.isatty():
            raise InvalidArgument("Cannot perform an interactive login from a non TTY device")
        if not username:
            username = input("Username: ").strip()
            if not username:
                raise InvalidArgument("Username is required")
        if password is None:
            import getpass

            password = getpass.getpass("Password: ")
    if not password:
        raise InvalidArgument("Password is required")
    creds = auth.Credentials(username, password)
    _verify(domain, creds)
    where = auth.store_credentials(domain, creds)
    if not isinstance(where, str):
        sys.stderr.write(f"WARNING! Your password will be stored unencrypted in {where}.\n"
                         "Configure a credential helper to remove this warning. See\n"
                         "https://docs.docker.com/go/credential-store/\n\n")
    print("Login Succeeded")
    return 0


def _verify(domain: str, creds: object) -> None:
    """Check credentials against the registry: ``GET /v2/`` and its challenge (Basic or token)."""
    from dockyard.registry.auth import Credentials
    from dockyard.registry.client import RegistryClient

    assert isinstance(creds, Credentials)
    with RegistryClient(domain, credentials=creds, stdlib_http=True) as client:
        client.ping()
        ch = client.auth.challenge
        if ch is None:
            return  # an open registry accepts anyone, as Docker's login does
        if ch.scheme == "basic":
            r = client._send("GET", client.url("/v2/"), scopes=[])
            r.close()
            if r.status_code == 401:
                raise AuthError(f"login to {domain} failed: unauthorized: incorrect username or password")
            if r.status_code >= 400:
                raise RegistryError(f"login to {domain} failed: HTTP {r.status_code}")
            return
        try:
            client.auth.token([], offline=True)
        except AuthError as e:
            raise AuthError(f"login to {domain} failed: {e}")


def logout(name: str, argv: list[str]) -> int:
    p = Parser(name, "[SERVER]",
               "Log out from a registry.\nIf no server is specified, the default is Docker Hub.")
    p.add_argument("server", nargs="?")
    a = p.parse_args(argv)
    from dockyard.registry import auth
    from dockyard.registry.config import config_key, normalize_server

    domain = normalize_server(a.server)
    shown = config_key(domain)
    if not auth.erase_credentials(domain):
        print(f"Not logged in to {shown}")
        return 0
    print(f"Removing login credentials for {shown}")
    return 0


def search(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] TERM", "Search a registry for images")
    p.add_argument("term")
    p.add_argument("--limit", type=int, default=25, help="Max number of search results (default 25)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="Filter output based on conditions provided")
    p.add_argument("--format", help="Pretty-print search using a Go template")
    a = p.parse_args(argv)
    from dockyard.cli.format import table
    from dockyard.registry.client import RegistryClient
    from dockyard.registry.config import DOCKER_HUB_DOMAIN

    if a.limit < 1 or a.limit > 100:
        raise InvalidArgument(f"limit {a.limit} is outside the range of [1, 100]")
    term = a.term
    domain = DOCKER_HUB_DOMAIN
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        domain, term = first, rest
    filters: dict[str, str] = {}
    for f in a.filter:
        k, eq, v = f.partition("=")
        if not eq or k not in ("stars", "is-official", "is-automated"):
            raise InvalidArgument(f"invalid filter '{f}'")
        filters[k] = v
    # Docker Hub answers searches at its index, not at the registry API host
    base = "https://index.docker.io" if domain == DOCKER_HUB_DOMAIN else None
    with RegistryClient(domain, base_url=base, stdlib_http=True) as client:
        results = client.search_v1(term, a.limit)
        if results is None:
            try:
                repos = client.catalog()
            except RegistryError as e:
                raise RegistryError(f"{domain} offers no search: neither /v1/search nor /v2/_catalog "
                                    f"answered ({e})")
            results = [{"name": r, "description": "", "star_count": 0, "is_official": False,
                        "is_automated": False} for r in repos if term.lower() in r.lower()]
    rows = []
    for r in results:
        stars = int(r.get("star_count") or 0)
        if "stars" in filters and stars < int(filters["stars"] or 0):
            continue
        if "is-official" in filters and bool(r.get("is_official")) != (filters["is-official"] == "true"):
            continue
        if "is-automated" in filters and bool(r.get("is_automated")) != (filters["is-automated"] == "true"):
            continue
        desc = str(r.get("description") or "").replace("\n", " ")
        if not a.no_trunc and len(desc) > 45:
            desc = desc[:44] + "…"
        name_ = str(r.get("name") or r.get("repo_name") or "")
        if domain != DOCKER_HUB_DOMAIN:
            name_ = f"{domain}/{name_}"
        rows.append({"Name": name_, "Description": desc, "StarCount": str(stars),
                     "IsOfficial": "[OK]" if r.get("is_official") else "",
                     "IsAutomated": "[OK]" if r.get("is_automated") else ""})
        if len(rows) >= a.limit:
            break
    if a.format:
        from dockyard.cli.template import format_rows

        out = format_rows(a.format, rows, {"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS",
                                           "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED"})
    else:
        out = table(["NAME", "DESCRIPTION", "STARS", "OFFICIAL"],
                    [[r["Name"], r["Description"], r["StarCount"], r["IsOfficial"]] for r in rows])
    if out:
        print(out)
    return 0


def serve(name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS]", "Serve an OCI distribution registry (Docker registry API v2)")
    try:
        from dockyard.registry import serve_cli
    except ImportError:
        raise DockyardError("the registry server is not available in this build")
    serve_cli.add_arguments(p)
    return int(serve_cli.run(p.parse_args(argv)) or 0)
