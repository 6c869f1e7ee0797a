"""Sign-in end to end: `outcomes serve` with an OpenID Connect provider
configured, Chromium, and a small OpenID Connect provider run by the test.

The provider (``FakeProvider``: discovery document, authorisation endpoint,
token endpoint issuing RS256-signed ID tokens, JWKS) runs on 127.0.0.1 in a
thread, so the whole of Streamlit's real flow runs: ``st.login`` ->
/auth/login -> the provider -> /oauth2callback (Authlib fetches the token
and checks the ID token's signature, issuer, audience and nonce) -> the
identity cookie -> ``st.user``. No network beyond 127.0.0.1.

Checked: signed out, every URL shows only the sign-in page; signed in with
an address not on the allow-list, only "not authorised" and sign out;
signed out again, the sign-in page; signed in with an allowed address, the
dashboard, its pages and who is signed in.

Uses the browser fixture of test_browser.py (CI=true makes a missing
browser a failure).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dashboard.balancer import free_port
from tests.browser._serve import serving
from tests.browser.test_browser import REPO, browser, wait_until_run_finished  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CLIENT_ID = "outcomes-dashboard-test"
CLIENT_SECRET = "client-secret-for-the-test-provider"


class FakeProvider:
    """A minimal OpenID Connect provider: signs in whoever ``email`` names."""

    def __init__(self) -> None:
        from joserfc.jwk import RSAKey  # Authlib's own JOSE library

        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
        self.email = "nobody@example.org"
        self.codes: dict[str, dict] = {}
        self.tokens_issued = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _json(self, obj, status=200):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/.well-known/openid-configuration":
                    self._json({
                        "issuer": provider.issuer, "authorization_endpoint": f"{provider.issuer}/authorize",
                        "token_endpoint": f"{provider.issuer}/token", "jwks_uri": f"{provider.issuer}/jwks",
                        "response_types_supported": ["code"], "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "scopes_supported": ["openid", "email", "profile"],
                        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                    })
                elif url.path == "/jwks":
                    self._json({"keys": [provider.key.as_dict(private=False)]})
                elif url.path == "/authorize":
                    assert q.get("client_id") == CLIENT_ID and q.get("response_type") == "code"
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = {"nonce": q.get("nonce"), "email": provider.email}
                    target = q["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "state": q["state"]})
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.end_headers()
                else:
                    self._json({"error": "not_found"}, 404)

            def do_POST(self):
                from joserfc import jwt

                length = int(self.headers.get("Content-Length", 0))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                grant = provider.codes.pop(form.get("code", ""), None)
                if self.path != "/token" or grant is None:
                    return self._json({"error": "invalid_grant"}, 400)
                now = int(time.time())
                claims = {"iss": provider.issuer, "sub": grant["email"], "aud": CLIENT_ID, "iat": now,
                          "exp": now + 600, "nonce": grant["nonce"], "email": grant["email"],
                          "email_verified": True, "name": grant["email"].split("@")[0]}
                id_token = jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, provider.key)
                provider.tokens_issued += 1
                self._json({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                            "expires_in": 600, "id_token": id_token})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def provider():
    with FakeProvider() as p:
        yield p


@pytest.fixture(scope="module")
def signed_server(tmp_path_factory, request, provider):
    """`outcomes serve` run from a folder whose .streamlit/secrets.toml
    configures the provider, with trafford.gov.uk on the allow-list."""
    from pipelines.framework import publication as pub

    source = Path(request.getfixturevalue("demo_publication")).resolve()
    home = tmp_path_factory.mktemp("signin")
    (home / "var" / "releases").mkdir(parents=True)
    first = home / "var" / "releases" / f"{source.stem}.duckdb"
    shutil.copyfile(source, first)
    link = home / "var" / "outcomes.duckdb"
    pub.switch_to(link, first)
    port = free_port()
    (home / ".streamlit").mkdir()
    (home / ".streamlit" / "secrets.toml").write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        f'client_id = "{CLIENT_ID}"\n'
        f'client_secret = "{CLIENT_SECRET}"\n'
        f'server_metadata_url = "{provider.issuer}/.well-known/openid-configuration"\n')
    env = dict(os.environ, OUTCOMES_ALLOWED_USERS="trafford.gov.uk",
               HOME=str(home))  # HOME too: no developer's ~/.streamlit/secrets.toml
    env.pop("OUTCOMES_ALLOWED_USERS_FILE", None)
    log = home / "serve.log"
    with serving(link, port, log=log, cwd=home, env=env) as url:
        yield url, first.stem, log


_LOG: list[Path] = []


def _wait_for_text(page, text: str, timeout_ms: int = 60_000) -> None:
    try:
        page.wait_for_function("(t) => document.body && document.body.innerText.includes(t)", arg=text,
                               timeout=timeout_ms)
    except Exception:
        body = page.evaluate("() => document.body ? document.body.innerText : ''")
        log = _LOG[0].read_text(errors="replace")[-3000:] if _LOG else ""
        raise AssertionError(f"{text!r} never appeared at {page.url}; the page shows:\n{body[:1500]}\n"
                             f"server log:\n{log}") from None
    wait_until_run_finished(page)


def _only_the_gate(page, release_id: str) -> str:
    text = page.locator("[data-testid=stApp]").inner_text()
    assert release_id not in text
    for word in ("Place overview", "Trafford", "Greater Manchester", "Download", "release"):
        assert word not in text, f"{word!r} shown before access was granted"
    assert page.locator("[data-testid=stSidebarNav]").count() == 0
    assert page.locator("[data-testid=stSidebar] [data-testid=stMarkdown]").count() == 0
    for kind in ("stPlotlyChart", "stDataFrame", "stMetric", "stSelectbox", "stDownloadButton"):
        assert page.locator(f"[data-testid={kind}]").count() == 0, kind
    assert page.locator("[data-testid=stException]").count() == 0
    assert page.locator("[role=dialog]").count() == 0  # e.g. no "page not found" over the gate
    return text


def test_sign_in_with_a_real_flow(browser, signed_server, provider):  # noqa: F811
    url, release_id, log = signed_server
    _LOG[:] = [log]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()

    # signed out: every URL shows the sign-in page and nothing else
    for path in ("", "map", "governance", "trends?indicator=x"):
        page.goto(f"{url}/{path}")
        _wait_for_text(page, "Sign in to continue")
        _only_the_gate(page, release_id)
        assert page.get_by_role("button", name="Sign in").count() == 1

    # signed in, not on the allow-list: "not authorised" and sign out, nothing else
    provider.email = "eve@example.org"
    page.get_by_role("button", name="Sign in").click()
    _wait_for_text(page, "Not authorised")
    text = _only_the_gate(page, release_id)
    assert "eve@example.org" in text and "not on this dashboard" in text
    assert [b.strip() for b in page.get_by_role("button").all_inner_texts() if b.strip()][-1].endswith("Sign out")
    page.goto(f"{url}/compare")
    _wait_for_text(page, "Not authorised")
    _only_the_gate(page, release_id)

    # sign out: back to the sign-in page
    page.get_by_role("button", name="Sign out").click()
    _wait_for_text(page, "Sign in to continue")
    _only_the_gate(page, release_id)

    # signed in with an allowed address: the dashboard
    provider.email = "Ann.Smith@Trafford.gov.uk"
    page.get_by_role("button", name="Sign in").click()
    _wait_for_text(page, "Signed in as ann.smith@trafford.gov.uk")
    page.get_by_role("heading", name="Place overview", exact=True).wait_for(timeout=30_000)
    assert page.locator("[data-testid=stMetric]").count() >= 4
    assert release_id in page.locator("[data-testid=stApp]").inner_text()
    page.goto(f"{url}/governance")
    _wait_for_text(page, "Sign-in is required (OpenID Connect)")
    assert page.locator("[data-testid=stException]").count() == 0
    assert provider.tokens_issued == 2
    context.close()
