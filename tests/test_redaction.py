"""The redaction function on its own (pure): URL passwords by position, secrets by value."""

from __future__ import annotations

import json
import logging

from sync_service.models.config import SyncConfig
from sync_service.utils.logging_setup import JsonFormatter, RedactingFormatter
from sync_service.utils.redaction import Redactor, install, mask_url, redact


def test_a_url_password_is_masked_wherever_the_url_appears() -> None:
    # given text naming URLs with and without userinfo
    redactor = Redactor()
    text = ("NATS fetch at nats://app:hunter2@10.0.0.5:4222,nats://b:pw@h2:4222: refused; "
            "api http://files.example.com:8080/x and https://u:p%40ss@files.example.com/")
    # when it is redacted
    masked = redactor(text)
    # then every password is *** and the rest is unchanged
    assert masked == ("NATS fetch at nats://app:***@10.0.0.5:4222,nats://b:***@h2:4222: refused; "
                      "api http://files.example.com:8080/x and https://u:***@files.example.com/")
    assert mask_url("nats://user:pw@host:4222") == "nats://user:***@host:4222"


def test_known_secret_values_are_masked_in_every_form() -> None:
    secret = 'to/k"en é'
    redactor = Redactor([secret, "ab"])
    for form in (secret, "to%2Fk%22en%20%C3%A9", json.dumps(secret)[1:-1]):
        assert redactor(f"before {form} after") == "before *** after"
    # a value too short to be searched for alone is left alone (it would match everywhere)
    assert redactor("a cab") == "a cab"


def test_values_are_redacted_recursively() -> None:
    redactor = Redactor(["s3cr3t-value"])
    report = {"failures": [{"op": "run", "error": "s3cr3t-value at http://u:p@h/"}], "n": 3}
    assert redactor.value(report) == {"failures": [{"op": "run", "error": "*** at http://u:***@h/"}], "n": 3}


def test_config_secrets_cover_every_secret_of_spec_6() -> None:
    assert "api-token" in SyncConfig.from_env({"API_TOKEN": "api-token"}, env_file=None).secrets()
    config = SyncConfig.from_env({
        "CUSTOMER_S3_ACCESS_KEY": "AKIAEXAMPLE", "CUSTOMER_S3_SECRET_KEY": "cust-secret",
        "TARGET_S3_SECRET_KEY": "target-secret",
        "FILE_MANAGER_API_URL": "https://fm:fm-pass@files.example.com",
        "NATS_URL": "nats://a:nats-one@h1:4222,nats://b:nats-two@h2:4222",
        "CUSTOMER_S3_ENDPOINT": "http://key:endpoint-pass@s3.example.com",
    }, env_file=None)
    assert set(config.secrets()) >= {"cust-secret", "target-secret", "fm-pass",
                                     "nats-one", "nats-two", "endpoint-pass"}
    shown = json.dumps(config.masked())
    for secret in config.secrets():
        assert secret not in shown


def test_log_lines_and_their_tracebacks_are_redacted() -> None:
    # given a logged exception whose traceback carries a secret and a URL password
    install(["tb-secret-123"])
    try:
        try:
            raise ConnectionError("connect to nats://u:tb-pass@h:1 with tb-secret-123 failed")
        except ConnectionError:
            record = logging.LogRecord("t", logging.ERROR, __file__, 1, "cycle failed: %s",
                                       ("tb-secret-123",), None)
            import sys

            record.exc_info = sys.exc_info()
        # when either formatter writes it
        lines = [RedactingFormatter().format(record), JsonFormatter().format(record)]
    finally:
        install([])
    # then neither the message nor the traceback shows them
    for line in lines:
        assert "tb-secret-123" not in line and "tb-pass" not in line
        assert "Traceback" in line or "exception" in line
    assert redact("tb-secret-123") == "tb-secret-123"  # uninstalled again
