"""The attendance product: courses, people, class sessions, check-ins, pages and APIs. Built on `lti/`."""
