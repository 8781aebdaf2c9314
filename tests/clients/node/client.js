// The official npm `durable-functions` client against a real `weft serve`: every call
// the HTTP API supports. Driven by tests/e2e/clients.rs, which passes the durable client
// binding data a Functions host would give (WEFT_BINDING), a prefix for instance ids
// (WEFT_PREFIX) and the testing components' orchestrators. With `rpcBaseUrl` in the
// binding data, the client talks to Weft's rpc listener; without it, to the public
// listener with the key in the binding's URLs. It prints one JSON line of what it did,
// for the Rust test to check on the server with its own client; any failed assertion
// exits non-zero.
"use strict";

const assert = require("node:assert/strict");
const { InvocationContext, HttpRequest } = require("@azure/functions");
const df = require("durable-functions");

/** A client made as the Functions host makes one: from its durableClient binding data. */
function clientFrom(data) {
  const input = df.input.durableClient();
  const context = new InvocationContext({
    functionName: "client",
    options: { extraInputs: [input] },
  });
  context.extraInputs.set(input, data);
  return df.getClient(context);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `getStatus` until `check(status)` holds; a safety net of two minutes. */
async function until(client, id, check, options = {}) {
  for (let i = 0; i < 1200; i++) {
    const status = await client.getStatus(id, options);
    if (check(status)) return status;
    await sleep(100);
  }
  throw new Error(`instance ${id} never reached the awaited state`);
}

async function main() {
  const data = JSON.parse(process.env.WEFT_BINDING);
  const prefix = process.env.WEFT_PREFIX;
  const rpc = Boolean(data.rpcBaseUrl);
  const client = clientFrom(data);
  const done = {};
  const since = new Date(Date.now() - 60 * 1000);

  // Start without an id on the extension's route (or the rpc base), then wait for it.
  const fan = await client.startNew("FanOut", { input: 3 });
  assert.match(fan, /^[0-9a-f]{32}$/);
  const request = new HttpRequest({ method: "GET", url: "http://127.0.0.1/api/start" });
  const waited = await client.waitForCompletionOrCreateCheckStatusResponse(request, fan, {
    timeoutInMilliseconds: 120000,
    retryIntervalInMilliseconds: 100,
  });
  assert.equal(waited.status, 200);
  assert.equal(await waited.json(), 3, "0 + 1 + 2");
  done.fan = fan;

  // Start with an id on the sample's own route `/orchestrators/{name}/{id}`.
  let sample;
  if (rpc) {
    sample = clientFrom({ ...data, rpcBaseUrl: new URL("/", data.rpcBaseUrl).href });
  } else {
    const creation = data.creationUrls.createNewInstancePostUri.replace(
      "/runtime/webhooks/durabletask/orchestrators/",
      "/orchestrators/",
    );
    assert.notEqual(creation, data.creationUrls.createNewInstancePostUri);
    sample = clientFrom({
      ...data,
      creationUrls: { ...data.creationUrls, createNewInstancePostUri: creation },
    });
  }
  const sleeper = await sample.startNew("CallActivity", {
    instanceId: `${prefix}-sleep`,
    input: { name: "Sleep", input: 3600000 },
  });
  assert.equal(sleeper, `${prefix}-sleep`);
  done.sleeper = sleeper;

  // Status: with and without input, with history.
  let status = await client.getStatus(fan);
  assert.equal(status.runtimeStatus, "Completed");
  assert.equal(status.input, 3);
  assert.equal(status.output, 3);
  status = await client.getStatus(fan, { showInput: false });
  // The client drops `showInput=false` on the rpc path (it sends only true flags).
  assert.equal(status.input, rpc ? 3 : null);
  status = await client.getStatus(fan, { showHistory: true, showHistoryOutput: true, showInput: true });
  assert.equal(status.name, "FanOut");
  await until(client, sleeper, (s) => s.runtimeStatus === "Running");

  // Lists and filters (the client follows continuation tokens).
  const all = await client.getStatusAll();
  assert.ok(all.some((s) => s.instanceId === fan));
  assert.ok(all.some((s) => s.instanceId === sleeper));
  const running = await client.getStatusBy({
    createdTimeFrom: since,
    createdTimeTo: new Date(Date.now() + 60 * 1000),
    runtimeStatus: [df.OrchestrationRuntimeStatus.Running],
  });
  assert.ok(running.some((s) => s.instanceId === sleeper));
  assert.ok(!running.some((s) => s.instanceId === fan));
  const none = await client.getStatusBy({ createdTimeTo: new Date("2001-01-01T00:00:00Z") });
  assert.deepEqual(none, []);

  // Suspend, resume, and events: accepted (202) by a running instance, which records
  // the event in its history (and keeps it until it waits for it); a 404 error for an
  // unknown one, and no error for an ended one (410).
  await client.suspend(sleeper, "hold on");
  await until(client, sleeper, (s) => s.runtimeStatus === "Suspended");
  await client.resume(sleeper, "go on");
  await until(client, sleeper, (s) => s.runtimeStatus === "Running");
  // The client's status object drops `historyEvents`, so the history is read from the
  // status URL the client hands out.
  await client.raiseEvent(sleeper, "Approval", { ok: true });
  const history = `${client.createHttpManagementPayload(sleeper).statusQueryGetUri}&showHistory=true`;
  let raised;
  for (let i = 0; i < 1200 && !raised; i++) {
    const body = await (await fetch(history)).json();
    raised = (body.historyEvents || []).find((e) => e.EventType === "EventRaised");
    if (!raised) await sleep(100);
  }
  assert.ok(raised, "the raised event reached the history");
  assert.equal(raised.Name, "Approval");
  assert.deepEqual(JSON.parse(raised.Input), { ok: true });
  await assert.rejects(client.raiseEvent(`${prefix}-nobody`, "Approval", true), /No instance with ID/);

  // Terminate; again is no error (410).
  await client.terminate(sleeper, "enough");
  status = await until(client, sleeper, (s) => s.runtimeStatus === "Terminated");
  assert.equal(status.output, "enough");
  await client.terminate(sleeper, "again");
  await client.raiseEvent(sleeper, "Approval", true);

  // Rewind: refused unless Failed; a failed instance is rewound (it fails again, as the
  // Panic orchestrator always panics).
  const failing = await client.startNew("Panic", { instanceId: `${prefix}-panic` });
  await until(client, failing, (s) => s.runtimeStatus === "Failed");
  await assert.rejects(client.rewind(sleeper, "not failed"));
  await client.rewind(failing, "try again");
  done.rewound = failing;

  // The check-status response and management payload are built from the binding data.
  const check = client.createCheckStatusResponse(undefined, fan);
  assert.equal(check.status, 202);
  const payload = client.createHttpManagementPayload(fan);
  assert.ok(payload.statusQueryGetUri.includes(fan));

  // Purge one (then it is gone: 0), and purge by filter.
  assert.equal((await client.purgeInstanceHistory(fan)).instancesDeleted, 1);
  assert.equal((await client.purgeInstanceHistory(fan)).instancesDeleted, 0);
  await assert.rejects(client.getStatus(fan));
  const purged = await client.purgeInstanceHistoryBy({
    createdTimeFrom: since,
    runtimeStatus: [df.OrchestrationRuntimeStatus.Terminated],
  });
  assert.equal(purged.instancesDeleted, 1);
  done.purged = [fan, sleeper];

  console.log(JSON.stringify(done));
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : error);
  process.exit(1);
});
