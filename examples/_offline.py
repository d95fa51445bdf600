"""Keep every byte of the examples on this machine.

LiteLLM fetches its model cost map, and Opik reports to Sentry and
analytics, unless told not to. Import this before litellm or opik.
"""

import os

for name, value in (
    ("LITELLM_LOCAL_MODEL_COST_MAP", "True"),
    ("OPIK_SENTRY_ENABLE", "false"),
    ("OPIK_ANALYTICS_ENABLE", "false"),
):
    os.environ.setdefault(name, value)
