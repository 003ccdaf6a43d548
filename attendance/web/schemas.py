"""Input schemas of the API (marshmallow): they validate JSON and form bodies alike and feed the OpenAPI file."""
from __future__ import annotations

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from attendance.models import STATUSES
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
