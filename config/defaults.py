"""Committed defaults; every value here is safe to publish."""

SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
SQLALCHEMY_TRACK_MODIFICATIONS = False

# Cookies the tool sets live inside an LMS iframe: they must be cross-site and partitioned.
# Browsers accept Secure cookies from http://localhost and http://127.0.0.1, so this holds in development too.
SESSION_COOKIE_NAME = "attendance_session"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_SAMESITE = "None"
SESSION_COOKIE_PARTITIONED = True
SESSION_COOKIE_HTTPONLY = True
LTI_COOKIE_SECURE = True
LTI_COOKIE_SAMESITE = "None"
LTI_COOKIE_PARTITIONED = True

WTF_CSRF_TIME_LIMIT = 8 * 3600
WTF_CSRF_CHECK_DEFAULT = False  # checked by the API's auth layer for cookie sessions only
WTF_CSRF_SSL_STRICT = False  # the Referer of a request from an LMS iframe is the LMS

TRUSTED_PROXIES = 0
MAX_UPLOAD_MB = 5

# LTI launch checks
LTI_CLOCK_LEEWAY = 30  # seconds of clock skew tolerated on iat / exp / nbf
LTI_MAX_TOKEN_AGE = 300  # an id_token older than this (by iat) is refused
LTI_STATE_TTL = 600  # seconds a login's state and nonce stay usable
LTI_JWKS_CACHE_TTL = 3600  # platform key sets are cached this long
LTI_JWKS_MIN_REFETCH_INTERVAL = 10  # an unknown kid refetches at most this often per key set URL
LTI_HTTP_TIMEOUT = 10  # seconds for any call to a platform
LTI_INVITE_HOURS = 7 * 24  # how long a registration invitation stays usable
LTI_OPEN_REGISTRATION = False  # True: dynamic registration without an invitation, new platforms pending approval
ACTIVE_CHECK_SECONDS = 5  # how long "is this registration/deployment still active" is cached per process

LAUNCH_TOKEN_TTL = 8 * 3600  # a class lasts hours; the token outlives it
KEY_ROTATION_GRACE_DAYS = 7
KEY_SIZE = 2048

TOOL_TITLE = "Attendance"
TOOL_DESCRIPTION = "Class attendance with rotating codes, QR check-in and automatic grades."
AUTO_MIGRATE = True
REDIS_PREFIX = "attendance:"  # keys the tool writes to Redis start with this

# Attendance
CHECKIN_PRESENT_MINUTES = 10  # present until start + this
CHECKIN_LATE_MINUTES = 30  # late until start + this, then check-in closes
CODE_ROTATION_SECONDS = 15
CODE_GRACE_SECONDS = 5  # the previous code still counts this long after it rotated out
ADHOC_SESSION_MINUTES = 90
POINTS_PRESENT = 1.0
POINTS_LATE = 0.5
POINTS_ABSENT = 0.0
GEOFENCE_ACCURACY_CAP_M = 100  # reported GPS accuracy widens the classroom circle by at most this
GEOFENCE_POOR_ACCURACY_M = 150  # worse accuracy than this is flagged
WRONG_CODE_LIMIT_STUDENT = "5 per 5 minutes"  # wrong codes per student
WRONG_CODE_LIMIT_ADDRESS = "3000 per minute"  # wrong codes per network address (a campus NAT hides thousands)
MAX_REPEAT_OCCURRENCES = 60

# Grades (AGS) and roster (NRPS)
GRADE_LINE_ITEM_LABEL = "Attendance"
GRADE_LINE_ITEM_TAG = "attendance"
GRADE_SCORE_MAXIMUM = 100
GRADE_WORKER_INTERVAL = 1.0  # seconds between outbox polls
GRADE_WORKER_BATCH = 200
GRADE_POST_CONCURRENCY = 4  # scores in flight at once to one LMS: polite, and no longer one round trip at a time
GRADE_RETRY_MAX_SECONDS = 30  # backoff cap: a grade arrives within a minute of the LMS answering again
GRADE_CLAIM_SECONDS = 10  # a worker's lease on the rows it is delivering, renewed after each score
GRADE_WORKER_IN_APP = True  # `python app.py` delivers grades from a background thread
ROSTER_SYNC_ON_LAUNCH = True
ROSTER_SYNC_INTERVAL = 600  # seconds: at most one roster read per course per this on teacher launches

# Hardening (issue 7)
TOOL_BASE_URL = "http://127.0.0.1:5000"  # outside production only; APP_ENV=production requires TOOL_BASE_URL
LTI_RATE_LIMIT = "6000 per minute"  # /lti/login, /lti/launch and /lti/register per client address (a campus NAT)
LTI_PENDING_STATES_PER_ADDRESS = "3000 per 10 minutes"  # login states one address may leave pending (LTI_STATE_TTL)
API_MAX_JSON_BYTES = 128 * 1024  # the largest JSON body (5,000 attendance ids fit with room to spare)
API_MAX_JSON_DEPTH = 32  # nesting of JSON arrays/objects; the API's own bodies nest two deep

# Live WebSockets (/ws/attendance/...): caps so that open sockets can never starve HTTP.
# Counted in each server process: with several processes, each applies these caps to its own sockets.
WS_MAX_PER_USER = 3  # a teacher's dashboard and projector plus a reload; a newer socket closes the oldest (4429)
WS_MAX_PER_SESSION = 2000  # teachers and students of one class session; past it, 429 at the handshake
WS_MAX_PER_PROCESS = None  # None: 800 under gevent, half of gunicorn's --threads, 100 on `python app.py` (README)
WS_PING_SECONDS = 20  # a ping after this long without a message; also how often the registration is re-checked
WS_TICKET_TTL = 60  # seconds a page's single-use socket ticket stays valid
SOCK_SERVER_OPTIONS = {"max_message_size": 4096}  # clients only listen: a large inbound frame closes the socket

# Outbound calls to platforms (key sets, tokens, AGS, NRPS, registration): lti/outbound.py
OUTBOUND_MAX_BYTES = 2 * 1024 * 1024  # the largest answer read from a platform; a key set or roster page is far smaller
OUTBOUND_MAX_CONCURRENCY = 16  # calls to platforms in flight at once per process; more wait, within their deadline

# Check-in opening (issue 8)
CHECKIN_EARLY_MINUTES = 15  # check-in may open (and accept students) this long before a session starts, no earlier

# Content-Security-Policy
CSP_ORIGINS_CACHE_SECONDS = 30  # how long the registered platforms' origins (frame-ancestors, form-action) are cached
CSP_EXTRA_FRAME_ANCESTORS: list = []  # operator-added origins allowed to frame the tool, e.g. an LMS on a vanity host
CSP_EXTRA_CONNECT_SRC: list = []  # e.g. a WebSocket server on another origin
