"""The project's exception tree and its one list of error codes.

Every error raised on purpose is a `TaggerError`. A failed job carries an `ErrorCode` in its
result; image problems found by `ml.preprocess` use the same codes (its `ImageError.code`).
"""

from __future__ import annotations

from enum import Enum


class TaggerError(Exception):
    """Base of every error this project raises on purpose."""


class DecodeError(TaggerError, ValueError):
    """A message, job or result could not be decoded into its schema."""


class JobTooLarge(TaggerError, ValueError):
    """A job that no message may carry (over half the worker's max_message_bytes): refused before sending."""


class JobFailed(TaggerError):
    """A failed job (or a message none of whose jobs was tagged), as Celery's tools read it.

    Its result in the result backend has state FAILURE and names this class (Celery's JSON
    exception format: exc_type, exc_module, exc_message = [error code, reason]), so
    `AsyncResult.get(propagate=False)` returns a JobFailed and `.failed()` is true; the
    same result still holds every TagResult field, which our client reads.
    """

    def __str__(self) -> str:
        return ": ".join(str(a) for a in self.args)


class ErrorCode(str, Enum):
    """Why a job failed: the `error_code` of a failed result (its `error` says it in a sentence)."""

    EMPTY_IMAGE = "empty_image"  # no bytes, or a blank picture: nothing differs from the background
    IMAGE_TOO_LARGE = "image_too_large"  # more bytes than the byte limit
    TOO_MANY_PIXELS = "too_many_pixels"  # width x height over the pixel limit, read from the header
    UNSUPPORTED_FORMAT = "unsupported_format"  # not PNG, JPEG or WebP, or not an image at all
    DECODE_ERROR = "decode_error"  # the header was fine, the pixels were not (truncated, corrupt)
    URL_NOT_ALLOWED = "url_not_allowed"  # not http(s), host not in TAGGER_URL_ALLOWLIST, or a private address
    FETCH_TIMEOUT = "fetch_timeout"  # the image URL did not answer within the timeouts or the job's deadline
    FETCH_FAILED = "fetch_failed"  # the image URL answered with an error status (in `error`), or not at all
    UNSUPPORTED_CONTENT_TYPE = "unsupported_content_type"  # the image URL answered with a non-image content type
    INVALID_JOB = "invalid_job"  # the job does not match the Job schema
    INVALID_MESSAGE = "invalid_message"  # the message around the job could not be read
    TOO_MANY_ATTEMPTS = "too_many_attempts"  # its deliveries kept dying: dead-lettered
    INTERNAL_ERROR = "internal_error"  # a bug: the worker's log has the traceback
    REVOKED = "revoked"  # its message's task id was revoked (`celery control revoke`) before it ran
    EXPIRED = "expired"  # its message's `expires` time had passed before it ran


# Codes whose result has Celery's state REVOKED (stock Celery's for a revoked or expired task), not FAILURE.
NOT_RUN_CODES = frozenset({ErrorCode.REVOKED, ErrorCode.EXPIRED})

# The codes `ml.preprocess` raises for an image (a subset of ErrorCode).
IMAGE_ERROR_CODES = frozenset({ErrorCode.EMPTY_IMAGE, ErrorCode.IMAGE_TOO_LARGE, ErrorCode.TOO_MANY_PIXELS,
                               ErrorCode.UNSUPPORTED_FORMAT, ErrorCode.DECODE_ERROR})
