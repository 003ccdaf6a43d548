"""The one place that validates LTI 1.3 logins and launches: OIDC login initiation and id_token checks.

Our own small classes do the work, by composition: PyJWT parses and verifies the id_token, and
pylti1p3's public message validators (`get_validators()`) check each message type's claims. No
pylti1p3 object is subclassed or reached into. The checks, in order:

* state and nonce live in the shared expiring store, bound together; the state is consumed
  exactly once (atomic pop) and a nonce is remembered as used, so a replayed id_token fails;
* the state must also be bound to this browser: our partitioned cookie, or LTI Platform Storage;
* `aud` must contain our client id, and any other audience needs `azp` equal to our client id;
* `iat`/`exp`/`nbf` checked with a small leeway, and tokens older than a bound are refused;
* `alg` must be one the registration declares (RS256 by default), never `none` or HS*;
* platform key sets are cached and refetched once, rate-limited, when a kid is unknown;
* unknown issuer / client id / deployment are typed errors (4xx), never a bare Exception;
* a new deployment id of a known, active registration is onboarded on first launch;
* the message itself: type, version, roles, object claims, id lengths, an http(s) deep linking
  return URL, then pylti1p3's validators for the message type.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import jwt
from flask import current_app
from pylti1p3.exception import LtiException
from pylti1p3.message_validators import get_validators

from extensions import db
from lti.constants import LTI_VERSION, Claim, MessageType
from lti.exceptions import LaunchError, LoginError, StateError, TokenError, UnknownPlatform
from lti.launch import Launch
from lti.models import Deployment, Registration
from lti.ratelimit import count_pending_state
from lti.store import get_store
from lti.tool_config import find_deployment, find_registration

STATE_PREFIX = "lti_state:"
NONCE_PREFIX = "lti_nonce_used:"
STATE_COOKIE_PREFIX = "lti_state_"
ALLOWED_ALGS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
OBJECT_CLAIMS = {
    Claim.RESOURCE_LINK: "resource link", Claim.DL_SETTINGS: "deep linking settings", Claim.CONTEXT: "context",
    Claim.TOOL_PLATFORM: "tool platform", Claim.LAUNCH_PRESENTATION: "launch presentation",
    Claim.AGS_ENDPOINT: "assignment and grade services", Claim.NRPS: "names and roles service",
    Claim.CUSTOM: "custom",
}
MAX_ID_LENGTH = 255  # OIDC caps sub at 255; our id columns match
LOGIN_PARAMS = ("iss", "login_hint", "target_link_uri", "lti_message_hint", "client_id", "lti_deployment_id")


@dataclass(frozen=True)
class LoginResult:
    """What the login view needs to answer: where to send the browser and what to remember."""

    redirect_url: str
    state: str
    nonce: str
    storage_target: str | None
    storage_origin: str
    storage_secret: str | None = None  # what the login page puts in platform storage; never in the id_token


@dataclass(frozen=True)
class PendingStorageCheck:
    """The launch is valid so far, but its state must be read back from LTI Platform Storage."""

    state: str
    nonce: str
    storage_target: str
    storage_origin: str


def _origin(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def _b64url_json(segment: str):
    """Decode one base64url JWT segment as JSON (padding optional, as the platforms send it)."""
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.b64decode(padded.translate(str.maketrans("-_", "+/"))).decode("utf-8"))


def state_cookie_name(state: str) -> str:
    """Name the cookie that binds one login's state to the browser."""
    return STATE_COOKIE_PREFIX + hashlib.sha256(state.encode()).hexdigest()[:16]


def find_registration_any(issuer: str) -> bool:
    """Tell whether any active registration has this issuer."""
    return db.session.scalar(
        db.select(Registration.id).where(Registration.issuer == issuer, Registration.active.is_(True)).limit(1)
    ) is not None


