"""The run tags (``ct/*``) that sensors and schedules set and assets read: why a run exists and what it may do.

A run started by hand carries none of them; every reader has a default for that case.
"""

TRIGGER_TAG = "ct/trigger"  # what asked for the run: landing, drift, ..., schedule, or a policy rule's name
REASON_TAG = "ct/reason"  # the same in plain language
DECISION_DAY_TAG = "ct/decision_day"  # on a training_decision run: the day decided (one run per day)
DECISION_TAG = "ct/decision_id"  # on a training run: the decision it carries out
WINDOW_END_TAG = "ct/window_end"  # on a training run: the last day of the training window
APPROVAL_TAG = "ct/requires_approval"  # "true": the candidate waits for a human before it serves
TRAINING_RUN_TAG = "ct/training_run"  # "true" on every training run; limited to one at a time in dagster.yaml
ACTION_TAG = "ct/action"  # "rollback" makes production_model restore the previous model
ROLLBACK_MODEL_TAG = "ct/rollback_model_id"  # the model a rollback verdict judged: only it may be rolled back

MAX_REASON_CHARS = 1000  # a reason tag is cut here: tags are for reading, the full story is in the records
