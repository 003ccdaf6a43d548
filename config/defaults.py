"""Committed constants: safe to publish, and deliberately not read from the environment.

Every knob an operator may turn is a typed field of `config.settings.Settings` (with its default
there). What stays here is fixed by a contract, a security promise or the code's own correctness;
each group says why. Tests may still override any of them through `create_app(overrides)`.
"""

# The database driver's pool and Flask-SQLAlchemy's event system: DATABASE_URL is the operator's knob.
SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
SQLALCHEMY_TRACK_MODIFICATIONS = False

# Cookies the tool sets live inside an LMS iframe: they must be cross-site and partitioned, or the
# launch breaks in every browser that blocks third-party cookies (the interface contract names these
# flags). Browsers accept Secure cookies from http://localhost and http://127.0.0.1, so they hold in
# development too: nothing an operator could change here would leave the tool working.
SESSION_COOKIE_NAME = "attendance_session"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_SAMESITE = "None"
SESSION_COOKIE_PARTITIONED = True
SESSION_COOKIE_HTTPONLY = True
LTI_COOKIE_SECURE = True
LTI_COOKIE_SAMESITE = "None"
LTI_COOKIE_PARTITIONED = True

# Flask-WTF internals: the API's auth layer checks CSRF itself, for cookie sessions only.
WTF_CSRF_TIME_LIMIT = 8 * 3600
WTF_CSRF_CHECK_DEFAULT = False
WTF_CSRF_SSL_STRICT = False  # the Referer of a request from an LMS iframe is the LMS

# LTI launch checks: the README promises these bounds ("30 s clock leeway and a 5 minute bound on
# token age"); loosening them weakens replay protection, so it is a reviewed code change, not a knob.
LTI_CLOCK_LEEWAY = 30  # seconds of clock skew tolerated on iat / exp / nbf
LTI_MAX_TOKEN_AGE = 300  # an id_token older than this (by iat) is refused
LTI_STATE_TTL = 600  # seconds a login's state and nonce stay usable
# Platform key sets: protocol tuning that platforms' own key rotation already assumes.
LTI_JWKS_CACHE_TTL = 3600  # platform key sets are cached this long
LTI_JWKS_MIN_REFETCH_INTERVAL = 10  # an unknown kid refetches at most this often per key set URL
KEY_SIZE = 2048  # RSA modulus of new signing keys; 2048 is what every LMS accepts

# Rotating codes: a longer grace would let a code photographed in the hall work from elsewhere.
CODE_GRACE_SECONDS = 5  # the previous code still counts this long after it rotated out
# Input guards: bounds on work one request can cause, not policy.
MAX_REPEAT_OCCURRENCES = 60  # sessions one "weekly until" request may create
API_MAX_JSON_DEPTH = 32  # nesting of JSON arrays/objects; the API's own bodies nest two deep
SOCK_SERVER_OPTIONS = {"max_message_size": 4096}  # clients only listen: a large inbound frame closes the socket

# Grade delivery: a worker's lease on the rows it is delivering, renewed after each score; the
# outbox's hand-over between workers depends on it, so it stays with the code that relies on it.
GRADE_CLAIM_SECONDS = 10
