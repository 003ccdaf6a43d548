"""The whole class in real browsers: a teacher and a student, each in their own headless Chromium,
with the tool framed cross-site in the LMS course page and third-party cookies blocked.

The teacher creates a session (placing it with the browser's location), starts check-in and reads the
code from the dashboard; the student checks in with a faked geolocation; the teacher's table shows
the new row without a reload; the teacher validates it and the student's page follows live.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.browser import (  # noqa: F401 - fixtures
    WAIT,
    browser,
    browser_available,
    click,
    lms,
    lms_url,
    login_url,
    open_course,
    place,
    tool,
    wait_for_js,
)

pytestmark = pytest.mark.browser

CLASSROOM = (41.5369, -8.4239)
STUDENT_SPOT = (41.5370, -8.4240, 25)  # about 14 m from the middle of the room


@pytest.fixture
def shots(tmp_path):
    """Where screenshots go: $ATTENDANCE_SCREENSHOTS if set, else the test's temporary folder."""
    folder = Path(os.environ.get("ATTENDANCE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_teacher_sees_a_check_in_live_and_validates_it(browser, tool, lms, shots):
    from selenium.webdriver.common.by import By

    teacher = browser("teacher")
    student = browser("student")

    # The teacher creates a session placed where they stand, and starts check-in.
    place(teacher, lms, tool, *CLASSROOM, 15)
    assert open_course(teacher, lms, "teacher") == "teacher"
    wait_for_js(teacher, "return document.getElementById('teacher-dashboard').dataset.ready")
    teacher.find_element(By.ID, "session-title-input").send_keys("Lecture 1")
    teacher.find_element(By.ID, "use-location").click()
    wait_for_js(teacher, "return document.getElementById('session-latitude').value")
    assert abs(float(teacher.find_element(By.ID, "session-latitude").get_attribute("value")) - CLASSROOM[0]) < 1e-5
    teacher.find_element(By.ID, "create-session").click()
    session_id = wait_for_js(teacher, "var p = document.getElementById('session-panel');"
                                      "return !p.hidden && p.dataset.sessionId")
    assert teacher.find_element(By.ID, "session-title").text == "Lecture 1"
    assert teacher.find_elements(By.CSS_SELECTOR, f'#sessions tr[data-session-id="{session_id}"]')
    dashboard = teacher.current_window_handle
    teacher.find_element(By.ID, "start-checkin").click()  # also opens the projector view in a new window
    code = wait_for_js(teacher, "return document.getElementById('current-code').dataset.code")
    assert len(code) == 6
    wait_for_js(teacher, "return document.getElementById('live-state').dataset.state === 'live'")
    teacher.execute_script("window.loadedOnce = true")  # gone if the frame reloads

    # The student, in another browser, checks in with the code on the teacher's screen.
    place(student, lms, tool, *STUDENT_SPOT)
    assert open_course(student, lms, "student") == "student"
    wait_for_js(student, "return document.getElementById('student-home').dataset.ready")
    wait_for_js(student, f"return document.querySelector('#current-classes li[data-class-session-id=\"{session_id}\"]')")
    code = teacher.execute_script("return document.getElementById('current-code').dataset.code")  # the code valid now
    student.find_element(By.ID, "attendance-code").send_keys(code.lower())
    student.find_element(By.ID, "checkin-submit").click()
    assert wait_for_js(student, "return document.getElementById('checkin-result').dataset.status") == "present"
    assert "in the classroom" in student.find_element(By.ID, "location-message").text

    # The teacher's table shows the new row without a reload.
    row_css = "#submissions tbody tr[data-attendance-id]"
    attendance_id = wait_for_js(teacher, f"var r = document.querySelector('{row_css}'); return r && r.dataset.attendanceId")
    assert teacher.execute_script("return window.loadedOnce") is True
    row = teacher.find_element(By.CSS_SELECTOR, f'#submissions tr[data-attendance-id="{attendance_id}"]')
    assert row.find_element(By.CSS_SELECTOR, "th.student").text == "Grace Hopper"
    assert row.get_attribute("data-status") == "present"
    assert row.find_element(By.CSS_SELECTOR, "[data-flag]").get_attribute("data-flag") == "inside"
    assert teacher.find_element(By.ID, "submission-count").text == "1"
    wait_for_js(teacher, "return document.getElementById('missing-students').textContent"
                         ".includes('Every enrolled student has a record')")

    # The teacher validates: the row changes, and the student's page follows live.
    row.find_element(By.CSS_SELECTOR, 'button[data-status="late"]').click()
    wait_for_js(teacher, f"return document.querySelector('#submissions tr[data-attendance-id=\"{attendance_id}\"]')"
                         ".dataset.status === 'late'")
    assert row.find_element(By.CSS_SELECTOR, "td.status").text == "Late"
    assert row.find_element(By.CSS_SELECTOR, 'button[data-status="late"]').get_attribute("aria-pressed") == "true"
    assert wait_for_js(student, "var r = document.getElementById('checkin-result');"
                                "return r.dataset.status === 'late' && r.dataset.status") == "late"
    assert "late" in wait_for_js(student, "return document.getElementById('live-message').textContent")

    # The projector view opened by "Start check-in" shows the code, the QR code and the count.
    teacher.switch_to.default_content()
    teacher.save_screenshot(str(shots / "teacher-dashboard.png"))
    projector = [handle for handle in teacher.window_handles if handle != dashboard]
    assert len(projector) == 1
    teacher.switch_to.window(projector[0])
    teacher.set_window_size(1600, 900)
    assert wait_for_js(teacher, "return document.getElementById('projector-code').dataset.code").isalnum()
    wait_for_js(teacher, "var q = document.getElementById('projector-qr'); return !q.hidden && q.complete && q.naturalWidth > 0")
    assert wait_for_js(teacher, "return document.getElementById('checkin-count').textContent === '1'")
    assert teacher.find_element(By.ID, "projector-course").text == "Physics 101"
    assert "#token=" not in teacher.current_url  # moved out of the address bar shown to the room
    teacher.save_screenshot(str(shots / "projector.png"))
    student.switch_to.default_content()
    student.save_screenshot(str(shots / "student.png"))


def png(width: int = 16, height: int = 16) -> bytes:
    """A small valid PNG (a blue square), as a student's scanned note."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x0b\x5c\xad" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_teacher_reviews_validates_and_closes_in_the_browser(browser, tool, lms, tmp_path):
    """Bulk status, remark, mark present, a justification read inline and approved, closing with its dialog."""
    from datetime import datetime, timedelta, timezone

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    from tests.support.api import launch_as
    from tests.support.launch import Launcher

    api = Launcher(tool.flask_app.test_client())
    teacher_api = launch_as(api, lms, "instructor", sub="teacher-1", name="Ada Lovelace")
    now = datetime.now(timezone.utc)
    session_id = teacher_api.post("/api/class-sessions/", json={
        "title": "Lecture 2", "starts_at": (now - timedelta(minutes=3)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat()}).get_json()["class_session"]["id"]
    code = teacher_api.post("/api/generate-code/", json={"class_session_id": session_id}).get_json()["code"]
    for sub, name in (("s-alan", "Alan Turing"), ("s-kath", "Katherine Johnson")):
        checked = launch_as(api, lms, "learner", sub=sub, name=name).post(
            "/api/submit-attendance/", json={"attendance_code": code})
        assert checked.status_code == 201, checked.get_json()
    for sub, name in (("s-barb", "Barbara Liskov"), ("s-eds", "Edsger Dijkstra")):
        launch_as(api, lms, "learner", sub=sub, name=name)

    # Grace explains her absence with a document, from the student page.
    student = browser("student")
    assert open_course(student, lms, "student") == "student"
    wait_for_js(student, "return document.getElementById('student-home').dataset.ready")
    Select(student.find_element(By.ID, "justification-session")).select_by_value(str(session_id))
    student.find_element(By.ID, "justification-reason").send_keys("Doctor's appointment.")
    note = tmp_path / "note.png"
    note.write_bytes(png())
    student.find_element(By.ID, "justification-document").send_keys(str(note))
    student.find_element(By.ID, "justification-submit").click()
    assert wait_for_js(student, "var s = document.getElementById('justification-status');"
                                "return s.dataset.kind === 'ok' && s.textContent")

    # The dashboard opens on the session whose check-in is open.
    teacher = browser("teacher")
    assert open_course(teacher, lms, "teacher") == "teacher"
    rows = "#submissions tbody tr[data-attendance-id]"
    wait_for_js(teacher, f"return document.querySelectorAll('{rows}').length === 2")
    assert teacher.find_element(By.ID, "session-panel").get_attribute("data-session-id") == str(session_id)

    teacher.find_element(By.ID, "select-all").click()
    Select(teacher.find_element(By.ID, "bulk-status")).select_by_value("late")
    teacher.find_element(By.ID, "bulk-apply").click()
    wait_for_js(teacher, f"return [...document.querySelectorAll('{rows}')].every(r => r.dataset.status === 'late')")

    first = teacher.find_elements(By.CSS_SELECTOR, rows)[0]
    first.find_element(By.CSS_SELECTOR, ".edit-remark").click()
    first.find_element(By.CSS_SELECTOR, ".remark-input").send_keys("Bus strike", Keys.ENTER)
    wait_for_js(teacher, f"return document.querySelector('{rows} .remark-text').textContent === 'Bus strike'")

    click(teacher, '#missing-students button[aria-label="Mark Barbara Liskov present"]')
    wait_for_js(teacher, f"return [...document.querySelectorAll('{rows}')].some(r => "
                         "r.querySelector('th.student').textContent === 'Barbara Liskov' && r.dataset.status === 'present')")

    # The justification's document opens inline, and approving it excuses Grace live on both pages.
    card = "#justifications li[data-justification-id]"
    wait_for_js(teacher, f"return document.querySelector('{card}')")
    click(teacher, f"{card} [data-action=view-document]")
    wait_for_js(teacher, "var i = document.querySelector('#document-frame img'); return i && i.complete && i.naturalWidth === 16")
    assert teacher.find_element(By.CSS_SELECTOR, "#document-frame img").get_attribute("src").startswith("blob:")
    click(teacher, f"{card} [data-decision=approve]")
    wait_for_js(teacher, f"return [...document.querySelectorAll('{rows}')].some(r => "
                         "r.querySelector('th.student').textContent === 'Grace Hopper' && r.dataset.status === 'excused')")
    assert "excused" in wait_for_js(student, "return document.getElementById('live-message').textContent")

    # Closing asks first, then records the one student left absent.
    teacher.find_element(By.ID, "close-session").click()
    wait_for_js(teacher, "return document.getElementById('close-dialog').open")
    teacher.find_element(By.ID, "close-confirm").click()
    assert wait_for_js(teacher, "return document.getElementById('session-status').dataset.absentCount") == "1"
    wait_for_js(teacher, f"return [...document.querySelectorAll('{rows}')].some(r => "
                         "r.querySelector('th.student').textContent === 'Edsger Dijkstra' && r.dataset.status === 'absent')")
    assert teacher.find_element(By.ID, "close-session").get_attribute("disabled") is not None


def test_projector_and_dashboard_follow_stop_and_close_live(browser, tool, lms):
    """Another window (a co-teacher, here the API) stops check-in, starts it again and closes the session:
    the projector and the dashboard follow at once, from the session's WebSocket, not at the next rotation."""
    from datetime import datetime, timedelta, timezone

    from selenium.webdriver.common.by import By

    from tests.support.api import launch_as
    from tests.support.launch import Launcher

    api = Launcher(tool.flask_app.test_client())
    other_window = launch_as(api, lms, "instructor", sub="teacher-1", name="Ada Lovelace")
    # Codes last 5 minutes: a projector that re-checked only at each rotation would not notice for minutes.
    assert other_window.post("/api/course-settings/", json={"code_rotation_seconds": 300}).status_code == 200
    now = datetime.now(timezone.utc)
    session_id = other_window.post("/api/class-sessions/", json={
        "title": "Lecture 3", "starts_at": (now - timedelta(minutes=2)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat()}).get_json()["class_session"]["id"]
    assert other_window.post("/api/generate-code/", json={"class_session_id": session_id}).status_code == 200
    launch_as(api, lms, "learner", sub="s-absent", name="Alan Turing")

    # The dashboard opens on the session whose check-in is open; the projector view beside it.
    teacher = browser("teacher")
    assert open_course(teacher, lms, "teacher") == "teacher"
    wait_for_js(teacher, f"return document.getElementById('session-panel').dataset.sessionId === '{session_id}'")
    wait_for_js(teacher, "return document.getElementById('current-code').dataset.code")
    wait_for_js(teacher, "return document.getElementById('live-state').dataset.state === 'live'")
    projector_url = teacher.execute_script("return document.getElementById('projector-link').href")
    teacher.switch_to.default_content()
    dashboard = teacher.current_window_handle
    teacher.switch_to.new_window("window")
    projector = teacher.current_window_handle
    teacher.get(projector_url)
    wait_for_js(teacher, "return document.getElementById('projector-code').dataset.code")
    wait_for_js(teacher, "return document.getElementById('projector-live').dataset.state === 'live'")
    assert teacher.find_element(By.ID, "projector-course").text == "Physics 101"
    assert teacher.find_element(By.ID, "projector-title").text == "Lecture 3"
    session_reads = ("return performance.getEntriesByType('resource')"
                     ".filter(e => e.name.includes('/api/class-sessions/')).length")
    reads_before = teacher.execute_script(session_reads)

    def in_dashboard():
        teacher.switch_to.window(dashboard)
        teacher.switch_to.frame("tool")

    # Stopped elsewhere: the code leaves the projector without it re-reading the session, and the dashboard.
    assert other_window.post("/api/stop-checkin/", json={"class_session_id": session_id}).status_code == 200
    wait_for_js(teacher, "return document.getElementById('projector-code').dataset.code === ''")
    assert teacher.execute_script(session_reads) == reads_before  # the socket's message, not the fallback
    assert "stopped" in teacher.find_element(By.ID, "projector-message").text
    assert teacher.find_element(By.ID, "projector-restart").is_displayed()
    assert teacher.find_element(By.ID, "projector-qr").get_attribute("hidden") is not None
    in_dashboard()
    wait_for_js(teacher, "return document.getElementById('code-display').hidden")
    assert "stopped from another window" in teacher.find_element(By.ID, "session-status").text
    assert teacher.find_element(By.ID, "start-checkin").text == "Restart check-in"
    wait_for_js(teacher, f"return document.querySelector('#sessions tr[data-session-id=\"{session_id}\"]')"
                         ".dataset.state !== 'open'")

    # Started again elsewhere: both show the code again.
    code = other_window.post("/api/generate-code/", json={"class_session_id": session_id}).get_json()["code"]
    assert wait_for_js(teacher, "return document.getElementById('current-code').dataset.code") == code
    teacher.switch_to.window(projector)
    assert wait_for_js(teacher, "return document.getElementById('projector-code').dataset.code") == code
    assert not teacher.find_element(By.ID, "projector-restart").is_displayed()

    # Closed elsewhere: the projector ends for good, the dashboard shows the closed session and its absences.
    closed = other_window.post("/api/close-session/", json={"class_session_id": session_id}).get_json()
    assert closed["absent_count"] == 1
    wait_for_js(teacher, "return document.getElementById('projector-code').dataset.code === ''")
    assert "closed" in teacher.find_element(By.ID, "projector-message").text
    assert not teacher.find_element(By.ID, "projector-restart").is_displayed()  # nothing can restart it
    in_dashboard()
    assert wait_for_js(teacher, "return document.getElementById('session-status').dataset.absentCount") == "1"
    assert "closed from another window" in teacher.find_element(By.ID, "session-status").text
    assert teacher.find_element(By.ID, "close-session").get_attribute("disabled") is not None
    assert not teacher.find_element(By.ID, "start-checkin").is_displayed()
    wait_for_js(teacher, "return [...document.querySelectorAll('#submissions tbody tr[data-attendance-id]')].some(r => "
                         "r.querySelector('th.student').textContent === 'Alan Turing' && r.dataset.status === 'absent')")
