"""What the tests share, one module per job (fixtures stay in conftest.py and `fixtures`).

- `platform`: a simulated LTI platform (its keys, JWKS endpoint and signed id_tokens).
- `lms_services`: the loopback LMS answering AGS and NRPS calls as Moodle and Canvas do.
- `launch`: storing a platform's registration and driving the OIDC login + launch (`Launcher`).
- `api`: a launched user calling the JSON API, and the contract's error shape.
- `lms`: course builders and outbox helpers for tests that deliver grades to the loopback LMS.
- `checkin`: a course for check-in tests, its sessions and codes.
- `registration`: Moodle and Canvas as Dynamic Registration sees them.
- `deep_linking`: confirming a deep link and reading the JWT posted back.
- `websocket`: WebSocket clients and real-HTTP launches against a served tool.
- `clock`: clocks the tests move by hand, so nothing sleeps to let time pass.
- `fixtures`: fixtures several modules share (`lms`, `own_lms`, `platforms`), registered in conftest.py.
- `processes`: real tool processes (`flask run`, gunicorn) on free ports; the `tool_env` fixture.
- `browser`: headless Chromium, a threaded tool server, an LMS course page framing the tool.
"""
