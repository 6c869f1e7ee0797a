"""Optional sign-in: who may see the dashboard.

Off unless the deployment configures an OpenID Connect provider for
Streamlit's ``st.login`` in ``.streamlit/secrets.toml`` (an ``[auth]``
section). Then nobody who is not signed in sees anything but the sign-in
page, and an allow-list decides who, once signed in, may enter:

* ``OUTCOMES_ALLOWED_USERS``: entries separated by commas, semicolons or
  white space;
* ``OUTCOMES_ALLOWED_USERS_FILE``: a file of entries, one or more a line,
  ``#`` starting a comment.

An entry is an email address (``ann@trafford.gov.uk``, matched exactly,
ignoring case) or a domain (``nhs.net`` or ``@nhs.net``: any address at
exactly that domain, not its subdomains). Both sources are merged, and read
again on every page run, so a change applies at each user's next
interaction. With sign-in configured and no one on the list, no one enters
(it fails closed); so does an ``[auth]`` section that is incomplete.

The decision is a pure function (:func:`decide`) of the ``[auth]`` section,
the identity Streamlit holds for the session (``st.user``) and the
allow-list, so it is tested without a provider; :func:`gate` draws the page
that goes with it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ENV_ALLOWED = "OUTCOMES_ALLOWED_USERS"
ENV_ALLOWED_FILE = "OUTCOMES_ALLOWED_USERS_FILE"

OPEN, SIGN_IN, DENIED, ALLOWED, MISCONFIGURED = "open", "sign in", "denied", "allowed", "misconfigured"

_PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")
_EMAIL = re.compile(r"[^@\s]+@([^@\s]+\.[^@\s]+)")
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")

log = logging.getLogger("outcomes.access")
_logged: set[str] = set()


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class AuthConfig:
    """What the ``[auth]`` section of secrets.toml configures (names, never values)."""

    configured: bool
    providers: tuple[str | None, ...] = ()  # None: the provider set in [auth] itself
    problems: tuple[str, ...] = ()


def auth_config(auth: Mapping | None) -> AuthConfig:
    """Read the ``[auth]`` section: sign-in is configured when it is present
    and not empty. Its problems name missing keys, never values."""
    if not auth:
        return AuthConfig(configured=False)
    problems = [f"[auth] has no {k}" for k in ("redirect_uri", "cookie_secret") if not auth.get(k)]
    providers: list[str | None] = []
    if any(auth.get(k) for k in _PROVIDER_KEYS):
        missing = [k for k in _PROVIDER_KEYS if not auth.get(k)]
        problems += [f"[auth] has no {k}" for k in missing]
        providers.append(None)
    for name, section in auth.items():
        if isinstance(section, Mapping) and name != "client_kwargs":
            missing = [k for k in _PROVIDER_KEYS if not section.get(k)]
            problems += [f"[auth.{name}] has no {k}" for k in missing]
            providers.append(str(name))
    if not providers:
        problems.append("[auth] names no provider (client_id, client_secret and server_metadata_url, "
                        "in [auth] or in an [auth.<name>] section)")
    return AuthConfig(configured=True, providers=tuple(providers), problems=tuple(problems))


@dataclass(frozen=True)
class AllowList:
    emails: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    problems: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return bool(self.emails or self.domains)

    def allows(self, email: str | None) -> bool:
        e = normalise_email(email)
        if e is None:
            return False
        return e in self.emails or e.rsplit("@", 1)[1] in self.domains


def normalise_email(email) -> str | None:
    """The address in lower case, or None if it is not one address."""
    if not isinstance(email, str):
        return None
    e = email.strip().lower()
    return e if _EMAIL.fullmatch(e) else None


def parse_allow_list(text: str) -> AllowList:
    """Entries (emails or domains) separated by commas, semicolons or white
    space; ``#`` to the end of a line is a comment. Entries that are neither
    are reported in ``problems`` (by position, not quoted) and ignored."""
    emails, domains, problems = set(), set(), []
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    entries = [t for line in lines for t in re.split(r"[,;\s]+", line) if t]
    for i, raw in enumerate(entries, 1):
        t = raw.strip().lower()
        if t.startswith("@"):
            t = t[1:]
        if "@" in t:
            if _EMAIL.fullmatch(t):
                emails.add(t)
            else:
                problems.append(f"entry {i} is not an email address or a domain")
        elif _DOMAIN.fullmatch(t):
            domains.add(t)
        else:
            problems.append(f"entry {i} is not an email address or a domain")
    return AllowList(frozenset(emails), frozenset(domains), tuple(problems))


def load_allow_list(environ: Mapping[str, str] | None = None) -> AllowList:
    """The allow-list from ``OUTCOMES_ALLOWED_USERS`` and the file named by
    ``OUTCOMES_ALLOWED_USERS_FILE``, merged. An unreadable file adds a problem
    (and no one from it)."""
    env = os.environ if environ is None else environ
    text = env.get(ENV_ALLOWED, "")
    problems: list[str] = []
    path = env.get(ENV_ALLOWED_FILE, "").strip()
    if path:
        try:
            text += "\n" + Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{ENV_ALLOWED_FILE} could not be read ({type(exc).__name__})")
    allow = parse_allow_list(text)
    return AllowList(allow.emails, allow.domains, tuple(problems) + allow.problems)


# ---------------------------------------------------------------------------
# The decision
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    state: str
    reason: str = ""
    email: str | None = None

    @property
    def allowed(self) -> bool:
        return self.state in (OPEN, ALLOWED)


def decide(config: AuthConfig, user: Mapping, allow: AllowList) -> Decision:
    """Who may enter. ``user`` is ``st.user`` as a dict."""
    if not config.configured:
        return Decision(OPEN)
    if config.problems:
        return Decision(MISCONFIGURED, "; ".join(config.problems))
    if user.get("is_logged_in") is not True:
        return Decision(SIGN_IN)
    raw = user.get("email")
    email = normalise_email(raw)
    if email is None:
        return Decision(DENIED, "the sign-in gave no email address, so access cannot be checked")
    if user.get("email_verified") in (False, "false", "False"):
        return Decision(DENIED, "the identity provider has not verified this email address", email)
    if not allow:
        return Decision(DENIED, "no one is on this dashboard's allow-list yet", email)
    if allow.allows(email):
        return Decision(ALLOWED, email=email)
    return Decision(DENIED, "this address is not on this dashboard's allow-list", email)


# ---------------------------------------------------------------------------
# Streamlit
# ---------------------------------------------------------------------------

def _auth_section():
    import streamlit as st

    try:
        if not st.secrets.load_if_toml_exists():
            return None
        return st.secrets.get("auth")
    except Exception:  # an unreadable secrets file: treated as no [auth] section by Streamlit too
        return None


def current() -> tuple[AuthConfig, Decision]:
    """The configuration and the decision for this session, now."""
    import streamlit as st

    config = auth_config(_auth_section())
    if not config.configured:
        return config, Decision(OPEN)
    try:
        allow = load_allow_list()
        for p in config.problems + allow.problems:
            if p not in _logged:  # once per server, not on every run
                _logged.add(p)
                log.warning("sign-in: %s", p)
        return config, decide(config, st.user.to_dict(), allow)
    except Exception as exc:  # fail closed: no one enters while access cannot be decided
        log.exception("sign-in: could not decide access")
        return config, Decision(MISCONFIGURED, type(exc).__name__)


def _login(provider: str | None) -> None:
    import streamlit as st

    # as callbacks, so a click is acted on even if the run that follows is restarted
    if provider is None:
        st.login()
    else:
        st.login(provider)


def _logout() -> None:
    import streamlit as st

    st.logout()


def gate() -> Decision:
    """Draw the sign-in, not-authorised or misconfigured page and stop the
    run unless this session may see the dashboard."""
    import streamlit as st

    config, d = current()
    if d.allowed:
        return d
    from .frame import md

    st.title("Place-based outcomes")
    if d.state == SIGN_IN:
        st.markdown("This dashboard is for named partners only. Sign in to continue.")
        for p in config.providers:
            label = "Sign in" if p is None else f"Sign in with {md(p)}"
            st.button(label, key=f"sign_in_{p or 'default'}", type="primary", icon=":material/login:",
                      on_click=_login, args=(p,))
    elif d.state == DENIED:
        st.error(f"**Not authorised.** You are signed in as {md(d.email or 'an unknown user')}, but "
                 f"{md(d.reason)}. Ask the dashboard's administrator for access, or sign out and sign in "
                 "with another account.", icon=":material/block:")
        st.button("Sign out", key="sign_out_denied", icon=":material/logout:", on_click=_logout)
    else:
        st.error("Sign-in is configured for this dashboard but the configuration is incomplete or could not be "
                 "checked, so no one can enter. The administrator can see why in the server's log.",
                 icon=":material/error:")
    st.stop()
    return d  # not reached


def describe() -> str:
    """One sentence for the governance page: whether sign-in is required."""
    config, _ = current()
    if not config.configured:
        return ("Sign-in is not configured: anyone who can reach this server can see the dashboard. A deployment "
                "can require sign-in through an OpenID Connect provider and an allow-list (see the README).")
    allow = load_allow_list()
    return (f"Sign-in is required (OpenID Connect), and access is limited to an allow-list of "
            f"{len(allow.emails)} email address{'es' if len(allow.emails) != 1 else ''} and "
            f"{len(allow.domains)} domain{'s' if len(allow.domains) != 1 else ''}.")


def sidebar(d: Decision) -> None:
    """Who is signed in, with a sign-out button (only when sign-in is on)."""
    import streamlit as st

    if d.state != ALLOWED:
        return
    from .frame import md

    st.caption(f"Signed in as {md(d.email)}")
    st.button("Sign out", key="sign_out", icon=":material/logout:", on_click=_logout)
