"""Readers that turn results other tools wrote into :class:`~calib_harness.records.Run` records.

* :mod:`calib_harness.readers.stock` -- stock lm-eval ``--log_samples`` files of any task
  (``multiple_choice``: option log-likelihoods; ``generate_until``: the filtered response).
* :mod:`calib_harness.readers.table` -- the plain per-sample table (CSV, TSV, JSONL, Parquet),
  documented in ``docs/PLAIN_TABLE.md``.

:func:`calib_harness.lm_eval_io.load_run` picks the reader from what it is given; call the
readers directly only to bypass that choice.
"""

from calib_harness.readers.stock import NO_CONFIDENCE, record_from_stock_sample, rescore
from calib_harness.readers.table import TABLE_SUFFIXES, read_table

__all__ = ["NO_CONFIDENCE", "TABLE_SUFFIXES", "read_table", "record_from_stock_sample", "rescore"]
