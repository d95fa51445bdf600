"""Feedback scores: rate a span while it runs, or a whole trace long after it ended.

A chat answer is scored by the program while it runs (an automatic check),
then rated by its user in a later request: `tracekit.log_feedback` needs only
the trace's id, kept from the first request. No API key, no server: spans and
scores go to the local SQLite file, and `tracekit show` prints one line per
score. With Opik configured, the same scores go to Opik's feedback-score
endpoints.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tracekit


@tracekit.track(type="tool")
def retrieve(question: str) -> list[str]:
    docs = ["Opening hours: 9-17", "Closed on Sundays"]
    tracekit.update_current_span(
        feedback_scores=[{"name": "retrieval_hits", "value": len(docs), "reason": "2 docs found"}]
    )
    return docs


@tracekit.track
def answer(question: str) -> dict[str, str]:
    """The request handler: answers, and hands the trace id to the client for its rating."""
    docs = retrieve(question)
    reply = f"{docs[0]}; {docs[1].lower()}."
    grounded = any(doc in reply for doc in docs)
    tracekit.update_current_trace(
        feedback_scores=[{"name": "grounded", "value": float(grounded), "category_name": "auto"}]
    )
    trace = tracekit.current_trace()
    assert trace is not None  # inside a tracked call there is always one
    return {"reply": reply, "trace_id": trace.id}


def second_request(trace_id: str) -> None:
    """The user clicked thumbs down, a minute later."""
    tracekit.log_feedback(trace_id, "user_rating", 0, reason="wanted Saturday hours")


def main() -> None:
    tracekit.configure(project_name="feedback-example")
    response = answer("When are you open?")
    print(response["reply"])
    trace_id = response["trace_id"]
    second_request(trace_id)
    print("exported:", tracekit.flush(10))
    tracekit_cli = Path(sys.executable).parent / "tracekit"
    subprocess.run([str(tracekit_cli), "show", trace_id], check=True)


if __name__ == "__main__":
    main()
