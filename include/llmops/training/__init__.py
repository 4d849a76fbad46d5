"""Fine-tuning: ``llmops train --config FILE`` / ``python -m llmops.training --config FILE``."""
