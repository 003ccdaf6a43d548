/* The QR landing page, for a browser that holds a student's launch session: check in with the
 * session cookie and the CSRF token (no launch token here). */
(function () {
  "use strict";
  var A = window.Attendance;
  var root = document.getElementById("landing-checkin");
  if (!root) return;
  var $ = function (id) { return document.getElementById(id); };
  var sessionId = Number(root.dataset.classSessionId);

  function locate() {
    return new Promise(function (resolve) {
      if (!navigator.geolocation) return resolve({ error: "This browser cannot share a location; the check-in is sent without it." });
      var done = false;
      var guard = window.setTimeout(function () { finish({ error: "Your location did not arrive in time; the check-in is sent without it." }); }, 20000);
      function finish(value) { if (!done) { done = true; window.clearTimeout(guard); resolve(value); } }
      navigator.geolocation.getCurrentPosition(function (p) {
        finish({ latitude: p.coords.latitude, longitude: p.coords.longitude, accuracy: p.coords.accuracy });
      }, function (e) {
        finish({ error: e.code === 1 ? "Location is turned off for this page; the check-in is sent without it and your teacher will see that."
          : "Your location is not available; the check-in is sent without it and your teacher will see that." });
      }, { enableHighAccuracy: true, timeout: 12000, maximumAge: 0 });
    });
  }

  $("landing-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    var code = $("landing-code").value.replace(/[\s-]+/g, "").toUpperCase();
    if (!code) {
      A.setStatus($("landing-result"), "Type the code shown by your teacher first.", "error");
      $("landing-code").focus();
      return;
    }
    var button = $("landing-submit");
    button.disabled = true;
    var body = { attendance_code: code, class_session_id: sessionId };
    var where = null;
    if (root.dataset.hasLocation === "true") {
      A.setStatus($("landing-result"), "Getting your location…");
      where = await locate();
      if (!where.error) {
        body.latitude = where.latitude;
        body.longitude = where.longitude;
        body.accuracy_m = Math.round(where.accuracy * 10) / 10;
      }
    }
    A.setStatus($("landing-location"), where && where.error ? where.error : "", where && where.error ? "warn" : "");
    A.setStatus($("landing-result"), "Checking you in…");
    try {
      var data = await A.api("POST", "/api/submit-attendance/", body);
      var result = A.clear($("landing-result"));
      result.dataset.kind = "ok";
      result.dataset.status = data.attendance.status;
      A.append(result, A.el("p", { class: "result-title" }, "You are checked in: ", A.statusBadge(data.attendance.status)));
      if (data.attendance.location_flag === "outside") {
        A.setStatus($("landing-location"), "Your location looks outside the classroom; your teacher will review it.", "warn");
      }
    } catch (err) {
      A.setStatus($("landing-result"), err.message, "error");
      $("landing-code").focus();
    } finally {
      button.disabled = false;
    }
  });
})();
