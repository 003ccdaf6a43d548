"""The API's marshmallow schemas: inputs (JSON and form bodies alike) and outputs, both feeding the OpenAPI file.

Output schemas (`...Out`) dump rows into the bodies the API answers; apispec turns them into the
document's components, so a response shape is written once.
"""
from __future__ import annotations

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from attendance.codes import ALPHABET, LENGTH
from attendance.models import STATUSES, Source
from attendance.records import iso
from lti.roles import STUDENT, TEACHER

Latitude = lambda **kw: fields.Float(validate=validate.Range(-90, 90), allow_none=True, **kw)  # noqa: E731
Longitude = lambda **kw: fields.Float(validate=validate.Range(-180, 180), allow_none=True, **kw)  # noqa: E731
MAX_ID = 2_147_483_647  # larger ids cannot exist (and would overflow the database's integer)


class IdField(fields.Integer):
    """A row id: a whole number from 1 to MAX_ID, as a JSON number or a form string; 1.5 is refused, not rounded."""

    def __init__(self, **kw):
        super().__init__(strict=False, validate=validate.Range(1, MAX_ID), **kw)

    def _validated(self, value):
        if isinstance(value, float) and not value.is_integer():
            raise self.make_error("invalid")
        if isinstance(value, str) and "." in value:
            raise self.make_error("invalid")
        return super()._validated(value)


Id = IdField


class BoundedDateTime(fields.DateTime):
    """An ISO 8601 date-time between the years 1971 and 2199: arithmetic on it can never overflow."""

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        if not 1971 <= moment.year <= 2199:
            raise ValidationError("Must be between the years 1971 and 2199.")
        return moment


class BoundedDate(fields.Date):
    def _deserialize(self, value, attr, data, **kwargs):
        day = super()._deserialize(value, attr, data, **kwargs)
        if not 1971 <= day.year <= 2199:
            raise ValidationError("Must be between the years 1971 and 2199.")
        return day


class In(Schema):
    class Meta:
        unknown = EXCLUDE  # extra fields (csrf_token, cache busters) are ignored, never stored


class ClassSessionIn(In):
    title = fields.String(required=True, validate=validate.Length(1, 255))
    starts_at = BoundedDateTime(required=True, metadata={"description": "ISO 8601; without an offset, the course's timezone"})
    ends_at = BoundedDateTime(required=True)
    latitude = Latitude()
    longitude = Longitude()
    radius_m = fields.Float(validate=validate.Range(5, 5000), allow_none=True)
    present_minutes = fields.Integer(validate=validate.Range(0, 240), allow_none=True)
    late_minutes = fields.Integer(validate=validate.Range(0, 480), allow_none=True)
    repeat_weekly_until = BoundedDateTime(allow_none=True, metadata={"description": "repeat every week until this moment"})


class AdminClassSessionIn(ClassSessionIn):
    course_id = Id(required=True)


class OptionalSessionIn(In):
    class_session_id = Id(allow_none=True)


class GenerateCodeIn(OptionalSessionIn):
    reopen = fields.Boolean(load_default=True, metadata={
        "description": "false: only read the code of an open check-in (a rotation refresh never reopens a stopped one)"})


class SessionIn(In):
    class_session_id = Id(required=True)


class SubmitAttendanceIn(In):
    attendance_code = fields.String(required=True, validate=validate.Length(1, 32))
    latitude = Latitude()
    longitude = Longitude()
    simulated_latitude = Latitude()
    simulated_longitude = Longitude()
    accuracy_m = fields.Float(validate=validate.Range(0, 1_000_000), allow_none=True)
    device_id = fields.String(validate=validate.Length(max=128), allow_none=True)
    class_session_id = Id(allow_none=True)

    @validates_schema
    def both_or_neither(self, data, **_):
        """Refuse a latitude without a longitude, or the reverse."""
        lat = data.get("latitude", data.get("simulated_latitude"))
        lon = data.get("longitude", data.get("simulated_longitude"))
        if (lat is None) != (lon is None):
            raise ValidationError("Give both latitude and longitude, or neither.",
                                  "latitude" if lat is None else "longitude")


