"""Every failure `lti/` can raise, each with an error code and the HTTP status it maps to."""


class LtiError(Exception):
    """Base for LTI failures; `code` and `status` become the error page or JSON answer."""

    code = "lti_error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status


class LoginError(LtiError):
    """The OIDC login initiation cannot go on (unknown platform, bad parameters)."""

    code = "invalid_login"


class LaunchError(LtiError):
    """The id_token or its state is not acceptable."""

    code = "invalid_launch"


class UnknownPlatform(LtiError):
    """No active registration matches (issuer, client_id), or the deployment is unknown."""

    code = "unknown_platform"
    status = 403


class StateError(LaunchError):
    """State missing, unknown, expired, replayed, or not bound to this browser."""

    code = "invalid_state"
    status = 403


class TokenError(LaunchError):
    """Signature, algorithm, audience or timing of the id_token is wrong."""

    code = "invalid_token"
    status = 401


class KeySetError(LtiError):
    """The platform's key set cannot be fetched or does not hold the signing key."""

    code = "platform_keys_unavailable"
    status = 401


class RegistrationError(LtiError):
    """Dynamic registration failed: the platform's configuration or answer is unusable."""

    code = "registration_failed"
    status = 400


class LaunchTokenError(LtiError):
    """A launch token (the page's bearer token) is missing, forged or expired."""

    code = "authentication_required"
    status = 401
