/* The QR landing page, for a browser that holds a student's launch session: check in with the
 * session cookie and the CSRF token (no launch token here). */
import { checkIn } from "./js/checkin.js";
import { byId } from "./js/dom.js";

const root = byId("landing-checkin");
if (root) {
  const fields = {
    input: byId("landing-code"), button: byId("landing-submit"),
    result: byId("landing-result"), locationLine: byId("landing-location"),
  };
  const options = {
    wantsLocation: async () => root.dataset.hasLocation === "true",
    extra: { class_session_id: Number(root.dataset.classSessionId) },
  };
  byId("landing-form").addEventListener("submit", (event) => {
    event.preventDefault();
    checkIn(fields, options);
  });
}