class OIDCLogin:
    """An OIDC third-party login initiation: registration lookup, then state and nonce in the shared store."""

    def __init__(self, params: dict, launch_url: str, tool_origins: set[str]):
        self.params = params
        self.launch_url = launch_url
        self.tool_origins = tool_origins

    def find_registration(self) -> Registration:
        """Check the login parameters and return the registration they name."""
        iss = (self.params.get("iss") or "").strip()
        if not iss:
            raise LoginError('The login request has no "iss" (issuer).')
        if not (self.params.get("login_hint") or "").strip():
            raise LoginError('The login request has no "login_hint".')
        target = (self.params.get("target_link_uri") or "").strip()
        if target and _origin(target) not in self.tool_origins:
            raise LoginError("The target_link_uri points to another host than this tool.")
        client_id = (self.params.get("client_id") or "").strip() or None
        row = find_registration(iss, client_id)
        if row is None:
            if client_id is None and find_registration_any(iss):
                raise UnknownPlatform(
                    "Several registrations share this issuer; the platform must send client_id."
                )
            raise UnknownPlatform("This platform (issuer and client id) is not registered with the tool.")
        return row

    def start(self) -> LoginResult:
        """Validate the login request, store state+nonce, and build the platform's auth URL."""
        row = self.find_registration()
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        storage_target = (self.params.get("lti_storage_target") or "").strip() or None
        storage_origin = _origin(row.auth_login_url)
        # Platform storage proves the browser only with a value nobody else saw: not the state or the
        # nonce, which travel in the auth request, the form post and the id_token.
        storage_secret = secrets.token_urlsafe(32) if storage_target else None
        record = {
            "nonce": nonce,
            "storage_secret": storage_secret,
            "registration_id": row.id,
            "storage_target": storage_target,
            "storage_origin": storage_origin,
            "login": {k: self.params[k] for k in LOGIN_PARAMS if self.params.get(k)},
        }
        count_pending_state()  # each login leaves a row until its launch or TTL: bound them per address
        get_store().put(STATE_PREFIX + state, json.dumps(record), current_app.config["LTI_STATE_TTL"])
        auth_params = {
            "scope": "openid",
            "response_type": "id_token",
            "response_mode": "form_post",
            "prompt": "none",
            "client_id": row.client_id,
            "redirect_uri": self.launch_url,
            "state": state,
            "nonce": nonce,
            "login_hint": self.params["login_hint"],
        }
        if self.params.get("lti_message_hint"):
            auth_params["lti_message_hint"] = self.params["lti_message_hint"]
        sep = "&" if "?" in row.auth_login_url else "?"
        return LoginResult(row.auth_login_url + sep + urlencode(auth_params), state, nonce, storage_target, storage_origin,
                           storage_secret)


