"""Talking to the LMS: the grade outbox and worker, the roster, the service client."""
