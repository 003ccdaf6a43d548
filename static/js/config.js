/* The server's constants for this page (attendance/web/client_config.py), read from the page's
 * <script type="application/json" id="client-config"> block: never restated here. */
const block = document.getElementById("client-config");

/** poor_accuracy_m, code_rotation_seconds, code_alphabet, code_length, statuses, document_types. */
export const config = Object.freeze(block ? JSON.parse(block.textContent) : {});
