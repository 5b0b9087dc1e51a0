/**
 * A part started by the simulation or a test exits when its parent dies without stopping it
 * (npm start killed with SIGKILL, a test file killed at its timeout before its cleanup ran), so
 * no orphan keeps ports and CPU. Real processes: a parent spawns a long-running child with the
 * preload, prints the child's pid and is then killed with SIGKILL.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { test } from "node:test";
import { EXIT_WITH_PARENT } from "../../sim/child-process.ts";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function orphanAfterParentKill(preload: boolean): Promise<number> {
  const childArgs = [...(preload ? ["--import", EXIT_WITH_PARENT] : []), "-e", "setInterval(() => {}, 1000)"];
  const parentScript = `
    const { spawn } = require("node:child_process");
    const env = { ...process.env, RF_PARENT_PID: String(process.pid) };
    const child = spawn(process.execPath, ${JSON.stringify(childArgs)}, { stdio: "ignore", env });
    console.log(child.pid);
    setInterval(() => {}, 1000);`;
  const parent = spawn(process.execPath, ["-e", parentScript], { stdio: ["ignore", "pipe", "inherit"] });
  const [chunk] = (await once(parent.stdout, "data")) as [Buffer];
  const childPid = Number(chunk.toString().trim());
  assert.ok(childPid > 0 && alive(childPid), "the child runs");
  parent.kill("SIGKILL");
  await once(parent, "exit");
  return childPid;
}

test("a preloaded child exits within seconds of its parent's SIGKILL", async () => {
  const childPid = await orphanAfterParentKill(true);
  const deadline = Date.now() + 15_000;
  while (alive(childPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.equal(alive(childPid), false, "the orphan exited on its own");
});

test("without the preload the same child would run on (the check can fail)", async () => {
  const childPid = await orphanAfterParentKill(false);
  await new Promise((r) => setTimeout(r, 1_500));
  assert.equal(alive(childPid), true);
  process.kill(childPid, "SIGKILL");
});