class ValidateIn(In):
    attendance_id = Id()
    attendance_ids = fields.List(Id(), validate=validate.Length(1, 5000))
    status = fields.String(load_default="present", validate=validate.OneOf(STATUSES))
    remark = fields.String(validate=validate.Length(max=2000), allow_none=True)
    if_status = fields.String(validate=validate.OneOf(STATUSES), allow_none=True, metadata={
        "description": "change only while every record still has this status (the one the page showed); "
                       "otherwise 409 stale_status and nothing changes"})

    @validates_schema
    def one_target(self, data, **_):
        """Require attendance_id or attendance_ids."""
        if "attendance_id" not in data and "attendance_ids" not in data:
            raise ValidationError("Give attendance_id or attendance_ids.", "attendance_id")


class MarkIn(In):
    class_session_id = Id(required=True)
    student_id = Id(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    remark = fields.String(validate=validate.Length(max=2000), allow_none=True)


class AiValidationIn(In):
    attendance_id = Id()
    class_session_id = Id()

    @validates_schema
    def one_target(self, data, **_):
        """Require attendance_id or class_session_id."""
        if "attendance_id" not in data and "class_session_id" not in data:
            raise ValidationError("Give attendance_id or class_session_id.", "attendance_id")


class JustificationIn(In):
    class_session_id = Id(required=True)
    reason = fields.String(required=True, validate=validate.Length(1, 4000))


class ReviewIn(In):
    justification_id = Id(required=True)
    decision = fields.String(required=True, validate=validate.OneOf(("approve", "reject")))


class HistoryIn(In):
    course_id = Id(allow_none=True)
    from_ = BoundedDate(data_key="from", allow_none=True)
    to = BoundedDate(allow_none=True)


class CourseSettingsIn(In):
    timezone = fields.String(validate=validate.Length(1, 64))
    present_minutes = fields.Integer(validate=validate.Range(0, 240))
    late_minutes = fields.Integer(validate=validate.Range(0, 480))
    code_rotation_seconds = fields.Integer(validate=validate.Range(5, 300))
    points_late = fields.Float(validate=validate.Range(0, 1))


class CreateUserIn(In):
    sub = fields.String(required=True, validate=validate.Length(1, 255))
    name = fields.String(load_default="", validate=validate.Length(max=255))
    email = fields.Email(load_default="", validate=validate.Length(max=320))
    course_id = Id(allow_none=True, metadata={"description": "enrol the user in this course"})
    role = fields.String(load_default=STUDENT, validate=validate.OneOf((STUDENT, TEACHER)))


class CreateCourseIn(In):
    context_id = fields.String(required=True, validate=validate.Length(1, 255))
    title = fields.String(required=True, validate=validate.Length(1, 512))
    label = fields.String(load_default="", validate=validate.Length(max=255))
    timezone = fields.String(load_default="UTC", validate=validate.Length(1, 64))


class GradePolicyIn(In):
    points_present = fields.Float(validate=validate.Range(0.01, 100))
    points_late = fields.Float(validate=validate.Range(0, 100))
    points_absent = fields.Float(validate=validate.Range(0, 100))
    drop_lowest = fields.Integer(validate=validate.Range(0, 50))
    denominator = fields.String(validate=validate.OneOf(("closed", "scheduled")))


class StudentIdIn(In):
    student_id = Id(allow_none=True)


# -- outputs -----------------------------------------------------------------------------------
RISK_LEVELS = ("low", "medium", "high")
LOCATION_FLAGS = ("inside", "outside", "missing", "inaccurate", "no_geofence")
JUSTIFICATION_STATUSES = ("pending", "approved", "rejected")
DOCUMENT_TYPES = ("application/pdf", "image/png", "image/jpeg")


class UtcDateTime(fields.DateTime):
    """A moment written as ISO 8601 in UTC with a `Z`."""

    def __init__(self, **kw):
        kw.setdefault("metadata", {}).setdefault("description", "ISO 8601 in UTC (`Z`)")
        super().__init__(**kw)

    def _serialize(self, value, attr, obj, **kwargs):
        return value if isinstance(value, str) else iso(value)  # lean builders hand over ISO strings already


def Member(cls=fields.String, **kw):  # noqa: N802 - reads as a field type
    """A field every answer carries (required in the document)."""
    return cls(required=True, **kw)


class Out(Schema):
    """An answer's shape: every member listed, nothing else (additionalProperties false)."""

    class Meta:
        unknown = RAISE
        ordered = True


class IdOut(fields.Integer):
    """A row id in an answer."""

    def __init__(self, **kw):
        super().__init__(required=True, validate=validate.Range(min=1), **kw)


class PersonOut(Out):
    id = IdOut()
    name = Member(attribute="display_name")


class RiskOut(Out):
    score = Member(fields.Integer, validate=validate.Range(0, 100), metadata={"description": "100 is the most suspicious"})
    level = Member(validate=validate.OneOf(RISK_LEVELS))
    reasons = Member(fields.List, cls_or_instance=fields.String())


class SubmissionOut(Out):
    """An attendance record as the course's teachers see it."""

    id = IdOut()
    class_session_id = IdOut()
    student = Member(fields.Nested, nested=PersonOut)
    submitted_at = UtcDateTime(required=True, allow_none=True)
    status = Member(validate=validate.OneOf(STATUSES))
    source = Member(validate=validate.OneOf([s.value for s in Source]), metadata={
        "description": "how the record came to be: a check-in, a teacher's mark, closing, an approved justification"})
    risk = Member(fields.Nested, nested=RiskOut, allow_none=True)
    location_flag = Member(allow_none=True, validate=validate.OneOf(LOCATION_FLAGS), metadata={
        "description": "inside/outside the classroom circle, no position (missing), poor accuracy (inaccurate), "
                       "or a session without geofence (no_geofence)"})
    distance_m = Member(fields.Float, allow_none=True)
    accuracy_m = Member(fields.Float, allow_none=True)
    remark = Member()
    validated_at = UtcDateTime(required=True, allow_none=True)


class CheckInOut(Out):
    """The student's own new record."""

    id = IdOut()
    class_session_id = IdOut()
    status = Member(validate=validate.OneOf(STATUSES))
    submitted_at = UtcDateTime(required=True)
    location_flag = Member(validate=validate.OneOf(LOCATION_FLAGS))


class AttendanceChangeOut(Out):
    """A change to a student's own record (their WebSocket)."""

    id = IdOut()
    class_session_id = IdOut()
    status = Member(validate=validate.OneOf(STATUSES))


class AiResultOut(Out):
    attendance_id = IdOut()
    score = Member(fields.Integer, validate=validate.Range(0, 100))
    level = Member(validate=validate.OneOf(RISK_LEVELS))
    reasons = Member(fields.List, cls_or_instance=fields.String())


class ClassSessionOut(Out):
    """A class session with its check-in window (from the course's rules)."""

    id = IdOut()
    course_id = IdOut()
    course_title = Member()
    title = Member()
    starts_at = UtcDateTime(required=True)
    ends_at = UtcDateTime(required=True)
    timezone = Member(metadata={"description": "the course's IANA timezone"})
    latitude = Member(fields.Float, allow_none=True)
    longitude = Member(fields.Float, allow_none=True)
    radius_m = Member(fields.Float, allow_none=True)
    present_until = UtcDateTime(required=True)
    late_until = UtcDateTime(required=True)
    checkin_open = Member(fields.Boolean)
    checkin_opened_at = UtcDateTime(required=True, allow_none=True)
    closed = Member(fields.Boolean)
    closed_at = UtcDateTime(required=True, allow_none=True)
    is_adhoc = Member(fields.Boolean)
    series_id = Member(allow_none=True, metadata={"description": "shared by the sessions of a weekly series"})
    submission_count = fields.Integer(validate=validate.Range(min=0),
                                      metadata={"description": "check-ins so far (in lists only)"})


class DocumentOut(Out):
    name = Member(attribute="document_name")
    type = Member(attribute="document_type", validate=validate.OneOf(DOCUMENT_TYPES))
    size = Member(fields.Integer, attribute="document_size", validate=validate.Range(min=0))
    url = Member(fields.Function, serialize=lambda row: f"/api/justifications/{row.id}/document",
               metadata={"type": "string", "format": "uri-reference"})


class JustificationOut(Out):
    id = IdOut()
    class_session_id = IdOut()
    student = Member(fields.Nested, nested=PersonOut)
    reason = Member()
    status = Member(validate=validate.OneOf(JUSTIFICATION_STATUSES))
    created_at = UtcDateTime(required=True)
    reviewed_at = UtcDateTime(required=True, allow_none=True)
    document = Member(fields.Method, serialize="_document", allow_none=True,
                    metadata={"anyOf": [{"$ref": "#/components/schemas/Document"}, {"type": "null"}]})

    def _document(self, row):
        return DOCUMENT_SCHEMA.dump(row) if row.document_path else None


DOCUMENT_SCHEMA = DocumentOut()


class ClassSessionCountedOut(ClassSessionOut):
    """A class session in a list: with its check-in count."""

    submission_count = Member(fields.Integer, validate=validate.Range(min=0),
                            metadata={"description": "check-ins so far (in lists only)"})


class StudentOut(Out):
    id = IdOut()
    name = Member()
    email = Member()
    active = Member(fields.Boolean)


class SettingsOut(Out):
    timezone = Member()
    present_minutes = Member(fields.Integer, validate=validate.Range(min=0))
    late_minutes = Member(fields.Integer, validate=validate.Range(min=0))
    code_rotation_seconds = Member(fields.Integer, validate=validate.Range(min=1))
    points_present = Member(fields.Float)
    points_late = Member(fields.Float)
    points_absent = Member(fields.Float)


class StudentClassOut(Out):
    class_session_id = IdOut()
    course_id = IdOut()
    course_title = Member()
    title = Member()
    starts_at = UtcDateTime(required=True)
    ends_at = UtcDateTime(required=True)
    timezone = Member()
    checkin_open = Member(fields.Boolean)
    has_location = Member(fields.Boolean)
    my_status = Member(allow_none=True, validate=validate.OneOf(STATUSES))
    closed = Member(fields.Boolean)


class HistoryItemOut(Out):
    attendance_id = IdOut()
    class_session_id = IdOut()
    course_id = IdOut()
    course_title = Member()
    title = Member()
    starts_at = UtcDateTime(required=True)
    status = Member(validate=validate.OneOf(STATUSES))
    submitted_at = UtcDateTime(required=True, allow_none=True)
    remark = Member()


def Count(**kw):  # noqa: N802 - reads as a field type
    """A whole number from 0, always present."""
    return Member(fields.Integer, validate=validate.Range(min=0), **kw)


class CourseSummaryOut(Out):
    course_id = IdOut()
    course_title = Member()
    attended = Count()
    late = Count()
    excused = Count()
    absent = Count()
    total = Count()
    percentage = Member(fields.Float, allow_none=True, validate=validate.Range(0, 100), metadata={
        "description": "points earned over points possible; excused not counted"})


class GradePolicyOut(Out):
    points_present = Member(fields.Float)
    points_late = Member(fields.Float)
    points_absent = Member(fields.Float)
    drop_lowest = Count()
    denominator = Member(validate=validate.OneOf(("closed", "scheduled")))


class RosterStateOut(Out):
    source = Member(validate=validate.OneOf(("nrps", "launches")))
    synced_at = UtcDateTime(required=True, allow_none=True)
    error = Member(allow_none=True)


class GradeOut(Out):
    score = Member(fields.Float, allow_none=True, validate=validate.Range(0, 100))
    comment = Member()
    counted = Count()
    present = Count()
    late = Count()
    excused = Count()
    absent = Count()
    dropped = Count()
    sessions = Count()


class GradeStudentOut(Out):
    id = IdOut()
    name = Member()
    active = Member(fields.Boolean)


class GradeRowOut(Out):
    student = Member(fields.Nested, nested=GradeStudentOut)
    grade = Member(fields.Nested, nested=GradeOut)
    sync = Member(fields.Raw, metadata={"json_schema": {"$ref": "#/components/schemas/GradeSync"}})


class AdminUserOut(Out):
    id = IdOut()
    sub = Member()
    name = Member()
    email = Member()


class AdminCourseOut(Out):
    id = IdOut()
    context_id = Member()
    title = Member()
    label = Member()
    timezone = Member()


# -- success bodies: `"success": true` and the payload ------------------------------------------
def Many(schema):  # noqa: N802 - reads as a field type
    """A list of schema items, always present."""
    return Member(fields.List, cls_or_instance=fields.Nested(schema))


def One(schema, **kw):  # noqa: N802 - reads as a field type
    """One schema item, always present."""
    return Member(fields.Nested, nested=schema, **kw)


class Success(Out):
    success = fields.Constant(True, required=True)


class ClassSessionsCreatedOut(Success):
    """The new session (and every week of a series)."""

    class_session = One(ClassSessionOut)
    class_sessions = Many(ClassSessionOut)


class ClassSessionListOut(Success):
    """The launched course's sessions, oldest first."""

    class_sessions = Many(ClassSessionCountedOut)


class CodeIssuedOut(Success):
    """The code valid now (check-in is open)."""

    code = Member(validate=validate.Regexp(f"^[{ALPHABET}]{{{LENGTH}}}$"))
    class_session_id = IdOut()
    expires_at = UtcDateTime(required=True)
    rotation_seconds = Member(fields.Integer, validate=validate.Range(min=1))
    checkin_url = Member(metadata={"format": "uri", "description": "opens the check-in with the code"})


class ClassSessionResultOut(Success):
    """The session as it is now."""

    class_session = One(ClassSessionOut)


class CheckInAcceptedOut(Success):
    """The check-in was recorded."""

    attendance = One(CheckInOut)


class SubmissionListOut(Success):
    """Every submission of the session, unpaged."""

    submissions = Many(SubmissionOut)


class StudentListOut(Success):
    """The course's students the tool knows."""

    students = Many(StudentOut)


class AttendanceValidatedOut(Success):
    """The first record, and every record changed."""

    attendance = One(SubmissionOut)
    attendances = Many(SubmissionOut)


class AttendanceMarkedOut(Success):
    """The student's record."""

    attendance = One(SubmissionOut)


class AiResultsOut(Success):
    """One result per check-in."""

    results = Many(AiResultOut)


class SessionClosedOut(Success):
    """Students without a record were recorded absent."""

    absent_count = Count()
    class_session = One(ClassSessionOut)
    roster_error = Member(allow_none=True, metadata={
        "description": "why the LMS roster could not be read first (the session closed anyway)"})


class SettingsResultOut(Success):
    """The course's attendance settings."""

    settings = One(SettingsOut)


class JustificationResultOut(Success):
    """The justification."""

    justification = One(JustificationOut)


class JustificationListOut(Success):
    """Newest first."""

    justifications = Many(JustificationOut)


class ClassListOut(Success):
    """Classes of the student's courses, by start."""

    classes = Many(StudentClassOut)


class HistoryOut(Success):
    """The student's records (newest first) and a summary per course."""

    history = Many(HistoryItemOut)
    summary = Many(CourseSummaryOut)


class UserCreatedOut(Success):
    """The new user."""

    user = One(AdminUserOut)


class CourseCreatedOut(Success):
    """The new course."""

    course = One(AdminCourseOut)


class GradeListOut(Success):
    """Each student's grade, how it was computed, and whether the LMS has it."""

    ags = Member(fields.Boolean, metadata={"description": "whether grades go to the LMS (AGS)"})
    roster = One(RosterStateOut)
    policy = One(GradePolicyOut)
    grades = Many(GradeRowOut)


class GradesRequeuedOut(Success):
    """Failed deliveries put back in the queue."""

    requeued = Count()


class GradePolicyResultOut(Success):
    """The course's grading rules."""

    policy = One(GradePolicyOut)


class RosterSyncedOut(Success):
    """The roster was read from the LMS (NRPS)."""

    roster = One(RosterStateOut)
    members = Count()
    added = Count()
    updated = Count()
    deactivated = Count()


class WsTicketOut(Success):
    """A ticket for /ws/attendance/{class_session_id}?ticket=...: single use, this session only."""

    ticket = Member(validate=validate.Length(min=32), metadata={"description": "random; consumed by the handshake"})
    expires_in = Member(fields.Integer, validate=validate.Range(min=1),
                      metadata={"description": "seconds it stays usable (WS_TICKET_TTL)"})


# -- WebSocket messages ------------------------------------------------------------------------
CODE_PATTERN = f"^[{ALPHABET}]{{{LENGTH}}}$"


def Const(value, **kw):  # noqa: N802 - reads as a field type
    """A member that always has this value (`const` in the document)."""
    return fields.Constant(value, required=True, metadata={"const": value, **kw.pop("metadata", {})}, **kw)


def Kinds(*kinds):  # noqa: N802 - reads as a field type
    """A message type among these."""
    return Member(validate=validate.OneOf(kinds))


class WsConnectedOut(Out):
    """First message after the upgrade."""

    type = Const("connected")
    class_session_id = IdOut()
    role = Member(validate=validate.OneOf((TEACHER, STUDENT)))


class WsPingOut(Out):
    """Sent after WS_PING_SECONDS (20 s) without any other message."""

    type = Const("ping")


class WsCodeGeneratedOut(Out):
    """A teacher opened check-in or asked for the code."""

    type = Const("code_generated")
    class_session_id = IdOut()
    code = Member(validate=validate.Regexp(CODE_PATTERN))
    expires_at = UtcDateTime(required=True)


class WsCheckinStoppedOut(Out):
    """A teacher stopped check-in (stop-checkin)."""

    type = Const("checkin_stopped")
    class_session_id = IdOut()


class WsSessionClosedOut(Out):
    """The session was closed; its absences were sent just before."""

    type = Const("session_closed")
    class_session_id = IdOut()
    absent_count = Member(fields.Integer, validate=validate.Range(min=0))


class WsAttendanceEventOut(Out):
    """A check-in (student_submission) or a changed status (attendance_validated)."""

    type = Kinds("student_submission", "attendance_validated")
    attendance = Member(fields.Nested, nested=SubmissionOut)


class WsAiValidationResultOut(Out):
    """One result of run-ai-validation."""

    type = Const("ai_validation_result")
    result = Member(fields.Nested, nested=AiResultOut)


class WsOwnAttendanceEventOut(Out):
    """The student's own record (of any session) was created or changed."""

    type = Kinds("student_submission", "attendance_validated")
    attendance = Member(fields.Nested, nested=AttendanceChangeOut)


TEACHER_MESSAGES = (WsConnectedOut, WsPingOut, WsCodeGeneratedOut, WsCheckinStoppedOut, WsAttendanceEventOut,
                    WsAiValidationResultOut, WsSessionClosedOut)
STUDENT_MESSAGES = (WsConnectedOut, WsPingOut, WsOwnAttendanceEventOut)
