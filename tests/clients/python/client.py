"""The official PyPI `azure-functions-durable` client against a real `weft serve`.

Driven by tests/e2e/clients.rs, which passes the durable client binding data a Functions
host would give (WEFT_BINDING, with `rpcBaseUrl` pointing at Weft's rpc listener: the
only endpoint this client speaks to) and a prefix for instance ids (WEFT_PREFIX). Every
call the HTTP API supports is made once, in one event loop (the client keeps one global
HTTP session). It prints one JSON line of what it did for the Rust test to check on the
server with its own client; a failed assertion exits non-zero.
"""

import asyncio
import json
import os
from datetime import datetime, timedelta, timezone

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.OrchestrationRuntimeStatus import (
    OrchestrationRuntimeStatus,
)


async def until(client, instance_id, check, **options):
    """Polls get_status until check(status) holds; a safety net of two minutes."""
    for _ in range(1200):
        status = await client.get_status(instance_id, **options)
        if check(status):
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"instance {instance_id} never reached the awaited state")


async def raises(awaitable, text=""):
    try:
        await awaitable
    except Exception as error:  # the client raises plain Exceptions
        assert text in str(error), f"{text!r} not in {error!r}"
        return str(error)
    raise AssertionError("the call did not raise")


async def main():
    binding = os.environ["WEFT_BINDING"]
    prefix = os.environ["WEFT_PREFIX"]
    client = df.DurableOrchestrationClient(binding)
    sample = df.DurableOrchestrationClient(
        json.dumps({**json.loads(binding), "rpcBaseUrl": json.loads(binding)["rpcBaseUrl"].rsplit("durabletask/", 1)[0]})
    )
    done = {}
    since = datetime.now(timezone.utc) - timedelta(minutes=1)

    # Start without an id (input JSON-encoded twice by the client), then wait for it.
    fan = await client.start_new("FanOut", None, 3)
    assert len(fan) == 32, fan
    request = func.HttpRequest("GET", "http://127.0.0.1/api/start", body=b"")
    waited = await client.wait_for_completion_or_create_check_status_response(
        request, fan, timeout_in_milliseconds=120000, retry_interval_in_milliseconds=100
    )
    assert waited.status_code == 200, waited.get_body()
    assert json.loads(waited.get_body()) == 3
    done["fan"] = fan

    # Start with an id, an object input, on the sample's own route `/orchestrators/...`.
    echo = await sample.start_new("CallActivity", f"{prefix}-echo", {"name": "Echo", "input": {"a": 1}})
    assert echo == f"{prefix}-echo"
    status = await until(client, echo, lambda s: s.runtime_status == OrchestrationRuntimeStatus.Completed)
    assert status.output == {"a": 1}, status.output
    assert status.input_ == {"name": "Echo", "input": {"a": 1}}, status.input_
    done["echo"] = echo

    # No input at all: an empty body with an octet-stream content type.
    panic = await client.start_new("Panic", f"{prefix}-panic")
    done["panic"] = panic

    # Status with and without input and history (flags sent as `True`).
    status = await client.get_status(fan, show_history=True, show_history_output=True, show_input=True)
    assert status.runtime_status == OrchestrationRuntimeStatus.Completed
    assert status.input_ == 3 and status.output == 3
    events = status.historyEvents
    assert events[0]["EventType"] == "ExecutionStarted", events
    assert any(e.get("Result") == 2 for e in events if e["EventType"] == "TaskCompleted"), events
    status = await client.get_status(fan)
    assert not hasattr(status, "historyEvents")
    missing = await client.get_status(f"{prefix}-nobody")
    assert not missing, "an unknown instance is a falsy status"

    # Lists and filters.
    sleeper = await client.start_new("CallActivity", f"{prefix}-sleep", {"name": "Sleep", "input": 3600000})
    await until(client, sleeper, lambda s: s.runtime_status == OrchestrationRuntimeStatus.Running)
    everything = await client.get_status_all()
    assert {fan, echo, sleeper} <= {s.instance_id for s in everything}
    running = await client.get_status_by(
        created_time_from=since,
        created_time_to=datetime.now(timezone.utc) + timedelta(minutes=1),
        runtime_status=[OrchestrationRuntimeStatus.Running],
    )
    ids = {s.instance_id for s in running}
    assert sleeper in ids and fan not in ids, ids

    # Suspend, resume, events (202 while running and recorded in the history, 404
    # unknown, 410 ended), terminate.
    await client.suspend(sleeper, "hold on")
    await until(client, sleeper, lambda s: s.runtime_status == OrchestrationRuntimeStatus.Suspended)
    await client.resume(sleeper, "go on")
    await until(client, sleeper, lambda s: s.runtime_status == OrchestrationRuntimeStatus.Running)
    await client.raise_event(sleeper, "Approval", {"ok": True})
    status = await until(
        client,
        sleeper,
        lambda s: any(
            e.get("EventType") == "EventRaised" and e.get("Name") == "Approval"
            for e in (getattr(s, "historyEvents", None) or [])
        ),
        show_history=True,
        show_history_output=True,
        show_input=True,
    )
    raised = next(e for e in status.historyEvents if e["EventType"] == "EventRaised")
    assert json.loads(raised["Input"]) == {"ok": True}, raised
    await raises(client.raise_event(f"{prefix}-nobody", "Approval", True))
    await client.terminate(sleeper, "enough")
    status = await until(client, sleeper, lambda s: s.runtime_status == OrchestrationRuntimeStatus.Terminated)
    assert status.output == "enough"
    await client.terminate(sleeper, "again")
    await raises(client.raise_event(sleeper, "Approval", True))
    done["sleeper"] = sleeper

    # Rewind: the extension's 412 text for an instance that has not failed; a failed one
    # is rewound (the Panic orchestrator fails again).
    await until(client, panic, lambda s: s.runtime_status == OrchestrationRuntimeStatus.Failed)
    message = await raises(client.rewind(echo, "not failed"), 'only orchestrations in the "Failed" state')
    await client.rewind(panic, "try again")
    done["rewound"] = panic

    # Restart: under a new id (the client returns the check-status body), and the same.
    restarted = await client.restart(echo)
    assert isinstance(restarted, dict) and restarted["id"] != echo, restarted
    await until(client, restarted["id"], lambda s: s.runtime_status == OrchestrationRuntimeStatus.Completed)
    same = await client.restart(echo, restart_with_new_instance_id=False)
    assert same["id"] == echo, same
    await until(client, echo, lambda s: s.runtime_status == OrchestrationRuntimeStatus.Completed)
    await raises(client.restart(f"{prefix}-nobody"))
    done["restarted"] = restarted["id"]

    # Purge one, then by filter.
    assert (await client.purge_instance_history(fan)).instances_deleted == 1
    assert (await client.purge_instance_history(fan)).instances_deleted == 0
    purged = await client.purge_instance_history_by(
        created_time_from=since, runtime_status=[OrchestrationRuntimeStatus.Terminated]
    )
    assert purged.instances_deleted == 1, purged.instances_deleted
    done["purged"] = [fan, sleeper]

    # The check-status response is built locally from the binding data.
    check = client.create_check_status_response(request, echo)
    assert check.status_code == 202
    print(json.dumps(done))


asyncio.run(main())