class LaunchValidator:
    """The id_token checks listed in this module's docstring, as a chain of small named steps."""

    def __init__(self, form: dict, cookies: dict):
        self.form = form
        self.cookies = cookies
        self.header: dict = {}
        self.claims: dict = {}  # unverified until check_signature_and_claims replaces them with PyJWT's
        self.state_record: dict | None = None
        self.registration_row: Registration | None = None
        self.deployment_row: Deployment | None = None
        self.client_id: str | None = None

    # -- the chain -------------------------------------------------------------------------
    def run(self) -> Launch | PendingStorageCheck:
        """Validate everything; answer a Launch, or ask the page to confirm platform storage."""
        self.parse_token()
        self.check_header()
        pending = self.check_state()
        self.check_registration()
        self.check_signature_and_claims()
        self.check_nonce()
        if pending is not None:
            return pending
        self.consume_state()
        self.check_deployment()
        self.check_message()
        db.session.commit()
        return Launch(
            registration_id=self.registration_row.id,
            deployment_pk=self.deployment_row.id,
            issuer=self.registration_row.issuer,
            client_id=self.registration_row.client_id,
            deployment_id=self.deployment_row.deployment_id,
            claims=dict(self.claims),
        )

    def id_token(self) -> str:
        """Return the posted id_token, refusing a launch without one."""
        token = self.form.get("id_token")
        if not token:
            raise LaunchError('The launch has no "id_token".')
        return token

    def parse_token(self) -> None:
        """Split the id_token and decode its header and body, unverified, for the checks that pick the key."""
        parts = self.id_token().split(".")
        if len(parts) != 3:
            raise LaunchError("The id_token is not a JWT: Invalid id_token, JWT must contain 3 parts")
        try:
            self.header = _b64url_json(parts[0])
            self.claims = _b64url_json(parts[1])
        except Exception as exc:  # any undecodable segment (base64, UTF-8 or JSON) is the same refusal
            raise LaunchError("The id_token is not a JWT: Invalid JWT format, can't be decoded") from exc

    def check_header(self) -> None:
        """Require JSON objects, an accepted asymmetric algorithm and a kid."""
        if not isinstance(self.header, dict) or not isinstance(self.claims, dict):
            raise LaunchError("The id_token header or body is not a JSON object.")
        alg = self.header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
            raise TokenError(f'The id_token algorithm "{alg}" is not accepted; use RS256.')
        if not self.header.get("kid"):
            raise TokenError('The id_token header has no "kid".')

    def check_state(self) -> PendingStorageCheck | None:
        """Find the login's state and require it bound to this browser (cookie or platform storage)."""
        state = self.form.get("state")
        if not state:
            raise StateError('The launch has no "state".')
        raw = get_store().get(STATE_PREFIX + state)
        if raw is None:
            raise StateError("The launch state is unknown, expired or already used. Launch the tool again from the course.")
        self.state_record = json.loads(raw)
        if self.cookies.get(state_cookie_name(state)) == state:
            return None
        target = self.state_record.get("storage_target")
        if target:
            stored_state = self.form.get("lti_storage_state")
            if stored_state is None:
                nonce = self.state_record["nonce"]
                return PendingStorageCheck(state, nonce, target, self.state_record["storage_origin"])
            secret = self.state_record.get("storage_secret")
            if isinstance(secret, str) and isinstance(stored_state, str) and \
                    secrets.compare_digest(stored_state, secret) and \
                    self.form.get("lti_storage_nonce") == self.state_record["nonce"]:
                return None
            raise StateError("The state kept in the platform's storage does not match this launch.")
        raise StateError(
            "This browser did not keep the launch state (third-party cookies may be blocked).",
            code="state_not_bound",
        )

    def get_client_id(self) -> str:
        """Return our client id from `aud`, using `azp` when there are several audiences."""
        if self.client_id is None:
            aud = self.claims.get("aud")
            auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            auds = [a for a in auds if isinstance(a, str) and a]
            if not auds:
                raise TokenError('The id_token has no "aud".')
            azp = self.claims.get("azp")
            if azp is not None:
                if azp not in auds:
                    raise TokenError('The id_token "azp" is not one of its audiences.')
                self.client_id = azp
            elif len(auds) == 1:
                self.client_id = auds[0]
            else:
                raise TokenError('The id_token has several audiences and no "azp".')
        return self.client_id

    def check_registration(self) -> None:
        """Require an active registration for (iss, client id), the one the login started with."""
        iss = self.claims.get("iss")
        if not isinstance(iss, str) or not iss:
            raise TokenError('The id_token has no "iss".')
        row = find_registration(iss, self.get_client_id())
        if row is None:
            raise UnknownPlatform("This platform (issuer and client id) is not registered with the tool.")
        if row.id != self.state_record.get("registration_id"):
            raise StateError("The launch comes from another platform than the login it answers.")
        self.registration_row = row

    def check_signature_and_claims(self) -> None:
        """Verify the signature with the platform's key and the time, issuer and audience claims."""
        row = self.registration_row
        alg, kid = self.header["alg"], self.header["kid"]
        if alg not in (row.id_token_algs or ["RS256"]):
            raise TokenError(f'This platform is registered to sign with {", ".join(row.id_token_algs)}, not {alg}.')
        key = current_app.extensions["lti_platform_keys"].key_for(row.key_set_url, kid, alg)
        cfg = current_app.config
        try:
            claims = jwt.decode(
                self.id_token(),
                key=key,
                algorithms=[alg],
                audience=self.client_id,
                issuer=row.issuer,
                leeway=cfg["LTI_CLOCK_LEEWAY"],
                options={"require": ["exp", "iat", "iss", "aud", "nonce"]},
            )
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"The id_token is not valid: {exc}") from exc
        for name in ("iat", "exp", "nbf"):
            value = claims.get(name)
            if (value is not None or name != "nbf") and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise TokenError(f'The id_token "{name}" must be a number of seconds.')
        if time.time() - claims["iat"] > cfg["LTI_MAX_TOKEN_AGE"] + cfg["LTI_CLOCK_LEEWAY"]:
            raise TokenError("The id_token is too old; launch the tool again.")
        self.claims = claims

    def check_nonce(self) -> None:
        """Require the nonce of the login this launch answers."""
        nonce = self.claims.get("nonce")
        if not isinstance(nonce, str) or nonce != self.state_record["nonce"]:
            raise StateError("The id_token nonce does not match the login that started this launch.")

    def consume_state(self) -> None:
        """Use the state once and remember the nonce, so neither the login nor the id_token can be replayed."""
        store, cfg = get_store(), current_app.config
        if store.pop(STATE_PREFIX + self.form["state"]) is None:
            raise StateError("The launch state was already used.")
        ttl = cfg["LTI_MAX_TOKEN_AGE"] + 2 * cfg["LTI_CLOCK_LEEWAY"] + cfg["LTI_STATE_TTL"]
        if not store.add(NONCE_PREFIX + self.claims["nonce"], "1", ttl):
            raise StateError("This id_token was already used.")

    def check_deployment(self) -> None:
        """Require a known, active deployment, onboarding a new one when the registration allows it."""
        deployment_id = self.claims.get(Claim.DEPLOYMENT_ID)
        if not isinstance(deployment_id, str) or not deployment_id:
            raise LaunchError("The id_token has no deployment_id.")
        if len(deployment_id) > MAX_ID_LENGTH:
            raise LaunchError(f"The id_token deployment_id must be at most {MAX_ID_LENGTH} characters.")
        row = find_deployment(self.registration_row, deployment_id)
        if row is None:
            if not self.registration_row.auto_onboard_deployments:
                raise UnknownPlatform(f'The deployment "{deployment_id}" is not known to the tool.')
            row = Deployment(registration=self.registration_row, deployment_id=deployment_id, onboarded_by_launch=True)
            db.session.add(row)
            db.session.flush()
        elif not row.active:
            raise UnknownPlatform(f'The deployment "{deployment_id}" has been deactivated.')
        self.deployment_row = row

    def check_message(self) -> None:  # noqa: C901 - the certification's message checks, listed in order
        """Check the message type, version, roles, claim shapes and id lengths, then pylti1p3's validators."""
        body = self.claims
        message_type = body.get(Claim.MESSAGE_TYPE)
        if not message_type:
            raise LaunchError("The id_token has no message_type.")
        if message_type not in (MessageType.RESOURCE_LINK, MessageType.DEEP_LINKING):
            raise LaunchError(f'The message type "{message_type}" is not supported by this tool.')
        if body.get(Claim.VERSION) != LTI_VERSION:
            raise LaunchError("The id_token version must be 1.3.0.")
        if not isinstance(body.get(Claim.ROLES), list):
            raise LaunchError("The id_token has no roles claim.")
        for claim, label in OBJECT_CLAIMS.items():
            if claim in body and not isinstance(body[claim], dict):
                raise LaunchError(f"The id_token {label} claim must be a JSON object.")
        for name, value in (("sub", body.get("sub")), ("deployment_id", body.get(Claim.DEPLOYMENT_ID)),
                            ("context id", (body.get(Claim.CONTEXT) or {}).get("id")),
                            ("resource link id", (body.get(Claim.RESOURCE_LINK) or {}).get("id"))):
            if value is not None and (not isinstance(value, str) or len(value) > MAX_ID_LENGTH):
                raise LaunchError(f"The id_token {name} must be a string of at most {MAX_ID_LENGTH} characters.")
        if message_type == MessageType.DEEP_LINKING:
            return_url = (body.get(Claim.DL_SETTINGS) or {}).get("deep_link_return_url")
            if not isinstance(return_url, str) or not return_url:
                raise LaunchError("The deep linking settings have no return URL (deep_link_return_url).")
            if _origin(return_url).split("://")[0] not in ("https", "http") or _origin(return_url).endswith("://"):
                # It becomes a form action on our page: a javascript: or data: URL would run in our origin.
                raise LaunchError("The deep linking return URL must be an http(s) URL.")
        for validator in get_validators():
            if validator.can_validate(body):
                try:
                    validator.validate(body)
                except (LtiException, AttributeError, TypeError, ValueError) as exc:
                    raise LaunchError(f"The launch message is invalid: {exc}") from exc


def start_login(params: dict, launch_url: str, tool_origins: set[str]) -> LoginResult:
    """Handle an OIDC third-party login initiation."""
    return OIDCLogin(params, launch_url, tool_origins).start()


def validate_launch(form: dict, cookies: dict) -> Launch | PendingStorageCheck:
    """Validate an id_token + state posted to the launch URL."""
    return LaunchValidator(form, cookies).run()
