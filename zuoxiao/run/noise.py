"""Library log messages that look like failures but are not, dropped at the CLI by exact match.

- apache_beam warns "apitools not found, and bigquery client libraries are not available..." on the root
  logger when its BigQuery client stub is imported; zuoxiao never uses BigQuery.
- transformers logs a LOAD REPORT ("classifier.weight | MISSING ... newly initialized") whenever a
  backbone gets a classification head; zuoxiao creates that head on purpose (teacher fine-tune, a student
  from a head-less teacher) and logs one INFO line of its own instead (zuoxiao.teacher.classifier).
- apache_beam.runners.common logs every error raised in a step with its traceback before re-raising it;
  for Ctrl-C that is a page of Beam/torch frames above the CLI's own "interrupted (exit 130)" line, and
  for a ZuoxiaoError (e.g. a served teacher that stopped answering) a page above the CLI's own
  "zuoxiao: error: ..." line. Only those records go: neither is a failure to debug.

Every other message, including any other load report, still shows.
"""

from __future__ import annotations

import logging
import re

#: Library log messages that look like failures but are not, dropped by exact match (install_noise_filters).
BEAM_APITOOLS = ("apitools not found, and bigquery client libraries are not available despite the import not "
                 "raising an ImportError.")  # apache_beam's bigquery client stub: we never use BigQuery
BEAM_STEP_LOGGER = "apache_beam.runners.common"  # logs a step's error with its traceback, then re-raises
_HEAD_KEY = re.compile(r"^(classifier|score|pre_classifier)\.(weight|bias)$")  # a sequence-classification head
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def is_new_head_report(message: str) -> bool:
    """True for a transformers LOAD REPORT whose only rows are the classification head's weights, MISSING
    (a backbone without a head) or MISMATCH (a head of another label count): the head zuoxiao creates on
    purpose (zuoxiao.teacher.classifier.load_classifier logs its own one-line INFO instead). Any other row
    (encoder weights missing, unexpected keys, conversion errors) keeps the whole report visible."""
    text = _ANSI.sub("", message)
    first, _, body = text.partition("\n")
    if " LOAD REPORT" not in first:
        return False
    table = body.split("\n\n", 1)[0].splitlines()[2:]  # after the "Key | Status" header and the ---- line
    rows = [[cell.strip() for cell in line.split("|")] for line in table if line.strip()]
    return bool(rows) and all(len(r) >= 2 and _HEAD_KEY.match(r[0]) and r[1] in ("MISSING", "MISMATCH")
                              for r in rows)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to judge: let it through
            return True
        return not (msg == BEAM_APITOOLS or is_new_head_report(msg) or _is_beam_interrupt(record)
                    or _is_beam_user_error(record))


def _is_beam_interrupt(record: logging.LogRecord) -> bool:
    """Beam's traceback of a Ctrl-C in a step (runners.common re-raises it as RuntimeError("KeyboardInterrupt
    [while running ...]") and logs that with the KeyboardInterrupt as exc_info), or of a ZuoxiaoError raised
    in a step (the CLI prints its message and exits with its code)."""
    from zuoxiao.core.errors import ZuoxiaoError

    exc = record.exc_info[0] if isinstance(record.exc_info, tuple) else None
    return record.name == BEAM_STEP_LOGGER and exc is not None and issubclass(exc, (KeyboardInterrupt, ZuoxiaoError))


def _is_beam_user_error(record: logging.LogRecord) -> bool:
    """Beam's traceback of a ZuoxiaoError raised in a step (a full disk, an unreachable store, bad input):
    the CLI reports the same error once, with its message and exit code (zuoxiao.core.errors.user_error)."""
    from zuoxiao.core.errors import ZuoxiaoError

    exc = record.exc_info[0] if isinstance(record.exc_info, tuple) else None
    return record.name == BEAM_STEP_LOGGER and exc is not None and issubclass(exc, ZuoxiaoError)


def install_noise_filters() -> None:
    """Drop exactly the library messages that are noise; every other warning still shows.

    Filters sit on the loggers that emit them (a logger's filters see only its own records): Beam warns on
    the root logger at import, transformers reports loads on transformers.modeling_utils, Beam logs a
    step's Ctrl-C on apache_beam.runners.common. Idempotent.
    """
    for name in ("", "transformers.modeling_utils", BEAM_STEP_LOGGER):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())
