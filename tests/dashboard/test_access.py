"""Optional sign-in (dashboard/access.py).

The decision is a pure function, tested case by case. The pages are tested
with AppTest in both cases: unconfigured (the dashboard as before), and with
an ``[auth]`` section (``at.secrets``) and a faked identity (``at.user``, as
Streamlit holds it after an OpenID Connect sign-in): signed out, signed in
and allowed, signed in and not allowed, and an incomplete configuration.
``st.login`` itself needs a live provider, so the test checks that the
sign-in button calls it with the configured provider.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit
from streamlit.testing.v1 import AppTest

from dashboard import access
from dashboard.access import ALLOWED, DENIED, MISCONFIGURED, OPEN, SIGN_IN, AuthConfig

from .helpers import release_id_of, text_of

DASH = Path(__file__).resolve().parents[2] / "dashboard"
APP = DASH / "app.py"

AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "a-long-random-cookie-secret-for-tests",
    "client_id": "outcomes-dashboard",
    "client_secret": "not-a-real-secret",
    "server_metadata_url": "https://login.example.org/.well-known/openid-configuration",
}
NAMED = {
    "redirect_uri": AUTH["redirect_uri"], "cookie_secret": AUTH["cookie_secret"],
    "microsoft": {k: AUTH[k] for k in ("client_id", "client_secret", "server_metadata_url")},
    "nhsmail": {k: AUTH[k] for k in ("client_id", "client_secret", "server_metadata_url")},
}


# ---------------------------------------------------------------------------
# Configuration and allow-list
# ---------------------------------------------------------------------------

def test_no_auth_section_means_sign_in_is_off():
    assert access.auth_config(None) == AuthConfig(configured=False)
    assert access.auth_config({}) == AuthConfig(configured=False)


def test_auth_sections_are_read_by_name_and_problems_name_keys_not_values():
    assert access.auth_config(AUTH) == AuthConfig(True, (None,), ())
    assert access.auth_config(NAMED) == AuthConfig(True, ("microsoft", "nhsmail"), ())
    broken = dict(AUTH)
    del broken["cookie_secret"]
    del broken["client_secret"]
    c = access.auth_config(broken)
    assert c.configured and c.problems == ("[auth] has no cookie_secret", "[auth] has no client_secret")
    assert not any(AUTH["client_id"] in p or AUTH["redirect_uri"] in p for p in c.problems)
    c = access.auth_config({"redirect_uri": AUTH["redirect_uri"], "cookie_secret": "x"})
    assert c.configured and c.providers == () and "names no provider" in c.problems[0]
    c = access.auth_config({**NAMED, "nhsmail": {"client_id": "x"}})
    assert c.problems == ("[auth.nhsmail] has no client_secret", "[auth.nhsmail] has no server_metadata_url")


def test_allow_list_entries():
    allow = access.parse_allow_list(
        "Ann.Smith@Trafford.gov.uk, @nhs.net; gmp.police.uk  # the police\n"
        "# a comment line\n  bob@example.org\tnot an entry!  x@y@z.org")
    assert allow.emails == {"ann.smith@trafford.gov.uk", "bob@example.org"}
    assert allow.domains == {"nhs.net", "gmp.police.uk"}
    # "not", "an" are not domains; "entry!" neither; x@y@z.org is not one address
    assert allow.problems == ("entry 5 is not an email address or a domain",
                              "entry 6 is not an email address or a domain",
                              "entry 7 is not an email address or a domain",
                              "entry 8 is not an email address or a domain")
    assert not any("@y@" in p for p in allow.problems)


@pytest.mark.parametrize("email, allowed", [
    ("ann.smith@trafford.gov.uk", True),
    ("  ANN.SMITH@TRAFFORD.GOV.UK ", True),
    ("someone@nhs.net", True),
    ("Someone@NHS.net", True),
    ("someone@x.nhs.net", False),              # subdomains are not the domain
    ("someone@evilnhs.net", False),            # nor lookalikes
    ("someone@nhs.net.evil.example", False),
    ("someone@nhs.net@evil.example", False),   # not one address
    ("other@trafford.gov.uk", False),          # the address, not its domain, is listed
    ("nhs.net", False),
    ("", False),
    (None, False),
    (42, False),
])
def test_allow_list_matches_exact_addresses_and_exact_domains(email, allowed):
    allow = access.parse_allow_list("ann.smith@trafford.gov.uk nhs.net")
    assert allow.allows(email) is allowed


def test_allow_list_from_environment_and_file(tmp_path):
    f = tmp_path / "allowed.txt"
    f.write_text("# partners\ncarol@example.org\nexample.net\n")
    allow = access.load_allow_list({access.ENV_ALLOWED: "ann@example.com",
                                     access.ENV_ALLOWED_FILE: str(f)})
    assert allow.emails == {"ann@example.com", "carol@example.org"} and allow.domains == {"example.net"}
    missing = access.load_allow_list({access.ENV_ALLOWED_FILE: str(tmp_path / "nope.txt")})
    assert not missing and missing.problems == (
        "OUTCOMES_ALLOWED_USERS_FILE could not be read (FileNotFoundError)",)
    assert not access.load_allow_list({})


# ---------------------------------------------------------------------------
# The decision
# ---------------------------------------------------------------------------

ON = access.auth_config(AUTH)
OFF = access.auth_config(None)
ALLOW = access.parse_allow_list("trafford.gov.uk, bob@example.org")
ANN = {"is_logged_in": True, "email": "ann@trafford.gov.uk", "email_verified": True, "name": "Ann"}


@pytest.mark.parametrize("config, user, allow, state", [
    (OFF, {}, access.AllowList(), OPEN),
    (OFF, {"is_logged_in": False}, ALLOW, OPEN),
    (ON, {}, ALLOW, SIGN_IN),
    (ON, {"is_logged_in": False}, ALLOW, SIGN_IN),
    (ON, {"is_logged_in": "true", "email": "ann@trafford.gov.uk"}, ALLOW, SIGN_IN),  # only a real True
    (ON, ANN, ALLOW, ALLOWED),
    (ON, {**ANN, "email_verified": None}, ALLOW, ALLOWED),      # providers that send no such claim
    (ON, {"is_logged_in": True, "email": "BOB@example.org"}, ALLOW, ALLOWED),
    (ON, {**ANN, "email_verified": False}, ALLOW, DENIED),
    (ON, {**ANN, "email": "eve@example.org"}, ALLOW, DENIED),
    (ON, {"is_logged_in": True, "name": "No Email"}, ALLOW, DENIED),
    (ON, ANN, access.AllowList(), DENIED),                       # empty list: fails closed
    (access.auth_config({**AUTH, "cookie_secret": ""}), ANN, ALLOW, MISCONFIGURED),
])
def test_decision(config, user, allow, state):
    d = access.decide(config, user, allow)
    assert d.state == state
    assert d.allowed is (state in (OPEN, ALLOWED))


# ---------------------------------------------------------------------------
# The pages
# ---------------------------------------------------------------------------

@pytest.fixture()
def app(monkeypatch, publication):
    from dashboard import queries

    def make(*, auth: dict | None, user: dict | None = None, allowed: str | None = None,
             script: Path = APP) -> AppTest:
        monkeypatch.setenv("OUTCOMES_DB", str(publication))
        if allowed is None:
            monkeypatch.delenv(access.ENV_ALLOWED, raising=False)
        else:
            monkeypatch.setenv(access.ENV_ALLOWED, allowed)
        monkeypatch.delenv(access.ENV_ALLOWED_FILE, raising=False)
        queries.clear_caches()
        at = AppTest.from_file(str(script), default_timeout=120)
        # a section that is not [auth], so the test never reads a developer's own secrets.toml
        at.secrets["outcomes_test"] = {"case": "access"}
        if auth is not None:
            at.secrets["auth"] = auth
        if user is not None:
            at.user = user
        return at.run()

    yield make
    queries.clear_caches()


def _shows_no_data(at: AppTest, release_id: str) -> None:
    for kind in ("dataframe", "plotly_chart", "download_button", "selectbox", "multiselect", "radio",
                 "metric", "tabs", "expander", "subheader"):
        assert len(at.get(kind)) == 0, f"{kind} shown before access was granted"
    assert not at.sidebar.caption and not at.sidebar.markdown and not at.sidebar.button
    shown = text_of(at).replace("\\", "")  # markdown escapes removed
    assert release_id not in shown
    assert "Trafford" not in shown
    assert not at.exception


def test_unconfigured_dashboard_works_as_before(app, publication):
    at = app(auth=None)
    assert not at.exception
    assert at.title[0].value == "Place overview"
    assert not [b for b in at.button if "Sign" in b.label]
    assert at.get("dataframe") and at.get("download_button")
    at.switch_page("pages/governance.py").run()
    assert not at.exception
    assert "Sign-in is not configured: anyone who can reach this server can see the dashboard" in text_of(at)


def test_signed_out_sees_only_the_sign_in_page(app, publication, monkeypatch):
    at = app(auth=AUTH, user={})
    assert [t.value for t in at.title] == ["Place-based outcomes"]
    assert [b.label for b in at.button] == ["Sign in"]
    _shows_no_data(at, release_id_of(Path(publication).resolve()))
    # the button starts the OpenID Connect flow (st.login needs a live provider: record the call)
    calls = []
    monkeypatch.setattr(streamlit, "login", lambda provider=None: calls.append(provider))
    at.button[0].click().run()
    assert calls == [None]


def test_sign_in_offers_each_named_provider(app, monkeypatch):
    at = app(auth=NAMED, user={"is_logged_in": False})
    assert [b.label for b in at.button] == ["Sign in with microsoft", "Sign in with nhsmail"]
    calls = []
    monkeypatch.setattr(streamlit, "login", lambda provider=None: calls.append(provider))
    at.button[1].click().run()
    assert calls == ["nhsmail"]


@pytest.mark.parametrize("page", ["map", "governance", "compare"])
def test_a_page_run_on_its_own_is_gated_too(app, publication, page):
    """Streamlit can run a page file without app.py (its old pages/ mode):
    frame.release() checks sign-in as well."""
    at = app(auth=AUTH, user={"is_logged_in": False}, script=DASH / "pages" / f"{page}.py")
    assert [b.label for b in at.button] == ["Sign in"]
    _shows_no_data(at, release_id_of(Path(publication).resolve()))


def test_signed_in_and_allowed_sees_the_dashboard_and_can_sign_out(app):
    at = app(auth=AUTH, user=dict(ANN, email="Ann@Trafford.gov.uk"), allowed="trafford.gov.uk")
    assert not at.exception
    assert at.title[0].value == "Place overview"
    assert at.get("dataframe")
    assert "Signed in as ann@trafford\\.gov\\.uk" in [c.value for c in at.sidebar.caption]
    at.switch_page("pages/governance.py").run()
    assert ("Sign-in is required (OpenID Connect), and access is limited to an allow-list of 0 email addresses "
            "and 1 domain.") in text_of(at)
    # sign out: Streamlit forgets the identity; the next run shows the sign-in page
    [out] = [b for b in at.sidebar.button if b.label == "Sign out"]
    out.click().run()
    assert at.user.get("is_logged_in") is False
    at.run()
    assert [b.label for b in at.button] == ["Sign in"]


@pytest.mark.parametrize("user, allowed, reason", [
    ({**ANN, "email": "eve@example.org"}, "trafford.gov.uk", "is not on this dashboard"),
    (ANN, None, "no one is on this dashboard"),
    ({**ANN, "email_verified": False}, "trafford.gov.uk", "has not verified this email address"),
])
def test_signed_in_but_not_allowed_sees_only_not_authorised(app, publication, user, allowed, reason):
    at = app(auth=AUTH, user=user, allowed=allowed)
    [err] = at.error
    assert "Not authorised" in err.value and reason in err.value
    assert [b.label for b in at.button] == ["Sign out"]
    _shows_no_data(at, release_id_of(Path(publication).resolve()))
    at.button[0].click().run()
    at.run()
    assert [b.label for b in at.button] == ["Sign in"]


def test_incomplete_auth_section_lets_no_one_in(app, publication):
    broken = {k: v for k, v in AUTH.items() if k != "cookie_secret"}
    at = app(auth=broken, user=ANN, allowed="trafford.gov.uk")
    [err] = at.error
    assert "configuration is incomplete or could not be checked" in err.value
    assert AUTH["client_id"] not in err.value and "cookie_secret" not in err.value
    assert len(at.button) == 0
    _shows_no_data(at, release_id_of(Path(publication).resolve()))
