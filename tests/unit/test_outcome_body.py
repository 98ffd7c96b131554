"""The relay writes outcomes directly: byte for byte what the contract's pydantic model writes."""

from __future__ import annotations

from types import SimpleNamespace
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from services.intake.translate import outcome_body
from shared.events import Outcome, OutcomeError

texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)


@given(command_id=texts, routing_key=st.none() | texts, status=st.sampled_from(["accepted", "rejected"]),
       stream=st.none() | st.uuids(), version=st.none() | st.integers(0, 10**9),
       error=st.none() | st.tuples(texts.filter(bool), texts))
def test_outcome_body_matches_the_model(command_id: str, routing_key: str | None, status: str,
                                        stream: UUID | None, version: int | None,
                                        error: tuple[str, str] | None) -> None:
    record = SimpleNamespace(command_id=command_id, routing_key=routing_key, status=status,
                             stream_id=str(stream) if stream else None, version=version,
                             error_code=error[0] if error else None, error_message=error[1] if error else None)
    model = Outcome(command_id=command_id, command=routing_key, status=status, stream_id=stream, version=version,  # type: ignore[arg-type]
                    error=OutcomeError(code=error[0], message=error[1]) if error else None)
    assert outcome_body(record) == model.model_dump_json(exclude_none=True).encode()
