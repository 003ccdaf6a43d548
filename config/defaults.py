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
