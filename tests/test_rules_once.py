"""One source for each rule (issue 9): the three places where two copies of a fact disagreed."""
from __future__ import annotations

import jwt

from tests.support.deep_linking import confirm_deep_link, returned_jwt
from tests.support.lms import close, mark, new_session, start_course

LTI_DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"


def test_the_student_sees_the_grade_the_lms_gets(app, launcher, lms):
    """Drop-lowest counted in the student's history as it is in the LMS grade."""
    teacher, ids, students = start_course(launcher, lms, ["s0"])
    assert teacher.post("/api/grade-policy/", json={"drop_lowest": 1}).status_code == 200
    for days, status in ((3, "absent"), (2, "present"), (1, "late")):
        session = new_session(teacher, days_ago=days)
        mark(teacher, session, ids["s0"], status)
        close(teacher, session)
    lms_grade = {g["student"]["id"]: g["grade"]["score"] for g in teacher.get("/api/grades/").get_json()["grades"]}
    summary = students["s0"].get("/api/student/attendance-history/").get_json()["summary"][0]
    assert lms_grade[ids["s0"]] == 75.0  # the absence dropped: (1 + 0.5) / 2
    assert summary["percentage"] == 75.0


def test_a_course_that_saved_one_rule_follows_the_site_defaults_for_the_others(app, launcher, lms):
    teacher, _, _ = start_course(launcher, lms, ["s0"])
    assert teacher.post("/api/grade-policy/", json={"drop_lowest": 1}).status_code == 200
    app.config.update(POINTS_LATE=0.25, CHECKIN_PRESENT_MINUTES=5, CODE_ROTATION_SECONDS=30)  # the operator changes
    policy = teacher.get("/api/grade-policy/").get_json()["policy"]
    settings = teacher.get("/api/course-settings/").get_json()["settings"]
    assert (policy["drop_lowest"], policy["points_late"]) == (1, 0.25)
    assert (settings["present_minutes"], settings["code_rotation_seconds"]) == (5, 30)


def test_deep_linking_creates_the_line_item_the_grade_worker_looks_for(own_lms):
    app, launcher, services = own_lms(GRADE_LINE_ITEM_TAG="attendance-2027", GRADE_LINE_ITEM_LABEL="Presence",
                                      GRADE_SCORE_MAXIMUM=20)
    auth = launcher.start(services.platform)
    claims = services.platform.claims("instructor", nonce=auth["nonce"], message_type="LtiDeepLinkingRequest")
    page = launcher.post(services.platform.sign(claims), auth["state"]).get_data(as_text=True)
    _, token = returned_jwt(confirm_deep_link(launcher.client, page))
    items = jwt.decode(token, options={"verify_signature": False})[LTI_DL + "content_items"]
    line_item = items[0]["lineItem"]
    assert (line_item["tag"], line_item["label"], line_item["scoreMaximum"]) == ("attendance-2027", "Presence", 20)
