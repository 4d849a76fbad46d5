"""Data-quality gates with Great Expectations 1.x.

Suites are YAML files (``include/expectations/<stage>.yaml``); :func:`llmops.quality.gate.run_gate`
validates a DataFrame with GX's real API (ephemeral context, pandas data source, validation
definition, checkpoint with a Data Docs action) and applies the suite's policy. Importing this
package is cheap; Great Expectations is imported only when a gate runs.
"""
